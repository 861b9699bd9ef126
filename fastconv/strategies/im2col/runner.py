"""Runner of the im2col strategy: its tiling (:func:`plan_tiling`) chooses between the
micro-kernel of gemm.py (the implicit GEMM of stride-1 float layers, and pointwise float layers,
where each measured faster) and BLAS (on an unfold, im2col or kernel-row bands, or on the input
of a pointwise layer) and sizes the tiles within the workspace budget; the runner limits BLAS to
one thread per Numba thread and calls the kernel of that path."""

import math
from dataclasses import dataclass, replace

import numpy as np

from ...core.costing import ITEMS_PER_THREAD, index_map_bytes
from ...core.padding import index_maps
from ...core.threads import blas_threads
from ...core.workspace import aligned_empty, largest_fitting
from . import gemm


def _kernels():
    """The compiled kernels, imported on first use: they register SciPy's BLAS (core/blas.py),
    whose import of scipy.linalg was 0.09 s of ``import fastconv``."""
    from . import kernels

    return kernels


# SciPy's BLAS is LP64: sizes and leading dimensions are 32-bit ints.
BLAS_INT_MAX = 2**31 - 1
# Bytes of column buffer per thread: the unfolded tile stays in L2 (2 MiB per core on the
# reference machine) between the unfold and BLAS packing it. 64->64 3x3 fp32, one thread, vs
# torch: 128 KiB 0.51x, 256 KiB 0.72x, 512 KiB 0.71x, 1 MiB 0.67x; the ResNet stem: 256 and
# 512 KiB 0.74x, 1 MiB 0.58x.
TILE_BYTES = 512 * 2**10
# Input channels per pointwise GEMM: BLAS packs its operand from this many strided input rows at
# once; more of them defeat the hardware prefetcher (measured 96 GF with 32, 60 GF with 256).
POINTWISE_CHUNK = 32
# Output pixels per GEMM call, per output channel of the group, below which BLAS's per-call
# packing of the weights dominates (256->256 3x3 on 14x14: 196-pixel tiles 61 GF fp64, 56-pixel
# tiles 45 GF).
GEMM_PIXELS_PER_CHANNEL = 2
# Output channels per work item when a group's channels are split between threads.
MIN_CHANNEL_BLOCK = 32
# Depth (Cg * kw) and output channels from which the unfold layout matters (see choose_band).
# Measured fp32, one thread, bands vs im2col: 3->64 7x7 (depth 21) 10.3 vs 9.1 ms; 8->32 3x3
# (24) 6.5 vs 6.8; 16->16 3x3 (48) 9.4 vs 10.5; 64->64 3x3 (192) 17.3 vs 22.3; 3->64 7x7 stride
# 2 23.6 vs 22.7; 64->128 3x3 stride 2 15.3 vs 12.0; depthwise 128 3x3 4.2 vs 6.2; depthwise
# stride 2 22.6 vs 25.3; 4->8 3x3 1.3 vs 1.6.
BAND_DEPTH = 32
# Implicit GEMM (correlate_implicit): unfolded rows per micro-kernel call, so that the block of
# packed weights it reads (96 x 64 channels x 4 bytes fp32, 96 x 32 x 8 fp64: 24 KiB) stays in
# L1 while the pixels stream. 64->64 3x3 fp32, the GEMM alone: 96 or 64 rows 1.07x faster than
# the whole depth (576); from 48 to 192 within noise end to end.
DEPTH_BLOCK = 96
# Depth (Cg * kh * kw) from which the implicit GEMM is used (see implicit_pays).
IMPLICIT_DEPTH = 128
# Packed weights of a group (bytes) from which the implicit GEMM splits output channels over the
# threads (ImplicitTiling.weights_major): about half the reference machine's 2 MiB L2.
WEIGHT_SPLIT_BYTES = 2**20
# Pixels of a pointwise strip: its rows of the group's channels stay in L2 and its output tile
# (192 x 64 fp32: 48 KiB) near L1. 256->64 on 56x56 fp32, GF/s: 96 pixels 144-158, 192 173-189,
# 384 141, 768 131-134.
POINTWISE_TILE = 192
# Pixels per image from which a pointwise layer takes the micro-kernel. Tiles are cut within an
# image, so smaller images give short tiles whose fixed costs (a strip row per channel, a tail of
# gemm.tile_rows) BLAS does not pay. Micro-kernel vs BLAS, fp32, batch 8, 2 threads, blocks of
# calls:
# 56x56 1.16-1.17; 28x28 0.98-1.17; 14x14 0.80-1.08; 7x7 0.94-1.32.
POINTWISE_IMPLICIT_PIXELS = 28 * 28
# Output channels per group (by itemsize) of which a pointwise layer's must be a multiple to take
# the micro-kernel: the panel widths of the 6 x 4 tile it was measured with. Narrower layers, in
# fp32's 32-wide panels of the 12 x 2 tile, lost to BLAS (micro-kernel vs BLAS, 2 threads, two
# runs: 128->32 on 28x28 0.72-0.79, 512->32 0.66-0.67, 256->96 0.93-0.98, 256->32 on 56x56
# 1.00-1.12).
POINTWISE_CHANNELS = {4: 64, 8: 32}


