"""The im2col strategy beyond the shared oracle suite: both unfold layouts, tiling under small
workspace budgets, groups, padding inside the unfold, bounded memory, BLAS thread limits and the
compiled-code cache."""

import os
import subprocess
import sys
import textwrap
import tracemalloc

import numba
import numpy as np
import pytest
from oracle import check_conv2d, random_layer
from threadpoolctl import ThreadpoolController

import fastconv
from fastconv._validate import conv2d_problem
from fastconv.core.geometry import PADDING_MODES, Geometry
from fastconv.strategies.im2col import kernels, runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _blas():
    return ThreadpoolController().select(user_api="blas").lib_controllers


def _check(x, w, bias, **options):
    check_conv2d("im2col", x, w, bias, **options)


@pytest.fixture(params=["im2col", "bands"])
def layout(request, retune):
    """Force the unfold layout: one deep GEMM per tile, or one GEMM per kernel row (BLAS GEMMs:
    the implicit GEMM has its tests in test_gemm.py)."""
    retune(runner, "implicit_pays", lambda geometry: False)
    if request.param == "im2col":
        retune(runner, "choose_band", lambda g: g.kernel_height)
    else:
        retune(runner, "choose_band", lambda g: 1)
    return request.param


# name: (input shape, weight shape, options); stride and dilation cover the phase split of the
# band layout, 'same' with stride 1 the single-copy fast path, wide padding the index maps.
LAYOUT_CASES = {
    "same-3x3": ((2, 5, 9, 11), (4, 5, 3, 3), dict(padding="same")),
    "valid-4x2": ((1, 3, 8, 10), (2, 3, 4, 2), dict(padding=0)),
    "stride2-5x5": ((2, 3, 13, 12), (4, 3, 5, 5), dict(stride=2, padding=2)),
    "stride3x2-dilated": ((1, 2, 17, 15), (3, 2, 3, 4), dict(stride=(3, 2), dilation=(2, 3),
                                                              padding=((3, 1), (4, 2)))),
    "dilated-same": ((1, 4, 10, 9), (2, 4, 3, 3), dict(padding="same", dilation=2)),
    "wide-padding": ((1, 2, 4, 5), (2, 2, 3, 2), dict(padding=((5, 6), (7, 3)))),
    "1x1-strided": ((2, 4, 7, 9), (3, 4, 1, 1), dict(stride=2, padding=1)),
}


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", list(LAYOUT_CASES))
def test_every_layout_matches_oracle(case, padding_mode, layout, rng):
    input_shape, weight_shape, options = LAYOUT_CASES[case]
    for dtype in (np.float32, np.float64):
        x, w, bias = random_layer(rng, input_shape, weight_shape, dtype)
        _check(x, w, bias, padding_mode=padding_mode, **options)


@pytest.mark.parametrize(
    ("budget", "input_shape", "weight_shape", "options"),
    [
        # Row tiles whose count does not divide the output height.
        (2**16, (3, 4, 23, 20), (5, 4, 3, 3), dict(padding=1)),
        # A row of one channel wider than a tile: column tiles, the last one partial.
        (2**16, (1, 2, 5, 2000), (3, 2, 3, 3), dict(padding=(1, 2), padding_mode="reflect")),
        # Not even one row of full depth fits: input channels in chunks, the last one partial.
        (2**16, (1, 32, 6, 40), (4, 32, 3, 3), dict(padding=1, padding_mode="circular")),
        # Chunks, strided and dilated.
        (2**16, (2, 48, 9, 30), (6, 48, 3, 2), dict(stride=2, dilation=(1, 2), padding=2)),
    ],
)
def test_small_budget_forces_many_tiles(budget, input_shape, weight_shape, options, layout, rng):
    x = rng.standard_normal(input_shape)
    w = rng.standard_normal(weight_shape)
    bias = rng.standard_normal(weight_shape[0])
    with fastconv.workspace_budget(budget):
        _check(x, w, bias, threads=1, **options)
        _check(x, w, bias, threads=numba.config.NUMBA_NUM_THREADS, **options)


