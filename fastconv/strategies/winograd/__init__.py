"""The Winograd strategy: F(2x2, 3x3) transforms around BLAS GEMMs."""

from ..protocol import Strategy
from . import model
from .runner import declines, run_winograd

STRATEGY = Strategy(
    name="winograd",
    summary="Winograd F(2x2, 3x3): 16 multiplies per 2x2 outputs instead of 36; Numba transforms "
    "around 16 BLAS GEMMs per block of tiles. 3x3 stride-1 layers, float32 and float64. Best for "
    "3x3 layers with many channels.",
    declines=declines,
    work=model.work,
    bound=model.bound,
    run=run_winograd,
    constants=model.CONSTANTS,
    calibration_problems=model.calibration_problems,
    error_model="normwise-tile",
    non_finite_fallback=True,
)
