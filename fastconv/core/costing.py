"""What every strategy's cost model is made of.

A model prices the work its runner will execute, as *terms*: ``{constant name: coefficient}``
with ``seconds = sum(coefficient * constants.<name>)``. Being linear in the constants is what
lets ``python -m fastconv calibrate`` fit them to timings by least squares. Each strategy
declares the constants it prices (:class:`Constant`); those shared by several strategies (the
thread pool's, BLAS GEMM's) are declared here.
"""

from dataclasses import dataclass
from typing import Any

# Aim for this many parallel items per thread so static scheduling balances.
ITEMS_PER_THREAD = 4


@dataclass(frozen=True)
class Constant:
    """A machine constant a cost model prices: seconds per unit of work (1 thread unless noted),
    its shipped value (fitted on the reference machine) and what the unit is."""

    name: str
    default: float
    doc: str


@dataclass(frozen=True)
class Work:
    """What a strategy will execute on one geometry and thread count, and its price.

    ``tiling`` is the strategy's own description of the work (tile sizes, items, buffers): the
    planner stores it in the plan and the runner executes exactly it. ``terms`` is None for a
    strategy without a cost model."""

    terms: dict | None
    workspace: int | None  # bytes beyond the output
    tiling: Any = None


SHARED_CONSTANTS = (
    Constant("launch", 1.41e-06, "Starting a parallel region on more than one thread."),
    Constant("parallel", 0.968, "Speed of each thread when several run, relative to one thread "
             "alone (shared caches, memory bandwidth and clock): the parallel part of a call "
             "takes work / threads / parallel."),
    Constant("gemm_call", 8.65e-08, "One BLAS GEMM call."),
    Constant("gemm_f32", 1.39e-11, "One multiply-add of a large float32 GEMM."),
    Constant("gemm_f64", 2.74e-11, "The same in float64."),
    Constant("gemm_a", 1.12e-12, "One byte of the GEMM's pixel operand (the column tile): "
             "packing it and streaming it, the cost that dominates when there are few output "
             "channels."),
    Constant("gemm_b", 0, "One byte of the GEMM's weight operand, packed once per call: the "
             "cost that dominates when a tile has few pixels."),
    Constant("gemm_c", 2.56e-11, "One byte of the GEMM's output tile, read and written once per "
             "call (beta = 1)."),
    # conv3d through im2col less its folded 2-D problem, 2 threads: 0.8-1.4e-10 s per byte over
    # four problems of 1.6-34 MB (AMD EPYC znver4). Shipped above that: on bench/regret_ranks.py
    # (shipped constants otherwise) 1.1e-10 gave a worst regret of 1.75, 1.5e-10 one of 1.45,
    # both a median of 1.00; the direct model's error on 3-D problems read in place moves with it.
    Constant("fold_byte", 1.5e-10, "One byte that conv3d's depth fold copies for a strategy that "
             "does not read plane maps: the depth slices gathered into channels and the result "
             "scattered into the output (NumPy copies into new arrays, on one thread)."),
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


def add_term(terms, name, coefficient):
    """Add ``coefficient`` to the term ``name``."""
    terms[name] = terms.get(name, 0.0) + coefficient


def parallel_share(items, threads, constants):
    """Fraction of the serial work that the slowest of ``threads`` threads does, with static
    scheduling of ``items`` equal items, divided by the per-thread speed."""
    used = max(1, min(threads, items))
    if used == 1:
        return 1.0
    return -(-items // used) / items / constants.parallel


def share_floor(threads, constants):
    """The least parallel_share (or the FFT model's share per item) at up to ``threads``."""
    return min(1.0, 1.0 / (threads * constants.parallel))


def gemm_terms(terms, count, m, n, k, dtype, share):
    """``count`` BLAS calls C(m x n) += A(m x k) @ B(k x n). The calls' fixed cost does not
    shrink with threads: BLAS calls made from the kernel's threads at once ran no faster than
    from one (depthwise 8x960 7x7 planes, 23k calls: 2.85 ms on one thread, 2.6 ms on two; the
    same kernel without its GEMMs 3.3 -> 1.8 ms)."""
    itemsize = dtype.itemsize
    name, factor = GEMM_DTYPE_COST[dtype.kind, itemsize]
    add_term(terms, "gemm_call", count)
    add_term(terms, name, count * m * n * k * factor * share)
    add_term(terms, "gemm_a", count * m * k * itemsize * share)
    add_term(terms, "gemm_b", count * n * k * itemsize * share)
    add_term(terms, "gemm_c", count * m * n * itemsize * share)


def index_map_bytes(geometry):
    """Bytes of the row and column index maps (core/padding.py) of ``geometry``."""
    g = geometry
    return (g.height + g.padding[0] + g.padding[1] + g.width + g.padding[2] + g.padding[3]) * 8
