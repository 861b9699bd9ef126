"""The registry of strategies. It drives the ``method=`` check, the docs table, the planner, the
test parametrization and the benchmarks: a new strategy is one kernel module, one runner and one
entry here."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._run_direct import run_direct
from ._run_fft import declines as fft_declines
from ._run_fft import run_fft
from ._run_im2col import declines as im2col_declines
from ._run_im2col import run_im2col
from ._run_winograd import declines as winograd_declines
from ._run_winograd import run_winograd
from ._validate import Geometry, Problem


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[Problem, int], np.ndarray]
    """Compute ``problem`` with ``threads`` Numba threads already set; returns (N, K, Ho, Wo)."""
    declines: Callable[[Geometry], str | None]
    """Why the strategy cannot run a geometry, or None when it can."""
    summary: str
    rounds_integers: bool = False
    """Integer results are rounded from floating point: exact only while values stay small,
    which shapes cannot tell, so 'auto' does not pick the strategy for integer data."""
    normwise: bool = False
    """Its error is bounded relative to the norms of the operands (a whole tile or plane), not
    to each output's own terms: ``accuracy='elementwise'`` excludes it from 'auto'."""


def _never(geometry):
    return None


REGISTRY: dict[str, Method] = {
    "direct": Method(
        name="direct",
        run=run_direct,
        declines=_never,
        summary="Parallel Numba loops over a cache-resident padded strip, up to nine taps per "
        "pass (3x3 in one); every feature and dtype. Best for small kernels, depthwise and few "
        "channels.",
    ),
    "im2col": Method(
        name="im2col",
        run=run_im2col,
        declines=im2col_declines,
        summary="Cache-sized tiles unfolded by Numba (im2col, or one shifted GEMM per kernel row) "
        "and multiplied by SciPy's BLAS; 1x1 layers use the input as it is; stride-1 float layers "
        "whose output channels per group fill micro-kernel panels (64 fp32 / 32 fp64 with "
        "AVX-512) run an implicit GEMM on fastconv's own micro-kernel, and so do 1x1 layers with "
        "at least 128 input channels, no more outputs than inputs and images of 28x28 or more. "
        "Float and complex. Best for many input and output channels per group.",
    ),
    "fft": Method(
        name="fft",
        run=run_fft,
        declines=fft_declines,
        summary="Overlap-save tiles transformed by DUCC0 inside one parallel Numba kernel, channel "
        "sums per frequency, cached kernel spectra, bounded workspace. Every feature and dtype "
        "(integers rounded). Best for large kernels (about 13x13 and up).",
        rounds_integers=True,
        normwise=True,
    ),
    "winograd": Method(
        name="winograd",
        run=run_winograd,
        declines=winograd_declines,
        summary="Winograd F(2x2, 3x3): 16 multiplies per 2x2 outputs instead of 36; Numba "
        "transforms around 16 BLAS GEMMs per block of tiles. 3x3 stride-1 layers, float32 and "
        "float64. Best for 3x3 layers with many channels.",
        normwise=True,
    ),
}

METHODS = tuple(REGISTRY)
