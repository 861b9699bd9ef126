"""fastconv: fast, exact CPU 2-D convolution for NumPy arrays, built on Numba."""

from ._api import conv2d, convolve2d, correlate2d, output_shape, plan
from ._methods import METHODS
from ._plan import Candidate, Plan
from ._workspace import get_workspace_budget, set_workspace_budget, workspace_budget

__version__ = "0.1.0"


def __getattr__(name):
    # Submodules with optional dependencies load on first use: `import fastconv` imports no dask.
    if name == "dask":
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "METHODS",
    "Candidate",
    "Plan",
    "__version__",
    "conv2d",
    "convolve2d",
    "correlate2d",
    "get_workspace_budget",
    "output_shape",
    "plan",
    "set_workspace_budget",
    "workspace_budget",
]
