"""NCHW layers: fastconv.conv2d (every method and 'auto') against torch.nn.functional.conv2d,
one case per (layer, dtype, threads, library)."""

import numpy as np
import pytest
from harness import run_case
from threadpoolctl import threadpool_limits

# Side of the square matrices whose product measures the machine's GEMM rate: large enough for
# BLAS to run at its peak (1024 gave 5-10% less on the reference machine).
GEMM_SIDE = 2048


def test_layer(benchmark, layer_case, bench_state):
    run_case(benchmark, layer_case, bench_state)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gemm_rate(benchmark, dtype, gemm_threads):
    """The machine's GEMM rate: NumPy's BLAS on GEMM_SIDE-square matrices, limited to the run's
    thread count. The report divides the layers' GFLOP/s by it."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((GEMM_SIDE, GEMM_SIDE)).astype(dtype) for _ in range(2))
    out = np.empty_like(a)
    benchmark.extra_info.update(gemm_dtype=dtype, threads=gemm_threads,
                                flops=2 * GEMM_SIDE**3)
    with threadpool_limits(gemm_threads):
        benchmark.pedantic(np.matmul, (a, b), {"out": out}, rounds=7, warmup_rounds=1)
