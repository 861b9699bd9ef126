"""The FFT strategy: overlap-save tiles transformed by DUCC0 inside one parallel Numba kernel."""

from ..protocol import Strategy
from . import model
from .runner import declines, run_fft

STRATEGY = Strategy(
    name="fft",
    summary="Overlap-save tiles transformed by DUCC0 inside one parallel Numba kernel, channel "
    "sums per frequency, cached kernel spectra, bounded workspace. Every feature and dtype "
    "(integers rounded). Best for large kernels (about 13x13 and up).",
    declines=declines,
    work=model.work,
    bound=model.bound,
    run=run_fft,
    constants=model.CONSTANTS,
    calibration_problems=model.calibration_problems,
    error_model="normwise-transform",
    rounds_integers=True,
    non_finite_fallback=True,
)
