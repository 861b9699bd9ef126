"""fastconv: fast CPU convolution for NumPy arrays (1-D to 3-D, SciPy drop-ins, gradients),
built on Numba."""

from ._api import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
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
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "convolve2d",
    "correlate2d",
    "get_workspace_budget",
    "grad",
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
    # Submodules load on first use: `import fastconv` imports no scipy.signal, dask or torch.
    if name in ("signal", "ndimage", "grad", "dask"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")
