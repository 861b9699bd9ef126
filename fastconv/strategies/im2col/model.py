"""The im2col strategy's cost model, its lower bound, its machine constants and its calibration
problems."""

import math

from ...core.costing import (
    GEMM_DTYPE_COST,
    Constant,
    Work,
    add_term,
    gemm_terms,
    parallel_share,
    share_floor,
)
from ...core.geometry import make_geometry as layer
from .gemm import panel_width, tile_rows
from .runner import (
    BlasPointwiseTiling,
    ImplicitTiling,
    PointwiseTiling,
    fixed_bytes,
    implicit_fixed_bytes,
    implicit_pays,
    implicit_row_stride,
    is_pointwise,
    plan_tiling,
)

CONSTANTS = (
    Constant("im2col_call", 1.15e-05, "Fixed cost of one im2col call (BLAS thread limits, Numba "
             "dispatch)."),
    Constant("unfold_call", 1.42e-05, "Extra fixed cost of an im2col call that unfolds (tiling, "
             "index maps, weight re-layout): every layer but 1x1 stride-1 unpadded ones."),
    Constant("unfold", 4.63e-11, "One byte written into the im2col column buffer (or the output "
             "set to the bias)."),
    Constant("unfold_phase", 1.05e-09, "One padded input element split by stride phase in "
             "im2col's unfold (stride > 1), before its copies into the column buffer."),
    Constant("implicit_f32", 1.248e-11, "One multiply-add of im2col's implicit GEMM (its own "
             "micro-kernel), float32."),
    Constant("implicit_f64", 2.381e-11, "The same in float64."),
)


