"""The cost model: estimated seconds and workspace bytes of every strategy on a geometry, from the
shapes alone and a small table of machine constants.

Each strategy's model mirrors what its runner does (the same tiling functions, the same loop
counts) and is written as *terms*: ``{constant name: coefficient}`` with
``seconds = sum(coefficient * constants.<name>)``. Being linear in the constants is what lets
``python -m fastconv calibrate`` fit them to timings by least squares. A strategy without a model
here gets an unknown cost: the planner never picks it while a modelled strategy can run.

The constants ship as :data:`DEFAULTS`; a calibrated table is loaded from the per-user cache file
(see :func:`machine_constants`), which ``method="measure"`` also uses to remember its winners.
"""

import json
import math
import os
import re
import threading
import warnings
from dataclasses import asdict, dataclass, fields, replace

from . import _run_fft as fft_model
from ._jit import cache_dir_setting
from ._kernels.direct import COLUMN_CHUNK, FLAT_BELOW, first_pass_taps, runs_unit_rows
from ._kernels.gemm import ROWS as MICRO_ROWS
from ._run_direct import block_rows, kernel_geometry
from ._run_fft import _real_sizes as fft_sizes
from ._run_fft import plan_tiles
from ._run_im2col import (
    ITEMS_PER_THREAD,
    TILE_BYTES,
    choose_band,
    fixed_bytes,
    implicit_fixed_bytes,
    implicit_pays,
    implicit_row_stride,
    implicit_tiling,
    is_pointwise,
    pointwise_implicit_tiling,
    unfolded_tiling,
)
from ._run_winograd import fixed_bytes as winograd_fixed_bytes
from ._run_winograd import plan_tiling as winograd_tiling
from ._run_winograd import slot_bytes as winograd_slot_bytes

# ---------------------------------------------------------------------------------------------
# Machine constants


@dataclass(frozen=True)
class MachineConstants:
    """Seconds per unit of work of each strategy's building blocks (1 thread unless noted)."""

    source: str
    """Where the numbers come from (shown in a plan's repr)."""
    launch: float
    """Starting a parallel region on more than one thread."""
    parallel: float
    """Speed of each thread when several run, relative to one thread alone (shared caches,
    memory bandwidth and clock): the parallel part of a call takes work / threads / parallel."""
    direct_call: float
    """Fixed cost of one direct call (index maps, Numba dispatch)."""
    direct_item: float
    """One parallel item of the direct kernel (one image, group and row block): its strip and
    scratch buffers and the fill's set-up, which dominate on small planes (depthwise 20x20)."""
    direct_pass: float
    """One pass of taps over one output-row chunk: loop set-up, alias checks, remainder."""
    direct_f32: float
    """One output element of one pass: loading and storing it, float32."""
    direct_f64: float
    """The same in float64."""
    direct_tap_f32: float
    """One multiply-add of the direct kernel, float32."""
    direct_tap_f64: float
    """The same in float64."""
    direct_fill: float
    """One byte copied into the direct kernel's padded strip (stride 1: contiguous copies)."""
    direct_gather: float
    """One element copied into the strip by stride phase (stride > 1: strided copies)."""
    im2col_call: float
    """Fixed cost of one im2col call (BLAS thread limits, Numba dispatch)."""
    unfold_call: float
    """Extra fixed cost of an im2col call that unfolds (tiling, index maps, weight re-layout):
    every layer but 1x1 stride-1 unpadded ones."""
    unfold: float
    """One byte written into the im2col column buffer (or the output set to the bias)."""
    unfold_phase: float
    """One padded input element split by stride phase in im2col's unfold (stride > 1), before
    its copies into the column buffer."""
    gemm_call: float
    """One BLAS GEMM call."""
    gemm_f32: float
    """One multiply-add of a large float32 GEMM."""
    gemm_f64: float
    """The same in float64."""
    gemm_a: float
    """One byte of the GEMM's pixel operand (the column tile): packing it and streaming it, the
    cost that dominates when there are few output channels."""
    gemm_b: float
    """One byte of the GEMM's weight operand, packed once per call: the cost that dominates
    when a tile has few pixels."""
    gemm_c: float
    """One byte of the GEMM's output tile, read and written once per call (beta = 1)."""
    implicit_f32: float
    """One multiply-add of im2col's implicit GEMM (its own micro-kernel), float32."""
    implicit_f64: float
    """The same in float64."""
    winograd_call: float
    """Fixed cost of one Winograd call (tiling, index maps, buffers)."""
    winograd_weights: float
    """One weight transformed (9 in, 16 out)."""
    winograd_in: float
    """One transformed input value written (16 per tile and input channel)."""
    winograd_out: float
    """One tile of one output channel transformed back (4 outputs)."""
    winograd_f32: float
    """One multiply-add of Winograd's GEMMs, float32 (shallow: depth Cg, beta = 0)."""
    winograd_f64: float
    """The same in float64."""
    fft_call: float
    """Fixed cost of one FFT call (tiling, weight digest, index maps)."""
    fft_f32: float
    """Scale of the FFT runner's own estimate of its float32 transforms (fastconv/_run_fft.py,
    measured on the reference machine): 1.0 there."""
    fft_f64: float
    """The same for float64 transforms."""
    fft_mac: float
    """Scale of the FFT runner's estimate of its per-frequency channel sums."""
    fft_other: float
    """Scale of the FFT runner's estimate of its gathers, scatters, per-item costs and memory
    traffic."""


