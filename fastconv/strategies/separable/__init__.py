"""The separable strategy: a kernel of rank r as r sums of a vertical and a horizontal 1-D pass
(detect.py finds the rank from the weights; plans see it as ``Geometry.kernel_rank``)."""

from ..protocol import Strategy
from . import model
from .runner import run_separable


def declines(geometry, budget):
    """Why the separable strategy cannot run ``geometry``, or None."""
    g = geometry
    if min(g.kernel_height, g.kernel_width) == 1:
        return "a 1-D kernel is one pass already"
    if g.kernel_rank is None:
        return ("the kernel's rank is unknown: pass the weights or a rank hint to plan() "
                "(weights=, kernel_rank=); weights holding NaN or Inf have none")
    if g.dtype.kind in "iu" and g.kernel_rank > 1:
        return (f"integer kernels run separably only as exact integer outer products (rank 1); "
                f"this one has rank {g.kernel_rank}")
    terms = max(g.kernel_rank, 1)
    if terms * (g.kernel_height + g.kernel_width) >= g.kernel_height * g.kernel_width:
        # Never cheaper, and the rounding of many terms is bounded only normwise (detect.py).
        return (f"rank {g.kernel_rank}: {terms} pairs of passes take no fewer multiply-adds than "
                f"the {g.kernel_height}x{g.kernel_width} kernel itself")
    if model.workspace_bytes(g, 1) > budget:
        return "its row buffers exceed the workspace budget"
    return None


def error_model(geometry):
    """Rank 1 (or unknown: the strategy then declines): factors found by the exact cross test,
    whose outer product is the kernel, so each output's rounding is bounded by its own
    ``sum |x| * |w|``. Rank 2 and up: factors from an SVD, whose dropped part and rounding are
    bounded by ``||w|| * ||x_window||`` (detect.py)."""
    return "elementwise" if (geometry.kernel_rank or 1) == 1 else "normwise-window"


STRATEGY = Strategy(
    name="separable",
    summary="A kernel of rank r (found from the weights, once per weight array) as r sums of a "
    "vertical and a horizontal 1-D pass over L1-resident rows: 2k instead of k*k multiply-adds "
    "per output for a kxk Gaussian, box or Sobel. Kernels 12 or more taps tall take four output "
    "rows per vertical pass, reading each input row a quarter as often. Every feature; integers "
    "only for exact integer outer products. Best for large separable and low-rank kernels.",
    declines=declines,
    work=model.work,
    bound=model.bound,
    run=run_separable,
    constants=model.CONSTANTS,
    calibration_problems=model.calibration_problems,
    error_model="normwise-window",
    error_model_of=error_model,
    non_finite_fallback=True,
)
