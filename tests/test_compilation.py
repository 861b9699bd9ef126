"""Compiled-code properties: the hot fp32 loop is vectorised with packed FMAs, kernels load from
Numba's on-disk cache in a second process, and the signature set stays closed."""

import os
import subprocess
import sys
import textwrap

import numpy as np

import fastconv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code, **env):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
        env=os.environ | env, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_direct_fp32_hot_loop_uses_packed_fma():
    # Inspection needs a fresh compilation, so the cache is switched off in a subprocess.
    out = _run(
        """
        import re, numpy as np, fastconv
        from fastconv.strategies.direct.kernels import correlate_direct
        fastconv.conv2d(np.ones((1, 1, 40, 40), np.float32), np.ones((1, 1, 3, 3), np.float32))
        (signature,) = correlate_direct.signatures
        asm = correlate_direct.inspect_asm(signature)
        packed = re.findall(r"vfmadd\\w+ps\\s[^\\n]*%[yz]mm", asm)
        print(len(packed))
        """,
        FASTCONV_NO_CACHE="1",
    )
    assert int(out.split()[-1]) >= 8


def test_winograd_fp32_transforms_are_vectorised():
    # Every loop of the transforms is one helper: its packed subtractions on ymm/zmm show that
    # LLVM vectorised them.
    out = _run(
        """
        import re, numpy as np, fastconv
        from fastconv.strategies.winograd.kernels import _combine
        fastconv.conv2d(np.ones((1, 4, 20, 20), np.float32), np.ones((4, 4, 3, 3), np.float32),
                        method="winograd")
        for signature in _combine.signatures:  # one per literal sign
            asm = _combine.inspect_asm(signature)
            print(len(re.findall(r"v(?:sub|add|fmadd\\w+)ps\\s[^\\n]*%[yz]mm", asm)))
        """,
        FASTCONV_NO_CACHE="1",
    )
    counts = [int(n) for n in out.split()]
    assert len(counts) == 2 and min(counts) >= 2, counts


def test_second_process_loads_kernels_from_cache(tmp_path):
    code = """
        import numpy as np, fastconv
        from fastconv.strategies.direct.kernels import correlate_direct
        fastconv.conv2d(np.ones((1, 2, 30, 30), np.float32), np.ones((3, 2, 3, 3), np.float32))
        stats = correlate_direct.stats
        print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
        """
    cache = {"NUMBA_CACHE_DIR": str(tmp_path), "FASTCONV_NO_CACHE": "0"}
    first = _run(code, **cache).split()
    second = _run(code, **cache).split()
    assert first == ["0", "1"], first
    assert second == ["1", "0"], second


def test_signatures_stay_closed():
    from fastconv.strategies.direct.kernels import correlate_direct

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64, np.int16, np.uint8, np.complex64):
        image = rng.integers(0, 5, (8, 9)).astype(dtype)
        fastconv.correlate2d(image, image[:3, :2], "same", "symm")
        fastconv.convolve2d(np.asfortranarray(image), image[::-1, :2], "full", "wrap")
    # One compilation per input array type, whatever the shapes, layouts and options: a read-only
    # input (earlier tests pass some) is its own Numba type, so count compute dtypes separately.
    inputs = [signature[0] for signature in correlate_direct.signatures]
    assert len(inputs) == len(set(inputs))
    assert len({array.dtype for array in inputs}) <= 5