def test_small_budget_tilings_are_what_they_claim():
    geometry = Geometry(1, 32, 6, 40, 4, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1), 1, "zeros",
                        np.dtype(np.float64))
    tiling = runner.unfolded_tiling(geometry, 1, 2**16, 3)
    assert (tiling.rows, tiling.width) == (1, 40) and 1 < tiling.chunk < 32 and 32 % tiling.chunk
    wide = Geometry(1, 2, 5, 2000, 3, 3, 3, (1, 1, 2, 2), (1, 1), (1, 1), 1, "zeros",
                    np.dtype(np.float64))
    tiling = runner.unfolded_tiling(wide, 1, 2**16, 3)
    assert (tiling.rows, tiling.chunk) == (1, 1) and 2002 % tiling.width and tiling.width < 1001
    # Bands of a large kernel: fewer channels per pass so that the rows of the halo stay cached.
    big = Geometry(1, 64, 256, 256, 16, 7, 7, (3, 3, 3, 3), (1, 1), (1, 1), 1, "zeros",
                   np.dtype(np.float32))
    tiling = runner.unfolded_tiling(big, 1, 64 * 2**20, 1)
    assert tiling.chunk < 64 and tiling.rows >= 6
    assert np.prod(tiling.cols_shape(big)) * 4 <= runner.TILE_BYTES


@pytest.mark.parametrize("threads", [1, 2, 7])
@pytest.mark.parametrize("budget", [2**16, 2**20, 64 * 2**20])
@pytest.mark.parametrize(
    "shape",
    [
        ((8, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1, 1, 1)),
        ((1, 512, 7, 7), (512, 512, 3, 3), (1, 1), (1, 1, 1, 1)),
        ((2, 3, 224, 224), (64, 3, 7, 7), (2, 2), (3, 3, 3, 3)),
        ((1, 8, 5, 4000), (8, 8, 9, 9), (1, 1), (4, 4, 4, 4)),
        ((1, 2048, 3, 3), (8, 2048, 3, 3), (1, 1), (0, 0, 0, 0)),
    ],
)
def test_tilings_stay_within_budget(shape, budget, threads):
    (n, c, h, w), (k, cg, kh, kw), stride, pad = shape
    for dtype in (np.float32, np.complex128):
        geometry = Geometry(n, c, h, w, k, kh, kw, pad, stride, (1, 1), c // cg, "zeros",
                            np.dtype(dtype))
        for band in (runner.unfold_band(geometry, budget), kh):
            tiling = runner.unfolded_tiling(geometry, threads, budget, band)
            used = runner.fixed_bytes(geometry, band) + (
                np.prod(tiling.cols_shape(geometry)) + np.prod(tiling.phases_shape(geometry))
            ) * np.dtype(dtype).itemsize
            assert used <= budget, (band, tiling)
            assert tiling.rows == 1 or tiling.width == geometry.out_width
            assert 1 <= tiling.slots <= threads


