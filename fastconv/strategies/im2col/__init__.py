"""The im2col strategy: GEMMs on unfolded tiles (BLAS) or on the strategy's own micro-kernel."""

from ..protocol import Strategy
from . import model
from .runner import declines, run_im2col

STRATEGY = Strategy(
    name="im2col",
    summary="Cache-sized tiles unfolded by Numba (im2col, or one shifted GEMM per kernel row) "
    "and multiplied by SciPy's BLAS; 1x1 layers use the input as it is; stride-1 float layers "
    "whose output channels per group fill micro-kernel panels (32 wide with AVX-512) run an "
    "implicit GEMM on fastconv's own micro-kernel, and so do 1x1 layers with at least 128 input "
    "channels, output channels per group a multiple of 64 (fp32) or 32 (fp64), no more outputs "
    "than inputs and images of 28x28 or more. Float and complex. Best for many input and output "
    "channels per group.",
    declines=declines,
    work=model.work,
    bound=model.bound,
    run=run_im2col,
    constants=model.CONSTANTS,
    calibration_problems=model.calibration_problems,
    error_model="elementwise",
)
