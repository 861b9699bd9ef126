"""fastconv: fast, exact CPU 1-D, 2-D and 3-D convolution for NumPy arrays, built on Numba."""

from ._api import conv1d, conv2d, conv3d, convolve2d, correlate2d, output_shape, plan
from ._methods import METHODS
from ._plan import Candidate, Plan
from ._workspace import get_workspace_budget, set_workspace_budget, workspace_budget

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "Candidate",
    "Plan",
    "__version__",
    "conv1d",
    "conv2d",
    "conv3d",
    "convolve2d",
    "correlate2d",
    "get_workspace_budget",
    "output_shape",
    "plan",
    "set_workspace_budget",
    "workspace_budget",
]
