"""fastconv on dask arrays: lazy in, lazy out, chunk by chunk, exactly the in-memory result.

:func:`fastconv.conv1d`, :func:`fastconv.conv2d`, :func:`fastconv.conv3d`,
:func:`fastconv.correlate2d` and :func:`fastconv.convolve2d` come here when their data argument
(``input`` / ``in1``) is a dask array, and each task runs the N-D engine
(fastconv/planning/ranks.py); the functions below are the same ones under this module's name.
Nothing is computed until the result's ``.compute()`` (or ``.store()``, ``.to_zarr()``, ...).
Weights, bias and fill value stay NumPy: every task gets them whole.

How a chunk is computed
-----------------------
Each spatial axis is planned on its own (:func:`plan_axis`), from the kernel extent, dilation,
stride and padding of that axis, so the same code serves any number of spatial axes:

* output ``o`` belongs to the chunk that holds its window's *anchor*, padded row
  ``o * stride + anchor`` with ``anchor = min(padding_before, span - 1)``: for ``'same'`` at stride
  1 the output chunks are the input chunks. A chunk then needs ``anchor`` rows of its left
  neighbour and ``span - 1 - anchor`` of its right one (``dask.array.map_overlap``, boundary
  ``'none'``, asymmetric depth). Strided outputs stay exact because each task starts at its first
  output's window, a multiple of the stride in padded coordinates, whatever its chunk's start.
* chunks smaller than that depth, or holding no output (``'valid'`` tails, ``'full'`` heads), are
  merged with a neighbour by a rechunk.
* the padding at the array's true edges is applied by fastconv's kernels inside the first and last
  chunks (no copy) when those chunks can produce it: zeros, SciPy's fillvalue and replicate
  always, reflect and symmetric when the edge chunk is wider than the padding. Otherwise (circular
  across several chunks, padding wider than the edge chunk or the array) the padding rows are
  gathered with ``numpy.pad``'s index map and concatenated to the array: circular is then dask's
  periodic overlap, and every mode follows ``numpy.pad`` exactly.
* input channels split over several chunks give partial outputs that are summed (bias once); with
  ``groups`` the whole groups inside a chunk are computed together and only a group split by a chunk
  border is summed. Batch chunks are independent.

Large kernels
-------------
The halo scheme is overlap-save across chunks: each task reads its chunk and the halo its
outputs need, and computes only those outputs (the ``fft`` strategy then runs its own
overlap-save tiles inside the task). Overlap-add, where each task computes the full correlation
of its chunk alone and neighbouring tasks' overlapping outputs are summed, was priced with the
planner and measured per task (float32, 2 threads, chunks c x c, kernel k x k; halo task
(c+k-1)^2 'valid' vs overlap-add task c^2 'full'): c=2048, k=31 13.9 vs 13.8 ms; k=255 27.9 vs
29.5 ms; c=1024, k=511 17.2 vs 21.1 ms; c=512, k=1023 37.7 vs 209.8 ms. Its tasks are never
faster, and it would then add the overlapping outputs, (c+k-1)^2 per chunk. So it is not
offered: with kernels wider than the chunks, rechunk to larger chunks instead.

Threads
-------
Each task runs fastconv with ``threads=1`` by default: dask already runs one task per core, and
Numba threads inside each (times BLAS threads) would oversubscribe the machine. ``threads=n``
gives each task ``n`` Numba threads, for few large chunks on many cores (with
``dask.config.set(num_workers=...)`` lowered to match). The threads, processes and distributed
schedulers all work: tasks pickle as this module's functions and NumPy arrays, and the kernels
compile (or load from Numba's cache) in each worker process. Under Numba's ``workqueue``
threading layer, which aborts when two threads launch parallel kernels at once, tasks of one
process take turns; the ``omp`` and ``tbb`` layers run them side by side.

Memory
------
A task holds its input chunk with its halos (``(ch + span_h - 1) * (cw + span_w - 1)`` elements
per channel and image for chunks ``ch x cw``), its output chunk, and at most the workspace budget
(:func:`fastconv.get_workspace_budget`, 64 MiB by default) of scratch, times the number of tasks
running at once (dask's ``num_workers``), plus the chunks the scheduler keeps for later tasks,
which grow with the array: storing one band of chunk rows at a time
(``result[rows].to_zarr(out, region=...)``) bounds them.
"""

import itertools
from dataclasses import dataclass

import dask.array as da
import numpy as np

