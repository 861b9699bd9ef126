"""fastconv: fast, exact CPU 2-D convolution for NumPy arrays, built on Numba."""

from ._api import (
    conv2d,
    convolve2d,
    correlate2d,
    get_workspace_budget,
    output_shape,
    plan,
    set_workspace_budget,
    workspace_budget,
)
from ._version import __version__
from .planning.execute import last_method
from .planning.plan import Candidate, Plan

__all__ = [
    "METHODS",
    "Candidate",
    "Plan",
    "__version__",
    "conv2d",
    "convolve2d",
    "correlate2d",
    "get_workspace_budget",
    "last_method",
    "output_shape",
    "plan",
    "set_workspace_budget",
    "workspace_budget",
]


def __getattr__(name):
    # METHODS follows the registry (fastconv.strategies.register adds to it).
    if name == "METHODS":
        from .strategies import methods

        return methods()
    # Submodules with optional dependencies load on first use: `import fastconv` imports no dask.
    if name == "dask":
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")