def declines(geometry, budget):
    """Integers have no BLAS GEMM (exact wrap-around integer products are needed), and BLAS
    sizes are 32-bit."""
    g = geometry
    if g.dtype.kind in "iu":
        return "integer data: BLAS has no exact integer GEMM; use 'direct'"
    if (g.height + sum(g.padding[:2])) * (g.width + sum(g.padding[2:])) > BLAS_INT_MAX:
        return "a padded image of 2**31 pixels or more: BLAS takes 32-bit sizes; use 'direct'"
    if not is_pointwise(g):
        band = unfold_band(g, budget)
        if fixed_bytes(g, band) + slot_bytes(g, band, 1, 1, 1) > budget:
            return (f"its index maps and smallest tile buffer (they grow with the padding, "
                    f"stride and dilation) exceed the workspace budget of "
                    f"{budget / 2**20:.1f} MiB; use 'direct'")
    return None


def is_pointwise(geometry):
    """A 1x1, stride-1, unpadded layer: the input already is the GEMM operand."""
    g = geometry
    return (g.kernel_height, g.kernel_width, g.stride) == (1, 1, (1, 1)) and not any(g.padding)


def choose_band(geometry):
    """Kernel rows per unfolded band: 1 (a GEMM per kernel row over shifted views of a buffer kh
    times smaller) or kh (plain im2col: one deep GEMM). im2col only where its deeper GEMM pays
    for the larger unfold: strided layers and shallow rows (Cg * kw < BAND_DEPTH), both feeding
    at least BAND_DEPTH output channels; with fewer, the unfold dominates and bands copy less."""
    g = geometry
    many_outputs = g.out_channels // g.groups >= BAND_DEPTH
    shallow = g.channels // g.groups * g.kernel_width < BAND_DEPTH
    if g.stride[0] > (g.kernel_height - 1) * g.dilation[0]:
        # Output rows read disjoint input rows: bands would share nothing, and their buffer
        # holds every stride phase (stride 2**31: 48 GiB for a 1x1 output).
        return g.kernel_height
    return g.kernel_height if many_outputs and (g.stride[0] > 1 or shallow) else 1


def unfold_band(geometry, budget):
    """choose_band's layout, unless its re-laid-out copy of the weights would take more than half
    of ``budget``: im2col reads the weights as they are."""
    band = choose_band(geometry)
    return band if fixed_bytes(geometry, band) <= budget // 2 else geometry.kernel_height