# Fitted on the reference machine (2-vCPU Intel Xeon, AVX-512, LLVM cpu "rocketlake"; numba
# 0.68.1, SciPy 1.17.1's OpenBLAS 0.3.30, omp threading layer) by `python -m fastconv calibrate`:
# the median of each constant over three runs (2026-11-22 05:12 UTC). One run was about 1.5x
# slower throughout (the machine is shared); the other two agreed within 15% on every constant
# but the collinear direct_f32/f64, gemm_a/gemm_c and the launch cost, which the fit trades
# against their neighbours. Terms that least squares leaves at 0 are a cost that the fit could
# not separate from the others on its problems (it is counted in them). implicit_f32/f64: the
# median of three later runs (08:55 UTC), after the micro-kernel's buffers were aligned to cache
# lines (1.3e-11 and 2.51e-11 before); in those runs the others stayed within 10% of these but
# the collinear ones named above (launch 0.98-1.24e-06, direct_f32 3.4-4.2e-11).
DEFAULTS = MachineConstants(
    source="shipped defaults (reference machine)",
    launch=1.41e-06,
    parallel=0.968,
    direct_call=4.12e-06,
    direct_item=2.07e-07,
    direct_pass=8.01e-09,
    direct_f32=3.2e-11,
    direct_f64=3.72e-11,
    direct_tap_f32=2.35e-11,
    direct_tap_f64=4.93e-11,
    direct_fill=4e-11,
    direct_gather=5.24e-10,
    im2col_call=1.15e-05,
    unfold_call=1.42e-05,
    unfold=4.63e-11,
    unfold_phase=1.05e-09,
    gemm_call=8.65e-08,
    gemm_f32=1.39e-11,
    gemm_f64=2.74e-11,
    gemm_a=1.12e-12,
    gemm_b=0,
    gemm_c=2.56e-11,
    implicit_f32=1.248e-11,
    implicit_f64=2.381e-11,
    winograd_call=2.9e-05,
    winograd_weights=1.39e-08,
    winograd_in=3.19e-10,
    winograd_out=8.49e-09,
    winograd_f32=1.68e-11,
    winograd_f64=5.15e-11,
    fft_call=2.14e-05,
    fft_f32=1.34,
    fft_f64=0.858,
    fft_mac=1.81,
    fft_other=0,
)

# Element costs of other compute dtypes, relative to the float constant of the same precision
# (direct kernel, 256x512 image, 1 thread: complex64 2.7-3.6x float32, complex128 3.8-11x float64,
# int64 1.35-2.1x float64, which has no packed 64-bit multiply-add).
DTYPE_COST = {
    ("f", 4): ("f32", 1.0),
    ("f", 8): ("f64", 1.0),
    ("c", 8): ("f32", 3.5),
    ("c", 16): ("f64", 8.0),
    ("i", 8): ("f64", 2.0),
}
# A complex multiply-add is four real ones in a complex GEMM.
GEMM_DTYPE_COST = {
    ("f", 4): ("gemm_f32", 1.0),
    ("f", 8): ("gemm_f64", 1.0),
    ("c", 8): ("gemm_f32", 4.0),
    ("c", 16): ("gemm_f64", 4.0),
}


