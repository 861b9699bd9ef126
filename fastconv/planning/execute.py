"""Running a plan: on its thread count, with its tiling, and with its fallback when the strategy
leaves data holding NaN or Inf to the direct strategy. Nothing here plans or reads a global
setting: a plan made under one workspace budget runs with that budget under any other."""

import threading

from ..core.threads import numba_threads
from ..strategies import REGISTRY

_last = threading.local()


def execute(plan, problem, fallback=True):
    """Compute ``problem`` (whose geometry is ``plan.geometry``) as ``plan`` says; without
    ``fallback``, None where the strategy leaves non-finite data to the direct strategy (the
    caller computes them another way)."""
    with numba_threads(plan.threads):
        method = plan.method
        out = REGISTRY[method].run(problem, plan.work.tiling, plan.threads)
        if out is None and not fallback:
            return None
        if out is None:  # non-finite data the strategy leaves to the plan's fallback
            method = "direct"
            out = REGISTRY[method].run(problem, plan.fallback.tiling, plan.threads)
    _last.method = method
    return out


def last_method():
    """The strategy that computed the most recent fastconv call of the calling thread: the plan's
    method, or 'direct' when that call's data held NaN or Inf and the plan's rule sent it there.
    None before the thread's first call.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.ones((32, 32))
    >>> _ = fastconv.conv2d(x, np.ones((3, 3)), method="winograd")
    >>> fastconv.last_method()
    'winograd'
    >>> x[5, 5] = np.inf
    >>> _ = fastconv.conv2d(x, np.ones((3, 3)), method="winograd")
    >>> fastconv.last_method()
    'direct'
    """
    return getattr(_last, "method", None)
