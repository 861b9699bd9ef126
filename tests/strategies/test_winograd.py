"""The Winograd strategy: random 3x3 stride-1 layers against the oracle, tile blocks at the
workspace budget's edge, the exact fallback for non-finite data, and what it declines."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import assert_close, reference_conv2d

import fastconv
from fastconv._validate import conv2d_problem
from fastconv.core.costing import ITEMS_PER_THREAD
from fastconv.core.geometry import PADDING_MODES, Geometry
from fastconv.strategies.winograd import runner


def _check(x, w, bias, padding, groups=1, padding_mode="zeros"):
    """``padding`` (top, bottom, left, right)."""
    top, bottom, left, right = padding
    got = fastconv.conv2d(x, w, bias, padding=((top, bottom), (left, right)), groups=groups,
                          padding_mode=padding_mode, method="winograd")
    options = dict(padding=padding, groups=groups, padding_mode=padding_mode)
    expected = reference_conv2d(x, w, bias, **options)
    scale = reference_conv2d(abs(x), abs(w), abs(bias), **options)
    assert_close(got, expected, scale, x.dtype, "winograd")


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3), groups=st.integers(1, 3), cg=st.integers(1, 5), kg=st.integers(1, 4),
    height=st.integers(1, 19), width=st.integers(1, 23),
    padding=st.tuples(*[st.integers(0, 3)] * 4),
    padding_mode=st.sampled_from(PADDING_MODES),
    dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1),
)
def test_random_3x3_layers_match_the_oracle(batch, groups, cg, kg, height, width, padding,
                                             padding_mode, dtype, seed):
    top, bottom, left, right = padding
    if height + top + bottom < 3 or width + left + right < 3:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, cg * groups, height, width)).astype(dtype)
    w = rng.standard_normal((kg * groups, cg, 3, 3)).astype(dtype)
    bias = rng.standard_normal(kg * groups).astype(dtype)
    _check(x, w, bias, padding, groups, padding_mode)


@pytest.mark.parametrize("budget_kib", [64, 256, 4096])
def test_tile_blocks_at_the_budget_edge(budget_kib, rng):
    # 64 KiB leaves room for a few tiles of one tile row per item (column blocks); 256 KiB for
    # a few rows; 4 MiB for blocks of rows across images. Odd sizes leave partial tiles.
    x = rng.standard_normal((3, 8, 29, 37))
    w = rng.standard_normal((6, 8, 3, 3))
    bias = rng.standard_normal(6)
    with fastconv.workspace_budget(budget_kib * 2**10):
        geometry = conv2d_problem(x, w, bias, 1, 1, 1, 1, "zeros")[0].geometry
        tiling = runner.plan_tiling(geometry, 2, budget_kib * 2**10)
        assert (tiling.rows == 1 and tiling.cols < 19) == (budget_kib == 64)
        _check(x, w, bias, (1, 1, 1, 1))


@pytest.mark.parametrize("shape", [(8, 256, 14, 256), (2, 64, 28, 64), (8, 64, 56, 64),
                                   (1, 256, 14, 256), (3, 32, 16, 8)])
def test_tile_rows_are_shared_evenly(shape):
    """Rows of tiles cut into items of equal size (to a row), a multiple of the threads when
    there are few: items of 32 and 24 tile rows on two threads ran 1.7x slower than 28 and 28."""
    batch, channels, size, kg = shape
    groups = 4 if kg == 8 else 1
    geometry = Geometry(batch, channels, size, size, kg * groups, 3, 3, (1, 1, 1, 1), (1, 1),
                        (1, 1), groups, "zeros", np.dtype(np.float32))
    tiling = runner.plan_tiling(geometry, 2, 64 * 2**20)
    tile_rows = batch * ((size + 1) // 2)
    items = -(-tile_rows // tiling.rows)
    assert tiling.rows * items - tile_rows < items, tiling
    assert items * groups >= 2 * ITEMS_PER_THREAD or items * groups % 2 == 0 or (
        items == tile_rows), tiling
    if shape == (8, 256, 14, 256):
        assert tiling.rows == 28


def test_workspace_stays_within_the_budget(rng):
    g = conv2d_problem(rng.standard_normal((8, 64, 56, 56)), rng.standard_normal((64, 64, 3, 3)),
                       None, 1, 1, 1, 1, "zeros")[0].geometry
    for budget in (2**20, 2**22, 2**26):
        tiling = runner.plan_tiling(g, 2, budget)
        buffers = sum(int(np.prod(shape)) for shape in tiling.buffer_shapes(g)) * 8
        assert runner.fixed_bytes(g) + buffers <= budget


@pytest.mark.parametrize("where", ["input", "weight", "fill"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data_gives_the_direct_results(where, bad, rng):
    x = rng.standard_normal((2, 3, 12, 13))
    w = rng.standard_normal((4, 3, 3, 3))
    if where == "input":
        x[1, 2, 5, 6] = bad
    if where == "weight":
        w[2, 1, 0, 2] = bad
    if where == "fill":
        image, kernel = x[0, 0], w[0, 0]
        got = fastconv.correlate2d(image, kernel, "same", fillvalue=bad, method="winograd")
        expected = fastconv.correlate2d(image, kernel, "same", fillvalue=bad, method="direct")
    else:
        got = fastconv.conv2d(x, w, padding=1, method="winograd")
        expected = fastconv.conv2d(x, w, padding=1, method="direct")
    np.testing.assert_array_equal(got, expected)
    assert not np.isfinite(got).all()


@pytest.mark.parametrize(
    ("dtype", "shape", "options", "message"),
    [
        (np.int32, (3, 3), {}, "integer data: Winograd runs on float32 and float64 only; use "
                               "'direct'"),
        (np.complex64, (3, 3), {}, "complex data: Winograd runs on float32 and float64 only; "
                                   "use 'direct' or 'im2col'"),
        (np.float32, (5, 5), {}, "it computes only 3x3 kernels with stride 1 and dilation 1"),
        (np.float32, (3, 3), {"stride": 2}, "it computes only 3x3 kernels with stride 1"),
        (np.float32, (3, 3), {"dilation": 2}, "it computes only 3x3 kernels with stride 1"),
    ],
)
def test_declines_with_a_reason(dtype, shape, options, message):
    forced = f"`method` 'winograd' cannot run this problem: {message}"
    if options:
        with pytest.raises(ValueError, match=forced):
            fastconv.conv2d(np.ones((1, 2, 12, 12), dtype), np.ones((2, 2) + shape, dtype),
                            method="winograd", **options)
    else:
        with pytest.raises(ValueError, match=forced):
            fastconv.correlate2d(np.ones((12, 12), dtype), np.ones(shape, dtype),
                                 method="winograd")
    plan = fastconv.plan((1, 2, 12, 12), (2, 2) + shape, dtype=np.float32, **options)
    assert plan.method != "winograd"
    if options or shape != (3, 3):
        assert plan.candidate("winograd").declined.startswith(message)


def test_transformed_weights_beyond_the_budget_are_declined():
    with fastconv.workspace_budget(2**20):
        with pytest.raises(ValueError, match="its transformed weights and buffers do not fit the "
                                             "workspace budget of 1.0 MiB; raise it"):
            fastconv.conv2d(np.ones((1, 128, 8, 8)), np.ones((128, 128, 3, 3)),
                            method="winograd")