def evaluate(terms, constants):
    """Seconds of a term table under ``constants``."""
    values = vars(constants)
    return sum(coefficient * values[name] for name, coefficient in terms.items())


def _add(terms, name, coefficient):
    terms[name] = terms.get(name, 0.0) + coefficient


def _parallel_share(items, threads, constants):
    """Fraction of the serial work that the slowest of ``threads`` threads does, with static
    scheduling of ``items`` equal items, divided by the per-thread speed."""
    used = max(1, min(threads, items))
    if used == 1:
        return 1.0
    return -(-items // used) / items / constants.parallel


# ---------------------------------------------------------------------------------------------
# Strategy models


@dataclass(frozen=True)
class Work:
    """A strategy's cost on one geometry and thread count, before pricing."""

    terms: dict
    workspace: int  # bytes beyond the output


def direct_work(geometry, threads, budget, constants):
    """fastconv/_run_direct.py: (image, group, row block) items; per item a strip fill, then for
    each output channel, passes of taps (``first_pass_taps``, then four) over 512-element chunks
    of each output row, or, for short rows, of the whole block as one flat range (then copied
    out); single-channel 3x3 kernels over unit column steps take one pass per row. Axes that
    read few of their padded samples are gathered first (``kernel_geometry``)."""
    g = kernel_geometry(geometry)
    itemsize = g.dtype.itemsize
    cg = g.channels // g.groups
    ho, wo = g.out_height, g.out_width
    taps = cg * g.kernel_height * g.kernel_width
    first = first_pass_taps(taps)
    passes = 1 + (taps - first) // 4
    rows_out = g.batch * g.out_channels * ho
    chunks = -(-wo // COLUMN_CHUNK)
    block = block_rows(g, threads)
    blocks = -(-ho // block)
    items = g.batch * g.groups * blocks
    rows_in = (block - 1) * g.stride[0] + (g.kernel_height - 1) * g.dilation[0] + 1
    sw = g.stride[1]
    wq = -(-(g.width + g.padding[2] + g.padding[3]) // sw)
    strip = cg * rows_in * sw * wq * itemsize

    share = _parallel_share(items, threads, constants)
    precision, factor = DTYPE_COST[g.dtype.kind, itemsize]
    terms = {"direct_call": 1.0}
    if threads > 1:
        terms["launch"] = 1.0
    _add(terms, "direct_item", items * share)
    unit_rows = runs_unit_rows(taps, sw, g.dilation[1], wo)
    if g.stride[0] == 1 and wo < FLAT_BELOW and not unit_rows:
        pitch = sw * wq
        ranges = g.batch * g.out_channels * blocks * -(-block * pitch // COLUMN_CHUNK)
        _add(terms, "direct_pass", ranges * passes * share)
        _add(terms, "direct_" + precision, rows_out * pitch * (passes + 1) * factor * share)
        _add(terms, "direct_tap_" + precision, rows_out * pitch * taps * factor * share)
    else:
        _add(terms, "direct_pass", rows_out * chunks * passes * share)
        _add(terms, "direct_" + precision, rows_out * wo * passes * factor * share)
        _add(terms, "direct_tap_" + precision, rows_out * wo * taps * factor * share)
    if sw == 1:
        _add(terms, "direct_fill", items * strip * share)
    else:
        _add(terms, "direct_gather", items * strip / itemsize * share)
    maps = (g.height + g.padding[0] + g.padding[1] + g.width + g.padding[2] + g.padding[3]) * 8
    return Work(terms, maps + strip * min(threads, items))


def _gemm_terms(terms, count, m, n, k, dtype, share):
    """``count`` BLAS calls C(m x n) += A(m x k) @ B(k x n). The calls' fixed cost does not
    shrink with threads: BLAS calls made from the kernel's threads at once ran no faster than
    from one (depthwise 8x960 7x7 planes, 23k calls: 2.85 ms on one thread, 2.6 ms on two; the
    same kernel without its GEMMs 3.3 -> 1.8 ms)."""
    itemsize = dtype.itemsize
    name, factor = GEMM_DTYPE_COST[dtype.kind, itemsize]
    _add(terms, "gemm_call", count)
    _add(terms, name, count * m * n * k * factor * share)
    _add(terms, "gemm_a", count * m * k * itemsize * share)
    _add(terms, "gemm_b", count * n * k * itemsize * share)
    _add(terms, "gemm_c", count * m * n * itemsize * share)


def im2col_work(geometry, threads, budget, constants):
    """fastconv/_run_im2col.py: 1x1 layers as GEMMs on the input, or through the micro-kernel
    (_pointwise_implicit_work); otherwise (image, group, tile) items, each setting its output
    tile to the bias, then per chunk of input channels an unfold into the slot's column buffer
    and one GEMM per band of kernel rows, or the implicit GEMM (_implicit_work)."""
    g = geometry
    itemsize = g.dtype.itemsize
    cg = g.channels // g.groups
    kg = g.out_channels // g.groups
    terms = {"im2col_call": 1.0}
    if threads > 1:
        terms["launch"] = 1.0
    if is_pointwise(g):
        implicit = pointwise_implicit_tiling(g, threads, budget)
        if implicit is not None:
            terms["unfold_call"] = 1.0
            return _pointwise_implicit_work(g, implicit, terms, constants)
        pixels = g.height * g.width
        tile = max(1, TILE_BYTES // ((cg + kg) * itemsize))
        wanted = -(-ITEMS_PER_THREAD * threads // (g.batch * g.groups))
        tile = min(tile, -(-pixels // wanted))
        per_image = -(-pixels // tile)
        items = g.batch * g.groups * per_image
        share = _parallel_share(items, threads, constants)
        _add(terms, "unfold", g.batch * g.out_channels * pixels * itemsize * share)
        _gemm_terms(terms, items, pixels / per_image, kg, cg, g.dtype, share)
        return Work(terms, 0)

    terms["unfold_call"] = 1.0
    implicit = implicit_tiling(g, threads, budget)
    if implicit is not None:
        return _implicit_work(g, implicit, terms, constants)
    band = choose_band(g)
    if fixed_bytes(g, band) > budget // 2:
        band = g.kernel_height
    tiling = unfolded_tiling(g, threads, budget, band)
    ho, wo = g.out_height, g.out_width
    blocks = -(-ho // tiling.rows) * -(-wo // tiling.width)
    items = g.batch * g.groups * blocks
    share = _parallel_share(items, threads, constants)
    pixels = ho * wo / blocks
    rows = ho / -(-ho // tiling.rows)
    width = wo / -(-wo // tiling.width)
    chunks = -(-cg // tiling.chunk)
    depth = cg / chunks
    bands = g.kernel_height // band
    buffer_rows = tiling.phases * (rows + tiling.extra_rows)
    unfolded = depth * band * g.kernel_width * buffer_rows * width
    _add(terms, "unfold", items * (kg * pixels + chunks * unfolded) * itemsize * share)
    if g.stride[1] > 1:
        in_rows = (rows - 1) * g.stride[0] + (g.kernel_height - 1) * g.dilation[0] + 1
        in_cols = (width - 1) * g.stride[1] + (g.kernel_width - 1) * g.dilation[1] + 1
        _add(terms, "unfold_phase", items * cg * in_rows * in_cols * share)
    _gemm_terms(terms, items * chunks * bands, pixels, kg, depth * band * g.kernel_width, g.dtype,
                share)
    cols = 1
    for n in tiling.cols_shape(g):
        cols *= n
    phases = 1
    for n in tiling.phases_shape(g):
        phases *= n
    return Work(terms, fixed_bytes(g, band) + (cols + phases) * itemsize)


def _implicit_work(geometry, tiling, terms, constants):
    """im2col's implicit GEMM: per (image, group, row tile, channel block) item, a strip copy of
    the padded input rows per chunk of channels (shared by the items of a tile unless
    weights_major), the micro-kernel over every pixel of the strip's rows (those past the output
    width included) and panel of channels, then the transposed output tile; the weights packed
    once per call."""
    g = geometry
    itemsize = g.dtype.itemsize
    cg = g.channels // g.groups
    kg = g.out_channels // g.groups
    ho = g.out_height
    wp = implicit_row_stride(g)
    halo = (g.kernel_height - 1) * g.dilation[0]
    depth = cg * g.kernel_height * g.kernel_width
    row_blocks = -(-ho // tiling.rows)
    k_blocks = -(-kg // tiling.k_block)
    items = g.batch * g.groups * row_blocks * k_blocks
    share = _parallel_share(items, tiling.slots, constants)
    rows = ho / row_blocks
    pixels = -(-(rows * wp) // MICRO_ROWS) * MICRO_ROWS
    fills = items if tiling.weights_major else g.batch * g.groups * row_blocks
    strips = fills * cg * (rows + halo) * wp
    _add(terms, "unfold", (strips + g.batch * g.out_channels * ho * g.out_width) * itemsize
         * share + _packing(g, depth, tiling.slots, constants))
    _add(terms, "implicit_f32" if itemsize == 4 else "implicit_f64",
         items * pixels * depth * tiling.k_block * share)
    _, tile_rows, tile_cols = tiling.tiles_shape(g)
    tiles = tiling.strips_shape(g)[1] + tile_rows * tile_cols
    return Work(terms, implicit_fixed_bytes(g) + tiling.slots * tiles * itemsize)


def _pointwise_implicit_work(geometry, tiling, terms, constants):
    """im2col's micro-kernel on a pointwise layer: per (image, group, pixel tile, weight panel)
    item, a strip copy of the tile's pixels (once per tile), the micro-kernel over the tile
    rounded up to MICRO_ROWS pixels, the transposed output tile; the weights packed per call."""
    g = geometry
    itemsize = g.dtype.itemsize
    cg = g.channels // g.groups
    pixels = g.height * g.width
    blocks = -(-pixels // tiling.tile)
    items = g.batch * g.groups * blocks * -(-(g.out_channels // g.groups) // tiling.k_block)
    share = _parallel_share(items, tiling.slots, constants)
    rounded = -(-pixels // blocks // MICRO_ROWS) * MICRO_ROWS
    _add(terms, "unfold", g.batch * (g.channels + g.out_channels) * pixels * itemsize * share
         + _packing(g, cg, tiling.slots, constants))
    _add(terms, "implicit_f32" if itemsize == 4 else "implicit_f64",
         items * rounded * cg * tiling.k_block * share)
    strips = tiling.strips_shape(g)[1]
    _, tile_rows, tile_cols = tiling.tiles_shape()
    return Work(terms, implicit_fixed_bytes(g) + tiling.slots * (strips + tile_rows * tile_cols)
                * itemsize)


def _packing(geometry, depth, threads, constants):
    """The unfold term's bytes of pack_weights, a parallel copy of the (K, depth) weights."""
    g = geometry
    share = _parallel_share(g.out_channels, threads, constants)
    return g.out_channels * depth * g.dtype.itemsize * share


def fft_work(geometry, threads, budget, constants):
    """fastconv/_run_fft.py: the runner's own tiling (``plan_tiles``) and its estimate of one
    item, split into transforms, channel sums and the rest so that each part is calibrated.
    Assumes a zero fill value and cached kernel spectra (a repeated call with the same weights:
    a first call also transforms the weights, ``K * C / groups`` more transforms)."""
    g = geometry
    tiling = plan_tiles(g, threads, budget, True)
    itemsize, parts = fft_sizes(g)
    points = tiling.lh * tiling.lw
    bins = tiling.lh * (tiling.lw // 2 + 1)
    csize = 2 * itemsize
    c_in = g.channels * parts
    k_out = g.out_channels * parts
    cg = c_in // g.groups
    kg = k_out // g.groups
    nb = tiling.images_per_item
    tiles = (-(-((g.out_height - 1) * g.stride[0] + 1) // tiling.vh)
             * -(-((g.out_width - 1) * g.stride[1] + 1) // tiling.vw))
    items = -(-g.batch // nb) * tiles
    spill = 1 + fft_model.SPILL_PER_DOUBLING * max(
        0.0, math.log2(bins * csize / fft_model.CACHE_BYTES))
    transform = (fft_model.FFT_NS[itemsize] * points * math.log2(points) * spill
                 + fft_model.CALL_NS)
    spectra_bytes = k_out * cg * bins * csize
    item_bytes = points * itemsize + nb * (c_in + kg) * bins * csize + 2 * bins * csize
    other = (fft_model.ITEM_NS + nb * c_in * points * fft_model.GATHER_NS
             + nb * k_out * tiling.vh * tiling.vw * fft_model.SCATTER_NS)
    if spectra_bytes > fft_model.L2_BYTES:
        other += spectra_bytes / fft_model.BYTES_PER_NS
    if item_bytes > fft_model.L2_BYTES:
        other += 2 * item_bytes / fft_model.BYTES_PER_NS
    workers = min(threads, tiling.workers)
    share = 1e-9 * -(-items // max(1, min(workers, items)))
    if workers > 1 and items > 1:
        share /= constants.parallel
    terms = {"fft_call": 1.0}
    if threads > 1:
        terms["launch"] = 1.0
    terms["fft_f32" if itemsize == 4 else "fft_f64"] = share * nb * (c_in + k_out) * transform
    terms["fft_mac"] = share * nb * k_out * cg * bins * fft_model.MAC_NS[itemsize]
    terms["fft_other"] = share * other
    maps = (g.height + g.padding[0] + g.padding[1] + g.width + g.padding[2] + g.padding[3]) * 8
    return Work(terms, tiling.workspace_bytes + maps)


def winograd_work(geometry, threads, budget, constants):
    """fastconv/_run_winograd.py: the weight transform, then (group, tile rows, tile columns)
    items, each transforming its input tiles (one spare tile per row), 16 GEMMs and the inverse
    transform."""
    g = geometry
    cg = g.channels // g.groups
    kg = g.out_channels // g.groups
    tiling = winograd_tiling(g, threads, budget)
    tiles_w = (g.out_width + 1) // 2
    tile_rows = g.batch * ((g.out_height + 1) // 2)
    row_blocks = -(-tile_rows // tiling.rows)
    col_blocks = -(-tiles_w // tiling.cols)
    items = g.groups * row_blocks * col_blocks
    share = _parallel_share(items, threads, constants)
    tiles = tile_rows * (tiles_w + col_blocks) / (row_blocks * col_blocks)
    terms = {"winograd_call": 1.0}
    if threads > 1:
        terms["launch"] = 1.0
    _add(terms, "winograd_weights",
         g.out_channels * cg * _parallel_share(g.out_channels, threads, constants))
    _add(terms, "winograd_in", items * 16 * cg * tiles * share)
    _add(terms, "winograd_out", items * kg * tiles * share)
    rate = "winograd_f32" if g.dtype.itemsize == 4 else "winograd_f64"
    _add(terms, rate, items * 16 * tiles * kg * cg * share)
    _add(terms, "gemm_call", items * 16)  # not shared between threads: see _gemm_terms
    workspace = winograd_fixed_bytes(g) + tiling.slots * winograd_slot_bytes(g, tiling.rows,
                                                                              tiling.cols)
    return Work(terms, workspace)


# Strategy name -> its model. A registered strategy missing here has an unknown cost.
MODELS = {
    "direct": direct_work,
    "im2col": im2col_work,
    "fft": fft_work,
    "winograd": winograd_work,
}


# ---------------------------------------------------------------------------------------------
# Lower bounds: what each model counts on every path, priced at a perfect parallel split


def _share_floor(threads, constants):
    """The least _parallel_share (or the FFT model's share per item) at up to ``threads``."""
    return min(1.0, 1.0 / (threads * constants.parallel))


def direct_bound(geometry, threads, constants):
    """direct_work's fixed cost, plus one pass and every tap of each output element."""
    g = geometry
    precision, factor = DTYPE_COST[g.dtype.kind, g.dtype.itemsize]
    outputs = g.batch * g.out_channels * g.out_height * g.out_width
    per_output = (getattr(constants, "direct_" + precision)
                  + g.macs / outputs * getattr(constants, "direct_tap_" + precision))
    return constants.direct_call + outputs * factor * per_output * _share_floor(threads, constants)


def im2col_bound(geometry, threads, constants):
    """im2col_work's fixed cost, plus the cheaper of its BLAS paths (every multiply-add, the
    pixel operand and output tile of the GEMMs, the output set to the bias, and unless pointwise
    the unfold of each input pixel once per kernel column) and, where it may run, its
    micro-kernel (every multiply-add, the output, the strip copy of each input pixel)."""
    g = geometry
    itemsize = g.dtype.itemsize
    name, factor = GEMM_DTYPE_COST[g.dtype.kind, itemsize]
    out_bytes = g.batch * g.out_channels * g.out_height * g.out_width * itemsize
    in_bytes = g.batch * g.channels * g.out_height * g.out_width * itemsize
    blas = (g.macs * (getattr(constants, name) * factor
                      + itemsize * g.groups / g.out_channels * constants.gemm_a)
            + out_bytes * (constants.unfold + constants.gemm_c))
    if not is_pointwise(g):
        blas += in_bytes * g.kernel_width * constants.unfold
    cheapest = blas
    if g.dtype.kind == "f" and g.stride == (1, 1) and implicit_pays(g):
        rate = constants.implicit_f32 if itemsize == 4 else constants.implicit_f64
        cheapest = min(blas, g.macs * rate + (out_bytes + in_bytes) * constants.unfold)
    return constants.im2col_call + cheapest * _share_floor(threads, constants)


def winograd_bound(geometry, threads, constants):
    """winograd_work's fixed cost and 16 GEMM calls, plus the weight transform and, for every
    2x2 tile (one spare per row of tiles at least), its transforms and multiply-adds."""
    g = geometry
    rate = constants.winograd_f32 if g.dtype.itemsize == 4 else constants.winograd_f64
    tiles = g.batch * ((g.out_height + 1) // 2) * ((g.out_width + 1) // 2 + 1)
    cg = g.channels // g.groups
    work = (g.out_channels * cg * constants.winograd_weights
            + tiles * (16 * (g.out_channels * cg * rate + g.channels * constants.winograd_in)
                       + g.out_channels * constants.winograd_out))
    return (constants.winograd_call + 16 * constants.gemm_call
            + work * _share_floor(threads, constants))


def fft_bound(geometry, threads, constants):
    """fft_work's fixed cost, plus for each image and stride-1 output point (every tile has at
    least as many points as outputs, and half as many frequencies) its share of the transforms,
    at the log2 of the least tile size (every tile length reaches the kernel span), and of the
    channel sums."""
    g = geometry
    itemsize, parts = fft_sizes(g)
    c_in, k_out = g.channels * parts, g.out_channels * parts
    span_h = (g.kernel_height - 1) * g.dilation[0] + 1
    span_w = (g.kernel_width - 1) * g.dilation[1] + 1
    points = g.batch * ((g.out_height - 1) * g.stride[0] + 1) * ((g.out_width - 1) * g.stride[1]
                                                                 + 1)
    transforms = ((c_in + k_out) * fft_model.FFT_NS[itemsize] * math.log2(span_h * span_w)
                  * (constants.fft_f32 if itemsize == 4 else constants.fft_f64))
    sums = k_out * (c_in // g.groups) / 2 * fft_model.MAC_NS[itemsize] * constants.fft_mac
    return constants.fft_call + 1e-9 * points * (transforms + sums) * _share_floor(threads,
                                                                                  constants)


# Strategy name -> a lower bound on its model's seconds at any thread count up to the limit
# (never above the model, whatever the machine constants): the planner skips a model whose bound
# exceeds the best estimate so far. A strategy missing here is always estimated.
BOUNDS = {
    "direct": direct_bound,
    "im2col": im2col_bound,
    "fft": fft_bound,
    "winograd": winograd_bound,
}


# ---------------------------------------------------------------------------------------------
# The per-user cache file: calibrated constants and method="measure" winners

FORMAT = 1
_lock = threading.Lock()
_constants = None


def cpu_model():
    """CPU model name and LLVM's name for the host CPU (the cache file's key)."""
    import platform

    import llvmlite.binding

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model} ({llvmlite.binding.get_host_cpu_name()})"


def _version():
    from . import __version__

    return __version__


def cache_path():
    """The cache file of this CPU model and fastconv version, in ``$FASTCONV_CACHE_DIR`` or the
    platform's user cache directory."""
    directory = cache_dir_setting()
    if directory is None:
        import platformdirs

        directory = platformdirs.user_cache_dir("fastconv")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu_model()).strip("-").lower()
    return os.path.join(directory, f"machine-{slug}-v{_version()}.json")


# Cache files already warned about: a bad file is reported once per process, not at each of its
# reads (constants, measured winners) and writes.
_warned = set()


def warn_once(path, message):
    """One RuntimeWarning per process about the cache file ``path``."""
    if path in _warned:
        return
    _warned.add(path)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _warn(path, reason):
    warn_once(path, f"fastconv: ignoring the cache file {path}: {reason}. Using the shipped "
              "defaults; `python -m fastconv calibrate` rewrites it.")


def _parse(text, path, warn):
    """The cache file's content when it is valid for this CPU and version, else None."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: deeply nested arrays
        if warn:
            _warn(path, f"not valid JSON ({error})")
        return None
    expected = {"format": FORMAT, "fastconv": _version(), "cpu": cpu_model()}
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in expected.items()):
        if warn:
            _warn(path, f"written for another format, version or CPU (expected {expected})")
        return None
    return data


def read_cache(warn=True):
    """The cache file as a dict (empty when it is missing, unreadable, corrupt or stale; the last
    three with a RuntimeWarning when ``warn``)."""
    path = cache_path()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:  # ValueError: not UTF-8
        if warn:
            _warn(path, str(error))
        return {}
    return _parse(text, path, warn) or {}


def update_cache(change):
    """Apply ``change(data)`` to the cache file's content under a lock, then replace the file
    atomically (temporary file + ``os.replace``), so a reader never sees a partial file and
    concurrent writers never corrupt it. Returns the written path."""
    path = cache_path()
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    with _lock, _file_lock(path + ".lock"):
        data = read_cache(warn=False)
        data.update(format=FORMAT, fastconv=_version(), cpu=cpu_model())
        change(data)
        temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())  # the replace must not outlive the content in a crash
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    return path


class _file_lock:
    """An exclusive lock on ``path`` between processes (POSIX ``flock``; where that is missing,
    only the atomic replace protects the file, so a concurrent update may be lost, never torn)."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def constants_from(data, path):
    """MachineConstants from a cache file's ``constants`` entry, or None (with a warning) when the
    entry is missing fields, has unknown ones or holds non-positive numbers."""
    entry = data.get("constants")
    if entry is None:
        return None
    names = {f.name for f in fields(MachineConstants)} - {"source"}
    if not isinstance(entry, dict) or set(entry) != names or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf")
        for v in entry.values()
    ) or not entry["parallel"] > 0:
        _warn(path, "its constants do not match this version's cost model (missing, unknown or "
              "negative values)")
        return None
    absurd = sorted(k for k, v in entry.items() if not _plausible(k, v))
    if absurd:
        _warn(path, f"its constants {', '.join(absurd)} are more than {PLAUSIBLE_FACTOR:g} times "
              "off the shipped defaults")
        return None
    source = f"calibrated {data.get('calibrated', '')}".strip()
    return MachineConstants(source=source, **{k: float(v) for k, v in entry.items()})


# A calibrated constant more than this factor away from its shipped default is not a measurement
# of any machine fastconv runs on (a corrupt or hand-edited file: 1e308 or 1e-300 would make one
# strategy win or lose every plan). 0 is allowed: least squares leaves inseparable terms at 0.
PLAUSIBLE_FACTOR = 1e4


def _plausible(name, value):
    if value == 0:
        return True
    if value > 2**1023:  # an int beyond float range (json reads 10**400 as an int)
        return False
    default = getattr(DEFAULTS, name)
    if default == 0:  # no scale of its own: the range of all the shipped constants
        positive = [v for k, v in asdict(DEFAULTS).items() if k != "source" and v > 0]
        low, high = min(positive), max(positive)
    else:
        low, high = default, default
    return low / PLAUSIBLE_FACTOR <= value <= high * PLAUSIBLE_FACTOR


def machine_constants():
    """The constants in force: the calibrated ones from the cache file when it holds valid ones,
    else :data:`DEFAULTS`. Read once per process (see :func:`set_machine_constants`)."""
    global _constants
    if _constants is None:
        data = read_cache()
        loaded = constants_from(data, cache_path()) if data else None
        _constants = loaded or DEFAULTS
    return _constants


def set_machine_constants(constants):
    """Use ``constants`` from now on (None: read the cache file again at the next plan)."""
    global _constants
    _constants = constants


def save_constants(constants, when):
    """Write ``constants`` into the cache file (keeping its measured winners)."""
    values = {k: v for k, v in asdict(constants).items() if k != "source"}

    def change(data):
        data["constants"] = values
        data["calibrated"] = when

    path = update_cache(change)
    set_machine_constants(replace(constants, source=f"calibrated {when}"))
    return path
