"""Compiled-code properties: the hot fp32 loop is vectorised with packed FMAs, kernels load from
Numba's on-disk cache in a second process, and the signature set stays closed."""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import fastconv
from fastconv.core import target as _target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code, **env):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
        env=os.environ | env, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_direct_fp32_hot_loop_uses_packed_fma():
    if not _target.has("fma"):
        pytest.skip("target without FMA")
    # Inspection needs a fresh compilation, so the cache is switched off in a subprocess.
    out = _run(
        """
        import re, numpy as np, fastconv
        from fastconv.strategies.direct.kernels import correlate_direct, correlate_direct_serial
        x, w = np.ones((1, 1, 40, 40), np.float32), np.ones((1, 1, 3, 3), np.float32)
        fastconv.conv2d(x, w, threads=1)  # the serial twin
        fastconv.conv2d(np.ones((1, 1, 300, 300), np.float32), w, method="direct", threads=2)
        import numba
        print(numba.config.NUMBA_NUM_THREADS)
        for kernel in (correlate_direct_serial, correlate_direct):
            for signature in kernel.signatures:
                asm = kernel.inspect_asm(signature)
                print(len(re.findall(r"vfmadd\\w+ps\\s[^\\n]*%[yz]mm", asm)))
        """,
        FASTCONV_NO_CACHE="1",
    )
    threads, *counts = (int(n) for n in out.split())
    # The serial twin, and the parallel kernel where Numba has threads to run it on.
    assert len(counts) == 1 + (threads > 1) and all(n >= 8 for n in counts), counts


def test_winograd_fp32_transforms_are_vectorised():
    # Every loop of the transforms is one helper: its packed subtractions on ymm/zmm show that
    # LLVM vectorised them (on xmm for a target without AVX, such as generic x86-64).
    registers = "[yz]mm" if _target.has("fma") else "xmm"
    out = _run(
        """
        import re, numpy as np, fastconv
        from fastconv.strategies.winograd.kernels import _combine
        fastconv.conv2d(np.ones((1, 4, 20, 20), np.float32), np.ones((4, 4, 3, 3), np.float32),
                        method="winograd")
        for signature in _combine.signatures:  # one per literal sign
            asm = _combine.inspect_asm(signature)
            print(len(re.findall(r"v?(?:sub|add|fmadd\\w+)ps\\s[^\\n]*%{registers}", asm)))
        """.replace("{registers}", registers),
        FASTCONV_NO_CACHE="1",
    )
    counts = [int(n) for n in out.split()]
    assert len(counts) == 2 and min(counts) >= 2, counts


def test_second_process_loads_kernels_from_cache(tmp_path):
    code = """
        import numpy as np, fastconv
        from fastconv.strategies.direct.kernels import correlate_direct, correlate_direct_serial
        w = np.ones((3, 2, 3, 3), np.float32)
        fastconv.conv2d(np.ones((1, 2, 30, 30), np.float32), w, threads=1)
        fastconv.conv2d(np.ones((1, 2, 200, 200), np.float32), w, method="direct", threads=2)
        import numba
        for kernel in (correlate_direct_serial, correlate_direct)[:numba.config.NUMBA_NUM_THREADS]:
            stats = kernel.stats
            print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
        """
    cache = {"NUMBA_CACHE_DIR": str(tmp_path), "FASTCONV_NO_CACHE": "0"}
    first = _run(code, **cache).split()
    second = _run(code, **cache).split()
    # The serial twin and the parallel kernel keep cache files of their own: each compiles once,
    # then each loads its own (loading the other's machine code would count as a hit as well,
    # but then the first process would have compiled only one of them).
    assert first in (["0", "1"], ["0", "1", "0", "1"]), first
    assert second == ["1", "0"] * (len(first) // 2), second


def test_signatures_stay_closed():
    from fastconv.strategies.direct.kernels import correlate_direct, correlate_direct_serial

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64, np.int16, np.uint8, np.complex64):
        image = rng.integers(0, 5, (8, 9)).astype(dtype)
        fastconv.correlate2d(image, image[:3, :2], "same", "symm")
        fastconv.convolve2d(np.asfortranarray(image), image[::-1, :2], "full", "wrap")
        fastconv.correlate2d(np.tile(image, (40, 40)), image[:3, :2], "same", threads=2)
    # One compilation per input array type, whatever the shapes, layouts and options: a read-only
    # input (earlier tests pass some) is its own Numba type, so count compute dtypes separately.
    ran = (correlate_direct_serial, correlate_direct)[:numba.config.NUMBA_NUM_THREADS]
    for kernel in ran:  # the parallel kernel where Numba has threads to run it on
        inputs = [signature[0] for signature in kernel.signatures]
        assert len(inputs) == len(set(inputs))
        assert 1 <= len({array.dtype for array in inputs}) <= 5, kernel