@dataclass(frozen=True)
class Tiling:
    """How the unfolded strategy splits one problem."""

    band: int
    chunk: int  # input channels unfolded per pass
    rows: int  # output rows per tile
    width: int  # output columns per tile (the full width unless rows == 1)
    k_block: int  # output channels per work item
    slots: int  # column buffers, one per thread
    phases: int  # stride phases of the buffer rows
    extra_rows: int  # buffer rows beyond the tile's output rows (the kernel-row shifts)

    def cols_shape(self, geometry):
        g = geometry
        return (self.slots, self.chunk * self.band * g.kernel_width, self.phases,
                self.rows + self.extra_rows, self.width)

    def phases_shape(self, geometry):
        g = geometry
        sw = g.stride[1]
        if sw == 1:
            return (self.slots, 1, 1)
        return (self.slots, sw, self.width + (g.kernel_width - 1) * g.dilation[1] // sw + 1)


def slot_bytes(geometry, band, chunk, rows, width):
    """Bytes of one thread's buffers in the unfolded kernel: ``chunk`` input channels, ``rows``
    output rows of ``width`` columns, bands of ``band`` kernel rows."""
    g = geometry
    kh, kw, sh, sw = g.kernel_height, g.kernel_width, g.stride[0], g.stride[1]
    phases = sh if band < kh else 1
    extra = (kh - band) * g.dilation[0] // sh
    strip = sw * (width + (kw - 1) * g.dilation[1] // sw + 1) if sw > 1 else 1
    return (chunk * band * kw * phases * (rows + extra) * width + strip) * g.dtype.itemsize


def unfolded_tiling(geometry, threads, budget, band):
    """Tile sizes for the unfolded kernel, within ``budget`` bytes of workspace in total.

    The column buffer of a tile stays within TILE_BYTES (cache-resident): full-depth tiles of
    whole output rows when at least the bands' halo of rows fits, else fewer input channels per
    pass (64->16 7x7 on 256x256, fp32: 64 channels x 1 row, 3 MiB, 173 ms; 8 channels x 4 rows,
    560 KiB, 74 ms), else narrower tiles. The number of rows then follows _split_work.
    """
    g = geometry
    kh = g.kernel_height
    cg = g.channels // g.groups
    kg = g.out_channels // g.groups
    ho, wo = g.out_height, g.out_width
    sh = g.stride[0]
    phases = sh if band < kh else 1
    extra = (kh - band) * g.dilation[0] // sh
    fixed = fixed_bytes(geometry, band)

    def per_slot(chunk, rows, width):
        return slot_bytes(g, band, chunk, rows, width)

    slots = max(1, min(threads, g.batch * g.groups * ho))
    while slots > 1 and fixed + slots * per_slot(1, 1, 1) > budget:
        slots -= 1
    room = max(budget - fixed, 0) // slots
    target = min(room, TILE_BYTES)

    def tiling(chunk, rows, width, k_block):
        return Tiling(band, chunk, rows, width, k_block, slots, phases, extra)

    halo = min(ho, max(extra, 1))
    if per_slot(cg, halo, wo) <= target:
        fit = largest_fitting(lambda r: per_slot(cg, r, wo), room, ho)
        cached = largest_fitting(lambda r: per_slot(cg, r, wo), target, ho)
        rows, k_block = _split_work(geometry, ho, wo, fit, cached, threads)
        return tiling(cg, rows, wo, k_block)
    least = -(-GEMM_PIXELS_PER_CHANNEL * kg // wo)
    for rows in (min(ho, max(halo, least)), 1):
        chunk = largest_fitting(lambda c, rows=rows: per_slot(c, rows, wo), target, cg)
        if chunk:
            rows, k_block = _split_work(geometry, ho, wo, rows, rows, threads)
            return tiling(chunk, rows, wo, k_block)
    width = max(1, largest_fitting(lambda w: per_slot(1, 1, w), target, wo))
    return tiling(1, 1, width, kg)


def _split_work(geometry, units, unit_pixels, fit, cached, threads):
    """Units (output rows, or pixels) per tile, and output channels per work item.

    Tiles hold ``cached`` units (their buffers stay in cache) but at least GEMM_PIXELS_PER_CHANNEL
    * Kg pixels: BLAS packs the whole weight block on every GEMM call. They are split further
    for parallel balance only while they stay above that minimum; below it the group's output
    channels are split instead (a batch of one small image), so that each thread also packs only
    its share of the weights, or the units after all when a group has too few channels to split.
    Never more than ``fit`` units (the workspace budget).
    """
    kg = geometry.out_channels // geometry.groups
    outside = geometry.batch * geometry.groups
    least = -(-GEMM_PIXELS_PER_CHANNEL * kg // unit_pixels)
    per_tile = min(fit, max(cached, least))
    balanced = -(-units // -(-ITEMS_PER_THREAD * threads // outside))
    per_tile = min(per_tile, max(balanced, least))
    if outside * -(-units // per_tile) * max(1, kg // MIN_CHANNEL_BLOCK) < threads:
        per_tile = min(per_tile, -(-units // -(-threads // outside)))
    per_tile = -(-units // -(-units // per_tile))
    items = outside * -(-units // per_tile)
    if items >= ITEMS_PER_THREAD * threads or items % threads == 0:
        return per_tile, kg
    split = min(threads // math.gcd(items, threads), max(1, kg // MIN_CHANNEL_BLOCK))
    return per_tile, -(-kg // split)


def fixed_bytes(geometry, band):
    """Workspace besides the column buffers: index maps and the re-laid-out weights."""
    g = geometry
    weights = g.out_channels * (g.channels // g.groups) * g.kernel_height * g.kernel_width
    return index_map_bytes(g) + (weights * g.dtype.itemsize if band < g.kernel_height else 0)


def band_weights(w, band):
    """(kh // band, K, Cg * band * kw) with [m, k, (c, b, q)] = w[k, c, m * band + b, q]: the
    weights themselves for im2col, a re-laid-out copy for bands of one kernel row."""
    k_total, cg, kh, kw = w.shape
    if band == kh:
        return w.reshape(1, k_total, cg * kh * kw)
    return np.ascontiguousarray(w.transpose(2, 0, 1, 3)).reshape(kh, k_total, cg * kw)


@dataclass(frozen=True)
class BlasPointwiseTiling:
    """How BLAS runs a pointwise layer on its input: items of (image, group, ``tile`` pixels,
    ``k_block`` output channels), each a GEMM per ``chunk`` input channels."""

    chunk: int
    tile: int
    k_block: int
    slots: int


def blas_pointwise_tiling(geometry, threads):
    """The tiles of a pointwise layer run by BLAS: a GEMM's input block (chunk x tile) and output
    block (Kg x tile) stay cache-resident."""
    g = geometry
    pixels = g.height * g.width
    cg = g.channels // g.groups
    chunk = min(cg, POINTWISE_CHUNK)
    cached = TILE_BYTES // ((chunk + g.out_channels // g.groups) * g.dtype.itemsize)
    tile, k_block = _split_work(g, pixels, 1, pixels, max(1, cached), threads)
    k_blocks = -(-(g.out_channels // g.groups) // k_block)
    slots = min(threads, g.batch * g.groups * -(-pixels // tile) * k_blocks)
    return BlasPointwiseTiling(chunk, tile, k_block, slots)


def plan_tiling(geometry, threads, budget):
    """The path and tiles that run ``geometry`` on ``threads`` threads within ``budget``: the
    micro-kernel where pointwise_implicit_tiling or implicit_tiling allows it, else BLAS on the
    input of a pointwise layer or on an unfold."""
    g = geometry
    if is_pointwise(g):
        tiling = pointwise_implicit_tiling(g, threads, budget)
        return tiling if tiling is not None else blas_pointwise_tiling(g, threads)
    tiling = implicit_tiling(g, threads, budget)
    if tiling is not None:
        return tiling
    return unfolded_tiling(g, threads, budget, unfold_band(g, budget))


def run_im2col(problem, tiling, threads):
    """Correlate ``problem`` with ``tiling`` (:func:`plan_tiling`) on ``threads`` Numba threads
    (already set). BLAS paths have every thread call a single-threaded BLAS, so the call never
    runs more than ``threads`` threads."""
    if isinstance(tiling, PointwiseTiling):
        return _run_pointwise_implicit(problem, tiling)
    if isinstance(tiling, ImplicitTiling):
        return _run_implicit(problem, tiling)
    out = np.empty(problem.geometry.out_shape, problem.geometry.dtype)
    trans = np.array([ord("N")], np.uint8)
    with blas_threads(1):
        if isinstance(tiling, BlasPointwiseTiling):
            _run_pointwise(problem, tiling, trans, out)
        else:
            _run_unfolded(problem, tiling, trans, out)
    return out


def _run_pointwise(problem, tiling, trans, out):
    g = problem.geometry
    pixels = g.height * g.width
    cg = g.channels // g.groups
    _kernels().correlate_pointwise(
        problem.x.reshape(g.batch, g.channels, pixels), problem.w.reshape(g.out_channels, cg),
        problem.bias, g.groups, tiling.chunk, tiling.tile, tiling.k_block,
        np.empty((tiling.slots, 6), np.int32), np.empty((tiling.slots, 2), g.dtype), trans,
        out.reshape(g.batch, g.out_channels, pixels),
    )


@dataclass(frozen=True)
class ImplicitTiling:
    """How the implicit GEMM splits one problem."""

    chunk: int  # input channels per strip
    rows: int  # output rows per tile
    k_block: int  # output channels per work item
    slots: int  # strips, one per thread
    weights_major: bool  # each thread's items share one block of output channels

    def strips_shape(self, geometry):
        g = geometry
        plane = (self.rows + (g.kernel_height - 1) * g.dilation[0]) * implicit_row_stride(g)
        return (self.slots, self.chunk * plane + (g.kernel_width - 1) * g.dilation[1]
                + gemm.tile_rows(g.dtype.itemsize))

    def tiles_shape(self, geometry):
        g = geometry
        panel = gemm.panel_width(g.dtype.itemsize)
        pixels = _round_up(self.rows * implicit_row_stride(g), gemm.tile_rows(g.dtype.itemsize))
        return (self.slots, pixels, -(-self.k_block // panel) * panel)


def implicit_row_stride(geometry):
    """Elements between consecutive rows of the implicit GEMM's strip.

    With a constant fill (padding_mode 'zeros') one run of fill values separates the rows, a
    row's right padding being the next row's left: W + max(left, right), widened only where the
    output row would not fit. Other modes give each row both of its borders, W + left + right.
    The micro-kernel computes and drops every strip pixel of a row past the output width: on a
    3x3 'same' layer one per row instead of two, so 14x14 images take 210 pixels (rounded to
    gemm.tile_rows) instead of 228, 7x7 ones 60 instead of 66.
    """
    g = geometry
    left, right = g.padding[2:]
    if g.padding_mode != "zeros":
        return g.width + left + right
    return g.width + max(left, right, left + right - (g.kernel_width - 1) * g.dilation[1])


def implicit_fixed_bytes(geometry):
    """Workspace of the implicit GEMM besides its per-slot buffers: index maps, the packed
    weights and the offset table."""
    g = geometry
    panel = gemm.panel_width(g.dtype.itemsize)
    kg = g.out_channels // g.groups
    depth = g.channels // g.groups * g.kernel_height * g.kernel_width
    return index_map_bytes(g) + depth * (g.groups * -(-kg // panel) * panel * g.dtype.itemsize
                                         + 8)


def implicit_pays(geometry):
    """Whether the implicit GEMM measured faster than BLAS for this stride-1 float layer: the
    group's output channels fill whole weight panels (32 wide with AVX-512) and the depth
    Cg * kh * kw reaches IMPLICIT_DEPTH.

    Measured time of BLAS / time of implicit, one thread, one interleaved run (fp32, fp64),
    batch 8, 3x3 'same' on 56x56 unless noted, with the 6 x 4 tile (64-wide fp32 panels): 64->64
    1.37, 1.25; 32->64 1.17, 1.18; 16->64 1.14, 1.11; 8->64 1.01, 1.11; 3->64 on 112x112 0.77,
    0.90; 64->32 0.94, 1.41; 32->32 0.94, 1.29; 64->48 1.06, 1.14; 64->96 0.90, 1.18; 16->16 on
    112x112 0.66, 0.82; 64->64 5x5 (batch 4) 1.39, 1.30; 128->128 on 28x28 1.23, 1.26; 256->256
    on 14x14 1.13, 1.10; 512->512 on 7x7 1.10, 1.23. Partial panels compute padding channels;
    shallow layers are dominated by the per-call work of the micro-kernel and the strip copy.
    fp32 with the 12 x 2 tile (32-wide panels), 2 threads, two runs: 64->32 1.43-1.58, 32->32
    1.31-1.38 (on 28x28 1.42-1.50), 16->32 on 112x112 1.26-1.29, 64->96 1.03-1.22, 160->160 on
    28x28 1.08-1.09.
    """
    g = geometry
    panel = gemm.panel_width(g.dtype.itemsize)
    return (g.out_channels // g.groups % panel == 0
            and g.channels // g.groups * g.kernel_height * g.kernel_width >= IMPLICIT_DEPTH)


def implicit_tiling(geometry, threads, budget):
    """The implicit GEMM's tiles within ``budget``, or None where it does not apply: stride 1,
    real floats, implicit_pays, and at least one output row per strip within the budget.

    A slot's strip and output tile stay within TILE_BYTES (all channels per strip when one row
    fits, else chunks of them); the rows then follow _split_work. On 64->64 3x3 fp32 tiles of
    7, 14, 28 and 56 rows measured within noise of each other (12.1-12.6 ms).

    Where a group's packed weights outgrow WEIGHT_SPLIT_BYTES and there are several tiles, each
    thread takes its share of the output channels over every tile (weights_major) instead of
    its share of the tiles with all the weights: its weights stay in its own L2, the strip is
    copied once per thread. pack_panels orders its items by panel as well, so that under static
    scheduling each thread reads the panels it packed: read from another core's cache, the
    freshly packed weights had cost more than the packing itself.
    """
    g = geometry
    if g.stride != (1, 1) or g.dtype not in (np.float32, np.float64) or not implicit_pays(g):
        return None
    itemsize = g.dtype.itemsize
    panel = gemm.panel_width(itemsize)
    cg = g.channels // g.groups
    kg = g.out_channels // g.groups
    kgp = -(-kg // panel) * panel
    ho, wo = g.out_height, g.out_width
    halo = (g.kernel_height - 1) * g.dilation[0]
    row_stride = implicit_row_stride(g)
    micro_rows = gemm.tile_rows(itemsize)
    slack = (g.kernel_width - 1) * g.dilation[1] + micro_rows
    fixed = implicit_fixed_bytes(g)

    def per_slot(chunk, rows):
        tile = _round_up(rows * row_stride, micro_rows) * kgp
        return (chunk * (rows + halo) * row_stride + slack + tile) * itemsize

    slots = max(1, min(threads, g.batch * g.groups * ho))
    while slots > 1 and fixed + slots * per_slot(1, 1) > budget:
        slots -= 1
    room = (budget - fixed) // slots
    if room < per_slot(1, 1):
        return None
    target = min(room, TILE_BYTES)
    chunk = max(1, largest_fitting(lambda c: per_slot(c, 1), target, cg))
    fit = largest_fitting(lambda r: per_slot(chunk, r), room, ho)
    cached = max(1, largest_fitting(lambda r: per_slot(chunk, r), target, ho))
    rows, k_block = _split_work(geometry, ho, wo, fit, cached, threads)
    k_block = min(kg, -(-k_block // panel) * panel)
    weights = kgp * cg * g.kernel_height * g.kernel_width * itemsize  # a group's, packed
    weights_major = slots > 1 and g.batch * -(-ho // rows) > 1 and weights > WEIGHT_SPLIT_BYTES
    if weights_major:
        # Equal blocks, so that equal shares of the items are equal work.
        panels, parts = kgp // panel, max(1, slots // g.groups)
        k_block = panel * (panels // parts if panels % parts == 0 else 1)
    return ImplicitTiling(chunk, rows, k_block, slots, weights_major)


@dataclass(frozen=True)
class PointwiseTiling:
    """How the micro-kernel path of a pointwise layer splits one problem."""

    tile: int  # pixels per work item
    stride: int  # elements between the strip's channel rows: an odd number of cache lines
    k_block: int  # output channels per work item: one weight panel
    slots: int  # strips, one per thread

    def strips_shape(self, geometry):
        return (self.slots, geometry.channels // geometry.groups * self.stride)

    def tiles_shape(self, geometry):
        return (self.slots, _round_up(self.tile, gemm.tile_rows(geometry.dtype.itemsize)),
                self.k_block)


def pointwise_implicit_pays(geometry):
    """Whether the micro-kernel measured faster than BLAS for this pointwise float layer:
    implicit_pays (whole weight panels, depth Cg >= IMPLICIT_DEPTH), output channels per group a
    multiple of POINTWISE_CHANNELS, no more output than input channels, and images of at least
    POINTWISE_IMPLICIT_PIXELS pixels.

    More output channels than input: the path copies each input tile once but transposes every
    output tile, while BLAS writes the output in place. Micro-kernel vs BLAS, fp32, 2 threads,
    blocks of calls: 128->512 on 28x28 0.85-0.98 (batch 1: 0.86-1.04), 256->1024 0.98-1.03;
    256->64 on 56x56 1.04-1.21, 512->128 on 28x28 1.09-1.17, 1024->256 1.17-1.23, 128->128 on
    56x56 1.08-1.19.
    """
    g = geometry
    return (implicit_pays(g) and g.out_channels <= g.channels
            and g.out_channels // g.groups % POINTWISE_CHANNELS[g.dtype.itemsize] == 0
            and g.height * g.width >= POINTWISE_IMPLICIT_PIXELS)


def pointwise_implicit_tiling(geometry, threads, budget):
    """The micro-kernel's tiles for a pointwise layer within ``budget``, or None where BLAS runs
    it: not real floats, not pointwise_implicit_pays, or not even a strip of gemm.tile_rows pixels
    fits.

    Tiles of at most POINTWISE_TILE pixels, cut evenly from each image, as many items as make a
    multiple of the threads (static scheduling: 17 tiles of one 56x56 image would leave one of
    2 threads a tile more); one weight panel of output channels per item, the strip shared by
    the items of the same pixels (on a 256->1024 14x14 fp32 layer, which BLAS now takes: 256
    GF/s with 64-channel items, 215 with all 1024).
    """
    g = geometry
    pixels = g.height * g.width
    if g.dtype not in (np.float32, np.float64) or not pointwise_implicit_pays(g):
        return None
    itemsize = g.dtype.itemsize
    panel = gemm.panel_width(itemsize)
    micro_rows = gemm.tile_rows(itemsize)
    cg = g.channels // g.groups
    line = 64 // itemsize
    fixed = implicit_fixed_bytes(g)

    def per_slot(tile):
        rounded = _round_up(tile, micro_rows)
        return (cg * _strip_stride(rounded, line) + rounded * panel) * itemsize

    per_tile = g.batch * g.groups * -(-(g.out_channels // g.groups) // panel)
    tiles = -(-pixels // POINTWISE_TILE)
    step = threads // math.gcd(per_tile, threads)
    tiles = min(_round_up(tiles, step), -(-pixels // micro_rows))
    tile = -(-pixels // tiles)
    slots = max(1, min(threads, per_tile * tiles))
    while slots > 1 and fixed + slots * per_slot(micro_rows) > budget:
        slots -= 1
    room = (budget - fixed) // slots
    if room < per_slot(micro_rows):
        return None
    tile = max(1, largest_fitting(per_slot, room, tile))
    rounded = _round_up(tile, micro_rows)
    return PointwiseTiling(tile, _strip_stride(rounded, line), panel, slots)


def _round_up(value, step):
    return -(-value // step) * step


def _strip_stride(elements, line):
    """``elements`` rounded up to an odd number of cache lines of ``line`` elements."""
    return (-(-elements // line) | 1) * line


def _run_pointwise_implicit(problem, tiling):
    g = problem.geometry
    pixels = g.height * g.width
    cg = g.channels // g.groups
    out = np.empty(g.out_shape, g.dtype)
    _kernels().correlate_pointwise_implicit(
        problem.x.reshape(g.batch, g.channels, pixels), pack_weights(problem.w, g.groups),
        problem.bias, np.arange(cg, dtype=np.int64) * tiling.stride, g.groups, tiling.tile,
        # Zeroed strips: a tile's last micro-kernel block reads past its pixels (dropped results).
        tiling.k_block, DEPTH_BLOCK, _filled(tiling.strips_shape(g), 0, g.dtype),
        aligned_empty(tiling.tiles_shape(g), g.dtype), out.reshape(g.batch, g.out_channels, pixels),
    )
    return out


def _filled(shape, value, dtype):
    """aligned_empty set to ``value``: the micro-kernel's strips (pointwise strips space their
    rows by whole cache lines from the first)."""
    array = aligned_empty(shape, dtype)
    array.fill(value)
    return array


def pack_weights(w, groups):
    """(groups, Kgp * D) the weights as the micro-kernel reads them (pack_panels): per group,
    panels of gemm.panel_width output channels (zeros past Kg), each [d][k] with d = (c, p, q).
    No temporary beyond the packed copy the budget counts."""
    k_total, cg, kh, kw = w.shape
    panel = gemm.panel_width(w.dtype.itemsize)
    kgp = -(-(k_total // groups) // panel) * panel
    depth = cg * kh * kw
    packed = aligned_empty((groups, kgp // panel, depth, panel), w.dtype)
    _kernels().pack_panels(w.reshape(k_total, depth), groups, packed)
    return packed.reshape(groups, kgp * depth)


def _run_implicit(problem, tiling):
    g = problem.geometry
    kh, kw = g.kernel_height, g.kernel_width
    row_stride = implicit_row_stride(g)
    plane = (tiling.rows + (kh - 1) * g.dilation[0]) * row_stride
    offsets = (np.arange(tiling.chunk, dtype=np.int64)[:, None, None] * plane
               + np.arange(kh)[:, None] * (g.dilation[0] * row_stride)
               + np.arange(kw) * g.dilation[1]).ravel()
    rows, cols = index_maps(g)
    out = np.empty(g.out_shape, g.dtype)
    _kernels().correlate_implicit(
        problem.x, pack_weights(problem.w, g.groups), problem.bias, offsets, rows, cols,
        g.padding[2], row_stride, problem.fill, g.dilation[0], kh, kw, g.groups, tiling.chunk,
        # Strips set to the fill: read past the last row as its right padding (rows sharing
        # theirs) and by a tile's last micro-kernel block (dropped results).
        tiling.rows, tiling.k_block, tiling.weights_major, DEPTH_BLOCK,
        _filled(tiling.strips_shape(g), problem.fill[0], g.dtype),
        aligned_empty(tiling.tiles_shape(g), g.dtype), out,
    )
    return out


def _run_unfolded(problem, tiling, trans, out):
    g = problem.geometry
    band = tiling.band
    rows, cols = index_maps(g)
    _kernels().correlate_unfolded(
        problem.x, band_weights(problem.w, band), problem.bias, rows, cols, g.padding[0],
        g.padding[2], problem.fill, g.stride[0], g.stride[1], g.dilation[0], g.dilation[1],
        g.kernel_width, band, g.groups, tiling.chunk, tiling.rows, tiling.width, tiling.k_block,
        np.empty(tiling.cols_shape(g), g.dtype), np.empty(tiling.phases_shape(g), g.dtype),
        np.empty((tiling.slots, 6), np.int32), np.empty((tiling.slots, 2), g.dtype), trans, out,
    )


# Output pixels per depth block of the weight-gradient GEMM: the grad_output block of every
# panel (256 x 32 channels x 4 bytes fp32: 32 KiB a panel) stays in cache while a thread's items
# read it.
WEIGHT_DEPTH_BLOCK = 256


@dataclass(frozen=True)
class WeightGemm:
    """The weight gradient ``gw[k, c, *t] = sum over n, o of gy[n, k, o] * xp[n, c, o*s + t*d]``
    as one GEMM through the micro-kernel (kernels.weight_gradient_gemm), for float32/float64.

    The padded input is copied channels-last, so that for one tap the channels of one input
    pixel are consecutive: they are the micro-kernel's rows, read in place (a *run* of
    ``run`` values; at column dilation 1 without groups, all kernel columns of all channels,
    kw * C values); each thread packs grad_output into panels of output channels a block of
    WEIGHT_DEPTH_BLOCK pixels at a time. The batch runs in chunks of ``images`` whose copies fit
    the workspace budget, accumulating into one result.
    """

    input_shape: tuple
    out_shape: tuple  # grad_output's spatial shape
    kernel: tuple
    groups: int
    out_channels: int
    stride: tuple
    padding: tuple  # (lo, hi) per spatial axis
    dilation: tuple
    dtype: np.dtype
    images: int  # per chunk
    slots: int

    @property
    def columns_in_run(self):
        """Whether a run holds the kernel columns too (column dilation 1, no groups)."""
        return self.dilation[-1] == 1 and self.groups == 1

    @property
    def padded(self):
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.input_shape[2:], self.padding,
                                                         strict=True))

    @property
    def run(self):
        cg = self.input_shape[1] // self.groups
        return self.kernel[-1] * self.input_shape[1] if self.columns_in_run else cg

    @property
    def strides(self):
        """Elements between neighbours along each spatial axis of the channels-last copy."""
        channels = self.input_shape[1]
        return tuple(channels * math.prod(self.padded[axis + 1:])
                     for axis in range(len(self.kernel)))

    @property
    def taps(self):
        """Offsets of the runs' taps, in the order of the result's second axis."""
        axes = self.kernel[:-1] if self.columns_in_run else self.kernel
        return _grid_offsets(axes, self.dilation, self.strides)

    @property
    def pixel_offsets(self):
        """Offsets of the output pixels' windows (grad_output's order)."""
        return _grid_offsets(self.out_shape, self.stride, self.strides)

    @property
    def out_tile(self):
        """(G, T, R, Kgp): the result's rows rounded up to the micro-kernel's, its output
        channels to whole panels."""
        itemsize = self.dtype.itemsize
        panel = gemm.panel_width(itemsize)
        kg = self.out_channels // self.groups
        taps = math.prod(self.kernel[:-1] if self.columns_in_run else self.kernel)
        return (self.groups, taps, _round_up(self.run, gemm.tile_rows(itemsize)),
                _round_up(kg, panel))

    def image_bytes(self):
        """Workspace per image of a chunk: its padded copy (when padded: numpy.pad for the modes
        other than zeros, counted for every mode) and the channels-last copy."""
        plane = self.input_shape[1] * math.prod(self.padded)
        padded = plane if any(map(any, self.padding)) else 0
        return (plane + padded) * self.dtype.itemsize

    def fixed_bytes(self):
        """Workspace besides the chunks: the result tile, each slot's packed panels of a block
        of grad_output, the offset tables and the slack."""
        groups, taps, rows, kgp = self.out_tile
        panels = self.slots * groups * kgp * WEIGHT_DEPTH_BLOCK
        return (math.prod(self.out_tile) + panels + rows) * self.dtype.itemsize + 8 * (
            math.prod(self.out_shape) + taps)


def _grid_offsets(sizes, steps, strides):
    """Offsets ``sum of i[a] * steps[a] * strides[a]`` over the grid ``i < sizes`` (C order;
    ``sizes`` may cover only the leading axes)."""
    offsets = np.zeros(1, np.int64)
    for size, step, stride in zip(sizes, steps, strides, strict=False):
        offsets = (offsets[:, None] + np.arange(size, dtype=np.int64) * (step * stride)).ravel()
    return offsets


def weight_gemm(input_shape, out_shape, kernel, groups, out_channels, stride, padding, dilation,
                dtype, threads, budget):
    """The weight-gradient GEMM's layout (:class:`WeightGemm`) within ``budget``, or None where
    it does not apply: not float32/float64, or not one image's copies within the budget."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        return None
    layout = WeightGemm(tuple(input_shape), tuple(out_shape), tuple(kernel), groups,
                        out_channels, tuple(stride), tuple(padding), tuple(dilation), dtype, 1, 1)
    g, taps, rows, kgp = layout.out_tile
    items = g * taps * rows // gemm.tile_rows(dtype.itemsize) * kgp // gemm.panel_width(
        dtype.itemsize)
    layout = replace(layout, slots=max(1, min(threads, items)))
    room = budget - layout.fixed_bytes()
    if room < layout.image_bytes():
        return None
    return replace(layout, images=min(input_shape[0], room // layout.image_bytes()))


def run_weight_gemm(layout, x, gy, pad_mode):
    """The weight gradient (K, C / groups, *kernel) of canonical ``x`` (N, C, *spatial) and
    ``grad_output`` ``gy`` (N, K, *out) by ``layout``; ``pad_mode`` is numpy.pad's mode of the
    forward's padding. Threads: the caller's Numba setting (layout.slots items at once)."""
    n_images, channels = x.shape[:2]
    rank = len(layout.kernel)
    groups, taps, rows, kgp = layout.out_tile
    kg = layout.out_channels // groups
    cg = channels // groups
    padded = layout.padded
    plane = channels * math.prod(padded)
    offsets = layout.pixel_offsets
    pixels = offsets.shape[0]
    tap_offsets = layout.taps
    panel = gemm.panel_width(x.dtype.itemsize)
    result = aligned_empty(layout.out_tile, x.dtype)
    # One chunk's copy, reused by every chunk (the last may be smaller).
    copies = aligned_empty((layout.images * plane + rows,), x.dtype)
    panels = aligned_empty((layout.slots, groups, kgp // panel, WEIGHT_DEPTH_BLOCK, panel),
                           x.dtype)
    kernels = _kernels()
    for start in range(0, n_images, layout.images):
        stop = min(start + layout.images, n_images)
        chunk = x[start:stop]
        flat = copies[:(stop - start) * plane + rows]
        flat[(stop - start) * plane:] = 0
        copy = flat[:(stop - start) * plane].reshape(stop - start, *padded, channels)
        if pad_mode == "constant" and any(map(any, layout.padding)):
            # Zeros, then the image into its window: no padded copy of the chunk.
            copy[...] = 0
            copy = copy[(slice(None), *(slice(lo, lo + n) for (lo, _), n in zip(
                layout.padding, x.shape[2:], strict=True)))]
        elif any(map(any, layout.padding)):
            chunk = np.pad(chunk, ((0, 0), (0, 0), *layout.padding), pad_mode)
        copy[...] = np.moveaxis(chunk, 1, -1)
        kernels.weight_gradient_gemm(
            flat, gy[start:stop].reshape(stop - start, layout.out_channels, pixels), offsets,
            tap_offsets, plane, cg, WEIGHT_DEPTH_BLOCK, start > 0, panels, result)
    if layout.columns_in_run:
        kw = layout.kernel[-1]
        gathered = result[0, :, :kw * channels, :kg].reshape(*layout.kernel, channels, kg)
        order = (rank + 1, rank, *range(rank))
    else:
        gathered = result[:, :, :cg, :kg].reshape(groups, *layout.kernel, cg, kg)
        order = (0, rank + 2, rank + 1, *range(1, rank + 1))
    return np.ascontiguousarray(gathered.transpose(order)).reshape(
        layout.out_channels, cg, *layout.kernel)