from ._validate import (
    check_method,
    conv2d_problem,
    lazy_input,
    lazy_method,
    lazy_threads,
    nd_problem,
    reject_dask,
    scipy_problem,
)
from .core.geometry import NUMPY_PAD_MODES
from .planning.ranks import correlate_nd
from .strategies import methods

__all__ = ["conv1d", "conv2d", "conv3d", "convolve2d", "correlate2d", "plan_axis"]


@dataclass(frozen=True)
class _Call:
    """A validated call of any spatial rank, as the tasks need it: per-axis kernel extents,
    (before, after) padding, stride and dilation, and the arrays every task gets whole."""

    kernel: tuple
    padding: tuple
    stride: tuple
    dilation: tuple
    groups: int
    padding_mode: str
    dtype: np.dtype
    w: np.ndarray
    bias: np.ndarray
    fill: np.ndarray


def _call_2d(problem):
    g = problem.geometry
    return _Call((g.kernel_height, g.kernel_width), (g.padding[0:2], g.padding[2:4]), g.stride,
                 g.dilation, g.groups, g.padding_mode, g.dtype, problem.w, problem.bias,
                 problem.fill)


def _call_nd(problem):
    g = problem.geometry
    return _Call(g.weight_shape[2:], g.padding, g.stride, g.dilation, g.groups, g.padding_mode,
                 g.dtype, problem.w, problem.bias, np.zeros(1, g.dtype))


@dataclass(frozen=True)
class AxisPlan:
    """How one spatial axis is split into tasks.

    ``explicit``: the edge padding is concatenated to the array (``before``/``after`` rows)
    instead of being applied by the kernels of the edge chunks. ``chunks``: the chunks to overlap
    (of the padded array when ``explicit``). ``depth``: rows taken from the (left, right)
    neighbour. ``out_chunks``: the output's chunks. ``windows``: per task, ``(start, stop,
    pad_before, pad_after, count)``: the rows of its overlapped block to compute on, the padding
    the kernel adds to them, and how many of the outputs to keep (the first ones).
    """

    explicit: bool
    chunks: tuple
    depth: tuple
    out_chunks: tuple
    windows: tuple


# Rows of data the kernel's padding reads, per padding rows used (numpy.pad's single reflection).
_EDGE_ROWS = {
    "zeros": lambda pad: 0,
    "constant": lambda pad: 0,
    "replicate": lambda pad: 1,
    "reflect": lambda pad: pad + 1,
    "symmetric": lambda pad: pad,
}


