"""The checks of generated code hold on every x86-64 CPU that LLVM may target, not only on the
machine that runs the suite: they run again in new processes, each compiling for another CPU.

Slow (a few minutes on 2 cores): deselected by default; ``python -m pytest -m slow`` runs it
(.ci/run does). A named CPU gets its own features only with a feature string (see
fastconv/core/target.py), hence ``NUMBA_CPU_FEATURES=+64bit``, which every x86-64 CPU has.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GENERATED_CODE_TESTS = [
    "tests/strategies/test_gemm.py::test_microkernel_keeps_its_tile_in_registers",
    "tests/test_compilation.py::test_direct_fp32_hot_loop_uses_packed_fma",
    "tests/test_compilation.py::test_winograd_fp32_transforms_are_vectorised",
]

# (target, expected number of skips): skylake-avx512 and znver4 compile 512-bit tiles, haswell
# 256-bit ones; x86-64 has neither AVX nor FMA, so the two FMA checks skip.
TARGETS = [("skylake-avx512", 0), ("znver4", 0), ("haswell", 0), ("x86-64", 2)]


@pytest.mark.slow
@pytest.mark.parametrize(("cpu", "skips"), TARGETS, ids=[cpu for cpu, _ in TARGETS])
def test_generated_code_checks_hold_for_target(cpu, skips, tmp_path):
    env = os.environ | {"NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": "+64bit",
                        "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         *GENERATED_CODE_TESTS], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert (f"{skips} skipped" in summary) == (skips > 0), summary
    assert "failed" not in summary, summary
