"""The registry of strategies. It drives the ``method=`` check, the docs table, the planner, the
test parametrization and the benchmarks: a new strategy is one kernel module, one runner and one
entry here."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._run_direct import run_direct
from ._validate import Geometry, Problem


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[Problem, int], np.ndarray]
    """Compute ``problem`` with ``threads`` Numba threads already set; returns (N, K, Ho, Wo)."""
    declines: Callable[[Geometry], str | None]
    """Why the strategy cannot run a geometry, or None when it can."""
    summary: str


def _never(geometry):
    return None


REGISTRY: dict[str, Method] = {
    "direct": Method(
        name="direct",
        run=run_direct,
        declines=_never,
        summary="Parallel Numba loops over a cache-resident padded strip, 4 taps per pass; every "
        "feature and dtype. Best for small kernels, depthwise and few channels.",
    ),
}

METHODS = tuple(REGISTRY)