def plan_axis(chunks, kernel, dilation, stride, before, after, mode, explicit=False):
    """Plan one spatial axis of a chunked convolution (see the module's docstring).

    ``chunks``: the axis's chunk sizes; ``before``/``after``: its padding; ``mode``: a
    Geometry's padding mode ('constant' is SciPy's fill). Planning is a pure function of these.

    Examples
    --------
    >>> from fastconv.dask import plan_axis
    >>> p = plan_axis((4, 4, 2), kernel=3, dilation=1, stride=1, before=1, after=1, mode="zeros")
    >>> p.out_chunks, p.depth
    ((4, 4, 2), (1, 1))
    >>> plan_axis((4, 4, 2), 5, 1, 1, 0, 0, "zeros").out_chunks  # 'valid' drops the tail
    (4, 2)
    """
    size = sum(chunks)
    span = dilation * (kernel - 1) + 1
    padded = size + before + after
    out = (padded - span) // stride + 1
    anchor = min(before, span - 1)
    depth = (anchor, span - 1 - anchor)
    local = mode in _EDGE_ROWS and chunks[0] >= _EDGE_ROWS[mode](before) and (
        chunks[-1] >= _EDGE_ROWS[mode](after))
    explicit = explicit or (len(chunks) > 1 and not local)
    sizes = list(chunks)
    if explicit:
        sizes = [before] * bool(before) + sizes + [after] * bool(after)
    shift = 0 if explicit else before  # padded coordinate of the array's first row
    total = sum(sizes)

    # dask's overlap takes a halo from the adjacent chunk only: every chunk must hold the depth.
    need = max(*depth, 1)
    edges = [0]
    for edge in itertools.accumulate(sizes[:-1]):
        if edge - edges[-1] >= need:
            edges.append(edge)
    while len(edges) > 1 and total - edges[-1] < need:
        edges.pop()
    # A chunk's outputs are those whose anchor it holds; chunks left with none are merged.
    starts, firsts = [0], [0]
    for edge in edges[1:]:
        first = -(-(edge + shift - anchor) // stride)
        if firsts[-1] < first < out:
            starts.append(edge)
            firsts.append(first)
    starts.append(total)
    firsts.append(out)

    blocks = len(starts) - 1
    if blocks == 1:
        depth = (0, 0)  # no neighbour to overlap with
    windows = []
    for j in range(blocks):
        # Padded coordinates of the task's block, of its data, and of the rows its outputs read.
        block_start = 0 if j == 0 else starts[j] + shift - anchor
        block_stop = padded if j == blocks - 1 else starts[j + 1] + shift + depth[1]
        data_start = block_start + (before if j == 0 and not explicit else 0)
        data_stop = block_stop - (after if j == blocks - 1 and not explicit else 0)
        low = firsts[j] * stride
        high = (firsts[j + 1] - 1) * stride + span
        start = max(low, data_start) - data_start
        stop = min(high, data_stop) - data_start
        pad_before, pad_after = max(0, data_start - low), max(0, high - data_stop)
        length = data_stop - data_start
        if blocks == 1 and (pad_before or pad_after):
            stop = length  # the whole axis (start is 0): numpy.pad's semantics at any width
            windows.append((start, stop, pad_before, pad_after, firsts[1]))
            continue
        # The kernel pads from the rows it is given: give it all that its padding reads, and at
        # least one row (a window may lie wholly in the padding).
        if pad_before:  # start is 0: extra outputs at the end are dropped
            stop = max(stop, _EDGE_ROWS[mode](pad_before), 1)
        # The last task starts less than a stride into its block: when its rows cannot feed
        # the padding, the padding is made explicit.
        if pad_after and start > length - max(_EDGE_ROWS[mode](pad_after), 1):
            return plan_axis(chunks, kernel, dilation, stride, before, after, mode, True)
        windows.append((start, stop, pad_before, pad_after, firsts[j + 1] - firsts[j]))
    return AxisPlan(explicit, tuple(np.diff(starts).tolist()), depth,
                    tuple(np.diff(firsts).tolist()), tuple(windows))


def _pad_explicitly(x, axis, before, after, mode, fill):
    """``x`` with ``numpy.pad``'s edge rows of ``mode`` concatenated along ``axis`` (lazily);
    the constant modes pad with ``fill`` (in the compute dtype, to which ``x`` is then cast)."""
    size = x.shape[axis]
    constant = NUMPY_PAD_MODES[mode] == "constant"
    index = np.pad(np.arange(size), (before, after), NUMPY_PAD_MODES[mode])
    if constant:
        x = x.astype(fill.dtype)

    def edge(rows):
        if constant:
            shape = (*x.shape[:axis], len(rows), *x.shape[axis + 1:])
            chunks = (*x.chunks[:axis], len(rows), *x.chunks[axis + 1:])
            return da.full(shape, fill[0], dtype=fill.dtype, chunks=chunks)
        return x[(slice(None),) * axis + (rows,)]

    parts = [edge(index[:before])] * bool(before) + [x] + [edge(index[size + before:])] * bool(
        after)
    return da.concatenate(parts, axis=axis)


def _block(block, weight, bias, fill, stride, dilation, groups, padding_mode, windows, method,
           threads, persist, compute, out_dtype, block_id=None):
    """One task: the convolution of one overlapped block (any leading axes, spatial last), on
    the N-D engine (fastconv/planning/ranks.py)."""
    rank = len(windows)
    picks = [windows[axis][index] for axis, index in enumerate(block_id[-rank:])]
    data = block[(..., *(slice(start, stop) for start, stop, *_ in picks))]
    lead = data.shape[:-rank]
    x = np.ascontiguousarray(data.reshape((-1, lead[-1] if lead else 1, *data.shape[-rank:])),
                             compute)
    padding = tuple(tuple(pick[2:4]) for pick in picks)
    # Under the workqueue layer, the engine's calls take turns (core/threads.py).
    out = correlate_nd(x, weight, bias, stride, dilation, padding, padding_mode, groups, method,
                       threads, persist, fill[0])
    out = out[(..., *(slice(count) for *_, count in picks))]
    out = out.reshape((*lead[:-1], weight.shape[0], *out.shape[-rank:]) if lead
                      else out.shape[-rank:])
    return out.astype(out_dtype, copy=False)


def _map(x, weight, bias, groups, depth, lead_chunks, out_spatial, options):
    """map_overlap of :func:`_block` over ``x`` (its channel axis, if any, in one chunk)."""
    out_dtype = options["out_dtype"]
    return da.map_overlap(
        _block, x, depth=depth, boundary="none", trim=False, allow_rechunk=False,
        chunks=(*lead_chunks, *out_spatial), dtype=out_dtype,
        meta=np.empty((0,) * x.ndim, out_dtype), weight=weight, bias=bias, groups=groups,
        **options,
    )


def _lazy(x, call, out_dtype, method, threads, persist):
    """The lazy result of ``call`` (a validated :class:`_Call`) on the dask array ``x``."""
    g = call
    rank = len(call.kernel)
    spatial = range(x.ndim - rank, x.ndim)
    plans = []
    for axis, k, dilation, stride, (before, after) in zip(spatial, call.kernel, g.dilation,
                                                         g.stride, call.padding, strict=True):
        plan = plan_axis(tuple(x.chunks[axis]), k, dilation, stride, before, after,
                         g.padding_mode)
        if plan.explicit:
            x = _pad_explicitly(x, axis, before, after, g.padding_mode, call.fill)
        plans.append(plan)
    x = x.rechunk({axis: plan.chunks for axis, plan in zip(spatial, plans, strict=True)})
    options = dict(
        fill=call.fill, stride=g.stride, dilation=g.dilation, padding_mode=g.padding_mode,
        windows=tuple(plan.windows for plan in plans), method=method, threads=threads,
        persist=persist, compute=g.dtype, out_dtype=out_dtype,
    )
    depth = {axis: plan.depth for axis, plan in zip(spatial, plans, strict=True)}
    out_spatial = tuple(plan.out_chunks for plan in plans)
    if x.ndim == rank:
        return _map(x, call.w, call.bias, g.groups, depth, x.chunks[:0], out_spatial,
                    options)
    channel_axis = x.ndim - rank - 1
    ranges = []
    for (c0, c1), weight, bias, groups, k_range in _channel_pieces(
            x.chunks[channel_axis], call.w, call.bias, g.groups):
        piece = x[(slice(None),) * channel_axis + (slice(c0, c1),)]
        result = _map(piece, weight, bias, groups, depth,
                      (*piece.chunks[:channel_axis], (k_range[1] - k_range[0],)), out_spatial,
                      options)
        if ranges and ranges[-1][0] == k_range:
            ranges[-1][1] = ranges[-1][1] + result
        else:
            ranges.append([k_range, result])
    results = [result for _, result in ranges]
    return results[0] if len(results) == 1 else da.concatenate(results, axis=channel_axis)


def _channel_pieces(chunks, weight, bias, groups):
    """Split the input channels at chunk borders: per piece its channels, weights, bias, groups
    and output-channel range. Whole groups inside a chunk form one piece; a group split by a
    chunk border gives pieces with the same output range (summed by the caller; bias once)."""
    per_group = weight.shape[1]
    out_per_group = weight.shape[0] // groups
    start = 0
    for size in chunks:
        stop = start + size
        borders = (-(-start // per_group) * per_group, stop // per_group * per_group)
        cuts = sorted({start, stop, *(b for b in borders if start < b < stop)})
        for c0, c1 in itertools.pairwise(cuts):
            group = c0 // per_group
            if c0 % per_group == 0 and c1 % per_group == 0:
                g1 = c1 // per_group
                k0, k1 = group * out_per_group, g1 * out_per_group
                yield (c0, c1), weight[k0:k1], bias[k0:k1], g1 - group, (k0, k1)
            else:
                k0, k1 = group * out_per_group, (group + 1) * out_per_group
                local = c0 - group * per_group
                first = c0 == group * per_group
                piece_bias = bias[k0:k1] if first else np.zeros_like(bias[k0:k1])
                yield ((c0, c1), np.ascontiguousarray(weight[k0:k1, local:local + c1 - c0]),
                       piece_bias, 1, (k0, k1))
        start = stop


def conv2d(input, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", method="auto", threads=None, persist=None):
    """:func:`fastconv.conv2d` of a dask array ``input``: a lazy dask array of the same values.

    The arguments are :func:`fastconv.conv2d`'s; ``weight`` and ``bias`` must be in memory.
    ``threads``: Numba threads per task, default 1 (see the module's docstring). ``method``: a
    name or 'auto' (planned per chunk shape); a Plan is refused (it holds one shape).

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastconv
    >>> x = da.from_array(np.arange(64.0).reshape(8, 8), chunks=3)
    >>> y = fastconv.conv2d(x, np.ones((3, 3)), padding=1, padding_mode="reflect")
    >>> y.shape, y.chunks
    ((8, 8), ((3, 3, 2), (3, 3, 2)))
    >>> bool(np.array_equal(y.compute(), fastconv.conv2d(np.arange(64.0).reshape(8, 8),
    ...                     np.ones((3, 3)), padding=1, padding_mode="reflect")))
    True
    """
    reject_dask(weight, "weight", "input")
    reject_dask(bias, "bias", "input")
    stand_in = lazy_input(input, "input")
    method = lazy_method(method, methods())
    check_method(method, threads, persist)
    problem, _ = conv2d_problem(stand_in, weight, bias, stride, padding, dilation, groups,
                                padding_mode, lazy=True)
    return _lazy(input, _call_2d(problem), problem.geometry.dtype, method, lazy_threads(threads),
                 persist)


def conv_nd(rank, input, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
            padding_mode="zeros", method="auto", threads=None, persist=None):
    """:func:`fastconv.conv1d` (``rank`` 1) or :func:`fastconv.conv3d` (``rank`` 3) of a dask
    array ``input``: a lazy dask array of the same values (arguments as in :func:`conv2d`)."""
    reject_dask(weight, "weight", "input")
    reject_dask(bias, "bias", "input")
    stand_in = lazy_input(input, "input")
    method = lazy_method(method, methods())
    check_method(method, threads, persist)
    problem, _ = nd_problem(stand_in, weight, bias, rank, stride, padding, dilation, groups,
                            padding_mode, lazy=True)
    return _lazy(input, _call_nd(problem), problem.geometry.dtype, method,
                 lazy_threads(threads), persist)


def conv1d(input, weight, bias=None, **options):
    """:func:`fastconv.conv1d` of a dask array ``input``: a lazy dask array.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastconv
    >>> x = np.arange(20.0)
    >>> y = fastconv.conv1d(da.from_array(x, chunks=6), np.ones(3), padding="same")
    >>> bool(np.allclose(y.compute(), fastconv.conv1d(x, np.ones(3), padding="same")))
    True
    """
    return conv_nd(1, input, weight, bias, **options)


def conv3d(input, weight, bias=None, **options):
    """:func:`fastconv.conv3d` of a dask array ``input``: a lazy dask array.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastconv
    >>> x = np.random.default_rng(0).standard_normal((9, 8, 7))
    >>> y = fastconv.conv3d(da.from_array(x, chunks=4), np.ones((3, 3, 3)), padding=1,
    ...                     padding_mode="reflect")
    >>> bool(np.allclose(y.compute(), fastconv.conv3d(x, np.ones((3, 3, 3)), padding=1,
    ...                                                padding_mode="reflect")))
    True
    """
    return conv_nd(3, input, weight, bias, **options)


def _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, persist, convolve):
    reject_dask(in2, "in2", "in1")
    reject_dask(fillvalue, "fillvalue", "in1")
    stand_in = lazy_input(in1, "in1")
    method = lazy_method(method, methods())
    check_method(method, threads, persist)
    problem, dtype, _ = scipy_problem(stand_in, in2, mode, boundary, fillvalue, convolve,
                                      lazy=True)
    return _lazy(in1, _call_2d(problem), dtype, method, lazy_threads(threads), persist)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
                threads=None, persist=None):
    """:func:`fastconv.correlate2d` of a 2-D dask array ``in1``: a lazy dask array.

    ``in2`` (in memory) must be no larger than ``in1`` in 'valid' mode; longdouble is refused
    (SciPy computes it, in memory). ``threads`` and ``method`` as in :func:`conv2d`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastconv
    >>> x = np.random.default_rng(0).standard_normal((9, 7))
    >>> y = fastconv.correlate2d(da.from_array(x, chunks=4), np.ones((2, 3)), "same", "wrap")
    >>> y.chunks
    ((4, 4, 1), (4, 3))
    >>> bool(np.allclose(y.compute(), fastconv.correlate2d(x, np.ones((2, 3)), "same", "wrap")))
    True
    """
    return _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, persist,
                       convolve=False)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
               threads=None, persist=None):
    """:func:`fastconv.convolve2d` of a 2-D dask array ``in1``: a lazy dask array; see
    :func:`correlate2d`.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastconv
    >>> x = da.ones((6, 6), chunks=3, dtype=int)
    >>> fastconv.convolve2d(x, np.array([[1, 2], [3, 4]]), "valid").compute()[0]
    array([10, 10, 10, 10, 10])
    """
    return _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, persist,
                       convolve=True)
