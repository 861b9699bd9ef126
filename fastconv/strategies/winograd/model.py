"""The Winograd strategy's cost model, its lower bound, its machine constants and its
calibration problems."""

from ...core.costing import Constant, Work, add_term, parallel_share, share_floor
from ...core.geometry import make_geometry as layer
from .runner import fixed_bytes, plan_tiling, slot_bytes

CONSTANTS = (
    Constant("winograd_call", 2.9e-05, "Fixed cost of one Winograd call (tiling, index maps, "
             "buffers)."),
    Constant("winograd_weights", 1.39e-08, "One weight transformed (9 in, 16 out)."),
    Constant("winograd_in", 3.19e-10, "One transformed input value written (16 per tile and "
             "input channel)."),
    Constant("winograd_out", 8.49e-09, "One tile of one output channel transformed back (4 "
             "outputs)."),
    Constant("winograd_f32", 1.68e-11, "One multiply-add of Winograd's GEMMs, float32 (shallow: "
             "depth Cg, beta = 0)."),
    Constant("winograd_f64", 5.15e-11, "The same in float64."),
)


def work(geometry, threads, budget, constants):
    """The runner's tiling (plan_tiling) and its price: the weight transform, then (group, tile
    rows, tile columns) items, each transforming its input tiles (one spare tile per row), 16
    GEMMs and the inverse transform."""
    g = geometry
    cg = g.channels // g.groups
    kg = g.out_channels // g.groups
    tiling = plan_tiling(g, threads, budget)
    tiles_w = (g.out_width + 1) // 2
    tile_rows = g.batch * ((g.out_height + 1) // 2)
    row_blocks = -(-tile_rows // tiling.rows)
    col_blocks = -(-tiles_w // tiling.cols)
    items = g.groups * row_blocks * col_blocks
    share = parallel_share(items, threads, constants)
    tiles = tile_rows * (tiles_w + col_blocks) / (row_blocks * col_blocks)
    terms = {"winograd_call": 1.0}
    if threads > 1:
        terms["launch"] = 1.0
    add_term(terms, "winograd_weights",
         g.out_channels * cg * parallel_share(g.out_channels, threads, constants))
    add_term(terms, "winograd_in", items * 16 * cg * tiles * share)
    add_term(terms, "winograd_out", items * kg * tiles * share)
    rate = "winograd_f32" if g.dtype.itemsize == 4 else "winograd_f64"
    add_term(terms, rate, items * 16 * tiles * kg * cg * share)
    add_term(terms, "gemm_call", items * 16)  # not shared between threads: see gemm_terms
    workspace = fixed_bytes(g) + tiling.slots * slot_bytes(g, tiling.rows, tiling.cols)
    return Work(terms, workspace, tiling)


def bound(geometry, threads, constants):
    """work's fixed cost and 16 GEMM calls, plus the weight transform and, for every
    2x2 tile (one spare per row of tiles at least), its transforms and multiply-adds."""
    g = geometry
    rate = constants.winograd_f32 if g.dtype.itemsize == 4 else constants.winograd_f64
    tiles = g.batch * ((g.out_height + 1) // 2) * ((g.out_width + 1) // 2 + 1)
    cg = g.channels // g.groups
    work = (g.out_channels * cg * constants.winograd_weights
            + tiles * (16 * (g.out_channels * cg * rate + g.channels * constants.winograd_in)
                       + g.out_channels * constants.winograd_out))
    return (constants.winograd_call + 16 * constants.gemm_call
            + work * share_floor(threads, constants))


def calibration_problems():
    """Small problems that separate the model's terms (none of them in bench/test_regret.py)."""
    problems = []
    for dtype in ("float32", "float64"):
        problems += [
            layer(2, 64, 28, 64, 3, dtype, padding=1),  # ResNet-like
            layer(1, 128, 10, 256, 3, dtype, padding=1),  # short rows, many channels
            layer(4, 16, 48, 16, 3, dtype, padding=1),  # few channels: the transforms
            layer(1, 32, 90, 8, 3, dtype, padding=1),  # few output channels
            layer(2, 48, 21, 48, 3, dtype),  # odd sizes, unpadded
            layer(4, 32, 16, 32, 3, dtype, padding=1, groups=4),  # groups
            layer(1, 8, 8, 8, 3, dtype, padding=1),  # tiny: the fixed costs
        ]
    return problems
