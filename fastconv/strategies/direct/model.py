"""The direct strategy's cost model, its lower bound, its machine constants and its calibration
problems."""

from ...core.costing import (
    DTYPE_COST,
    Constant,
    Work,
    add_term,
    index_map_bytes,
    parallel_share,
    share_floor,
)
from ...core.geometry import make_geometry as layer
from .kernels import COLUMN_CHUNK, FLAT_BELOW, first_pass_taps, runs_unit_rows
from .runner import block_rows, kernel_geometry

CONSTANTS = (
    Constant("direct_call", 4.12e-06, "Fixed cost of one direct call (index maps, Numba "
             "dispatch)."),
    Constant("direct_item", 2.07e-07, "One parallel item of the direct kernel (one image, group "
             "and row block): its strip and scratch buffers and the fill's set-up, which dominate "
             "on small planes (depthwise 20x20)."),
    Constant("direct_pass", 8.01e-09, "One pass of taps over one output-row chunk: loop set-up, "
             "alias checks, remainder."),
    Constant("direct_f32", 3.2e-11, "One output element of one pass: loading and storing it, "
             "float32."),
    Constant("direct_f64", 3.72e-11, "The same in float64."),
    Constant("direct_tap_f32", 2.35e-11, "One multiply-add of the direct kernel, float32."),
    Constant("direct_tap_f64", 4.93e-11, "The same in float64."),
    Constant("direct_fill", 4e-11, "One byte copied into the direct kernel's padded strip "
             "(stride 1: contiguous copies)."),
    Constant("direct_gather", 5.24e-10, "One element copied into the strip by stride phase "
             "(stride > 1: strided copies)."),
)


def work(geometry, threads, budget, constants):
    """The runner's tiling (block_rows: output rows per item) and its price: (image, group, row
    block) items; per item a strip fill, then for each output channel, passes of taps
    (``first_pass_taps``, then four) over 512-element chunks of each output row, or, for short
    rows, of the whole block as one flat range (then copied out); 3x3 kernels over unit column
    steps take one pass per row and channel. Axes that read few of their padded samples are
    gathered first (``kernel_geometry``)."""
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
    sh, sw = g.stride
    rows_in = (block - 1) * sh + (g.kernel_height - 1) * g.dilation[0] + 1
    wq = -(-(g.width + g.padding[2] + g.padding[3]) // sw)
    strip = cg * sw * -(-rows_in // sh) * sh * wq * itemsize

    share = parallel_share(items, threads, constants)
    precision, factor = DTYPE_COST[g.dtype.kind, itemsize]
    terms = {"direct_call": 1.0}
    if threads > 1:
        terms["launch"] = 1.0
    add_term(terms, "direct_item", items * share)
    unit_rows = runs_unit_rows((cg, g.kernel_height, g.kernel_width), sw, g.dilation[1], wo)
    if unit_rows:
        passes = cg
    if wo < FLAT_BELOW and not unit_rows:
        pitch = wq
        ranges = g.batch * g.out_channels * blocks * -(-block * pitch // COLUMN_CHUNK)
        add_term(terms, "direct_pass", ranges * passes * share)
        add_term(terms, "direct_" + precision, rows_out * pitch * (passes + 1) * factor * share)
        add_term(terms, "direct_tap_" + precision, rows_out * pitch * taps * factor * share)
    else:
        add_term(terms, "direct_pass", rows_out * chunks * passes * share)
        add_term(terms, "direct_" + precision, rows_out * wo * passes * factor * share)
        add_term(terms, "direct_tap_" + precision, rows_out * wo * taps * factor * share)
    if sw == 1:
        add_term(terms, "direct_fill", items * strip * share)
    else:
        add_term(terms, "direct_gather", items * strip / itemsize * share)
    return Work(terms, index_map_bytes(g) + strip * min(threads, items), block)


def bound(geometry, threads, constants):
    """work's fixed cost, plus one pass and every tap of each output element."""
    g = geometry
    precision, factor = DTYPE_COST[g.dtype.kind, g.dtype.itemsize]
    outputs = g.batch * g.out_channels * g.out_height * g.out_width
    per_output = (getattr(constants, "direct_" + precision)
                  + g.macs / outputs * getattr(constants, "direct_tap_" + precision))
    return constants.direct_call + outputs * factor * per_output * share_floor(threads, constants)


def calibration_problems():
    """Small problems that separate the model's terms (none of them in bench/test_regret.py)."""
    problems = []
    for dtype in ("float32", "float64"):
        problems += [
            layer(1, 1, (400, 700), 1, 3, dtype),  # long rows, few taps
            layer(1, 1, (1500, 24), 1, 5, dtype, padding=2),  # short rows
            layer(1, 1, (200, 300), 1, 13, dtype),  # many taps
            layer(1, 1, (300, 1100), 1, (2, 9), dtype),  # rectangular, two row chunks
            layer(4, 64, 20, 64, 3, dtype, padding=1, groups=64),  # depthwise, short rows
            layer(1, 8, 120, 12, 5, dtype, stride=2, padding=2),  # strided, channels
            layer(4, 24, 60, 24, 3, dtype, stride=2, padding=1, groups=24),  # strided copies
            layer(2, 3, 140, 4, 3, dtype, dilation=2),  # dilated
            layer(2, 4, 72, 8, 5, dtype, padding=2),  # channels: many passes per output
            layer(4, 16, 24, 16, 3, dtype, padding=1),  # more channels, short rows
            layer(2, 1, 96, 32, 3, dtype, padding=1),  # one channel to many: unit rows
            layer(1, 1, 16, 1, 3, dtype),  # tiny: the fixed cost
        ]
    return problems
