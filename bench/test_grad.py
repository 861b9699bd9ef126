"""Transposed convolutions, gradients and a training epoch against PyTorch, one pytest-benchmark
case per (case, dtype, library); bench/grad.py runs the same cases interleaved with spreads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/test_grad.py --threads 2
"""

import grad
import pytest
from libraries import optional, thread_count

CASES = [*grad.TRANSPOSED, *(f"backward-{name}" for name in grad.BACKWARD), "epoch"]


@pytest.mark.parametrize("library", ["fastconv", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_grad_case(benchmark, case, dtype, library, gemm_threads):
    torch = optional("torch")
    if torch is None:
        pytest.skip("torch is not installed (the peer, and the epoch's reference network)")
    if case == "epoch" and optional("sklearn") is None:
        pytest.skip("scikit-learn is not installed (the digits)")
    make = {name: builder for name, _, builder in grad.cases([dtype], torch)}[case]
    benchmark.group = f"{case}-{dtype} threads={gemm_threads}"
    benchmark.extra_info.update(case=case, dtype=dtype, library=library, threads=gemm_threads)
    with thread_count(gemm_threads):
        ours, theirs = make()
        call = ours if library == "fastconv" else theirs
        call()  # warm-up: compilation, plans
        benchmark.pedantic(call, rounds=5, warmup_rounds=0)
