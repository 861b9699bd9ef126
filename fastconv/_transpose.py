"""Transposed convolutions and the gradients of a convolution, as forward problems of the engine.

Every operation here is rewritten as one or several forward correlations, which the planner
prices and a strategy runs, all through one function, :func:`_forward`. The rewriting is the same
for every number of spatial axes (it loops over them); only ``_forward`` knows which ranks the
engine runs.

Per spatial axis, a forward correlation pads an input of size ``n`` by ``(lo, hi)`` to
``P = n + lo + hi`` and takes ``k`` taps at dilation ``d`` and stride ``s``:
``y[o] = sum_t xp[o*s + t*d] * w[t]`` for ``O = (P - d*(k-1) - 1) // s + 1`` outputs.

* Input gradient, and the transposed convolution: ``gxp[p] = sum gy[o] * w[t]`` over
  ``o*s + t*d == p``, with the weight's channel roles swapped (per group). Positions of one
  phase ``p % s`` meet only the taps ``t`` with ``t*d % s == p % s``: every ``s // gcd(s, d)``-th
  tap, at dilation ``d // gcd(s, d)``. So each phase is a small dense correlation of ``gy`` with
  those taps reversed (the stride-phase decomposition): ``s**rank`` forward problems with no
  multiply on a zero, against one problem on a zero-upsampled ``gy`` with ``s**rank`` times the
  multiply-adds (measured in bench/grad.py). A transposed convolution keeps the window
  ``[padding, padding + out)`` of ``gxp`` (``output_padding`` reaches past the last tap: zeros).
  Zero padding keeps ``gxp[lo:lo + n]``; the other modes fold all of ``gxp`` back onto the
  input positions that the padding copied (``core.padding``'s index maps), as autograd through
  ``F.pad`` does.
* Weight gradient: ``gw[t] = sum_{n, o} gy[n, o] * xp[n, o*s + t*d]``: a correlation of the
  padded input with ``gy`` as an output-sized kernel, where stride and dilation swap roles and
  batch and channels swap roles. Group ``i``'s input channels ``x[:, i*Cg + c]`` become the
  channels ``i*N + n`` of batch item ``c``, so that one grouped problem computes every group.
  For float32/float64 the same sum is also one GEMM reducing over batch and pixels, run by
  im2col's micro-kernel on a channels-last copy of the padded input (no forward problem: see
  :class:`GemmPlan`); the formulation with the lowest estimate runs.
"""

from collections import namedtuple
from dataclasses import dataclass
from itertools import product
from math import gcd

import numpy as np

from ._validate import (
    check_adjoint_method,
    check_plan_method,
    grad_input_call,
    grad_shapes_call,
    grad_weight_call,
    plan_dtype,
    shape_tuple,
    shapes_rank,
    threads_count,
    transpose_arrays,
    transpose_call,
)
from .core.geometry import NUMPY_PAD_MODES, Geometry, NdGeometry
from .core.padding import axis_map
from .core.threads import numba_threads
from .core.workspace import get_budget as get_workspace_budget
from .planning.constants import evaluate, machine_constants
from .planning.plan import Candidate, _bytes, _time
from .planning.ranks import correlate_nd, plan_nd
from .strategies.im2col import model as im2col_model
from .strategies.im2col import runner as im2col_runner

Spec = namedtuple("Spec", "shape dtype")
"""A forward problem's operand given by shape and dtype alone: planning instead of running."""


def _forward(x, w, *, stride, padding, dilation, groups, padding_mode, method, threads):
    """The engine's forward correlation (``conv{rank}d``) of canonical ``x`` (N, C, *spatial)
    and ``w`` (K, C / groups, *k) with ``padding`` as one (before, after) pair per spatial axis.

    Returns the output (N, K, *out), or, when ``x`` and ``w`` are :data:`Spec`, the engine's
    Plan of that problem: the N-D engine (planning/ranks.py) for ranks 1 to 3, so every
    operation of this module serves every rank.
    """
    rank = len(x.shape) - 2
    if isinstance(stride, int):
        stride = (stride,) * rank
    if isinstance(dilation, int):
        dilation = (dilation,) * rank
    if isinstance(padding, int):
        padding = ((padding, padding),) * rank
    pairs = tuple(tuple(int(n) for n in pair) for pair in padding)
    if isinstance(x, Spec):
        nd = NdGeometry(input_shape=tuple(x.shape), weight_shape=tuple(w.shape),
                        stride=tuple(stride), dilation=tuple(dilation), padding=pairs,
                        groups=groups, padding_mode=padding_mode, dtype=np.dtype(x.dtype))
        return plan_nd(nd, method, threads)
    return correlate_nd(np.ascontiguousarray(x), np.ascontiguousarray(w), None, tuple(stride),
                        tuple(dilation), pairs, padding_mode, groups, method, threads)


