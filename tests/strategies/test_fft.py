"""The FFT strategy beyond the shared oracle suite: tile boundaries, the workspace bound, the
kernel-spectrum cache, numerically hard data, integers and non-finite values."""

import subprocess
import sys
import textwrap
from dataclasses import replace

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import assert_close, reference_conv2d
from scipy import signal

import fastconv
from fastconv._validate import conv2d_problem, scipy_problem
from fastconv.planning.plan import make_plan
from fastconv.strategies import REGISTRY
from fastconv.strategies.fft import runner
from fastconv.strategies.fft.runner import (
    clear_spectrum_cache,
    plan_tiles,
    real_sizes,
    spectrum_cache_usage,
)


def _geometry(x, w, bias=None, **options):
    """The geometry of ``conv2d(x, w, bias, **options)``."""
    problem, _ = conv2d_problem(x, w, bias, options.get("stride", 1), options.get("padding", 0),
                                options.get("dilation", 1), options.get("groups", 1),
                                options.get("padding_mode", "zeros"))
    return problem.geometry


def _forced_plan(geometry, lh, lw, images_per_item=1, threads=None):
    """The FFT plan of ``geometry`` with its tiling replaced by (lh, lw) tiles, with the
    overlap-save outputs per tile that the kernel needs: a plan carries the tiling its runner
    executes, so forcing one is replacing that field."""
    plan = make_plan(geometry, "fft", threads or numba.get_num_threads())
    span_h = (geometry.kernel_height - 1) * geometry.dilation[0] + 1
    span_w = (geometry.kernel_width - 1) * geometry.dilation[1] + 1
    tiling = replace(plan.work.tiling, lh=lh, lw=lw, vh=lh - span_h + 1, vw=lw - span_w + 1,
                     images_per_item=images_per_item, workers=plan.threads)
    return replace(plan, work=replace(plan.work, tiling=tiling))


def _conv_and_check(x, w, bias=None, threads=None, tiles=None, **options):
    """conv2d by FFT against the oracle; ``tiles``: (lh, lw, images per item) forced."""
    g = _geometry(x, w, bias, **options)
    method = "fft" if tiles is None else _forced_plan(g, *tiles, threads=threads)
    got = fastconv.conv2d(x, w, bias, method=method, threads=threads, **options)
    reference = dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups,
                     padding_mode=g.padding_mode)
    expected = reference_conv2d(x, w, bias, **reference)
    scale = reference_conv2d(abs(x), abs(w), None if bias is None else abs(bias), **reference)
    assert_close(got, expected, scale, x.dtype, "fft")
    return got


@pytest.mark.parametrize(
    ("lh", "lw", "options"),
    [
        (16, 20, dict(padding=((3, 4), (5, 2)), padding_mode="reflect")),
        (15, 18, dict(padding=6, stride=(2, 3), padding_mode="circular")),
        (24, 16, dict(padding="same", dilation=(2, 3), padding_mode="symmetric")),
        (20, 20, dict(padding=(1, 9), stride=3, dilation=2, padding_mode="replicate")),
    ],
    ids=["reflect", "stride", "dilation", "stride-dilation"],
)
def test_tile_edges_match_the_oracle(rng, lh, lw, options):
    # 53x47 is a multiple of no tile's output count: the last tile row and column are partial.
    x = rng.standard_normal((3, 4, 53, 47))
    w = rng.standard_normal((6, 2, 5, 4))
    bias = rng.standard_normal(6)
    _conv_and_check(x, w, bias, tiles=(lh, lw, 2), groups=2, **options)


def test_planner_tiles_a_large_image_and_tiles_agree_with_one_transform(rng):
    x = rng.standard_normal((1, 1, 700, 650)).astype(np.float32)
    w = rng.standard_normal((1, 1, 9, 11)).astype(np.float32)
    problem, _ = conv2d_problem(x, w, None, 1, "same", 1, 1, "zeros")
    tiling = plan_tiles(problem.geometry, 1, fastconv.get_workspace_budget())
    assert tiling.vh < 700 or tiling.vw < 650, tiling
    got = _conv_and_check(x, w, padding="same")
    whole = signal.fftconvolve(x[0, 0].astype(np.float64), w[0, 0, ::-1, ::-1], "same")
    np.testing.assert_allclose(got[0, 0], whole, rtol=0, atol=1e-4)


def test_workspace_budget_bounds_the_plan(rng):
    x = np.zeros((1, 1, 4096, 4096), np.float32)
    problem, _ = conv2d_problem(x, x[..., :63, :63], None, 1, "same", 1, 1, "zeros")
    assert plan_tiles(problem.geometry, 1, 2**16) is None  # declined: see below
    for budget in (2**18, 2**20, 2**22, 64 * 2**20):
        for threads in (1, 2):
            tiling = plan_tiles(problem.geometry, threads, budget)
            assert tiling.workspace_bytes <= budget
            assert tiling.lh < 1024 and tiling.lw < 1024


