"""The protocol every strategy satisfies: one :class:`Strategy` object per strategy folder.

A strategy folder (``fastconv/strategies/<name>/``) holds its kernels, its tiling and runner, its
cost model and lower bound, its declines, its calibration problems and its error model, and
exposes them as one ``STRATEGY`` object. The registry (``fastconv/strategies/__init__.py``) is
built from these objects: adding a strategy is one folder and one line there (see the README's
"Adding a strategy").

The contract, as the planner and the executor use it:

1. ``declines(geometry, budget)`` says why the strategy cannot run a geometry under a workspace
   budget, or None. Only shapes and options decide, never array values.
2. ``work(geometry, threads, budget, constants)`` returns a :class:`~fastconv.core.costing.Work`:
   the ``tiling`` the runner will execute (computed once, stored in the plan), its price as
   ``terms`` of machine constants (None: no cost model) and its workspace bytes.
3. ``bound(geometry, threads, constants)``, optional: a lower bound on the model's seconds at any
   thread count up to ``threads``, never above the model, so that 'auto' can skip the model.
4. ``run(problem, tiling, threads)`` computes the problem on ``threads`` Numba threads (already
   set) with the tiling from step 2, allocating no more than the workspace it priced. It reads no
   global setting. It returns the output (N, K, Ho, Wo), or None when the data hold non-finite
   values that it cannot propagate exactly as the direct sum does (only if
   ``non_finite_fallback``): the executor then runs the plan's fallback, the direct strategy.
"""

from collections.abc import Callable
from dataclasses import dataclass

from ..core.costing import Constant
from ..core.messages import fail

ERROR_MODELS = ("elementwise", "normwise-transform", "normwise-tile", "normwise-window")
"""How a strategy's rounding error is bounded (the tests' tolerance table follows it):

* ``elementwise``: each output within a few units of roundoff of its own ``sum |x| * |w|``;
* ``normwise-transform``: within ``u * log2(transform points)`` of the largest such sum of its
  output plane (FFT): small outputs next to large ones lose relative accuracy;
* ``normwise-tile``: within a constant times ``u`` of the largest such sum of its output plane
  (Winograd's tile transforms);
* ``normwise-window``: within a constant times ``u`` of ``||w|| * ||x_window||`` of each output's
  own window (separable kernels of rank 2 or more, factored by an SVD): small outputs beside large
  ones keep their accuracy, but not where the window's terms cancel."""


def _no_bound(geometry, threads, constants):
    return None


@dataclass(frozen=True)
class Strategy:
    """One strategy: everything the planner, the executor, calibration and the tests need."""

    name: str
    summary: str
    """One paragraph for the README's strategy table and ``fastconv.plan``'s docs."""
    declines: Callable
    """(geometry, budget) -> reason or None."""
    work: Callable
    """(geometry, threads, budget, constants) -> Work."""
    run: Callable
    """(problem, tiling, threads) -> output, or None (see ``non_finite_fallback``)."""
    bound: Callable = _no_bound
    """(geometry, threads, constants) -> seconds or None."""
    constants: tuple[Constant, ...] = ()
    """The machine constants its model prices, besides core.costing.SHARED_CONSTANTS."""
    calibration_problems: Callable = tuple
    """() -> geometries timed by ``python -m fastconv calibrate`` to fit ``constants``."""
    error_model: str = "elementwise"
    """One of ERROR_MODELS: the strategy's worst; ``error_model_of`` may refine it per geometry."""
    error_model_of: Callable | None = None
    """(geometry) -> one of ERROR_MODELS, for a strategy whose error model depends on the
    problem (separable: exact factors of a rank-1 kernel are elementwise, an SVD's are not);
    None: ``error_model`` for every geometry."""
    rounds_integers: bool = False
    """Integer results are rounded from floating point: exact only while values stay small,
    which shapes cannot tell, so 'auto' does not pick the strategy for integer data."""
    non_finite_fallback: bool = False
    """``run`` may return None for data holding NaN or Inf: the direct strategy then runs."""
    reads_planes: bool = False
    """``run`` takes problems with plane maps (core.geometry.Problem): conv3d then reads its depth
    taps and writes its output depths in place instead of gathering and scattering them."""

    def __post_init__(self):
        if self.error_model not in ERROR_MODELS:
            fail(ValueError, "error_model", f"one of {ERROR_MODELS}", self.error_model)

    def error_model_for(self, geometry):
        """The error model of this strategy on ``geometry``."""
        return self.error_model if self.error_model_of is None else self.error_model_of(geometry)