def test_peak_memory_is_output_plus_budget(rng):
    """A layer whose naive column buffer is 3.3 GB runs in an 8 MiB budget. Kernels allocate
    nothing themselves (they only take views), so tracemalloc sees every buffer."""
    x = rng.standard_normal((4, 64, 256, 256), dtype=np.float32)
    w = rng.standard_normal((16, 64, 7, 7), dtype=np.float32)
    naive = 4 * 64 * 7 * 7 * 256 * 256 * 4
    assert naive > 3e9
    budget = 8 * 2**20
    fastconv.conv2d(x[:1, :, :16, :16], w, padding=3, method="im2col")  # compile outside
    with fastconv.workspace_budget(budget):
        tracemalloc.start()
        try:
            out = fastconv.conv2d(x, w, padding=3, method="im2col")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # Python's own bookkeeping (array headers, the plan) is a few KiB.
    assert peak - out.nbytes <= budget + 2**16, (peak - out.nbytes) / 2**20
    sample = fastconv.conv2d(x[:1, :4], w[:2, :4], padding=3, method="direct")
    np.testing.assert_allclose(
        fastconv.conv2d(x[:1, :4], w[:2, :4], padding=3, method="im2col"), sample,
        rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups", [2, 3, 6])
def test_groups_each_run_their_own_gemm(groups, layout, rng):
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((12, 6 // groups, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(12).astype(np.float32)
    _check(x, w, bias, groups=groups, padding=1, padding_mode="replicate")
    _check(x, w, bias, groups=groups, stride=2)
    _check(x, w[:, :, :1, :1], bias, groups=groups)


def test_depthwise(layout, rng):
    x = rng.standard_normal((2, 5, 12, 10))
    w = rng.standard_normal((10, 1, 3, 3))
    _check(x, w, rng.standard_normal(10), groups=5, padding="same", padding_mode="symmetric")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_uses_the_input_as_it_is(dtype, monkeypatch, rng):
    x = rng.standard_normal((3, 8, 7, 9)).astype(dtype)
    w = rng.standard_normal((5, 8, 1, 1)).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    problem, _ = conv2d_problem(x, w, bias, 1, 0, 1, 1, "zeros")
    assert runner.is_pointwise(problem.geometry)
    monkeypatch.setattr(kernels, "correlate_unfolded", None)  # must not be reached
    _check(x, w, bias)
    _check(x[:, :, ::2, ::-1], w[:, :, :, :], bias)
    with fastconv.workspace_budget(2**16):
        _check(x.repeat(40, axis=3), w, bias, threads=2)


def test_non_contiguous_and_read_only_arguments(rng):
    base = rng.standard_normal((2, 6, 14, 16)).astype(np.float32)
    weight = rng.standard_normal((3, 4, 3, 3)).astype(np.float32)
    x = base[:, ::2, 1:, ::-1].transpose(0, 1, 3, 2)
    w = np.asfortranarray(weight[:, :3])
    bias = np.ones(6, np.float32)[::2]
    for array in (x, w, bias):
        array.flags.writeable = False
    before = x.copy()
    _check(x, w, bias, padding=(2, 1), padding_mode="reflect")
    np.testing.assert_array_equal(x, before)


def test_complex_drop_ins_use_complex_gemm(rng):
    from scipy import signal

    for dtype in (np.complex64, np.complex128):
        image = (rng.standard_normal((40, 50)) + 1j * rng.standard_normal((40, 50))).astype(dtype)
        kernel = (rng.standard_normal((5, 4)) + 1j * rng.standard_normal((5, 4))).astype(dtype)
        got = fastconv.correlate2d(image, kernel, "same", "symm", method="im2col")
        expected = signal.correlate2d(image, kernel, "same", "symm")
        assert got.dtype == dtype
        tolerance = 1e-4 if dtype == np.complex64 else 1e-12
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


def test_images_beyond_32_bit_blas_sizes_are_declined():
    huge = Geometry(1, 1, 50_000, 50_000, 1, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1), 1, "zeros",
                    np.dtype(np.float32))
    budget = fastconv.get_workspace_budget()
    assert "32-bit" in runner.declines(huge, budget)
    assert runner.declines(Geometry(1, 1, 40_000, 40_000, 1, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1),
                                    1, "zeros", np.dtype(np.float32)), budget) is None


def test_integer_data_is_declined_with_a_remedy():
    image = np.arange(30).reshape(5, 6)
    with pytest.raises(ValueError, match="BLAS has no exact integer GEMM; use 'direct'"):
        fastconv.correlate2d(image, image[:2, :2], method="im2col")
    np.testing.assert_array_equal(fastconv.correlate2d(image, image[:2, :2], method="direct"),
                                  fastconv.correlate2d(image, image[:2, :2]))


def test_blas_runs_single_threaded_inside_and_limits_are_restored(monkeypatch, rng):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    seen = []
    for name in ("correlate_unfolded", "correlate_pointwise"):
        kernel = getattr(kernels, name)

        def spy(*args, kernel=kernel):
            seen.append(([library.num_threads for library in _blas()], numba.get_num_threads()))
            return kernel(*args)

        monkeypatch.setattr(kernels, name, spy)
    x = rng.standard_normal((2, 8, 40, 40))
    w = rng.standard_normal((8, 8, 3, 3))
    x1 = rng.standard_normal((2, 32, 40, 40))
    w1 = rng.standard_normal((32, 32, 1, 1))
    controller = ThreadpoolController().select(user_api="blas")
    numba.set_num_threads(1)
    try:
        with controller.limit(limits=2):
            fastconv.conv2d(x, w, padding=1, method="im2col", threads=2)
            fastconv.conv2d(x1, w1, method="im2col", threads=2)
            assert [library.num_threads for library in _blas()] == [2] * len(_blas())
            assert numba.get_num_threads() == 1
            monkeypatch.setattr(kernels, "correlate_unfolded", _raise)
            with pytest.raises(RuntimeError, match="kernel failed"):
                fastconv.conv2d(x, w, padding=1, method="im2col", threads=2)
            assert [library.num_threads for library in _blas()] == [2] * len(_blas())
            assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    # Two Numba threads, each calling a one-thread BLAS: never more threads than asked for.
    assert seen == [([1] * len(_blas()), 2)] * 2


def _raise(*args):
    raise RuntimeError("kernel failed")


def test_kernels_load_from_cache_in_a_second_process(tmp_path):
    """BLAS is reached through a named external symbol, not a ctypes pointer: cacheable. Checked
    on the pointwise kernel, which compiles in seconds; the unfolded kernel reaches BLAS through
    the same ``_gemm``."""
    code = """
        import numpy as np, fastconv
        from fastconv.strategies.im2col.kernels import correlate_pointwise
        x = np.ones((1, 2, 9, 9), np.float32)
        fastconv.conv2d(x, np.ones((3, 2, 1, 1), np.float32), method="im2col")
        stats = correlate_pointwise.stats
        print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
        """
    env = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path), "FASTCONV_NO_CACHE": "0"}
    runs = []
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                                capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        runs.append(result.stdout.split())
    assert runs == [["0", "1"], ["1", "0"]], runs


