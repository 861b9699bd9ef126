"""The separable strategy's cost model, its lower bound, its machine constants and its
calibration problems."""

from dataclasses import replace

from ...core.costing import (
    DTYPE_COST,
    Constant,
    Work,
    add_term,
    index_map_bytes,
    parallel_share,
    share_floor,
)
from ...core.geometry import make_geometry
from .runner import tiling

# Fitted by calibrate's least squares to minima of calibration_problems() on the reference machine
# (1 thread, under load from other processes; the direct strategy timed in the same rounds matched
# its shipped model within 0.94x, and the values are scaled by that). The per-element terms came
# out zero: the multiply-adds and the per-term set-up explain the timings.
CONSTANTS = (
    Constant("separable_call", 7.4e-06, "Fixed cost of one separable call (factor lookup by the "
             "weights' digest, index maps, Numba dispatch)."),
    Constant("separable_item", 0, "One parallel item (image, output channel, row block): "
             "its buffers and fill row."),
    Constant("separable_term", 6.67e-08, "One rank term of one output row: loop set-up, the "
             "padded columns of the vertical pass, the passes' remainders."),
    Constant("separable_f32", 0, "One element of one pass (four taps) of either pass: "
             "loading and storing the row buffer or the output row, float32."),
    Constant("separable_f64", 0, "The same in float64."),
    Constant("separable_tap_f32", 4.19e-11, "One multiply-add of either pass, float32."),
    Constant("separable_tap_f64", 7.22e-11, "The same in float64."),
    Constant("separable_strided", 3.17e-10, "One multiply-add of the horizontal pass over a "
             "strided row (column stride > 1), on top of the tap."),
)


def _counts(geometry):
    """Per output row and rank term: (vertical elements, vertical passes, horizontal elements,
    horizontal passes) and the terms per output row."""
    g = geometry
    terms = (g.channels // g.groups) * max(g.kernel_rank or 1, 1)
    return (g.width, -(-g.kernel_height // 4), g.out_width, -(-g.kernel_width // 4), terms)


def work(geometry, threads, budget, constants):
    """The runner's tiling and its price: (image, output channel, row block) items; per output
    row and rank term a vertical pass over the input width (kh taps, four per pass over the row
    buffer) and a horizontal pass over the output width (kw taps, four per pass), plus a pass
    writing the bias and one checking for non-finite outputs per row."""
    g = geometry
    plan = tiling(g, threads)
    blocks = -(-g.out_height // plan.block)
    items = g.batch * g.out_channels * blocks
    share = parallel_share(items, threads, constants)
    precision, factor = DTYPE_COST[g.dtype.kind, g.dtype.itemsize]
    width, v_passes, wo, h_passes, terms = _counts(g)
    rows_out = g.batch * g.out_channels * g.out_height
    row_terms = rows_out * terms
    kh, kw = g.kernel_height, g.kernel_width
    terms_ = {"separable_call": 1.0}
    if threads > 1:
        terms_["launch"] = 1.0
    add_term(terms_, "separable_item", items * share)
    add_term(terms_, "separable_term", row_terms * share)
    elements = row_terms * (width * v_passes + wo * h_passes) + rows_out * 2 * wo
    add_term(terms_, "separable_" + precision, elements * factor * share)
    add_term(terms_, "separable_tap_" + precision,
             row_terms * (width * kh + wo * kw) * factor * share)
    if g.stride[1] > 1:
        add_term(terms_, "separable_strided", row_terms * wo * kw * factor * share)
    return Work(terms_, workspace_bytes(g, threads, items), plan)


def workspace_bytes(geometry, threads, items=None):
    """The factors, the index maps, and each running item's row buffer and fill row."""
    g = geometry
    itemsize = g.dtype.itemsize
    padded_width = g.width + g.padding[2] + g.padding[3]
    factors = g.out_channels * _counts(g)[4] * (g.kernel_height + g.kernel_width) * itemsize
    running = threads if items is None else min(threads, items)
    return index_map_bytes(g) + factors + (padded_width + g.width) * itemsize * running


def bound(geometry, threads, constants):
    """work's fixed cost plus every multiply-add of both passes."""
    g = geometry
    precision, factor = DTYPE_COST[g.dtype.kind, g.dtype.itemsize]
    width, _, wo, _, terms = _counts(g)
    taps = (g.batch * g.out_channels * g.out_height * terms
            * (width * g.kernel_height + wo * g.kernel_width))
    return (constants.separable_call + taps * factor
            * getattr(constants, "separable_tap_" + precision) * share_floor(threads, constants))


def calibration_problems():
    """Small problems that separate the model's terms."""
    problems = []
    for dtype in ("float32", "float64"):
        problems += [
            replace(make_geometry(1, 1, (300, 900), 1, 15, dtype, padding=7,
                                  padding_mode="reflect"), kernel_rank=1),  # long rows
            replace(make_geometry(1, 1, (900, 40), 1, 9, dtype, padding=4), kernel_rank=1),
            replace(make_geometry(1, 1, 256, 1, 31, dtype, padding=15), kernel_rank=2),
            replace(make_geometry(1, 1, (200, 500), 1, 5, dtype), kernel_rank=1),  # few taps
            replace(make_geometry(2, 16, 64, 16, 7, dtype, padding=3, groups=16),
                    kernel_rank=1),  # depthwise bank
            replace(make_geometry(1, 3, 96, 4, 7, dtype, padding=3), kernel_rank=1),  # channels
            replace(make_geometry(1, 1, 300, 1, 9, dtype, stride=2, padding=4),
                    kernel_rank=1),  # strided
            replace(make_geometry(1, 1, 16, 1, 3, dtype), kernel_rank=1),  # tiny: fixed cost
        ]
    return problems
