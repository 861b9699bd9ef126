"""The direct strategy: parallel Numba loops over a cache-resident padded strip."""

from ..protocol import Strategy
from . import model
from .runner import run_direct


def _never(geometry, budget):
    return None


STRATEGY = Strategy(
    name="direct",
    summary="Parallel Numba loops over a cache-resident padded strip, up to nine taps per pass "
    "(3x3 in one); every feature and dtype. Best for small kernels, depthwise and few channels.",
    declines=_never,
    work=model.work,
    bound=model.bound,
    run=run_direct,
    constants=model.CONSTANTS,
    calibration_problems=model.calibration_problems,
    error_model="elementwise",
    reads_planes=True,
)
