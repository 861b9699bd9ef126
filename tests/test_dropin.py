"""correlate2d / convolve2d against scipy.signal: same shapes, dtypes and values."""

import numpy as np
import pytest
from oracle import LOCAL_TOLERANCE, declined, normwise_bound
from scipy import signal

import fastconv
from fastconv._validate import scipy_problem

DTYPES = [np.int8, np.uint8, np.int32, np.int64, np.float32, np.float64, np.complex64,
          np.complex128]
MODES = ["full", "same", "valid"]
BOUNDARIES = ["fill", "pad", "wrap", "circular", "symm", "symmetric"]
# name: (in1 shape, in2 shape)
SHAPES = {
    "9x11-3x3": ((9, 11), (3, 3)),
    "9x11-4x2-even": ((9, 11), (4, 2)),
    "6x7-1x1": ((6, 7), (1, 1)),
    "5x5-5x5-equal": ((5, 5), (5, 5)),
    "4x5-7x8-kernel-larger": ((4, 5), (7, 8)),
    "3x2-9x13-kernel-much-larger": ((3, 2), (9, 13)),
    "1x40-1x6-one-row": ((1, 40), (1, 6)),
}
FUNCTIONS = {"correlate2d": (fastconv.correlate2d, signal.correlate2d),
             "convolve2d": (fastconv.convolve2d, signal.convolve2d)}


def _random(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        # Wide enough that int8/uint8 sums wrap around, as SciPy's do.
        low, high = max(info.min, -100), min(info.max, 200)
        return rng.integers(low, high, shape).astype(dtype)
    data = rng.standard_normal(shape)
    if dtype.kind == "c":
        data = data + 1j * rng.standard_normal(shape)
    return data.astype(dtype)


def assert_same_as_scipy(got, expected, scale, method):
    assert got.dtype == expected.dtype, f"dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"shape {got.shape} != {expected.shape}"
    if got.dtype.kind in "iu":
        np.testing.assert_array_equal(got, expected)
        return
    # SciPy computes in the same precision, so both carry an error of the same bound.
    bound = 2 * LOCAL_TOLERANCE[got.dtype] * scale + normwise_bound(method, got.dtype, scale)
    assert np.all(np.abs(got - expected) <= bound), np.max(np.abs(got - expected) - bound)


@pytest.mark.parametrize("shapes", list(SHAPES))
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("function", list(FUNCTIONS))
@pytest.mark.parametrize("method", fastconv.METHODS)
def test_matches_scipy(method, function, dtype, mode, boundary, shapes, rng):
    ours, theirs = FUNCTIONS[function]
    shape1, shape2 = SHAPES[shapes]
    if mode == "valid" and shape2[0] > shape1[0] and np.dtype(dtype).kind == "c":
        pytest.skip("SciPy conjugates swapped complex 'valid' results: see test_swapped_complex")
    in1, in2 = _random(rng, shape1, dtype), _random(rng, shape2, dtype)
    fill = 3 if np.dtype(dtype).kind in "iu" else 1.5
    problem = scipy_problem(in1, in2, mode, boundary, fill, function == "convolve2d")[0]
    if declined(method, problem.geometry):
        with pytest.raises(ValueError, match=f"`method` '{method}' cannot run this problem"):
            ours(in1, in2, mode, boundary, fill, method=method)
        return
    got = ours(in1, in2, mode, boundary, fill, method=method)
    expected = theirs(in1, in2, mode, boundary, fill)
    scale = None
    if got.dtype.kind in "fc":
        scale = np.abs(theirs(np.abs(in1), np.abs(in2), mode, boundary, abs(fill)))
    assert_same_as_scipy(got, expected, scale, method)


@pytest.mark.parametrize("method", fastconv.METHODS)
def test_mixed_dtypes_follow_scipy(method, rng):
    pairs = [(np.int8, np.uint8), (np.uint8, np.float32), (np.int32, np.float32),
             (np.float32, np.float64), (np.int16, np.complex64), (np.uint64, np.int64),
             (np.float16, np.float64)]
    for dtype1, dtype2 in pairs:
        in1, in2 = _random(rng, (6, 7), dtype1), _random(rng, (3, 2), dtype2)
        if declined(method, scipy_problem(in1, in2, "full", "fill", 0, False)[0].geometry):
            continue
        got = fastconv.correlate2d(in1, in2, method=method)
        expected = signal.correlate2d(in1, in2)
        assert got.dtype == expected.dtype, (dtype1, dtype2)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_integer_wraparound_like_scipy():
    image = np.full((3, 3), 100, np.uint8)
    got = fastconv.correlate2d(image, np.ones((3, 3), np.uint8), "valid")
    assert got.dtype == np.uint8 and got[0, 0] == (900 % 256) == signal.correlate2d(
        image, np.ones((3, 3), np.uint8), "valid")[0, 0]


@pytest.mark.parametrize("method", fastconv.METHODS)
def test_swapped_complex_valid_is_the_true_correlation(method, rng):
    small = _random(rng, (3, 4), np.complex128)
    big = _random(rng, (6, 9), np.complex128)
    if declined(method, scipy_problem(small, big, "valid", "fill", 0, False)[0].geometry):
        pytest.skip(f"{method} declines complex data")
    got = fastconv.correlate2d(small, big, "valid", method=method)
    expected = signal.correlate(small, big, "valid", method="direct")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # SciPy's correlate2d returns the conjugate here (a known SciPy bug).
    np.testing.assert_allclose(got, np.conj(signal.correlate2d(small, big, "valid")),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_fillvalue_casting_follows_scipy(function):
    ours, theirs = FUNCTIONS[function]
    in1 = np.arange(12, dtype=np.int8).reshape(3, 4)
    in2 = np.ones((2, 2), np.int8)
    np.testing.assert_array_equal(ours(in1, in2, fillvalue=2.7), theirs(in1, in2, fillvalue=2.7))
    for fill in (np.array([[5]], np.int8), [[5]], np.int64(5), True):
        np.testing.assert_array_equal(ours(in1, in2, fillvalue=fill),
                                      theirs(in1, in2, fillvalue=fill))
    # fillvalue is ignored (not even checked) unless boundary='fill'.
    np.testing.assert_array_equal(ours(in1, in2, boundary="wrap", fillvalue=[1, 2]),
                                  theirs(in1, in2, boundary="wrap", fillvalue=[1, 2]))


def test_lists_and_longdouble(rng):
    assert fastconv.correlate2d([[1, 2], [3, 4]], [[1]]).dtype == signal.correlate2d(
        [[1, 2], [3, 4]], [[1]]).dtype
    in1 = rng.standard_normal((5, 6)).astype(np.longdouble)
    got = fastconv.convolve2d(in1, in1[:2, :3], "same", "symm")
    assert got.dtype == np.longdouble
    np.testing.assert_array_equal(got, signal.convolve2d(in1, in1[:2, :3], "same", "symm"))


def test_large_image_against_scipy(rng):
    in1 = rng.standard_normal((150, 1100)).astype(np.float32)  # rows wider than a column chunk
    in2 = rng.standard_normal((7, 6)).astype(np.float32)
    for boundary in ("fill", "wrap", "symm"):
        got = fastconv.correlate2d(in1, in2, "same", boundary)
        expected = signal.correlate2d(in1, in2, "same", boundary)
        scale = signal.correlate2d(np.abs(in1), np.abs(in2), "same", boundary)
        assert_same_as_scipy(got, expected, scale, "direct")
