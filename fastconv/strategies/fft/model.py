"""The FFT strategy's cost model, its lower bound, its machine constants and its calibration
problems."""

import math

from ...core.costing import Constant, Work, index_map_bytes, share_floor
from ...core.geometry import make_geometry as layer
from . import runner
from .runner import plan_tiles, real_sizes

CONSTANTS = (
    Constant("fft_call", 2.14e-05, "Fixed cost of one FFT call (tiling, weight digest, index "
             "maps)."),
    Constant("fft_f32", 1.34, "Scale of the FFT runner's own estimate of its float32 transforms "
             "(strategies/fft/runner.py, measured on the reference machine): 1.0 there."),
    Constant("fft_f64", 0.858, "The same for float64 transforms."),
    Constant("fft_mac", 1.81, "Scale of the FFT runner's estimate of its per-frequency channel "
             "sums."),
    Constant("fft_other", 0, "Scale of the FFT runner's estimate of its gathers, scatters, "
             "per-item costs and memory traffic."),
)


def work(geometry, threads, budget, constants):
    """The runner's tiling (``plan_tiles``) and its estimate of one item, split into transforms,
    channel sums and the rest so that each part is calibrated. Assumes cached kernel spectra (a
    repeated call with the same weights: a first call also transforms the weights,
    ``K * C / groups`` more transforms)."""
    g = geometry
    tiling = plan_tiles(g, threads, budget)
    itemsize, parts = real_sizes(g)
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
    spill = 1 + runner.SPILL_PER_DOUBLING * max(
        0.0, math.log2(bins * csize / runner.CACHE_BYTES))
    transform = (runner.FFT_NS[itemsize] * points * math.log2(points) * spill
                 + runner.CALL_NS)
    spectra_bytes = k_out * cg * bins * csize
    item_bytes = points * itemsize + nb * (c_in + kg) * bins * csize + 2 * bins * csize
    other = (runner.ITEM_NS + nb * c_in * points * runner.GATHER_NS
             + nb * k_out * tiling.vh * tiling.vw * runner.SCATTER_NS)
    if spectra_bytes > runner.L2_BYTES:
        other += spectra_bytes / runner.BYTES_PER_NS
    if item_bytes > runner.L2_BYTES:
        other += 2 * item_bytes / runner.BYTES_PER_NS
    workers = min(threads, tiling.workers)
    share = 1e-9 * -(-items // max(1, min(workers, items)))
    if workers > 1 and items > 1:
        share /= constants.parallel
    terms = {"fft_call": 1.0}
    if threads > 1:
        terms["launch"] = 1.0
    terms["fft_f32" if itemsize == 4 else "fft_f64"] = share * nb * (c_in + k_out) * transform
    terms["fft_mac"] = share * nb * k_out * cg * bins * runner.MAC_NS[itemsize]
    terms["fft_other"] = share * other
    return Work(terms, tiling.workspace_bytes + index_map_bytes(g), tiling)


def bound(geometry, threads, constants):
    """work's fixed cost, plus for each image and stride-1 output point (every tile has at
    least as many points as outputs, and half as many frequencies) its share of the transforms,
    at the log2 of the least tile size (every tile length reaches the kernel span), and of the
    channel sums."""
    g = geometry
    itemsize, parts = real_sizes(g)
    c_in, k_out = g.channels * parts, g.out_channels * parts
    span_h = (g.kernel_height - 1) * g.dilation[0] + 1
    span_w = (g.kernel_width - 1) * g.dilation[1] + 1
    points = g.batch * ((g.out_height - 1) * g.stride[0] + 1) * ((g.out_width - 1) * g.stride[1]
                                                                 + 1)
    transforms = ((c_in + k_out) * runner.FFT_NS[itemsize] * math.log2(span_h * span_w)
                  * (constants.fft_f32 if itemsize == 4 else constants.fft_f64))
    sums = k_out * (c_in // g.groups) / 2 * runner.MAC_NS[itemsize] * constants.fft_mac
    return constants.fft_call + 1e-9 * points * (transforms + sums) * share_floor(threads,
                                                                                  constants)


def calibration_problems():
    """Small problems that separate the model's terms (none of them in bench/test_regret.py)."""
    problems = []
    for dtype in ("float32", "float64"):
        problems += [
            layer(1, 1, 200, 1, 21, dtype, padding=10),  # one tile
            layer(1, 1, (700, 500), 1, 15, dtype),  # overlap-save tiles
            layer(1, 1, 300, 1, 45, dtype, padding=22),  # large kernel
            layer(2, 8, 64, 8, 11, dtype, padding=5),  # channel sums
            layer(1, 24, 40, 24, 9, dtype, padding=4),  # more channels
            layer(1, 4, 100, 4, 13, dtype, stride=2, padding=6),  # strided
            layer(1, 1, 24, 1, 9, dtype),  # tiny: the fixed cost
        ]
    return problems