@pytest.mark.parametrize("batch", [1, 3])
def test_few_tiles_split_output_channels_between_threads(batch, layout, rng):
    """A slot running several channel blocks of one tile unfolds it once (batch 3)."""
    geometry = Geometry(batch, 64, 7, 7, 128, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1), 1, "zeros",
                        np.dtype(np.float32))
    tiling = runner.unfolded_tiling(geometry, 2, 64 * 2**20, 3)
    assert tiling.rows == 7 and tiling.k_block == 64
    x = rng.standard_normal((batch, 64, 7, 7)).astype(np.float32)
    w = rng.standard_normal((128, 64, 3, 3)).astype(np.float32)
    _check(x, w, rng.standard_normal(128).astype(np.float32), padding=1, threads=2)
    with fastconv.workspace_budget(2**16):
        _check(x, w, rng.standard_normal(128).astype(np.float32), padding=1, threads=2)


def test_pointwise_splits_output_channels_of_one_small_image(rng):
    x = rng.standard_normal((1, 64, 5, 5)).astype(np.float32)
    w = rng.standard_normal((128, 64, 1, 1)).astype(np.float32)
    assert runner._split_work(conv2d_problem(x, w, None, 1, 0, 1, 1, "zeros")[0].geometry,
                                   25, 1, 25, 25, 2) == (25, 64)
    _check(x, w, rng.standard_normal(128).astype(np.float32), threads=2)


def test_signatures_stay_closed(rng):
    from fastconv.strategies.im2col.kernels import correlate_pointwise, correlate_unfolded

    x = rng.standard_normal((2, 4, 9, 10))
    for dtype in (np.float32, np.float64, np.float16, np.int32):
        view = x.astype(dtype)[:, :, ::-1, ::2]
        fastconv.conv2d(view, np.ones((2, 4, 3, 3), dtype), padding=1, method="im2col")
        fastconv.conv2d(view, np.ones((2, 4, 1, 1), dtype), method="im2col")
    for dtype in (np.complex64, np.complex128):
        image = x[0, 0].astype(dtype)
        fastconv.correlate2d(np.asfortranarray(image), image[:3, :2], "same", method="im2col")
        fastconv.correlate2d(image, image[:1, :1], "valid", method="im2col")
    # One signature per input array type: 4 dtypes, each writeable or read-only.
    for kernel in (correlate_unfolded, correlate_pointwise):
        kinds = {str(signature[0]) for signature in kernel.signatures}
        assert len(kernel.signatures) == len(kinds) <= 8, kernel.signatures