@dataclass(frozen=True)
class _Piece:
    """One spatial axis of one forward problem of the input gradient."""

    out: slice
    """The result positions it fills (one phase: every ``stride``-th)."""
    source: slice
    """The window of grad_output it reads, clipped to grad_output."""
    padding: tuple[int, int]
    """Zeros around the clipped window (where the window reaches past grad_output)."""
    taps: slice
    """The weight's taps it uses, reversed."""
    dilation: int


def _phases(size, taps, stride, dilation, start, length):
    """The pieces of one axis that compute ``gxp[start:start + length]`` from a grad_output of
    ``size`` samples and a weight of ``taps`` taps; phases that meet no tap (or only
    grad_output's zeros) are left out: their positions stay zero."""
    common = gcd(stride, dilation)
    tap_step, tap_dilation = stride // common, dilation // common
    pieces = []
    for first in range(min(stride, length)):
        position = start + first
        phase = position % stride
        if phase % common:
            continue
        # The first tap t of this phase: t*dilation % stride == phase.
        tap = (phase // common) * pow(tap_dilation, -1, tap_step) % tap_step
        if tap >= taps:
            continue
        count = (length - first + stride - 1) // stride
        used = (taps - 1 - tap) // tap_step + 1
        offset = (phase - tap * dilation) // stride
        begin = (position - phase) // stride + offset - (used - 1) * tap_dilation
        span = count + (used - 1) * tap_dilation
        if begin >= size or begin + span <= 0:
            continue
        last = tap + (used - 1) * tap_step
        pieces.append(_Piece(
            out=slice(first, None, stride),
            source=slice(max(begin, 0), min(begin + span, size)),
            padding=(max(-begin, 0), max(begin + span - size, 0)),
            taps=slice(last, tap - 1 if tap else None, -tap_step),
            dilation=tap_dilation,
        ))
    return pieces


def _swap_channels(w, groups):
    """(K, C/groups, *k) -> (C, K/groups, *k): each group's input and output channels swapped."""
    out_channels, cg = w.shape[:2]
    kernel = w.shape[2:]
    return w.reshape(groups, out_channels // groups, cg, *kernel).swapaxes(1, 2).reshape(
        groups * cg, out_channels // groups, *kernel)


def _length(index, size):
    return len(range(*index.indices(size)))


def _adjoint(gy, w, stride, dilation, groups, windows, method, threads):
    """``gxp[..., start:start + length]`` (one ``windows`` pair per axis) of the input gradient of
    a convolution with weight ``w`` (K, C/groups, *k) whose output gradient is ``gy``
    (N, K, *out): (N, C, *lengths). With :data:`Spec` operands, the plans of its problems."""
    planning = isinstance(gy, Spec)
    batch, sizes = gy.shape[0], gy.shape[2:]
    channels = w.shape[1] * groups
    kernel = w.shape[2:]
    starts, lengths = zip(*windows, strict=True)
    axes = [_phases(*axis) for axis in zip(sizes, kernel, stride, dilation, starts, lengths,
                                          strict=True)]
    swapped = Spec((channels, w.shape[0] // groups, *kernel), w.dtype) if planning else (
        _swap_channels(w, groups))
    lengths = tuple(n for _, n in windows)
    specs = (gy, swapped) if planning else (Spec(gy.shape, gy.dtype),
                                            Spec(swapped.shape, swapped.dtype))

    def seconds(problem):
        plan = _phase_problem(problem, *specs, groups, method, threads)
        return plan.candidate(plan.method).seconds or 0.0

    problems = _shared_windows(product(*axes), kernel, seconds)
    if planning:
        return tuple(_phase_problem(problem, gy, swapped, groups, method, threads)
                     for problem in problems)
    if len(problems) == 1 and _fills_alone(problems[0]):
        # One phase holding every position (stride 1): its result is the gradient, with no
        # zeroed array to scatter it into (256->256 3x3 on 14x14, batch 8, fp64: 2.5 ms).
        result = _phase_problem(problems[0], gy, swapped, groups, method, threads)
        return result.reshape(batch, channels, *lengths)
    out = np.zeros((batch, channels, *lengths), gy.dtype)
    for problem in problems:
        _run_phases(problem, gy, swapped, groups, method, threads, lengths, out)
    return out


def _fills_alone(problem):
    """Whether ``problem`` is a single phase of unit step on every axis (stride 1): its result
    then holds every position of the gradient, in order (``_phases`` starts such a phase at 0
    and gives it every position)."""
    members = problem[2]
    return len(members) == 1 and all(p.out.step == 1 for p in members[0][0])


def _phase_problem(problem, gy, swapped, groups, method, threads):
    """The forward problem of ``problem`` (see :func:`_shared_windows`): its plan when ``gy``
    and ``swapped`` are :data:`Spec`, else its result (N, groups, members, C/groups, *out),
    the members' taps side by side as output channels, zero taps after a member's own."""
    window, taps, members = problem
    sizes = gy.shape[2:]
    channels = swapped.shape[0]
    source = tuple(slice(max(lo, 0), min(hi, n)) for (lo, hi), n in zip(window, sizes,
                                                                       strict=True))
    options = dict(stride=(1,) * len(taps),
                   padding=tuple((max(-lo, 0), max(hi - n, 0))
                                 for (lo, hi), n in zip(window, sizes, strict=True)),
                   dilation=tuple(p.dilation for p in members[0][0]), groups=groups,
                   padding_mode="zeros", method=method, threads=threads)
    if isinstance(gy, Spec):
        x_shape = gy.shape[:2] + tuple(_length(s, n) for s, n in zip(source, sizes, strict=True))
        return _forward(Spec(x_shape, gy.dtype), Spec((len(members) * channels,
                                                       swapped.shape[1], *taps), swapped.dtype),
                        **options)
    # Per group, the members' output channels side by side: (groups, members, C/groups), each
    # member's taps (reversed, strided views of the weights) zero-padded after its own. Views
    # copied once: gathering them as columns of the flattened kernel by fancy indexing took
    # 3 ms of a 256->256 3x3 input gradient on 14x14 (batch 8, fp64, 26.5 ms in all).
    per_group = channels // groups
    weights = np.zeros((groups, len(members), per_group, swapped.shape[1], *taps), swapped.dtype)
    for index, (member, _) in enumerate(members):
        own = swapped[(slice(None), slice(None), *(p.taps for p in member))]
        weights[(slice(None), index, Ellipsis, *(slice(0, n) for n in own.shape[2:]))] = (
            own.reshape(groups, per_group, *own.shape[1:]))
    weights = weights.reshape(len(members) * channels, swapped.shape[1], *taps)
    result = _forward(gy[(Ellipsis, *source)], weights, **options)
    return result.reshape(gy.shape[0], groups, len(members), channels // groups,
                          *result.shape[2:])


def _run_phases(problem, gy, swapped, groups, method, threads, lengths, out):
    """Compute ``problem`` and write its members' phases into ``out``. A member given zero taps
    multiplies grad_output samples it does not read by zero: where the result holds NaN or Inf,
    the members run apart instead, so that non-finite values reach exactly the positions that
    read them."""
    window, taps, members = problem
    padded = any(_length(p.taps, k) < t for member, _ in members
                 for p, k, t in zip(member, swapped.shape[2:], taps, strict=True))
    result = _phase_problem(problem, gy, swapped, groups, method, threads)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = not padded or np.isfinite(np.sum(result))
    if not finite:
        for member, _ in members:
            _run_phases(_merged([member], swapped.shape[2:]), gy, swapped, groups, method,
                        threads, lengths, out)
        return
    _scatter(result, members, lengths, out, threads)


def _scatter(result, members, lengths, out, threads):
    """Write each member's phase of ``result`` (N, groups, members, C/groups, *outputs) into
    ``out`` (N, C, *lengths) at the member's positions: float32/float64 through one parallel
    kernel (core/phases.py), other dtypes by NumPy."""
    rank = len(lengths)
    counts = [tuple(_length(p.out, n) for p, n in zip(member, lengths, strict=True))
              for member, _ in members]
    if out.dtype not in (np.float32, np.float64):
        batch, channels = out.shape[:2]
        for index, ((member, offsets), count) in enumerate(zip(members, counts, strict=True)):
            part = result[(slice(None), slice(None), index, Ellipsis, *(
                slice(o, o + c) for o, c in zip(offsets, count, strict=True)))]
            out[(Ellipsis, *(p.out for p in member))] = part.reshape(batch, channels, *count)
        return
    from .core.phases import scatter_phases

    lead = 3 - rank
    batch, groups, n_members, per_group = result.shape[:4]

    def table(rows, pad):
        """(members, 3) int64: a row per member, the unit axes before a lower rank's ``pad``."""
        return np.array([(pad,) * lead + tuple(row) for row in rows], np.int64)

    with numba_threads(threads):
        scatter_phases(
            np.ascontiguousarray(result).reshape(batch * groups, n_members, per_group,
                                                 *(1,) * lead, *result.shape[4:]),
            table((offsets for _, offsets in members), 0), table(counts, 1),
            table((tuple(p.out.start for p in member) for member, _ in members), 0),
            table((tuple(p.out.step for p in member) for member, _ in members), 1),
            out.reshape(batch * groups, per_group, *(1,) * lead, *out.shape[2:]))


def _window(piece):
    """The positions of grad_output a piece reads, before clipping: (start, stop)."""
    return piece.source.start - piece.padding[0], piece.source.stop + piece.padding[1]


def _shared_windows(combinations, kernel, seconds):
    """The stride phases (one piece per axis each) as forward problems ``(window, taps,
    members)``: ``window`` one (start, stop) per axis of grad_output positions (zeros outside
    grad_output), ``taps`` the problem's taps per axis, ``members`` the phases it computes as
    ``(pieces, offsets)``, a phase's outputs at ``offsets`` of the problem's output.

    Phases of the same dilations share one problem, their taps side by side as output channels
    (a phase with fewer taps gets zero taps after its own, windows spanning all of theirs), when
    the planner's estimate (``seconds`` of a problem) of the shared problem is below the sum of
    theirs apart. The ResNet stem's 7x7/2 input gradient (8x64x112x112 -> 3 channels; phases of
    4x4, 4x3, 3x4 and 3x3 taps, one problem of 4x4 taps and 12 outputs) measured 2 threads:
    apart / shared fp32 38.0 / 25.1 ms, fp64 100.8 / 45.6 ms, and the estimates agree; a 3x3/2
    layer's (8x64x56x56) apart / shared fp32 7.0 / 15.1 ms, fp64 12.3 / 15.7 ms, estimates
    agree. Single-tap phases (kernel == stride) always share: one pointwise GEMM reads
    grad_output once for all of them (U-Net's 2x2/2 transpose 4x128->64 on 56x56, the GEMM
    alone: 4 x 3.87 ms apart, 11.2 ms shared, fp64; 4 x 1.37 and 5.35 ms fp32), and _scatter
    writes every phase of an output plane in one pass.
    """
    by_dilation = {}
    for pieces in combinations:
        by_dilation.setdefault(tuple(p.dilation for p in pieces), []).append(pieces)
    problems = []
    for members in by_dilation.values():
        apart = [_merged([pieces], kernel) for pieces in members]
        shared = _merged(members, kernel)
        single_taps = all(_length(p.taps, k) == 1 for pieces in members
                          for p, k in zip(pieces, kernel, strict=True))
        if len(members) > 1 and (single_taps or seconds(shared) < sum(map(seconds, apart))):
            problems.append(shared)
        else:
            problems.extend(apart)
    return problems


def _merged(members, kernel):
    """``(window, taps, members)`` of one problem computing the phases ``members``."""
    rank = len(kernel)
    used = [tuple(_length(p.taps, k) for p, k in zip(pieces, kernel, strict=True))
            for pieces in members]
    taps = tuple(max(u[axis] for u in used) for axis in range(rank))
    starts = tuple(min(_window(pieces[axis])[0] for pieces in members) for axis in range(rank))
    counts = [tuple(_window(p)[1] - _window(p)[0] - (n - 1) * p.dilation
                    for p, n in zip(pieces, u, strict=True)) for pieces, u in zip(
        members, used, strict=True)]
    offsets = [tuple(_window(p)[0] - start for p, start in zip(pieces, starts, strict=True))
               for pieces in members]
    outputs = tuple(max(o[axis] + c[axis] for o, c in zip(offsets, counts, strict=True))
                    for axis in range(rank))
    dilation = tuple(p.dilation for p in members[0])
    window = tuple((start, start + n + (t - 1) * d)
                   for start, n, t, d in zip(starts, outputs, taps, dilation, strict=True))
    return window, taps, list(zip(members, offsets, strict=True))


def _fold(gxp, sizes, padding, padding_mode):
    """The gradient on the padded input folded back onto the input: each padded position adds
    into the input position its padding copied (core.padding's index maps), axis by axis."""
    for axis, (size, (before, after)) in enumerate(zip(sizes, padding, strict=True), start=2):
        lead = (slice(None),) * axis
        folded = gxp[(*lead, slice(before, before + size))].copy()
        edges = np.r_[0:before, before + size:before + size + after]
        if len(edges):
            source = axis_map(size, before, after, padding_mode)[edges]
            np.add.at(folded, (*lead, source), gxp[(*lead, edges)])
        gxp = folded
    return gxp


def input_gradient(rank, input_shape, weight, grad_output, stride, padding, dilation, groups,
                   padding_mode, method, threads):
    """``conv{rank}d_input``: validated, computed, shaped like ``input_shape``."""
    check_adjoint_method(method)
    count = threads_count(threads)
    (gy, w), (groups, stride, pads, dilation), x_full, _ = grad_input_call(
        input_shape, weight, grad_output, stride, padding, dilation, groups, padding_mode, rank)
    sizes = x_full[2:]
    if padding_mode == "zeros":
        return _adjoint(gy, w, stride, dilation, groups,
                        [(lo, n) for n, (lo, _) in zip(sizes, pads, strict=True)], method,
                        count).reshape(tuple(input_shape))
    windows = [(0, n + lo + hi) for n, (lo, hi) in zip(sizes, pads, strict=True)]
    gxp = _adjoint(gy, w, stride, dilation, groups, windows, method, count)
    return _fold(gxp, sizes, pads, padding_mode).reshape(tuple(input_shape))


def _columns_chunks(batch, out, kernel, channels, itemsize, budget):
    """Batch items per chunk of the column matrix, which holds ``prod(out) * channels *
    prod(kernel)`` values per item: as many as fit the workspace budget (at least one)."""
    per_item = int(np.prod(out)) * channels * int(np.prod(kernel)) * itemsize
    step = max(1, min(batch, budget // max(per_item, 1)))
    return [(start, min(start + step, batch)) for start in range(0, batch, step)]


def _columns(x, kernel, out, groups, stride, padding, dilation, padding_mode):
    """The column matrix of ``x`` (n, C, *spatial) as a 1x1 problem's input: channel
    ``(i, n, *o)`` and flattened spatial ``(c, *t)`` hold ``xp[n, i*Cg + c, o*s + t*d]``."""
    batch, channels, *_ = x.shape
    rank = len(kernel)
    mode = NUMPY_PAD_MODES[padding_mode]
    xp = np.pad(x, ((0, 0), (0, 0), *padding), mode) if any(map(any, padding)) else x
    spans = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True))
    axes = tuple(range(2, 2 + rank))
    view = np.lib.stride_tricks.sliding_window_view(xp, spans, axis=axes)
    view = view[(slice(None), slice(None),
                 *(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride, strict=True)),
                 *(slice(None, None, d) for d in dilation))]
    cg = channels // groups
    view = view.reshape(batch, groups, cg, *out, *kernel)
    order = (1, 0, *range(3, 3 + rank), 2, *range(3 + rank, 3 + 2 * rank))
    return np.ascontiguousarray(view.transpose(order)).reshape(
        1, groups * batch * int(np.prod(out)), cg * int(np.prod(kernel[:-1])), kernel[-1])


def _weight_problems(x, gy, kernel, groups, stride, padding, dilation, padding_mode, method,
                     threads):
    """The weight gradient (K, C/groups, *k) as 1x1 forward problems, a GEMM whose reduction
    runs over the batch and the output pixels: input the column matrix (channels: batch and
    pixels, spatial: input channels and taps), weight ``grad_output`` (K, N * pixels, 1, 1); the
    batch is cut into chunks whose column matrix fits the workspace budget, their results summed.
    With :data:`Spec` operands, the plans of those problems."""
    batch, channels = x.shape[:2]
    out_channels, out = gy.shape[1], tuple(gy.shape[2:])
    cg = channels // groups
    pixels = int(np.prod(out))
    spatial = (cg * int(np.prod(kernel[:-1])), kernel[-1])
    options = dict(stride=1, padding=0, dilation=1, groups=groups, padding_mode="zeros",
                   method=method, threads=threads)
    chunks = _columns_chunks(batch, out, kernel, channels, np.dtype(x.dtype).itemsize,
                             get_workspace_budget())
    if isinstance(x, Spec):
        return tuple(_forward(Spec((1, groups * (stop - start) * pixels, *spatial), x.dtype),
                              Spec((out_channels, (stop - start) * pixels, 1, 1), gy.dtype),
                              **options) for start, stop in chunks)
    total = None
    for start, stop in chunks:
        columns = _columns(x[start:stop], kernel, out, groups, stride, padding, dilation,
                           padding_mode)
        weight = np.ascontiguousarray(gy[start:stop].swapaxes(0, 1)).reshape(
            out_channels, (stop - start) * pixels, 1, 1)
        part = _forward(columns, weight, **options)
        total = part if total is None else total + part
    return total.reshape(out_channels, cg, *kernel)


def _swapped_problem(x, gy, kernel, groups, stride, padding, dilation, padding_mode, method,
                     threads):
    """The weight gradient (K, C/groups, *k) as one forward correlation of the padded input with
    ``grad_output`` as an output-sized kernel: batch Cg, channels ``groups * N`` (group ``i``'s
    channel ``c`` of item ``n`` at ``(c, i*N + n)``), weight ``grad_output`` (K, N, *out),
    stride and dilation swapped. With :data:`Spec` operands, its plan (a 1-tuple)."""
    batch, channels, *sizes = x.shape
    cg = channels // groups
    options = dict(stride=dilation, padding=padding, dilation=stride, groups=groups,
                   padding_mode=padding_mode, method=method, threads=threads)
    if isinstance(x, Spec):
        w_shape = (gy.shape[1], batch, *gy.shape[2:])
        return (_forward(Spec((cg, groups * batch, *sizes), x.dtype), Spec(w_shape, gy.dtype),
                         **options),)
    spatial = tuple(range(3, 3 + len(sizes)))
    swapped = x.reshape(batch, groups, cg, *sizes).transpose(2, 1, 0, *spatial).reshape(
        cg, groups * batch, *sizes)
    out = _forward(swapped, gy.swapaxes(0, 1), **options)
    # The last outputs of an axis may reach past the kernel (the forward's unused padding).
    out = out[(slice(None), slice(None), *(slice(0, k) for k in kernel))]
    return np.ascontiguousarray(out.swapaxes(0, 1))


@dataclass(frozen=True)
class GemmPlan:
    """The plan of the weight gradient as one GEMM through im2col's micro-kernel
    (strategies/im2col/runner.WeightGemm, its ``layout``). ``geometry`` is that GEMM as the 1x1
    forward problem of the column formulation (the same multiply-adds); ``seconds`` its estimate,
    copies included; ``workspace`` its extra bytes."""

    geometry: Geometry
    layout: im2col_runner.WeightGemm
    seconds: float
    workspace: int
    requested: bool
    method: str = "im2col"

    @property
    def threads(self):
        return self.layout.slots

    def candidate(self, method):
        """Its standing as a :class:`fastconv.Candidate` (only ``method`` 'im2col')."""
        return Candidate(method, self.seconds, self.workspace, self.threads)

    def __repr__(self):
        layout = self.layout
        n, c = layout.input_shape[:2]
        chunks = -(-n // layout.images)
        plural = {True: "s", False: ""}
        return "\n".join([
            f"GemmPlan: weight gradient {(layout.out_channels, c // layout.groups, *layout.kernel)}"
            f" of {layout.input_shape} {layout.dtype}, grad_output spatial {layout.out_shape}",
            f"  stride {layout.stride}, dilation {layout.dilation}, padding {layout.padding}, "
            f"groups {layout.groups}; {self.geometry.macs:.3g} multiply-adds",
            "  one GEMM reducing over batch and pixels: im2col's micro-kernel reads a "
            "channels-last copy of the padded input in place",
            "  (rows: " + ("kernel columns x channels" if layout.columns_in_run else "channels")
            + "), grad_output packed in panels",
            f"  estimate {_time(self.seconds)}, workspace {_bytes(self.workspace)}, "
            f"{layout.slots} thread{plural[layout.slots > 1]}, {chunks} chunk"
            f"{plural[chunks > 1]} of {layout.images} image{plural[layout.images > 1]}",
        ])


def _gemm_problem(x, gy, kernel, groups, stride, padding, dilation, padding_mode, method,
                  threads):
    """The weight gradient (K, C/groups, *k) as one GEMM through im2col's micro-kernel; with
    :data:`Spec` operands, its plan (a 1-tuple of :class:`GemmPlan`). ValueError where it does
    not apply: a forced method other than 'im2col', data not float32/float64, or one image's
    copies over the workspace budget."""
    if method not in ("auto", "im2col"):
        raise ValueError(f"method {method!r} does not run the micro-kernel GEMM")
    batch, channels = x.shape[:2]
    out_channels, out = gy.shape[1], tuple(gy.shape[2:])
    budget = get_workspace_budget()
    layout = im2col_runner.weight_gemm(x.shape, out, kernel, groups, out_channels, stride,
                                       padding, dilation, x.dtype, threads, budget)
    if layout is None:
        raise ValueError("the micro-kernel GEMM needs float32/float64 data and one image's "
                         "copies within the workspace budget")
    if isinstance(x, Spec):
        constants = machine_constants()
        work = im2col_model.weight_gemm_work(layout, constants)
        seconds = evaluate(work.terms, constants) + batch * layout.image_bytes() / (
            COLUMN_BYTES_PER_SECOND)
        pixels = int(np.prod(out))
        cg = channels // groups
        geometry = Geometry(1, groups * batch * pixels, cg * int(np.prod(kernel[:-1])),
                            kernel[-1], out_channels, 1, 1, (0, 0, 0, 0), (1, 1), (1, 1), groups,
                            "zeros", np.dtype(x.dtype))
        return (GemmPlan(geometry, layout, seconds, work.workspace, method == "im2col"),)
    with numba_threads(layout.slots):
        return im2col_runner.run_weight_gemm(layout, x, gy, NUMPY_PAD_MODES[padding_mode])


# Rate at which NumPy gathers the column matrix (a strided copy), to price it next to the
# engine's estimates when choosing the weight gradient's formulation. bench/grad.py measured the
# columns formulation 2.4-12x faster than the swapped correlation on the ResNet stem 7x7/2 and
# 256-channel 14x14 3x3 layers, even on 64-channel 56x56 3x3, and 3.5-16x slower on 32-channel
# 5x5 and 7x7 and 16-channel 15x15 layers (fp32, 2 threads, a loaded machine); this rate makes
# the comparison pick the faster one on each.
COLUMN_BYTES_PER_SECOND = 4e9


def _weight_formulation(x_spec, gy_spec, kernel, groups, stride, padding, dilation,
                        padding_mode, method, threads):
    """(problems function, plans) of the fastest weight-gradient formulation by the engine's
    estimates: the micro-kernel GEMM, the column GEMM (plus the column matrix's gathering) or
    the swapped correlation. A forced ``method`` that declines a formulation's problems leaves
    the others."""
    arguments = (x_spec, gy_spec, kernel, groups, stride, padding, dilation, padding_mode,
                 "auto" if method == "measure" else method, threads)
    options = []
    for problems in (_gemm_problem, _weight_problems, _swapped_problem):
        try:
            plans = problems(*arguments)
        except ValueError:  # the forced method declines it
            continue
        seconds = sum(p.candidate(p.method).seconds or 0.0 for p in plans)
        if problems is _weight_problems:
            columns = int(np.prod(gy_spec.shape[2:])) * x_spec.shape[0] * x_spec.shape[1]
            seconds += columns * int(np.prod(kernel)) * np.dtype(x_spec.dtype).itemsize / (
                COLUMN_BYTES_PER_SECOND)
        options.append((seconds, problems, plans))
    if not options:  # both declined: the forced method's own error
        _swapped_problem(*arguments)
    _, problems, plans = min(options, key=lambda option: option[0])
    return problems, plans


def weight_gradient(rank, input, weight_shape, grad_output, stride, padding, dilation, groups,
                    padding_mode, method, threads):
    """``conv{rank}d_weight``: validated, computed, shaped like ``weight_shape``."""
    check_adjoint_method(method)
    count = threads_count(threads)
    (x, gy), (groups, stride, pads, dilation), w_full = grad_weight_call(
        input, weight_shape, grad_output, stride, padding, dilation, groups, padding_mode, rank)
    kernel = w_full[2:]
    problems, _ = _weight_formulation(Spec(x.shape, x.dtype), Spec(gy.shape, gy.dtype), kernel,
                                      groups, stride, pads, dilation, padding_mode, method, count)
    out = problems(x, gy, kernel, groups, stride, pads, dilation, padding_mode, method, count)
    return out.reshape(tuple(weight_shape))


def transposed(rank, input, weight, bias, stride, padding, output_padding, groups, dilation,
               method, threads):
    """``conv_transpose{rank}d``: validated, computed, shaped like PyTorch's result."""
    check_adjoint_method(method)
    count = threads_count(threads)
    (x, w, b), checked = transpose_arrays(input, weight, bias, stride, padding, output_padding,
                                          dilation, groups, rank)
    _, _, (groups, stride, pads, dilation), _, out_sizes, lead = checked
    windows = [(lo, n) for (lo, _), n in zip(pads, out_sizes, strict=True)]
    out = _adjoint(x, w, stride, dilation, groups, windows, method, count)
    if b is not None:
        out += b.reshape((-1,) + (1,) * rank)
    if lead is None:
        return out[0, 0]
    return out if lead else out[0]


def _plan_options(dtype, method, threads):
    check_plan_method(method)
    return plan_dtype(dtype), threads_count(threads)


def plan_transposed(input_shape, weight_shape, dtype, stride, padding, output_padding, groups,
                    dilation, method, threads):
    """The plans of a ``conv_transpose{rank}d`` call given by shapes."""
    dtype, count = _plan_options(dtype, method, threads)
    x_shape = shape_tuple(input_shape, "input_shape")
    w_shape = shape_tuple(weight_shape, "weight_shape")
    x_full, w_full, (groups, stride, pads, dilation), _, out_sizes, _ = transpose_call(
        x_shape, w_shape, stride, padding, output_padding, dilation, groups,
        shapes_rank(x_shape, w_shape), names=("input_shape", "weight_shape"))
    windows = [(lo, n) for (lo, _), n in zip(pads, out_sizes, strict=True)]
    return _adjoint(Spec(x_full, dtype), Spec(w_full, dtype), stride, dilation, groups, windows,
                    method, count)


def plan_input(input_shape, weight_shape, dtype, stride, padding, dilation, groups,
               padding_mode, method, threads):
    """The plans of a ``conv{rank}d_input`` call given by shapes."""
    dtype, count = _plan_options(dtype, method, threads)
    x_full, w_full, (groups, stride, pads, dilation) = grad_shapes_call(
        input_shape, weight_shape, stride, padding, dilation, groups, padding_mode)
    sizes = x_full[2:]
    out = tuple((n + lo + hi - d * (k - 1) - 1) // s + 1 for n, (lo, hi), d, k, s in zip(
        sizes, pads, dilation, w_full[2:], stride, strict=True))
    whole = padding_mode != "zeros"
    windows = [(0, n + lo + hi) if whole else (lo, n) for n, (lo, hi) in zip(sizes, pads,
                                                                             strict=True)]
    gy = Spec(x_full[:1] + w_full[:1] + out, dtype)
    return _adjoint(gy, Spec(w_full, dtype), stride, dilation, groups, windows, method, count)


def plan_weight(input_shape, weight_shape, dtype, stride, padding, dilation, groups,
                padding_mode, method, threads):
    """The plan of a ``conv{rank}d_weight`` call given by shapes (one problem)."""
    dtype, count = _plan_options(dtype, method, threads)
    x_full, w_full, (groups, stride, pads, dilation) = grad_shapes_call(
        input_shape, weight_shape, stride, padding, dilation, groups, padding_mode)
    out = tuple((n + lo + hi - d * (k - 1) - 1) // s + 1 for n, (lo, hi), d, k, s in zip(
        x_full[2:], pads, dilation, w_full[2:], stride, strict=True))
    gy = Spec(x_full[:1] + w_full[:1] + out, dtype)
    return _weight_formulation(Spec(x_full, dtype), gy, w_full[2:], groups, stride, pads,
                               dilation, padding_mode, method, count)[1]
