"""Runner of the direct strategy: its tiling (output rows per parallel item), index maps, then
the kernel."""

import numpy as np

from ...core.costing import ITEMS_PER_THREAD
from ...core.geometry import NUMPY_PAD_MODES
from ...core.padding import index_maps
from .kernels import correlate_direct, first_pass_taps, presets_strips, runs_unit_rows

# A worker's strip (its block of padded input rows) is kept within this many bytes so it stays in
# L2 while every output channel of the group reads it (2 MiB L2 per core on the reference machine).
STRIP_BYTES = 512 * 2**10


def block_rows(geometry, threads):
    """Output rows per parallel item: as many as fit the strip budget, while leaving enough items
    for every thread."""
    g = geometry
    padded_width = g.width + g.padding[2] + g.padding[3]
    row_bytes = (g.channels // g.groups) * padded_width * g.dtype.itemsize
    halo = (g.kernel_height - 1) * g.dilation[0] + 1
    fit = 1 + max(0, (STRIP_BYTES // max(row_bytes, 1) - halo) // g.stride[0])
    items_outside_rows = g.batch * g.groups
    blocks_wanted = -(-ITEMS_PER_THREAD * threads // items_outside_rows)
    split = -(-g.out_height // blocks_wanted)
    return max(1, min(fit, split, g.out_height))


def run_direct(problem, block, threads):
    """Correlate ``problem`` with the direct kernel, ``block`` output rows per parallel item
    (:func:`block_rows`), on ``threads`` threads (already set)."""
    g = problem.geometry
    rows, cols = index_maps(g)
    out = np.empty(g.out_shape, g.dtype)
    correlate_direct(
        problem.x, problem.w, problem.bias, rows, cols, g.padding[2], problem.fill,
        g.stride[0], g.stride[1], g.dilation[0], g.dilation[1], g.groups,
        block, first_pass_taps(problem.w[0].size),
        presets_strips(NUMPY_PAD_MODES[g.padding_mode] == "constant" and any(g.padding),
                       cols.shape[0], g.stride[1]),
        runs_unit_rows(problem.w[0].size, g.stride[1], g.dilation[1], g.out_width),
        out,
    )
    return out
