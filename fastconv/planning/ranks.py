"""Every spatial rank on the 2-D engine: ``conv1d`` and ``conv3d`` reduced to ``conv2d`` problems.

One reduction, so every strategy, cost model and the planner serve ranks 1 to 3 without a kernel
or a Numba signature of their own (a new rank compiles nothing):

* rank 1: ``(N, C, L) * (K, C/groups, k)`` is the 2-D problem ``(N, C, 1, L) * (K, C/groups, 1,
  k)``, a unit height axis; padding, stride and dilation act along the width only. The arrays are
  reshaped views: no copy.
* rank 2: the problem itself.
* rank 3: depth taps folded into GEMM channels. For a chunk of output depths, the input depth slices
  each output depth reads are gathered into an array ``(N * depths, C * kd, H, W)`` in group-major
  channel order (input channel ``c``, depth tap ``t`` -> channel ``c * kd + t``), and one 2-D
  problem runs it with the weight ``(K, C/groups * kd, kh, kw)`` (a reshape of the 5-D weight) and
  the same ``groups``; the bias is added once, by the 2-D strategy. A strategy that ``reads_planes``
  (direct) is handed a map of those slices instead of a copy: it reads them in place and writes each
  output depth in place, so nothing is gathered or scattered (a 128^3 one-channel volume, 3x3x3
  kernel, 2 threads: 4.87 -> 1.91 ms fp32, 8.77 -> 3.41 ms fp64). Which slice an output depth reads
  comes from a depth index map built with ``numpy.pad`` on an index ramp, as rows and columns are
  (fastconv/core/padding.py), so the five padding modes, padding wider than the input included,
  follow ``numpy.pad`` (-1: the zero fill). Height and width padding are the 2-D problem's own. The
  padding modes are separable per axis, so this is exact.
* rank 3, kernels that are outer products of a depth, a height and a width factor (a 3-D Gaussian
  or box; one input channel per group): three passes where the estimates say so
  (:func:`reduce_passes`): the depth pass as the 2-D problem of each channel's (D, H * W) matrix
  with a kd x 1 kernel, then the (kh, kw) separable passes of every output depth plane (a 128^3
  float64 volume with a 9^3 Gaussian, 2 threads: 60.7 ms folded, 8.5 ms as passes;
  bench/results/separable-volumes.md).

* rank 3 on the FFT strategy: height and width flattened into one axis (:func:`reduce_flat`).
  Padded to (Hp, Wp), a (H, W) plane is a row of Hp * Wp points, and the kernel's rows, Wp points
  apart with zeros between them, one kernel row of ``dh * (kh - 1) * Wp + dw * (kw - 1) + 1``
  points: the 3-D call is the 2-D problem of (depth, Hp * Wp) planes with that kernel, whose
  outputs at ``i * sh * Wp + j * sw`` are the (i, j) outputs (the others straddle a row end and
  are dropped). The FFT transforms all of a plane's points at once, as a 3-D transform would;
  the folded depth taps transform every plane once per tap (a 128^3 float64 volume, 31^3
  kernel, 2 threads: 236 ms folded, 38-45 ms flattened). The padded rows and columns are read
  through maps (``Problem.rowmap``/``colmap``: every padding mode, no padded copy); the result's
  kept columns are copied into the output, in chunks of images or output depths. Data holding
  NaN or Inf run on the folded direct strategy (the zeros between the kernel's rows would
  multiply them).
* rank 3, a 1x1x1 kernel at unit stride without padding: each (C, D, H, W) volume is one row of
  D * H * W pixels, so the call is one 2-D problem (one GEMM per image, not one per output
  depth).

The workspace budget holds for every rank: a 3-D call keeps at most half of it
(``FOLD_SHARE``) for one chunk's gathered input and its 2-D result, chunking the output depths
(then the images) to fit, and plans and runs the 2-D problem under the other half (the plan
carries that budget). Peak memory is therefore the output plus the budget. The smallest chunk is
one output depth of one image; its gathered input may exceed the share.

Winograd, which declines every kernel but 3x3 in 2-D, thereby runs any ``(kd, 3, 3)`` kernel
with stride and dilation 1 in height and width: the folded problem is 3x3 whatever the depth
kernel, stride and dilation (the depth sum is a channel sum). In 1-D it always declines (its 2-D
problem is 1 x k).

Entry points for the rest of the package (transposed convolutions, gradients, N-D drop-ins,
dask), all on canonical arrays:

``correlate_nd(x, w, bias, stride, dilation, padding, padding_mode, groups, method, threads,
persist, fill)``
    ``x`` (N, C, *spatial) and ``w`` (K, C/groups, *kernel) with 1 to 3 spatial axes, C-contiguous
    and of one compute dtype (float32, float64; complex64/128 and int64 run on the strategies that
    take them), ``bias`` (K,) of that dtype or None; ``stride``/``dilation`` one int per axis,
    ``padding`` one (before, after) pair per axis, ``padding_mode`` one of
    ``_validate.PADDING_MODES``, ``groups`` dividing C and K; ``method`` 'auto', 'measure', a
    registry name or a :class:`Plan` from :func:`plan_nd`; ``threads`` a thread limit (None: Numba's
    current count). Returns a new C-contiguous (N, K, *out) array of the dtype, ``out`` per axis
    ``(size + before + after - dilation * (k - 1) - 1) // stride + 1``. Correlation (the kernel is
    not flipped), no checks: validate first (``_validate.nd_problem``) where data come from users.
    Inputs are never written.
``plan_nd(geometry, method, threads)``
    The :class:`Plan` of a ``core.geometry.NdGeometry``: the 2-D plan of the reduced problem (one
    chunk for rank 3), its ``reduction`` saying how the call maps onto it and, where the last
    chunk is smaller, its ``remainder`` plan.
``reduce_nd(geometry, budget)``
    The :class:`Reduction` itself: the 2-D geometry of one chunk, the chunking and its text.
"""

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from ..core.geometry import Geometry, NdGeometry, Problem
from ..core.messages import cannot_run
from ..core.padding import axis_map
from ..core.workspace import get_budget
from ..strategies import REGISTRY
from ..strategies.separable.detect import detection, forces_separable, worth_detecting_slices
from .constants import evaluate
from .execute import execute
from .measure import run_measured
from .plan import Plan, make_plan, memoised

