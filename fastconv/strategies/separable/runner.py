"""Runner of the separable strategy: its tiling (output rows per parallel item and rank terms),
the cached factors of the weights, the index maps, then the kernel."""

from dataclasses import dataclass

import numpy as np

from ...core.costing import ITEMS_PER_THREAD
from ...core.padding import index_maps
from .detect import detection
from .kernels import correlate_separable


@dataclass(frozen=True)
class Tiling:
    """Output rows per parallel item (``block``) and rank terms per (k, c) slice (``terms``)."""

    block: int
    terms: int


def tiling(geometry, threads):
    """The runner's tiling: blocks of output rows, enough (image, channel, block) items for
    ITEMS_PER_THREAD per thread; one term per rank (at least one)."""
    g = geometry
    items_outside_rows = g.batch * g.out_channels
    blocks_wanted = -(-ITEMS_PER_THREAD * threads // items_outside_rows)
    block = max(1, min(g.out_height, -(-g.out_height // blocks_wanted)))
    return Tiling(block, max(g.kernel_rank or 1, 1))


def run_separable(problem, tiling, threads):
    """Correlate ``problem`` as sums of 1-D passes with ``tiling`` on ``threads`` threads
    (already set). Returns None when an output is NaN or Inf (then the direct strategy, whose
    propagation of non-finite values the passes do not reproduce, computes the call)."""
    g = problem.geometry
    found = detection(problem.w)
    cols, rows = found.cols, found.rows
    k, cg = problem.w.shape[:2]
    have = cols.shape[1] // cg
    if have != tiling.terms:  # a plan made for a higher rank than these weights have
        cols, rows = _terms(cols, cg, have, tiling.terms), _terms(rows, cg, have, tiling.terms)
    rowmap, colmap = index_maps(g)
    out = np.empty(g.out_shape, g.dtype)
    blocks = -(-g.out_height // tiling.block)
    checks = np.empty(g.batch * g.out_channels * blocks, g.dtype)
    correlate_separable(problem.x, cols, rows, problem.bias, rowmap, colmap, g.padding[2],
                        problem.fill, g.stride[0], g.stride[1], g.dilation[0], g.dilation[1],
                        g.groups, tiling.block, checks, out)
    if g.dtype.kind in "fc" and not np.isfinite(checks).all():
        return None
    return out


def _terms(factors, cg, have, want):
    """``factors`` (K, cg * have, n) with ``want`` terms per channel (zeros added). Fewer would
    drop terms: plans are checked against the weights' rank before they run (_validate.py)."""
    if want < have:
        raise AssertionError(f"weights of rank {have} run with a plan for rank {want}")
    k, _, n = factors.shape
    wider = np.zeros((k, cg, want, n), factors.dtype)
    wider[:, :, :have] = factors.reshape(k, cg, have, n)
    wider.flags.writeable = False  # as the cached factors: one Numba type, one compilation
    return wider.reshape(k, cg * want, n)
