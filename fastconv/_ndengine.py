"""Correlations of any rank on the 2-D engine, for the N-D drop-ins (``fastconv.signal``,
``fastconv.ndimage``).

One internal entry point, :func:`correlate_nd`, on canonical arrays: ``x`` (N, C, *spatial) and
``w`` (K, C/groups, *kernel), one (before, after) padding pair and one padding mode per spatial
axis. It reduces every rank to ``conv2d`` problems, so no rank compiles a kernel of its own:

* rank 1: one signal (N = C = K = 1) of at least ``SEGMENT_FROM`` samples is cut into
  overlapping rows, written with its padding in one pass, a 2-D image correlated with a 1 x k
  kernel (the rows run in parallel; a
  single row of 2^20 samples ran 3-10x slower than its plan estimated). Several signals sharing
  one kernel are the rows of one image; otherwise a unit height axis.
* rank 2: the problem itself.
* rank 3: the N-D engine's reduction (fastconv/planning/ranks.py: depth taps folded into
  channels, chunked within the workspace budget), after padding explicitly a depth axis whose
  mode differs from the other axes'.
* rank > 3: a loop over the first spatial axis's output positions and taps, summing rank - 1
  correlations (slow for large arrays; SciPy's tests and real uses of rank > 3 are small).

Padding modes are per axis (the modes are separable): the 2-D engine pads its two axes virtually
when they share a mode; an axis whose mode differs is padded explicitly with ``numpy.pad`` first.
Depth and higher axes read through ``numpy.pad`` index maps, as the engine's rows and columns do,
so every mode, padding wider than the input included, follows ``numpy.pad``. ``"constant"`` pads
with ``fill``; the other names are ``conv2d``'s padding modes.

Ranks 1 to 3 run on the N-D engine (fastconv/planning/ranks.py), which reduces them to the 2-D
strategies; this module adds what the drop-ins need beyond it: per-axis modes, long single
signals cut into rows, and ranks above 3.
"""

import numpy as np

from .core.geometry import NUMPY_PAD_MODES, NdGeometry
from .core.padding import axis_map, axis_sources
from .planning.ranks import correlate_nd as engine_nd
from .planning.ranks import plan_nd, ranked
from .strategies.separable.detect import forces_separable

# A single signal at least this long is cut into rows (below it, the copy is not worth it).
SEGMENT_FROM = 2**15
# Rows of a segmented signal: at least this many output samples each, and at least 8 kernels.
SEGMENT_MIN = 8192


class DryRun(str):
    """A method name that plans the first 2-D problem instead of running it: :func:`correlate_nd`
    raises :class:`Planned` with that plan (``choose_conv_method`` asks the plan, not a run)."""


class Planned(Exception):  # noqa: N818 -- carries a plan out of a dry run, not an error
    def __init__(self, plan):
        super().__init__(plan.method)
        self.plan = plan