# The public function of each spatial rank, for the plans' descriptions.
FUNCTIONS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}

# A 3-D call's gathered input and 2-D result take at most 1 / FOLD_SHARE of the workspace budget;
# the 2-D strategies get the rest.
FOLD_SHARE = 2


@dataclass(frozen=True)
class Reduction:
    """How an N-D problem runs as 2-D problems: ``geometry`` is one chunk's 2-D problem (all of
    it for ranks 1 and 2); rank 3 runs ``images`` images x ``depths`` output depths per chunk."""

    nd: NdGeometry
    """The call."""
    geometry: Geometry
    images: int
    depths: int
    chunks: int
    budget: int
    """The workspace budget the 2-D problems are planned and run under."""
    text: str
    gathers: bool = True
    """Rank 3: whether the depth slices are gathered into a copy (else read through a plane
    map, for a strategy that ``reads_planes``)."""
    fold_bytes: int = 0
    """Rank 3, gathering: the bytes one chunk's fold copies (its gathered input and result)."""
    depth_pass: tuple | None = None
    """Rank 3 run as three passes (``NdGeometry.outer_product``): the plans of the depth pass of
    a chunk and of the last chunk where it is smaller (else None); ``geometry`` is then the
    (kh, kw) passes' problem over the output depth planes, and a chunk holds ``images`` images
    x ``channels`` input channels. None: depth taps folded into channels."""
    channels: int = 0
    pointwise: bool = False
    """Rank 3, a 1x1x1 kernel at unit stride without padding: ``geometry`` is the whole call,
    each (C, D, H, W) volume a (C, 1, D * H * W) image."""
    flat: bool = False
    """Rank 3, FFT only: height and width flattened into one axis (:func:`reduce_flat`);
    ``geometry`` is then one chunk's (images, C, D, Hp * Wp) problem."""

    def remainder(self):
        """The 2-D problem of the last chunk when it is smaller than the others, else None."""
        if self.pointwise:
            return None
        n = self.nd.input_shape[0]
        out_depth = self.nd.out_spatial[0] if self.nd.rank == 3 else 1
        images = n - (-(-n // self.images) - 1) * self.images
        depths = out_depth - (-(-out_depth // self.depths) - 1) * self.depths
        if self.flat:
            if (images, depths) == (self.images, self.depths):
                return None
            return replace(self.geometry, batch=images if self.depths == out_depth else 1,
                           height=_flat_rows(self.nd, depths))
        batch = (images if self.depths == out_depth else 1) * depths
        if self.nd.rank != 3 or batch == self.geometry.batch:
            return None
        return replace(self.geometry, batch=batch)


def ranked(nd, w, forced=False):
    """``nd`` with the kernel rank of its weights ``w`` (canonical, of the compute dtype): the
    largest rank of the 2-D slices the engine runs (rank 3: each depth tap's (kh, kw) slice),
    detected where conv2d's validation would (separable/detect.py, ``forced``: the separable
    strategy is asked for; cached per weight array), so the separable strategy serves every rank
    and drop-in. Rank 1 kernels are one pass already."""
    if nd.rank == 1:
        return nd
    k, cg, *kernel = w.shape
    pixels = nd.input_shape[0] * math.prod(nd.out_spatial)
    if not worth_detecting_slices(kernel[-2], kernel[-1], w.size, pixels, forced):
        return nd
    slices = w if nd.rank == 2 else w.reshape(k, cg * kernel[0], *kernel[1:])
    rank = detection(slices).rank
    outer = (nd.rank == 3 and cg == 1 and kernel[0] > 1 and rank is not None and rank <= 1
             and detection(w.reshape(k, 1, kernel[0], -1)).rank <= 1)
    return _with_rank(nd, rank, outer)


@lru_cache(maxsize=256)
def _with_rank(nd, rank, outer):
    return replace(nd, kernel_rank=rank, outer_product=outer)


def _padding4(pairs):
    return tuple(int(n) for pair in pairs for n in pair)


def reduce_nd(nd, budget, gathers=True):
    """The :class:`Reduction` of ``nd`` (an NdGeometry) under a workspace budget of ``budget``;
    ``gathers``: see Reduction."""
    n, c, *spatial = nd.input_shape
    k, cg, *kernel = nd.weight_shape
    common = dict(out_channels=k, groups=nd.groups, padding_mode=nd.padding_mode, dtype=nd.dtype)
    if nd.rank == 2:
        g = Geometry(batch=n, channels=c, height=spatial[0], width=spatial[1],
                     kernel_height=kernel[0], kernel_width=kernel[1],
                     padding=_padding4(nd.padding), stride=nd.stride, dilation=nd.dilation,
                     kernel_rank=nd.kernel_rank, **common)
        return Reduction(nd, g, n, 1, 1, budget, "")
    function = FUNCTIONS[nd.rank]
    head = (f"{function}: {nd.input_shape} * {nd.weight_shape} -> {nd.out_shape} {nd.dtype}, "
            f"stride {nd.stride}, dilation {nd.dilation}, padding {nd.padding} "
            f"{nd.padding_mode}, groups {nd.groups}")
    if nd.rank == 1:
        g = Geometry(batch=n, channels=c, height=1, width=spatial[0], kernel_height=1,
                     kernel_width=kernel[0], padding=(0, 0, *nd.padding[0]),
                     stride=(1, nd.stride[0]), dilation=(1, nd.dilation[0]), **common)
        return Reduction(nd, g, n, 1, 1, budget,
                         f"{head};\n  runs as the 2-D problem below with a unit height axis:")
    depth, height, width = spatial
    if tuple(kernel) == (1, 1, 1) and nd.stride == (1, 1, 1) and not any(map(any, nd.padding)):
        # Pointwise: every voxel alike, so the volume is one row of D * H * W pixels (one GEMM
        # per image, not one per output depth of H x W pixels).
        g = Geometry(batch=n, channels=c, height=1, width=depth * height * width,
                     kernel_height=1, kernel_width=1, padding=(0, 0, 0, 0), stride=(1, 1),
                     dilation=(1, 1), **common)
        return Reduction(nd, g, n, depth, 1, budget, f"{head};\n  pointwise: runs as the 2-D "
                         f"problem below, each volume one row of its voxels:", pointwise=True)
    kd = kernel[0]
    out_depth, out_height, out_width = nd.out_spatial
    if gathers:  # the gathered input and the 2-D result
        per_depth = (c * kd * height * width + k * out_height * out_width) * nd.dtype.itemsize
    else:  # the plane maps
        per_depth = (c * kd + k) * np.dtype(np.int64).itemsize
    fit = max(1, budget // FOLD_SHARE // per_depth)
    if fit >= out_depth:
        images = min(n, fit // out_depth)
        images = -(-n // -(-n // images))  # as many chunks, as equal as they can be
        depths = out_depth
        chunks = -(-n // images)
    else:
        depths = -(-out_depth // -(-out_depth // fit))
        images = 1
        chunks = n * -(-out_depth // depths)
    g = Geometry(batch=images * depths, channels=c * kd, height=height, width=width,
                 kernel_height=kernel[1], kernel_width=kernel[2],
                 padding=_padding4(nd.padding[1:]), stride=nd.stride[1:],
                 dilation=nd.dilation[1:], kernel_rank=nd.kernel_rank, **common)
    inner = budget - budget // FOLD_SHARE
    read = (f"{per_depth * images * depths / 2**20:.3g} MiB copied per problem, in the "
            f"estimates of the strategies that gather" if gathers
            else "read and written in place by direct")
    text = (f"{head};\n  runs as {chunks} 2-D problem{'s' if chunks > 1 else ''} of {images} "
            f"image{'s' if images > 1 else ''} x {depths} output depth{'s' if depths > 1 else ''} "
            f"(depth taps folded into channels, {read}), each:")
    return Reduction(nd, g, images, depths, chunks, inner, text, gathers,
                     per_depth * images * depths if gathers else 0)


def reduce_passes(nd, budget):
    """The :class:`Reduction` of a rank-3 call whose kernel slices are outer products of one
    factor per axis (``nd.outer_product``) into three passes, or None: a depth pass (the 2-D
    problem of each channel's (D, H * W) matrix with the kd x 1 depth factor; padding, stride and
    dilation along D) into an intermediate (images, K, out_depth, H, W), then the (kh, kw) passes
    of every output depth plane (one group per plane, the plane's channel's (kh, kw) factors,
    kernel rank 1). A 17^3 Gaussian costs 51 multiply-adds per output instead of 4913, or 306
    folded (each depth tap's slice rank 1). The padding modes are separable per axis, so the
    passes are exact; a constant fill passes the depth pass as ``fill * sum(depth factor)``, one
    value only for one output channel (else None). Chunks of whole images, else of input
    channels of one image, keep the intermediate and the result within the fold's share of the
    budget; None where one channel's exceed it (the fold chunks finer)."""
    if not nd.outer_product or (nd.padding_mode == "constant" and nd.weight_shape[0] > 1):
        return None
    n, c, _, height, width = nd.input_shape
    k, _, kd, kh, kw = nd.weight_shape
    multiplier = k // c
    out_depth, out_height, out_width = nd.out_spatial
    per_channel = (multiplier * out_depth * (height * width + out_height * out_width)
                   * nd.dtype.itemsize)
    fit = budget // FOLD_SHARE // per_channel
    if fit == 0:
        return None
    if fit >= c:
        images, channels = min(n, fit // c), c
        images = -(-n // -(-n // images))
    else:
        images, channels = 1, -(-c // -(-c // fit))
    chunks = -(-n // images) * -(-c // channels)
    planes = channels * multiplier * out_depth
    g = Geometry(batch=images, channels=planes, height=height, width=width, out_channels=planes,
                 kernel_height=kh, kernel_width=kw, padding=_padding4(nd.padding[1:]),
                 stride=nd.stride[1:], dilation=nd.dilation[1:], groups=planes,
                 padding_mode=nd.padding_mode, dtype=nd.dtype, kernel_rank=1)
    head = (f"conv3d: {nd.input_shape} * {nd.weight_shape} -> {nd.out_shape} {nd.dtype}, "
            f"stride {nd.stride}, dilation {nd.dilation}, padding {nd.padding} "
            f"{nd.padding_mode}, groups {nd.groups}")
    text = (f"{head};\n  kernel slices are outer products of a depth, a height and a width "
            f"factor: runs as three passes, in {chunks} chunk{'s' if chunks > 1 else ''} of "
            f"{images} image{'s' if images > 1 else ''} x {channels} channel"
            f"{'s' if channels > 1 else ''}: the {kd}-tap depth pass (a 2-D problem of each "
            f"channel's (D, H*W) matrix), then the {kh}x{kw} passes of each output depth plane, "
            f"each:")
    return Reduction(nd, g, images, out_depth, chunks, budget - budget // FOLD_SHARE, text,
                     gathers=False, depth_pass=(None, None), channels=channels)


# Shares of the budget (1 / share) the flattened FFT's copies (the embedded kernel and a chunk's
# result) may take, tried in turn: the FFT's tiles get the rest (a 128^3 float64 volume, 31^3
# kernel: one chunk left it 43 MiB of 64, 11 chunks of depths 61 MiB).
FLAT_SHARES = (2, 4, 8)


def reduce_flat(nd, budget, share=FOLD_SHARE):
    """The :class:`Reduction` of a rank-3 call to the FFT strategy's 2-D problem of (depth,
    Hp * Wp) planes (module docstring), or None (ranks 1 and 2, or no output depth fits). Its
    copies, the embedded kernel and one chunk's result, take at most 1 / ``share`` of the budget:
    chunks of whole images, else of output depths of one image; the FFT gets the budget less
    the copies. Rows (depths) are read through a row map too (``Problem.rowmap``): a chunk's
    geometry is the padded depths it reads, without padding."""
    if nd.rank != 3:
        return None
    n, c, depth, height, width = nd.input_shape
    k, cg, kd, kh, kw = nd.weight_shape
    (top, bottom), (left, right) = nd.padding[1:]
    padded_height, padded_width = height + top + bottom, width + left + right
    span = nd.dilation[1] * (kh - 1) * padded_width + nd.dilation[2] * (kw - 1) + 1
    flat_width = padded_height * padded_width
    itemsize = nd.dtype.itemsize
    kernel_bytes = k * cg * kd * span * itemsize
    depth_bytes = k * (flat_width - span + 1) * itemsize
    out_depth = nd.out_spatial[0]
    fit = (budget // share - kernel_bytes) // depth_bytes
    if fit < 1:
        return None
    if fit >= out_depth:
        images = min(n, fit // out_depth)
        images = -(-n // -(-n // images))
        depths, chunks = out_depth, -(-n // images)
    else:
        images, depths = 1, -(-out_depth // -(-out_depth // fit))
        chunks = n * -(-out_depth // depths)
    copies = kernel_bytes + images * depths * depth_bytes
    g = Geometry(batch=images, channels=c, height=_flat_rows(nd, depths), width=flat_width,
                 kernel_height=kd, kernel_width=span, padding=(0, 0, 0, 0),
                 stride=(nd.stride[0], 1), dilation=(nd.dilation[0], 1), out_channels=k,
                 groups=nd.groups, padding_mode=nd.padding_mode, dtype=nd.dtype)
    head = (f"conv3d: {nd.input_shape} * {nd.weight_shape} -> {nd.out_shape} {nd.dtype}, "
            f"stride {nd.stride}, dilation {nd.dilation}, padding {nd.padding} "
            f"{nd.padding_mode}, groups {nd.groups}")
    text = (f"{head};\n  runs on fft as {chunks} 2-D problem{'s' if chunks > 1 else ''} of "
            f"{images} image{'s' if images > 1 else ''} x {depths} output "
            f"depth{'s' if depths > 1 else ''}, height and width flattened into one axis "
            f"({padded_height} x {padded_width} padded points; the kernel's rows "
            f"{padded_width} apart, zeros between: {span} points; {copies / 2**20:.3g} MiB of "
            f"kernel and result copied per problem, in the estimate), each:")
    return Reduction(nd, g, images, depths, chunks, budget - copies, text, gathers=False,
                     fold_bytes=copies, flat=True)


def _flat_rows(nd, depths):
    """The padded depths ``depths`` consecutive output depths read."""
    return (depths - 1) * nd.stride[0] + nd.dilation[0] * (nd.weight_shape[2] - 1) + 1


def _flat_maps(nd):
    """The row and column maps of :func:`reduce_flat`'s problems: padded depth -> input depth,
    and padded flat column -> input flat column, -1 for the fill (read-only, as index maps).
    Built per call, not cached: the column map holds 8 bytes per padded plane point (up to the
    workspace budget, where the FFT declines), and building it is one pass over those points."""
    depth, height, width = nd.input_shape[2:]
    (top, bottom), (left, right) = nd.padding[1:]
    rows = axis_map(height, top, bottom, nd.padding_mode)
    cols = axis_map(width, left, right, nd.padding_mode)
    colmap = np.where((rows[:, None] < 0) | (cols < 0), -1, rows[:, None] * width + cols).ravel()
    colmap.flags.writeable = False
    return axis_map(depth, *nd.padding[0], nd.padding_mode), colmap


def _plan_flat(nd, count, shares=FLAT_SHARES):
    """The plan of :func:`reduce_flat`'s reduction on the FFT strategy with the lowest estimate
    over ``shares``, or None."""
    best = None
    for share in shares:
        reduction = reduce_flat(nd, get_budget(), share)
        if reduction is None or REGISTRY["fft"].declines(reduction.geometry,
                                                         reduction.budget) is not None:
            continue
        plan = make_plan(reduction.geometry, "fft", count, reduction.budget,
                         fold_bytes=reduction.fold_bytes)
        rest = reduction.remainder()
        remainder = None if rest is None else make_plan(rest, "fft", plan.threads,
                                                        reduction.budget,
                                                        fold_bytes=reduction.fold_bytes)
        plan = replace(plan, reduction=reduction, remainder=remainder)
        if best is None or _seconds(plan) < _seconds(best):
            best = plan
    return best


def _depth_geometry(nd, images, channels):
    """The depth pass's 2-D problem for a chunk of ``images`` x ``channels`` input channels."""
    n, c, depth, height, width = nd.input_shape
    k, _, kd, _, _ = nd.weight_shape
    return Geometry(batch=images, channels=channels, height=depth, width=height * width,
                    out_channels=channels * (k // c), kernel_height=kd, kernel_width=1,
                    padding=(*nd.padding[0], 0, 0), stride=(nd.stride[0], 1),
                    dilation=(nd.dilation[0], 1), groups=channels,
                    padding_mode=nd.padding_mode, dtype=nd.dtype)


def _plan_passes(reduction, method, count):
    """The plan of ``reduction`` (from :func:`reduce_passes`): the (kh, kw) passes' plan with
    ``method``, the depth pass's ('auto': a one-column kernel is not separable) in the
    reduction, and the last chunk's where it is smaller."""
    nd = reduction.nd
    n, c = nd.input_shape[:2]
    budget = reduction.budget
    last_images = n - (-(-n // reduction.images) - 1) * reduction.images
    last_channels = c - (-(-c // reduction.channels) - 1) * reduction.channels
    rest = None
    if last_images != reduction.images or last_channels != reduction.channels:
        rest = (last_images if reduction.channels == c else 1, last_channels)
    depth_plan = make_plan(_depth_geometry(nd, reduction.images, reduction.channels), "auto",
                           count, budget)
    depth_rest = None if rest is None else make_plan(_depth_geometry(nd, *rest), "auto", count,
                                                     budget)
    plan = make_plan(reduction.geometry, method, count, budget)
    remainder = None
    if rest is not None:
        planes = rest[1] * reduction.geometry.out_channels // reduction.channels
        remainder = make_plan(replace(reduction.geometry, batch=rest[0], channels=planes,
                                      out_channels=planes, groups=planes), plan.method,
                              plan.threads, budget)
    reduction = replace(reduction, depth_pass=(depth_plan, depth_rest))
    return replace(plan, reduction=reduction, remainder=remainder)


def _seconds(plan):
    """A rank-3 plan's estimated seconds for the whole call (its chunks alike). The passes'
    intermediate, written by one pass and read by the next (and each chunk's result, copied into
    the output where there are several chunks), is priced as the fold's copies are."""
    total = plan.candidate(plan.method).seconds
    if plan.reduction.depth_pass is not None:
        depth_plan = plan.reduction.depth_pass[0]
        copied = math.prod(depth_plan.geometry.out_shape)
        if plan.reduction.chunks > 1:
            copied += math.prod(plan.geometry.out_shape)
        total += depth_plan.candidate(depth_plan.method).seconds + evaluate(
            {"fold_byte": copied * plan.geometry.dtype.itemsize}, plan.machine)
    return total * plan.reduction.chunks


def _refuse(method, reduction):
    reason = REGISTRY[method].declines(reduction.geometry, reduction.budget)
    if reason is not None:
        g = reduction.geometry
        via = reduction.text.split(":")[0]
        raise cannot_run(method, f"{reason} (the {via} call runs as 2-D problems with kernel "
                         f"{(g.kernel_height, g.kernel_width)}, stride {g.stride} and dilation "
                         f"{g.dilation}; see fastconv.plan)")


def plan_nd(nd, method="auto", threads=None):
    """The :class:`Plan` of an NdGeometry: the 2-D plan of its reduction (one chunk's), under the
    current workspace budget. Memoised with the plans: reducing and planning a 3-D call again
    cost about 40 us a call."""
    import numba

    count = numba.get_num_threads() if threads is None else threads
    return memoised(("plan_nd", nd, method, count), lambda: _plan_nd(nd, method, count))


def _plan_nd(nd, method, count):
    reduction = reduce_nd(nd, get_budget())
    if not reduction.text:
        return make_plan(reduction.geometry, method, count)
    # Three passes: what a forced 'separable' runs where they apply, a candidate of 'auto'.
    passes = reduce_passes(nd, get_budget()) if method in ("auto", "separable") else None
    if method == "separable" and passes is not None:
        return _plan_passes(passes, method, count)
    flat = _plan_flat(nd, count) if method in ("auto", "fft") else None
    if method != "auto":
        if flat is not None and REGISTRY[method].declines(reduction.geometry,
                                                          reduction.budget) is not None:
            return flat
        _refuse(method, reduction)
    # The strategies that gather are priced with the fold's copies; those that read plane maps
    # (direct) without.
    plan = make_plan(reduction.geometry, method, count, reduction.budget,
                     fold_bytes=reduction.fold_bytes)
    if nd.rank == 3 and REGISTRY[plan.method].reads_planes and not reduction.pointwise:
        # Nothing gathered: one chunk holds more output depths. Planned again on those, the
        # others priced with the fold of as many depths; kept if a strategy that reads plane
        # maps still wins.
        in_place = reduce_nd(nd, get_budget(), gathers=False)
        scale = in_place.geometry.batch / reduction.geometry.batch
        replanned = make_plan(in_place.geometry, method, count, in_place.budget,
                              fold_bytes=round(reduction.fold_bytes * scale))
        if REGISTRY[replanned.method].reads_planes:
            reduction, plan = in_place, replanned
    rest = reduction.remainder()
    remainder = None if rest is None else make_plan(
        rest, plan.method, plan.threads, reduction.budget,
        fold_bytes=round(plan.fold_bytes * rest.batch / reduction.geometry.batch))
    best = replace(plan, reduction=reduction, remainder=remainder)
    for other in (flat, None if passes is None else _plan_passes(passes, method, count)):
        if other is not None and _seconds(other) < _seconds(best):
            best = other
    return best


def correlate_nd(x, w, bias, stride, dilation, padding, padding_mode="zeros", groups=1,
                 method="auto", threads=None, persist=None, fill=0):
    """(N, K, *out) correlation of canonical arrays of any rank 1-3 (contract: module
    docstring). A Plan given as ``method`` must come from :func:`plan_nd` for this call (the
    caller checks). ``fill``: the value of constant padding (the drop-ins' ``cval``; padding mode
    "zeros" with a non-zero fill pads with it)."""
    import numba

    count = numba.get_num_threads() if threads is None else threads
    if padding_mode == "zeros" and fill != 0 and any(any(pair) for pair in padding):
        padding_mode = "constant"  # a fill that is not zero: see core/geometry.py
    if bias is None:
        bias = np.zeros(w.shape[0], x.dtype)
    nd = NdGeometry(input_shape=x.shape, weight_shape=w.shape, stride=tuple(stride),
                    dilation=tuple(dilation), padding=tuple(tuple(p) for p in padding),
                    groups=groups, padding_mode=padding_mode, dtype=x.dtype)
    if not isinstance(method, Plan):
        nd = ranked(nd, w, forces_separable(method))
    if method == "measure":
        reduction = reduce_nd(nd, get_budget())

        def run(problem):
            return run_measured(problem, count, persist)
    else:
        plan = method if isinstance(method, Plan) else plan_nd(nd, method, count)
        reduction = plan.reduction or reduce_nd(nd, plan.workspace_budget)

        def run(problem):
            chunk_plan = plan if problem.geometry == plan.geometry else plan.remainder
            return execute(chunk_plan, problem)

    if reduction.depth_pass is not None or reduction.flat:
        out = (_run_flat if reduction.flat else _run_passes)(reduction, plan, x, w, bias, fill)
        if out is not None:
            return out
        # Non-finite data: the folded problems, whose strategies propagate them exactly.
        nd = replace(nd, kernel_rank=None, outer_product=False)
        plan = plan_nd(nd, "direct", count)
        reduction = plan.reduction
    fill = np.full(1, fill, x.dtype)
    if nd.rank < 3 or reduction.pointwise:
        g = reduction.geometry
        shape4 = (g.batch, g.channels, g.height, g.width)
        weight4 = (g.out_channels, g.channels // g.groups, g.kernel_height, g.kernel_width)
        out = run(Problem(g, x.reshape(shape4), w.reshape(weight4), bias, fill))
        return out.reshape(nd.out_shape)
    return _run_folded(nd, reduction, x, w, bias, fill, run)


def _run_passes(reduction, plan, x, w, bias, fill):
    """Rank 3 as three passes (:func:`reduce_passes`); None where the result holds NaN or Inf
    (the passes do not reproduce the direct sum's propagation of non-finite data)."""
    nd = reduction.nd
    n, c, depth, height, width = x.shape
    k, _, kd, kh, kw = w.shape
    multiplier = k // c
    # One chunk: its result is the output (planes in (N, K, out_depth) order), no copy.
    out = None if reduction.chunks == 1 else np.empty(nd.out_shape, x.dtype)
    out_depth, out_height, out_width = nd.out_spatial
    found = detection(w.reshape(k, 1, kd, kh * kw))
    depth_factors = found.cols.reshape(k, 1, kd, 1)
    plane_factors = found.rows.reshape(k, kh, kw)
    # The fill as the depth pass leaves it (one value: one output channel, see reduce_passes).
    plane_fill = np.full(1, fill * depth_factors.sum(), x.dtype)
    depth_plan, depth_rest = reduction.depth_pass
    for n0 in range(0, n, reduction.images):
        n1 = min(n, n0 + reduction.images)
        for c0 in range(0, c, reduction.channels):
            c1 = min(c, c0 + reduction.channels)
            k0, k1 = c0 * multiplier, c1 * multiplier
            full = (n1 - n0, c1 - c0) == (reduction.images, reduction.channels)
            g = depth_plan.geometry if full else depth_rest.geometry
            columns = x[n0:n1, c0:c1].reshape(n1 - n0, c1 - c0, depth, height * width)
            between = execute(depth_plan if full else depth_rest, Problem(
                g, columns, depth_factors[k0:k1].copy(), np.zeros(k1 - k0, x.dtype),
                np.full(1, fill, x.dtype)))
            planes = (k1 - k0) * out_depth
            chunk_plan = plan if full else plan.remainder
            weights = np.repeat(plane_factors[k0:k1], out_depth, axis=0).reshape(
                planes, 1, kh, kw)
            result = execute(chunk_plan, Problem(
                chunk_plan.geometry, between.reshape(n1 - n0, planes, height, width), weights,
                np.repeat(bias[k0:k1], out_depth), plane_fill))
            del between
            if out is None:
                out = result.reshape(nd.out_shape)
            else:
                out[n0:n1, k0:k1] = result.reshape(n1 - n0, k1 - k0, out_depth, out_height,
                                                   out_width)
    if x.dtype.kind in "fc":
        with np.errstate(invalid="ignore", over="ignore"):
            if not np.isfinite(out.sum()):  # (a finite sum that overflows falls back too)
                return None
    return out


def _run_flat(reduction, plan, x, w, bias, fill):
    """Rank 3 on the FFT strategy with height and width flattened (:func:`reduce_flat`), in
    chunks of images or output depths; None where the data or weights hold NaN or Inf."""
    nd = reduction.nd
    n, c, depth, height, width = x.shape
    k, cg, kd, kh, kw = w.shape
    padded_width = width + sum(nd.padding[2])
    # The kernel's rows, padded_width apart (dilated), zeros between them.
    flat_w = np.zeros((k, cg, kd, reduction.geometry.kernel_width), x.dtype)
    rows = (np.arange(kh) * nd.dilation[1] * padded_width)[:, None]
    flat_w[..., (rows + np.arange(kw) * nd.dilation[2]).ravel()] = w.reshape(k, cg, kd, -1)
    rowmap, colmap = _flat_maps(nd)
    out = np.empty(nd.out_shape, x.dtype)
    out_depth, out_height, out_width = nd.out_spatial
    planes = x.reshape(n, c, depth, height * width)
    fill = np.full(1, fill, x.dtype)
    images, depths = reduction.images, reduction.depths
    for n0 in range(0, n, images):
        n1 = min(n, n0 + images)
        for d0 in range(0, out_depth, depths):
            d1 = min(out_depth, d0 + depths)
            full = (n1 - n0, d1 - d0) == (images, depths)
            chunk_plan = plan if full else plan.remainder
            first = d0 * nd.stride[0]
            chunk_rows = rowmap[first:first + chunk_plan.geometry.height]
            result = execute(chunk_plan, Problem(chunk_plan.geometry, planes[n0:n1], flat_w, bias,
                                                 fill, rowmap=chunk_rows, colmap=colmap),
                             fallback=False)
            if result is None:
                return None
            # Output (i, j) is flat column i * sh * padded_width + j * sw.
            item = result.itemsize
            out[n0:n1, :, d0:d1] = np.lib.stride_tricks.as_strided(
                result, (n1 - n0, k, d1 - d0, out_height, out_width),
                (*result.strides[:3], nd.stride[1] * padded_width * item, nd.stride[2] * item),
                writeable=False)
            del result
    return out


def _run_folded(nd, reduction, x, w, bias, fill, run):
    """Rank 3: each chunk's depth slices as channels (gathered, or plane maps into ``x`` and the
    output), run as 2-D."""
    n, c, depth, height, width = x.shape
    k, cg, kd, kh, kw = w.shape
    out_depth, out_height, out_width = nd.out_spatial
    out = np.empty(nd.out_shape, x.dtype)
    weight = w.reshape(k, cg * kd, kh, kw)
    depth_map = axis_map(depth, *nd.padding[0], nd.padding_mode)
    taps = np.arange(kd) * nd.dilation[0]
    images, depths = reduction.images, reduction.depths
    for n0 in range(0, n, images):
        n1 = min(n, n0 + images)
        for d0 in range(0, out_depth, depths):
            d1 = min(out_depth, d0 + depths)
            # sources[j, t]: the input depth output depth d0 + j reads at tap t (-1: the fill).
            sources = depth_map[np.arange(d0, d1)[:, None] * nd.stride[0] + taps]
            batch = (n1 - n0) * (d1 - d0)
            g = replace(reduction.geometry, batch=batch)
            if not reduction.gathers:
                image = np.arange(n0, n1)[:, None, None, None]
                planes = np.where(sources[None, :, None, :] < 0, -1,
                                  (image * c + np.arange(c)[:, None]) * depth + sources[:, None])
                out_planes = ((image[..., 0] * k + np.arange(k)) * out_depth
                              + np.arange(d0, d1)[:, None])
                planes, out_planes = planes.reshape(batch, c * kd), out_planes.reshape(batch, k)
                # Read-only as the direct runner's cached maps of 2-D calls: one Numba type.
                planes.flags.writeable = out_planes.flags.writeable = False
                run(Problem(g, x.reshape(-1, height, width), weight, bias, fill, planes=planes,
                            out=out.reshape(-1, out_height, out_width), out_planes=out_planes))
                continue
            gathered = np.empty((n1 - n0, d1 - d0, c, kd, height, width), x.dtype)
            for j in range(d1 - d0):
                for t, source in enumerate(sources[j]):
                    if source < 0:
                        gathered[:, j, :, t] = fill[0]
                    else:
                        gathered[:, j, :, t] = x[n0:n1, :, source]
            result = run(Problem(g, gathered.reshape(batch, c * kd, height, width), weight, bias,
                                 fill))
            del gathered
            out[n0:n1, :, d0:d1] = result.reshape(
                n1 - n0, d1 - d0, k, out_height, out_width).transpose(0, 2, 1, 3, 4)
            del result
    return out