def test_peak_memory_is_output_plus_budget():
    # In a fresh process, so that the peak resident size measures this call alone.
    script = textwrap.dedent("""
        import resource, numpy as np, fastconv
        w = np.ones((63, 63), np.float32)
        fastconv.correlate2d(np.ones((200, 200), np.float32), w, "same", method="fft")
        x = np.ones((3000, 3000), np.float32)
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        with open("/proc/self/statm") as f:
            before = int(f.read().split()[1]) * resource.getpagesize()
        before = max(before, peak())
        with fastconv.workspace_budget(2**20):
            out = fastconv.correlate2d(x, w, "same", method="fft")
        print(peak() - before - out.nbytes)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    extra = int(result.stdout.split()[-1])
    # The budget (1 MiB) plus allocator and DUCC0 plan-cache slack.
    assert extra <= 2**20 + 4 * 2**20, extra


def test_kernel_spectra_are_cached_per_weights(monkeypatch, rng):
    clear_spectrum_cache()
    calls = []
    from fastconv.strategies.fft import kernels

    original = kernels.kernel_spectra

    def counting(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(kernels, "kernel_spectra", counting)
    x = rng.standard_normal((2, 3, 40, 40))
    w = rng.standard_normal((4, 3, 7, 7))
    first = fastconv.conv2d(x, w, method="fft")
    np.testing.assert_array_equal(fastconv.conv2d(x, w, method="fft"), first)
    fastconv.conv2d(x[::-1].copy(), w, method="fft")
    assert len(calls) == 1
    fastconv.conv2d(x, w, dilation=2, method="fft")
    assert len(calls) == 2
    w[0, 0, 0, 0] += 1.0  # changed in place: a new digest
    changed = fastconv.conv2d(x, w, method="fft")
    assert len(calls) == 3
    assert not np.allclose(changed, first)
    clear_spectrum_cache()
    fastconv.conv2d(x, w, method="fft")
    assert len(calls) == 4


def test_spectrum_cache_is_bounded():
    clear_spectrum_cache()
    x = np.ones((1, 1, 30, 30))
    for seed in range(runner.SPECTRUM_CACHE_ENTRIES + 5):
        fastconv.conv2d(x, np.full((1, 1, 3, 3), float(seed)), method="fft")
    assert spectrum_cache_usage()[0] == runner.SPECTRUM_CACHE_ENTRIES
    with fastconv.workspace_budget(2**16):
        fastconv.conv2d(x, np.full((1, 1, 3, 3), -1.0), method="fft")
        assert spectrum_cache_usage()[1] <= 2**16
    clear_spectrum_cache()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_dynamic_range(rng, dtype):
    # Values from 1e-3 to 1e6 side by side, and a half of the image 1e8 times larger than the
    # other: the error is normwise (per output plane), within the table's FFT bound.
    x = rng.standard_normal((1, 2, 120, 130))
    x *= np.where(rng.random(x.shape) < 0.01, 1e6, 1e-3)
    x[:, 1, :60] *= 1e8
    w = rng.standard_normal((2, 2, 17, 17))
    _conv_and_check(x.astype(dtype), w.astype(dtype), padding=8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_near_cancellation(rng, dtype):
    # A zero-sum kernel on a large constant plus small noise: outputs are ~1e-6 of the terms.
    w = rng.standard_normal((1, 1, 21, 21))
    w -= w.mean()
    x = 1000 + 1e-3 * rng.standard_normal((1, 1, 150, 160))
    _conv_and_check(x.astype(dtype), w.astype(dtype))


def test_all_positive_data_with_many_channels(rng):
    # The worst case measured for the complex64 channel sums: every product adds up.
    x = np.abs(rng.standard_normal((1, 96, 20, 20))).astype(np.float32)
    w = np.abs(rng.standard_normal((2, 96, 9, 9))).astype(np.float32)
    _conv_and_check(x, w, padding=4)


def test_long_float32_channel_sums_use_complex128(rng, retune):
    problem, _ = conv2d_problem(np.zeros((1, 8, 10, 10), np.float32),
                                np.zeros((2, 8, 3, 3), np.float32), None, 1, 0, 1, 1, "zeros")
    assert real_sizes(problem.geometry) == (4, 1)
    retune(runner, "FP32_MAX_CHANNELS", 4)
    assert real_sizes(problem.geometry) == (8, 1)
    x = rng.standard_normal((1, 8, 30, 30)).astype(np.float32)
    w = rng.standard_normal((2, 8, 5, 5)).astype(np.float32)
    _conv_and_check(x, w, padding=2)


def test_integers_are_exact_within_the_bound(rng):
    # max|in1| * sum|in2| = 2**30 * 25 * 2**10 < 2**50 / log2(M): provably exact after rounding.
    in1 = rng.integers(-2**30, 2**30, (90, 80))
    in2 = rng.integers(-2**10, 2**10, (5, 5))
    got = fastconv.correlate2d(in1, in2, "same", "symm", method="fft")
    expected = signal.correlate2d(in1, in2, "same", "symm")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    uint8 = rng.integers(0, 256, (300, 310), dtype=np.uint8)
    kernel = rng.integers(0, 256, (31, 31), dtype=np.uint8)
    np.testing.assert_array_equal(fastconv.convolve2d(uint8, kernel, method="fft"),
                                  signal.convolve2d(uint8, kernel))


def test_integers_beyond_the_bound_are_rounded_like_fftconvolve(rng):
    in1 = rng.integers(-2**50, 2**50, (40, 40))
    in2 = rng.integers(-2**6, 2**6, (7, 7))
    got = fastconv.convolve2d(in1, in2, "valid", method="fft")
    exact = signal.convolve2d(in1, in2, "valid")  # exact: every sum stays below 2**62
    assert got.dtype == np.int64
    relative = np.abs((got - exact).astype(float)) / np.abs(in1).max() / np.abs(in2).sum()
    assert relative.max() < 1e-13


def test_complex_drop_in_with_tiles(rng):
    in1 = rng.standard_normal((70, 64)) + 1j * rng.standard_normal((70, 64))
    in2 = rng.standard_normal((9, 6)) + 1j * rng.standard_normal((9, 6))
    for boundary in ("fill", "wrap", "symm"):
        problem, _, _ = scipy_problem(in1, in2, "same", boundary, 2 - 1j, False)
        plan = _forced_plan(problem.geometry, 24, 18)
        got = fastconv.correlate2d(in1, in2, "same", boundary, 2 - 1j, method=plan)
        expected = signal.correlate2d(in1, in2, "same", boundary, 2 - 1j)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def _direct_and_fft(x, w, tiles=None, **options):
    """conv2d by the direct and the FFT strategy; ``tiles``: the FFT's (lh, lw) forced."""
    fft = "fft" if tiles is None else _forced_plan(_geometry(x, w, **options), *tiles)
    return (fastconv.conv2d(x, w, method="direct", **options),
            fastconv.conv2d(x, w, method=fft, **options))


def _same_non_finite(got, expected):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(got[np.isinf(expected)], expected[np.isinf(expected)])
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_non_finite_inputs_follow_the_direct_method(rng, padding_mode):
    x = rng.standard_normal((2, 2, 45, 38))
    x[0, 0, 3, 5] = np.nan
    x[0, 1, 20, 20] = np.inf
    x[0, 1, 21, 22] = -np.inf  # meets +Inf in some windows: NaN there
    x[1, 0, 44, 37] = np.inf  # a corner, mirrored by the padding
    x[1, 1, 10, 10] = np.inf
    w = rng.standard_normal((4, 1, 5, 4))
    w[1, 0, 2, 2] = 0.0  # Inf * 0 is NaN
    # (16, 12) tiles: non-finite samples in tile overlaps.
    expected, got = _direct_and_fft(x, w, tiles=(16, 12), padding=3, stride=(1, 2),
                                    dilation=(2, 1), groups=2, padding_mode=padding_mode)
    assert np.isnan(expected).any() and np.isinf(expected).any()
    _same_non_finite(got, expected)


def test_non_finite_weights_and_fill_follow_the_direct_method(rng):
    x = rng.standard_normal((1, 2, 30, 30))
    x[0, 0, :, 7] = 0.0  # Inf weight on a zero sample is NaN
    w = rng.standard_normal((2, 2, 3, 3))
    w[0, 1, 1, 1] = np.inf
    w[1, 0, 0, 2] = np.nan
    expected, got = _direct_and_fft(x, w, padding=1)
    _same_non_finite(got, expected)
    image = rng.standard_normal((25, 30))
    got = fastconv.correlate2d(image, np.ones((4, 4)), "same", "fill", np.nan, method="fft")
    expected = fastconv.correlate2d(image, np.ones((4, 4)), "same", "fill", np.nan,
                                    method="direct")
    _same_non_finite(got, expected)


def test_non_finite_complex_and_dense_cases_fall_back_to_direct(rng):
    image = rng.standard_normal((20, 20)) + 1j * rng.standard_normal((20, 20))
    image[5, 5] = complex(np.inf, 1.0)
    kernel = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    got = fastconv.correlate2d(image, kernel, method="fft")
    expected = fastconv.correlate2d(image, kernel, method="direct")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    x = np.full((1, 1, 20, 20), np.nan)
    x[0, 0, ::3, ::3] = 1.0
    expected, got = _direct_and_fft(x, rng.standard_normal((1, 1, 3, 3)))
    _same_non_finite(got, expected)


def test_too_many_channels_for_the_budget_is_declined():
    x = np.zeros((1, 64, 20, 20), np.float32)
    w = np.zeros((64, 64, 15, 15), np.float32)
    with fastconv.workspace_budget(2**16):
        problem, _ = conv2d_problem(x, w, None, 1, 0, 1, 1, "zeros")
        reason = REGISTRY["fft"].declines(problem.geometry, fastconv.get_workspace_budget())
        assert "workspace budget" in reason
        with pytest.raises(ValueError, match="set_workspace_budget"):
            fastconv.conv2d(x, w, method="fft")


@settings(max_examples=200, deadline=None)
@given(channels=st.sampled_from([1, 4, 64, 512]), out_channels=st.sampled_from([1, 8, 256]),
       height=st.integers(1, 3000), width=st.integers(1, 3000), kh=st.integers(1, 200),
       kw=st.integers(1, 200), padding=st.sampled_from([0, 3, "same", "full"]),
       stride=st.integers(1, 3), dtype=st.sampled_from([np.float32, np.complex128]),
       budget=st.sampled_from([2**16, 2**20, 2**24]))
def test_declines_exactly_when_no_tiling_fits(channels, out_channels, height, width, kh, kw,
                                              padding, stride, dtype, budget):
    """declines prices the shortest tiles without building the candidate lengths: it must agree
    with the search over them (one worker, one image, no wrap into the padding: a non-zero
    constant fill, padding mode "constant")."""
    try:
        geometry = fastconv.plan((1, channels, height, width), (out_channels, channels, kh, kw),
                                 dtype=dtype, padding=padding,
                                 stride=1 if padding == "same" else stride).geometry
    except ValueError:
        return  # the kernel does not fit the padded input
    declined = REGISTRY["fft"].declines(geometry, budget) is not None
    assert declined == (plan_tiles(replace(geometry, padding_mode="constant"), 1, budget) is None)


def test_single_tile_wraps_only_into_zero_padding(rng):
    # 'same' with zero padding needs only H + k//2 rows, not H + k - 1, in one tile.
    in1 = rng.standard_normal((64, 81))
    in2 = rng.standard_normal((15, 9))
    problem, _, _ = scipy_problem(in1, in2, "same", "fill", 0, False)
    tiling = plan_tiles(problem.geometry, 1, fastconv.get_workspace_budget())
    assert tiling.vh == 64 and tiling.lh < 64 + 14, tiling
    got = fastconv.correlate2d(in1, in2, "same", method="fft")
    np.testing.assert_allclose(got, signal.correlate2d(in1, in2, "same"), rtol=0, atol=1e-12)
    # A non-zero fill value cannot wrap: the planner uses the full length.
    filled, _, _ = scipy_problem(in1, in2, "same", "fill", 2.5, False)
    assert filled.geometry.padding_mode == "constant"
    assert plan_tiles(filled.geometry, 1, fastconv.get_workspace_budget()).lh >= 64 + 14
    got = fastconv.correlate2d(in1, in2, "same", "fill", 2.5, method="fft")
    np.testing.assert_allclose(got, signal.correlate2d(in1, in2, "same", "fill", 2.5), rtol=0,
                               atol=1e-12)


def test_threads_do_not_change_the_result(rng):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    x = rng.standard_normal((3, 2, 300, 280)).astype(np.float32)
    w = rng.standard_normal((4, 2, 17, 17)).astype(np.float32)
    _conv_and_check(x, w, padding="same", threads=2)
    # The plan depends on the thread count; with one tiling, every thread count gives the same bits.
    geometry = _geometry(x, w, padding="same")
    one = fastconv.conv2d(x, w, padding="same", method=_forced_plan(geometry, 64, 72, threads=1),
                          threads=1)
    two = fastconv.conv2d(x, w, padding="same", method=_forced_plan(geometry, 64, 72, threads=2),
                          threads=2)
    np.testing.assert_array_equal(one, two)


def test_next_fast_len_matches_scipy():
    from scipy.fft import next_fast_len as scipy_next_fast_len

    from fastconv.strategies.fft.runner import LONGEST_AXIS, next_fast_len

    for n in [*range(1, 3000), 4097, 65537, 1_000_003, 3**23 + 1, LONGEST_AXIS - 1, LONGEST_AXIS]:
        assert next_fast_len(n) == scipy_next_fast_len(n, real=True), n


def test_smooth_lengths_are_built_once():
    # The table of 2^a 3^b 5^c lengths takes about 2 ms to build: planning asks for it several
    # times per new geometry (a lost memo once cost every small FFT call 12 ms).
    assert runner._smooth_lengths() is runner._smooth_lengths()
