"""Runner of the Winograd strategy: which layers it takes, the tile blocks within the workspace
budget, the weight transform and the kernel; data holding NaN or Inf are left to the plan's
fallback."""

from dataclasses import dataclass

import numpy as np

from ...core.costing import ITEMS_PER_THREAD, index_map_bytes
from ...core.padding import index_maps
from ...core.threads import blas_threads
from ...core.workspace import largest_fitting


def _kernels():
    """The compiled kernels, imported on first use (they register SciPy's BLAS, core/blas.py,
    whose import of scipy.linalg would otherwise be part of ``import fastconv``)."""
    from . import kernels

    return kernels

# Bytes of V and M buffers per thread. 64->64 3x3 on 56x56 fp32, one thread: the 16 GEMMs on
# blocks of 448 tiles (3.5 MiB) ran 3x faster than on all 6272 tiles of the batch at once.
BLOCK_BYTES = 4 * 2**20
# Work items keep at least MIN_TILES GEMM columns (BLAS packs the weights on every call).
MIN_TILES = 256


@dataclass(frozen=True)
class Tiling:
    """How the Winograd strategy splits one problem: items of ``rows`` tile rows (over the
    images of the batch) by ``cols`` tile columns, each transformed with one spare tile per row
    (the kernel's loops then run over whole rows)."""

    rows: int  # tile rows per work item
    cols: int  # tile columns per work item (all of them unless rows == 1)
    slots: int  # buffers, one per thread

    @property
    def tiles(self):
        """GEMM columns per item: the tiles and the spare tile of each row."""
        return self.rows * (self.cols + 1)

    def buffer_shapes(self, geometry):
        """Shapes of the weight transform's scratch, then of the kernel's rows, parts,
        scratch, V and M buffers."""
        g = geometry
        width = self.cols + 1
        return ((self.slots, 21, g.channels // g.groups),
                (self.slots, 2 * ((g.out_width + 1) // 2) + 2),
                (self.slots, 4, (2 * self.rows + 1) * width + 2),
                (self.slots, 8, self.tiles + 2),
                (self.slots, 16, g.channels // g.groups, self.tiles),
                (self.slots, 16, g.out_channels // g.groups, self.tiles))


def slot_bytes(geometry, rows, cols):
    """Bytes of one slot's buffers (Tiling.buffer_shapes, summed in closed form: planning calls
    this in binary searches)."""
    g = geometry
    width = cols + 1
    per_tile = 16 * (g.channels + g.out_channels) // g.groups + 8
    elements = (21 * (g.channels // g.groups) + 2 * ((g.out_width + 1) // 2) + 2
                + 4 * ((2 * rows + 1) * width + 2) + 16 + rows * width * per_tile)
    return elements * g.dtype.itemsize


def fixed_bytes(geometry):
    """Workspace besides the per-thread buffers: the transformed weights and the index maps."""
    g = geometry
    return 16 * g.out_channels * (g.channels // g.groups) * g.dtype.itemsize + index_map_bytes(g)


def declines(geometry, budget):
    """Winograd F(2x2, 3x3) computes 3x3 stride-1 undilated layers of float data, with its
    transformed weights within the workspace budget."""
    g = geometry
    if g.dtype.kind in "iub":
        return "integer data: Winograd runs on float32 and float64 only; use 'direct'"
    if g.dtype.kind != "f":
        return "complex data: Winograd runs on float32 and float64 only; use 'direct' or 'im2col'"
    if (g.kernel_height, g.kernel_width, g.stride, g.dilation) != (3, 3, (1, 1), (1, 1)):
        return "it computes only 3x3 kernels with stride 1 and dilation 1"
    if fixed_bytes(g) + slot_bytes(g, 1, 1) > budget:
        return (f"its transformed weights and buffers do not fit the workspace budget of "
                f"{budget / 2**20:.1f} MiB; raise it with fastconv.set_workspace_budget")
    return None


def plan_tiling(geometry, threads, budget):
    """Items of about BLOCK_BYTES of buffers per thread (the GEMMs stay wide and their operands
    cache-resident), smaller when that leaves a thread fewer than ITEMS_PER_THREAD items (but
    not below MIN_TILES GEMM columns), all within ``budget``; rows of tiles cut evenly into
    items, a multiple of the threads when there are few."""
    g = geometry
    tiles_w = (g.out_width + 1) // 2
    tile_rows = g.batch * ((g.out_height + 1) // 2)
    slots = max(1, min(threads, g.groups * tile_rows))
    room = max(budget - fixed_bytes(g), 0)
    smallest = slot_bytes(g, 1, 1)
    while slots > 1 and slots * smallest > room:
        slots -= 1
    wide = slot_bytes(g, -(-MIN_TILES // (tiles_w + 1)), tiles_w)
    per_slot = min(room // slots, max(BLOCK_BYTES, wide))
    if slot_bytes(g, 1, tiles_w) > per_slot:
        cols = largest_fitting(lambda n: slot_bytes(g, 1, n), per_slot, tiles_w)
        return Tiling(1, max(cols, 1), slots)
    rows = largest_fitting(lambda n: slot_bytes(g, n, tiles_w), per_slot, tile_rows)
    balanced = -(-tile_rows * g.groups // (ITEMS_PER_THREAD * threads))
    least = -(-MIN_TILES // (tiles_w + 1))
    items = -(-tile_rows // max(1, min(rows, max(balanced, least))))
    # Few items: as many as make a multiple of the threads (static scheduling), all cut evenly.
    # 8x256->256 on 14x14 fp32, 2 threads: items of 32 and 24 tile rows 12.5 ms, 28 and 28
    # 7.2 ms (one thread 12.1 and 11.6 ms).
    while items * g.groups < ITEMS_PER_THREAD * slots and items * g.groups % slots and (
            items < tile_rows):
        items += 1
    return Tiling(-(-tile_rows // items), tiles_w, slots)


def run_winograd(problem, tiling, threads):
    """Correlate ``problem`` (a 3x3 stride-1 layer) with Winograd F(2x2, 3x3) and ``tiling``
    (:func:`plan_tiling`) on ``threads`` Numba threads (already set), each calling a
    single-threaded BLAS. None when the inputs, weights or fill value hold NaN or Inf: the
    transforms would turn an infinity into NaN in outputs where the direct sum has the
    infinity."""
    g = problem.geometry
    if not (np.isfinite(problem.w).all() and np.isfinite(problem.fill).all()):
        return None
    cg, kg = g.channels // g.groups, g.out_channels // g.groups
    weight_scratch, rows_buf, parts, scratch, v_shape, m_shape = tiling.buffer_shapes(g)
    u = np.empty((g.groups, 16, kg, cg), g.dtype)
    kernels = _kernels()
    kernels.transform_weights(problem.w, g.groups, np.empty(weight_scratch, g.dtype), u)
    rows, cols = index_maps(g)
    out = np.empty(g.out_shape, g.dtype)
    checks = np.zeros(tiling.slots, g.dtype)
    with blas_threads(1):
        kernels.correlate_winograd(
            problem.x, u, problem.bias, rows, cols, g.padding[2], problem.fill, tiling.rows,
            tiling.cols, np.empty(rows_buf, g.dtype), np.empty(parts, g.dtype),
            np.empty(scratch, g.dtype), np.empty(v_shape, g.dtype), np.empty(m_shape, g.dtype),
            np.empty((tiling.slots, 6), np.int32), np.empty((tiling.slots, 2), g.dtype),
            np.array([ord("N")], np.uint8), checks, out,
        )
    if not np.isfinite(checks).all():
        return None
    return out