def work(geometry, threads, budget, constants):
    """The runner's tiling (plan_tiling) and its price: 1x1 layers as GEMMs on the input
    (_blas_pointwise_work), or through the micro-kernel (_pointwise_implicit_work); otherwise
    the implicit GEMM (_implicit_work), or (image, group, tile) items each setting its output
    tile to the bias, then per chunk of input channels an unfold into the slot's column buffer
    and one GEMM per band of kernel rows."""
    g = geometry
    itemsize = g.dtype.itemsize
    cg = g.channels // g.groups
    kg = g.out_channels // g.groups
    tiling = plan_tiling(g, threads, budget)
    terms = {"im2col_call": 1.0}
    if threads > 1:
        terms["launch"] = 1.0
    if isinstance(tiling, BlasPointwiseTiling):
        return _blas_pointwise_work(g, tiling, terms, constants)
    terms["unfold_call"] = 1.0
    if isinstance(tiling, PointwiseTiling):
        return _pointwise_implicit_work(g, tiling, terms, constants)
    if isinstance(tiling, ImplicitTiling):
        return _implicit_work(g, tiling, terms, constants)
    band = tiling.band
    ho, wo = g.out_height, g.out_width
    blocks = -(-ho // tiling.rows) * -(-wo // tiling.width)
    items = g.batch * g.groups * blocks
    share = parallel_share(items, threads, constants)
    pixels = ho * wo / blocks
    rows = ho / -(-ho // tiling.rows)
    width = wo / -(-wo // tiling.width)
    chunks = -(-cg // tiling.chunk)
    depth = cg / chunks
    bands = g.kernel_height // band
    buffer_rows = tiling.phases * (rows + tiling.extra_rows)
    unfolded = depth * band * g.kernel_width * buffer_rows * width
    add_term(terms, "unfold", items * (kg * pixels + chunks * unfolded) * itemsize * share)
    if g.stride[1] > 1:
        in_rows = (rows - 1) * g.stride[0] + (g.kernel_height - 1) * g.dilation[0] + 1
        in_cols = (width - 1) * g.stride[1] + (g.kernel_width - 1) * g.dilation[1] + 1
        add_term(terms, "unfold_phase", items * cg * in_rows * in_cols * share)
    gemm_terms(terms, items * chunks * bands, pixels, kg, depth * band * g.kernel_width, g.dtype,
               share)
    cols = 1
    for n in tiling.cols_shape(g):
        cols *= n
    phases = 1
    for n in tiling.phases_shape(g):
        phases *= n
    return Work(terms, fixed_bytes(g, band) + (cols + phases) * itemsize, tiling)


def _blas_pointwise_work(geometry, tiling, terms, constants):
    """BLAS on the input of a pointwise layer: per (image, group, pixel tile, output-channel
    block) item, its output tile set to the bias, then one GEMM per chunk of input channels."""
    g = geometry
    pixels = g.height * g.width
    cg = g.channels // g.groups
    kg = g.out_channels // g.groups
    blocks = -(-pixels // tiling.tile)
    k_blocks = -(-kg // tiling.k_block)
    items = g.batch * g.groups * blocks * k_blocks
    share = parallel_share(items, tiling.slots, constants)
    chunks = -(-cg // tiling.chunk)
    add_term(terms, "unfold", g.batch * g.out_channels * pixels * g.dtype.itemsize * share)
    gemm_terms(terms, items * chunks, pixels / blocks, kg / k_blocks, cg / chunks, g.dtype,
               share)
    return Work(terms, 0, tiling)


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
    share = parallel_share(items, tiling.slots, constants)
    rows = ho / row_blocks
    micro_rows = tile_rows(itemsize)
    pixels = -(-(rows * wp) // micro_rows) * micro_rows
    fills = items if tiling.weights_major else g.batch * g.groups * row_blocks
    strips = fills * cg * (rows + halo) * wp
    add_term(terms, "unfold", (strips + g.batch * g.out_channels * ho * g.out_width) * itemsize
         * share + _packing(g, depth, tiling.slots, constants))
    add_term(terms, "implicit_f32" if itemsize == 4 else "implicit_f64",
         items * pixels * depth * tiling.k_block * share)
    _, tile_pixels, tile_cols = tiling.tiles_shape(g)
    tiles = tiling.strips_shape(g)[1] + tile_pixels * tile_cols
    return Work(terms, implicit_fixed_bytes(g) + tiling.slots * tiles * itemsize, tiling)


def _pointwise_implicit_work(geometry, tiling, terms, constants):
    """im2col's micro-kernel on a pointwise layer: per (image, group, pixel tile, weight panel)
    item, a strip copy of the tile's pixels (once per tile), the micro-kernel over the tile
    rounded up to the micro-kernel's rows, the transposed output tile; the weights packed per
    call."""
    g = geometry
    itemsize = g.dtype.itemsize
    cg = g.channels // g.groups
    pixels = g.height * g.width
    blocks = -(-pixels // tiling.tile)
    items = g.batch * g.groups * blocks * -(-(g.out_channels // g.groups) // tiling.k_block)
    share = parallel_share(items, tiling.slots, constants)
    micro_rows = tile_rows(itemsize)
    rounded = -(-pixels // blocks // micro_rows) * micro_rows
    add_term(terms, "unfold", g.batch * (g.channels + g.out_channels) * pixels * itemsize * share
         + _packing(g, cg, tiling.slots, constants))
    add_term(terms, "implicit_f32" if itemsize == 4 else "implicit_f64",
         items * rounded * cg * tiling.k_block * share)
    strips = tiling.strips_shape(g)[1]
    _, tile_pixels, tile_cols = tiling.tiles_shape(g)
    return Work(terms, implicit_fixed_bytes(g) + tiling.slots * (strips + tile_pixels * tile_cols)
                * itemsize, tiling)


def _packing(geometry, depth, threads, constants):
    """The unfold term's bytes of pack_weights, a parallel copy of the (K, depth) weights."""
    g = geometry
    share = parallel_share(g.out_channels, threads, constants)
    return g.out_channels * depth * g.dtype.itemsize * share


def bound(geometry, threads, constants):
    """work's fixed cost, plus the cheaper of its BLAS paths (every multiply-add, the
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
    return constants.im2col_call + cheapest * share_floor(threads, constants)


def weight_gemm_work(layout, constants):
    """The price of runner.run_weight_gemm's kernel calls with ``layout``: per chunk of images a
    call; every thread's packing of all of grad_output (in parallel, as unfold bytes); the
    micro-kernel's multiply-adds as computed (rows and output channels rounded up to the
    register tile and the panels), shared by ``layout.slots`` threads. The input's copies are
    NumPy's and priced with the column gathering they replace (_transpose.py)."""
    itemsize = layout.dtype.itemsize
    groups, taps, rows, kgp = layout.out_tile
    images = layout.input_shape[0]
    chunks = -(-images // layout.images)
    items = groups * taps * rows // tile_rows(itemsize) * kgp // panel_width(itemsize)
    terms = {"im2col_call": chunks}
    if layout.slots > 1:
        terms["launch"] = chunks
    macs = groups * taps * rows * kgp * images * math.prod(layout.out_shape)
    add_term(terms, "unfold", images * groups * kgp * math.prod(layout.out_shape) * itemsize)
    add_term(terms, "implicit_f32" if itemsize == 4 else "implicit_f64",
             macs * parallel_share(items, layout.slots, constants))
    workspace = layout.fixed_bytes() + layout.images * layout.image_bytes()
    return Work(terms, workspace, layout)


def calibration_problems():
    """Small problems that separate the model's terms (none of them in bench/test_regret.py)."""
    problems = []
    for dtype in ("float32", "float64"):
        problems += [
            layer(2, 64, 28, 64, 3, dtype, padding=1),  # ResNet-like 3x3
            layer(1, 128, 10, 256, 3, dtype, padding=1),  # short rows, many channels
            layer(2, 96, 24, 32, 1, dtype),  # 1x1: GEMM on the input
            layer(1, 256, 12, 128, 1, dtype),  # 1x1, few pixels: weight packing
            layer(2, 128, 28, 64, 1, dtype),  # 1x1 through the micro-kernel
            layer(1, 3, 96, 48, 7, dtype, stride=2, padding=3),  # stem-like, strided
            layer(1, 16, 40, 16, 9, dtype, padding=4),  # few channels, big kernel
            layer(1, 32, 50, 8, 3, dtype, padding=1),  # few output channels
            layer(2, 1, 96, 32, 3, dtype, padding=1),  # one input channel: a shallow GEMM
            layer(4, 32, 16, 32, 3, dtype, padding=1, groups=4),  # groups
            layer(4, 48, 12, 48, 3, dtype, padding=1, groups=48),  # depthwise: a GEMM per plane
            layer(2, 240, 7, 240, 3, dtype, padding=1, groups=240),  # depthwise, tiny GEMMs
            layer(2, 24, 40, 24, 3, dtype, stride=2, padding=1, groups=24),  # strided depthwise
            layer(1, 1, (200, 300), 1, 5, dtype),  # single channel: streaming the columns
            layer(1, 1, (300, 200), 1, (25, 2), dtype),  # tall kernel: a GEMM call per row
            layer(1, 8, 8, 8, 3, dtype),  # tiny: the fixed costs
            layer(1, 8, 8, 8, 1, dtype),
            layer(2, 32, 30, 64, 3, dtype, padding=1),  # implicit GEMM: few input channels
            layer(1, 64, 16, 128, 5, dtype, padding=2),  # implicit GEMM: 5x5
            layer(4, 128, 9, 64, 3, dtype),  # implicit GEMM: short rows, unpadded
        ]
    return problems