def _pad_explicitly(x, axis, pad, mode, fill):
    """``x`` padded along ``axis`` with ``numpy.pad`` (mode an engine name)."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = pad
    numpy_mode = NUMPY_PAD_MODES[mode]
    extra = {"constant_values": fill} if numpy_mode == "constant" else {}
    return np.pad(x, widths, numpy_mode, **extra)


def _engine_mode(mode, fill):
    return "zeros" if mode == "constant" and fill == 0 else mode


def _engine(x, w, pads, mode, fill, groups, method, threads):
    """The N-D engine (planning/ranks.py) on (N, C, *spatial) and (K, C/groups, *kernel) of rank
    1 to 3, one padding mode for every axis; with a DryRun method, raises Planned instead."""
    rank = x.ndim - 2
    if isinstance(method, DryRun):
        mode = "constant" if mode == "zeros" and fill != 0 and any(map(any, pads)) else mode
        nd = NdGeometry(input_shape=x.shape, weight_shape=w.shape, stride=(1,) * rank,
                        dilation=(1,) * rank, padding=tuple(pads), groups=groups,
                        padding_mode=mode, dtype=x.dtype)
        raise Planned(plan_nd(ranked(nd, np.ascontiguousarray(w), forces_separable(str(method))),
                              str(method), threads))
    return engine_nd(np.ascontiguousarray(x), np.ascontiguousarray(w), None, (1,) * rank,
                     (1,) * rank, pads, mode, groups, method, threads, None, fill)


def _run2d(x, w, pads, mode, fill, groups, method, threads):
    """The 2-D engine on (N, C, H, W) and (K, C/groups, kh, kw); ``pads`` two pairs."""
    mode = _engine_mode(mode, fill) if any(map(any, pads)) else "zeros"
    return _engine(x, w, pads, mode, fill, groups, method, threads)


def _padded(signal, lo, hi, pad, mode, fill):
    """Samples lo .. hi - 1 of ``signal`` padded by ``pad`` with ``mode`` (``numpy.pad``'s
    semantics), zeros past its padded end: read through the index of each, for the short runs
    at the ends (a copy of the whole padded signal cost as much as the correlation)."""
    positions = np.arange(lo, hi)
    sources = axis_sources(positions, signal.size, pad[0], mode)
    values = signal[np.maximum(sources, 0)]
    values[sources < 0] = fill
    values[positions >= pad[0] + signal.size + pad[1]] = 0
    return values


def _segments(signal, pad, mode, fill, taps, seg):
    """The padded ``signal`` cut into rows of ``seg`` outputs: a C-contiguous (rows, seg + taps
    - 1) array whose row r holds padded samples r * seg .. (r + 1) * seg + taps - 2 (zeros past
    the padded end), written in one pass over the signal (numpy.pad, a concatenation and a
    contiguous copy of overlapping views took 4.9-5.6 ms for 2^20 float64 samples and 31 taps;
    this, 0.5-0.7 ms)."""
    length = signal.size
    rows = -(-(length + sum(pad) - taps + 1) // seg)
    covered = rows * seg  # samples of the rows' first seg columns; the overlap follows
    windows = np.empty((rows, seg + taps - 1), signal.dtype)
    body = windows[:, :seg]

    def write(start, values):
        """Padded samples start .. start + len(values) - 1 into the first seg columns."""
        row, column = divmod(start, seg)
        done = 0
        if column:
            done = min(seg - column, values.size)
            body[row, column:column + done] = values[:done]
            row += 1
        whole = (values.size - done) // seg
        body[row:row + whole] = values[done:done + whole * seg].reshape(whole, seg)
        rest = values[done + whole * seg:]
        if rest.size:
            body[row + whole, :rest.size] = rest

    start, stop = min(pad[0], covered), min(pad[0] + length, covered)
    write(0, _padded(signal, 0, start, pad, mode, fill))
    write(start, signal[:stop - start])
    write(stop, _padded(signal, stop, covered, pad, mode, fill))
    windows[:-1, seg:] = windows[1:, :taps - 1]
    windows[-1, seg:] = _padded(signal, covered, covered + taps - 1, pad, mode, fill)
    return windows


def _rank1(x, w, pad, mode, fill, groups, method, threads):
    n, c, length = x.shape
    k, cg, taps = w.shape
    if n == c == k == 1 and length >= SEGMENT_FROM:
        out_length = length + sum(pad) - taps + 1
        windows = _segments(x[0, 0], pad, mode, fill, taps, max(SEGMENT_MIN, 8 * taps))
        out = _run2d(windows[None, None], w[:, :, None], ((0, 0), (0, 0)), "zeros", 0, 1,
                     method, threads)
        return out.reshape(-1)[:out_length].reshape(1, 1, out_length)
    if c == k == 1:  # the signals are the rows of one image
        out = _run2d(x.reshape(1, 1, n, length), w[:, :, None], ((0, 0), pad), mode, fill, 1,
                     method, threads)
        return out.reshape(n, 1, -1)
    out = _run2d(x[:, :, None], w[:, :, None], ((0, 0), pad), mode, fill, groups, method,
                 threads)
    return out[:, :, 0]


def _rank3(x, w, pads, modes, fill, groups, method, threads):
    n, c, depth, h, wd = x.shape
    k, cg, kd, kh, kw = w.shape
    if kd == 1 and pads[0] == (0, 0) and c == k == 1:  # depth slices are images: no gather
        out = _run2d(x.reshape(n * depth, 1, h, wd), w[:, :, 0], pads[1:], modes[1], fill, 1,
                     method, threads)
        return out.reshape(n, 1, depth, *out.shape[2:])
    if any(pads[0]) and modes[0] != modes[1]:  # the engine pads every axis with one mode
        x = _pad_explicitly(x, 2, pads[0], modes[0], fill)
        pads = ((0, 0), *pads[1:])
    return _engine(x, w, pads, modes[1], fill, groups, method, threads)


def _higher_rank(x, w, pads, modes, fill, groups, method, threads):
    index = axis_map(x.shape[2], *pads[0], modes[0])
    taps = w.shape[2]
    out = None
    for position in range(index.size - taps + 1):
        total = None
        for t in range(taps):
            source = index[position + t]
            plane = x[:, :, source] if source >= 0 else np.full(
                x.shape[:2] + x.shape[3:], fill, x.dtype)
            part = correlate_nd(plane, w[:, :, t], pads[1:], modes[1:], fill, groups, method,
                                threads)
            total = part if total is None else total + part
        if out is None:
            out = np.empty((*total.shape[:2], index.size - taps + 1, *total.shape[2:]),
                           total.dtype)
        out[:, :, position] = total
    return out


def correlate_nd(x, w, pads, modes, fill, groups, method, threads):
    """Correlate ``x`` (N, C, *spatial) with ``w`` (K, C/groups, *kernel), any number of spatial
    axes.

    ``x`` and ``w`` are validated arrays of one compute dtype the engine runs (float32, float64,
    complex64, complex128, int64); ``w`` is already flipped or conjugated as the caller needs.
    ``pads``: one (before, after) pair of non-negative ints per spatial axis, with every output
    size ``size + before + after - k + 1`` at least 1; ``modes``: one name per axis among
    ``conv2d``'s padding modes and ``"constant"`` (which pads with ``fill``, a scalar of the
    dtype); ``method``: 'auto', 'measure' or a registry name; ``threads``: the thread limit.
    Returns a new (N, K, *out) array of the dtype. Inputs are never written.
    """
    pads = tuple(tuple(int(p) for p in pair) for pair in pads)
    modes = tuple(_engine_mode(m, fill) for m in modes)
    rank = x.ndim - 2
    # The 2-D engine pads its last two axes virtually with one mode: pad an axis whose mode
    # differs from the other's explicitly (axes without padding take any mode).
    if rank >= 2:
        padded = [axis for axis in (rank - 2, rank - 1) if any(pads[axis])]
        if len(padded) == 2 and modes[rank - 2] != modes[rank - 1]:
            axis = rank - 2
            x = _pad_explicitly(x, axis + 2, pads[axis], modes[axis], fill)
            pads = pads[:axis] + ((0, 0),) + pads[axis + 1:]
            padded = [rank - 1]
        shared = modes[padded[0]] if padded else "zeros"
        modes = modes[:rank - 2] + (shared, shared)
    if rank == 1:
        return _rank1(x, w, pads[0], modes[0], fill, groups, method, threads)
    if rank == 2:
        return _run2d(x, w, pads, modes[0], fill, groups, method, threads)
    if rank == 3:
        return _rank3(x, w, pads, modes, fill, groups, method, threads)
    return _higher_rank(x, w, pads, modes, fill, groups, method, threads)
