"""fastconv.ndimage against scipy.ndimage (SciPy 1.17 semantics): modes, origins, axes, dtypes,
outputs, errors."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import assert_close_nd
from scipy import ndimage as scipy_ndimage
from scipy import signal as scipy_signal

from fastconv import ndimage

MODES = ["reflect", "grid-mirror", "mirror", "nearest", "wrap", "grid-wrap", "constant",
         "grid-constant"]
NUMPY_MODES = {"reflect": "symmetric", "grid-mirror": "symmetric", "mirror": "reflect",
               "nearest": "edge", "wrap": "wrap", "grid-wrap": "wrap", "constant": "constant",
               "grid-constant": "constant"}
SHAPES = [((40,), (7,)), ((5,), (8,)), ((12, 15), (3, 4)), ((4, 5), (6, 7)),
          ((6, 7, 8), (3, 2, 4)), ((5, 4, 6), (2, 5, 3))]


def _ids(shapes):
    return "x".join(map(str, shapes[0])) + "-" + "x".join(map(str, shapes[1]))


def _data(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 100, shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return (10 * rng.standard_normal(shape)).astype(dtype)


def _origins(kernel, which):
    """Per-axis origins: the smallest, the largest or alternating extremes."""
    low = [-(k // 2) for k in kernel]
    high = [(k - 1) // 2 for k in kernel]
    if which == "low":
        return low
    if which == "high":
        return high
    return [lo if i % 2 else hi for i, (lo, hi) in enumerate(zip(low, high, strict=True))]


def _check(name, x, w, **kwargs):
    expected = getattr(scipy_ndimage, name)(x, w, **kwargs)
    got = getattr(ndimage, name)(x, w, **kwargs)
    scale = None
    if expected.dtype.kind in "fc":
        options = {k: v for k, v in kwargs.items() if k != "output"}
        options["cval"] = abs(kwargs.get("cval", 0.0))
        scale = getattr(scipy_ndimage, name)(np.abs(x).astype(np.float64),
                                             np.abs(w).astype(np.float64), **options)
    assert_close_nd(got, expected, scale, expected.dtype)
    return got


@pytest.mark.parametrize("shapes", SHAPES, ids=_ids)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["correlate", "convolve"])
def test_modes_ranks_origins(rng, shapes, mode, name):
    x, w = _data(rng, shapes[0], np.float64), rng.standard_normal(shapes[1])
    for which in ("low", "high", "mixed"):
        _check(name, x, w, mode=mode, cval=2.5, origin=_origins(w.shape, which))


@pytest.mark.parametrize("dtype", ["float32", "uint8", "int16", "int64", "complex64",
                                   "complex128", "bool"])
@pytest.mark.parametrize("shapes", [SHAPES[0], SHAPES[2], SHAPES[4]], ids=_ids)
@pytest.mark.parametrize("name", ["correlate", "convolve"])
def test_dtypes(rng, dtype, shapes, name):
    x = _data(rng, shapes[0], dtype)
    w = rng.integers(-3, 4, shapes[1]).astype(np.float64)  # integer sums: exact in any order
    _check(name, x, w, mode="nearest")


@pytest.mark.parametrize("weights", ["complex128", "float32", "int8"])
def test_weight_dtypes(rng, weights):
    x = _data(rng, (9, 10), np.float64)
    w = _data(rng, (3, 2), weights)
    for name in ("correlate", "convolve"):
        _check(name, x, w, mode="wrap")


@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2), (-1, 0), (1, 2)],
                         ids=lambda a: "axes" + "".join(map(str, a)))
@pytest.mark.parametrize("name", ["correlate", "convolve"])
def test_axes(rng, axes, name):
    x = _data(rng, (6, 7, 8), np.float64)
    w = rng.standard_normal((3, 4, 2)[:len(axes)])
    # SciPy: the weights' axes follow the sorted axes; the i-th origin belongs to axes[i]
    size = dict(zip(sorted(n % 3 for n in axes), w.shape, strict=True))
    origin = _origins([size[n % 3] for n in axes], "mixed")
    _check(name, x, w, axes=axes, mode="mirror", origin=origin)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["correlate1d", "convolve1d"])
def test_one_axis(rng, axis, mode, name):
    x = _data(rng, (6, 7, 8), np.float64)
    for taps, origin in ((4, -2), (4, 1), (5, 0), (1, 0)):
        w = rng.standard_normal(taps)
        expected = getattr(scipy_ndimage, name)(x, w, axis, mode=mode, cval=-1.0, origin=origin)
        got = getattr(ndimage, name)(x, w, axis, mode=mode, cval=-1.0, origin=origin)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-10)


def test_mode_sequence_pads_each_axis_its_own_way(rng):
    x = _data(rng, (7, 8, 9), np.float64)
    w = rng.standard_normal((3, 4, 5))
    modes = ["wrap", "constant", "mirror"]
    origins = [1, -2, 0]
    got = ndimage.correlate(x, w, mode=modes, cval=3.0, origin=origins)
    pads = [(k // 2 + o, k - 1 - k // 2 - o) for k, o in zip(w.shape, origins, strict=True)]
    padded = x
    for axis, (pad, mode) in enumerate(zip(pads, modes, strict=True)):
        widths = [(0, 0)] * 3
        widths[axis] = pad
        extra = {"constant_values": 3.0} if mode == "constant" else {}
        padded = np.pad(padded, widths, NUMPY_MODES[mode], **extra)
    expected = scipy_signal.correlate(padded, w, "valid", method="direct")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-10)
    # one mode on every axis equals SciPy's
    same = ndimage.correlate(x, w, mode=["nearest"] * 3)
    np.testing.assert_allclose(same, scipy_ndimage.correlate(x, w, mode="nearest"), atol=1e-10)


def test_output_array_and_dtype(rng):
    x = _data(rng, (10, 11), np.float64)
    w = rng.standard_normal((3, 3))
    out = np.empty((10, 11), np.float32)
    result = ndimage.correlate(x, w, output=out)
    assert result is out
    np.testing.assert_allclose(out, scipy_ndimage.correlate(x, w, output=np.float32), rtol=1e-6,
                               atol=1e-5)
    for output in (np.int16, "int16", np.dtype("uint8")):
        _check("correlate", x, w, output=output)
    in_place = x.copy()
    ndimage.convolve(in_place, w, output=in_place)
    np.testing.assert_allclose(in_place, scipy_ndimage.convolve(x, w), atol=1e-10)


def test_complex_output_rules(rng):
    x = _data(rng, (8, 9), np.float64)
    w = _data(rng, (3, 2), np.complex128)
    with pytest.warns(UserWarning, match="promoting specified output dtype to complex"):
        got = ndimage.correlate(x, w, output=np.float32)
    assert got.dtype == np.complex64
    _check("correlate", x.astype(np.complex64), w, cval=1 + 2j, mode="constant")


def test_integer_output_truncates_and_wraps():
    x = np.full((4, 4), 200, np.uint8)
    got = ndimage.correlate(x, np.ones((3, 3)), mode="nearest")
    np.testing.assert_array_equal(got, scipy_ndimage.correlate(x, np.ones((3, 3)),
                                                               mode="nearest"))
    np.testing.assert_array_equal(ndimage.correlate1d(np.array([7, 8]), [0.999], mode="nearest"),
                                  [6, 7])


def test_empty_and_float16(rng):
    empty = np.zeros((0, 3))
    assert ndimage.correlate(empty, np.ones((2, 2))).shape == (0, 3)
    h = _data(rng, (6, 7), np.float16)
    got = ndimage.correlate(h, np.ones((2, 2)))
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, scipy_ndimage.correlate(h.astype(np.float32),
                                                            np.ones((2, 2))), rtol=2e-3)


def test_large_volume_chunks_depth(rng):
    import fastconv

    x = _data(rng, (20, 30, 40), np.float64)
    w = rng.standard_normal((5, 3, 3))
    with fastconv.workspace_budget(2**16):  # one output depth per gathered chunk
        got = ndimage.correlate(x, w, mode="reflect")
    np.testing.assert_allclose(got, scipy_ndimage.correlate(x, w, mode="reflect"), atol=1e-10)


BAD_CALLS = [  # (function, args, kwargs, SciPy's exception, words of the message)
    ("correlate", (np.ones((3, 3)), np.ones((2, 2))), {"mode": "nope"}, RuntimeError,
     "`mode` must be one of"),
    ("correlate1d", (np.ones((3, 3)), np.ones(2)), {"mode": ["wrap"]}, RuntimeError,
     "`mode` must be one of"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2))), {"origin": 1}, ValueError,
     "`origin` must be between -1 and 0"),
    ("convolve", (np.ones((3, 3)), np.ones((3, 3))), {"origin": [0, -2]}, ValueError,
     "`origin` must be between -1 and 1"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2))), {"origin": 0.5}, ValueError,
     "`origin` must be a whole number of taps"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2))), {"origin": [0, 0, 0]}, RuntimeError,
     "sequence argument must have length equal to input rank"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2, 2))), {}, RuntimeError,
     "weights.ndim (3) must match len(axes) (2)"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 0))), {}, RuntimeError, "at least one tap"),
    ("correlate1d", (np.ones((3, 3)), np.ones((2, 2))), {}, RuntimeError,
     "`weights` must be a non-empty 1-D array"),
    ("correlate1d", (np.ones((3, 3)), np.ones(2)), {"axis": 5}, ValueError, "axis 5"),
    ("correlate", (np.ones((3, 3)), np.ones(2)), {"axes": (1.5,)}, TypeError,
     "cannot be interpreted as an integer"),
    ("correlate", (np.ones((3, 3)), np.ones(2)), {"axes": (3,)}, ValueError, "out of range"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2))), {"axes": (1, -1)}, ValueError,
     "axes must be unique"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2))), {"output": np.ones(3)}, RuntimeError,
     "`output` must have the input's shape"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2))), {"output": "U5"}, RuntimeError,
     "`output` must have a numeric dtype"),
    ("correlate", (np.ones((3, 3)) + 0j, np.ones((2, 2))), {"output": np.ones((3, 3))},
     RuntimeError, "`output` must have a complex dtype"),
    ("correlate", (np.ones((3, 3)) + 0j, np.ones((2, 2))), {"output": "float64"},
     RuntimeError, "`output` must have a complex dtype"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2))), {"cval": 1j}, TypeError,
     "`cval` must be real for real input"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2)) + 0j), {"cval": 1j}, ValueError,
     "`cval` must be real for real input"),
    ("correlate", (np.ones((3, 3)), np.ones((2, 2))), {"cval": "a"}, TypeError,
     "`cval` must be a real or complex scalar"),
    ("correlate", (np.ones((3, 3), np.longdouble), np.ones((2, 2))), {}, RuntimeError,
     "`input` must have a dtype of at most 64-bit"),
]


@pytest.mark.parametrize("call", BAD_CALLS, ids=lambda c: f"{c[0]}-{c[4]}")
def test_errors_match_scipy(call):
    name, args, kwargs, exception, words = call
    with pytest.raises(exception) as raised:
        getattr(ndimage, name)(*args, **kwargs)
    assert words in str(raised.value)
    with pytest.raises(exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(scipy_ndimage, name)(*args, **kwargs)


def test_output_that_is_not_an_array():
    with pytest.raises(TypeError, match="`output` must be None, a dtype or a NumPy array"):
        ndimage.correlate(np.ones((3, 3)), np.ones((2, 2)), output=[0] * 9)


def test_origin_that_is_not_a_number():
    with pytest.raises(TypeError, match="`origin` must be an int or a sequence of ints"):
        ndimage.correlate(np.ones((3, 3)), np.ones((2, 2)), origin="a")


def test_non_numeric_input():
    with pytest.raises(TypeError, match="`input` must be a numeric array"):
        ndimage.correlate(np.array([["a"]]), np.ones((1, 1)))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), rank=st.integers(1, 3), mode=st.sampled_from(MODES),
       convolve=st.booleans())
def test_property_matches_scipy(data, rank, mode, convolve):
    shape = data.draw(st.tuples(*[st.integers(1, 7)] * rank))
    kernel = data.draw(st.tuples(*[st.integers(1, 9)] * rank))
    origin = [data.draw(st.integers(-(k // 2), (k - 1) // 2)) for k in kernel]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x, w = _data(rng, shape, np.float64), rng.standard_normal(kernel)
    _check("convolve" if convolve else "correlate", x, w, mode=mode, cval=-1.5, origin=origin)


# ---- gaussian_filter, gaussian_filter1d ------------------------------------------------------

GAUSSIAN_OPTIONS = [
    dict(sigma=1.5),
    dict(sigma=2, order=1, mode="nearest"),
    dict(sigma=(1, 0, 2, 1.5), order=(0, 2, 1, 0), mode="wrap"),  # sigma 0: axis not filtered
    dict(sigma=3, truncate=2.0, mode="constant", cval=5.0),
    dict(sigma=(0.8, 1.2, 1, 2), radius=(4, 2, 3, 1), mode=("mirror", "reflect", "wrap",
                                                            "nearest")),
    dict(sigma=1, axes=(-1, 0)),
]


def _per_rank(options, rank):
    """``options`` with its per-axis sequences cut to ``rank`` filtered axes."""
    count = len(options.get("axes", range(rank)))
    return {key: value[:count] if isinstance(value, tuple) and key != "axes" else value
            for key, value in options.items()}


@pytest.mark.parametrize("options", GAUSSIAN_OPTIONS, ids=lambda o: "-".join(map(str, o)))
@pytest.mark.parametrize("dtype", ["float64", "float32", "uint8", "int16", "complex128"])
@pytest.mark.parametrize("shape", [(60,), (30, 41), (12, 15, 17), (5, 6, 7, 8)], ids=str)
def test_gaussian_filter_matches_scipy(rng, shape, dtype, options):
    x = _data(rng, shape, dtype)
    kwargs = _per_rank(options, len(shape))
    if len(shape) == 1 and "axes" in kwargs:
        kwargs["axes"] = (0,)
    expected = scipy_ndimage.gaussian_filter(x, **kwargs)
    got = ndimage.gaussian_filter(x, **kwargs)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if expected.dtype.kind in "iu":  # the same axes in turn, truncated after each
        np.testing.assert_array_equal(got, expected)
        return
    # Derivatives of order <= 2 with sigma >= 0.8: each axis's weights sum to at most 2 in
    # magnitude; float32 images are summed in float32 (SciPy: float64).
    unit = 2e-6 if dtype == "float32" else 1e-14
    bound = unit * np.abs(x).max() * 2.0 ** len(shape) + unit * abs(kwargs.get("cval", 0))
    np.testing.assert_allclose(got, expected, rtol=0, atol=bound)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
@pytest.mark.parametrize("mode", ["reflect", "constant", "wrap"])
def test_gaussian_filter1d_matches_scipy(rng, order, mode):
    x = _data(rng, (9, 50), "float64")
    for axis in (0, -1):
        got = ndimage.gaussian_filter1d(x, 1.7, axis, order, mode=mode, cval=1.5)
        expected = scipy_ndimage.gaussian_filter1d(x, 1.7, axis, order, mode=mode, cval=1.5)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * np.abs(x).max())


def test_gaussian_filter_outputs_and_separable_passes(rng):
    image = _data(rng, (300, 320), "float32")
    out = np.empty(image.shape, np.float64)
    got = ndimage.gaussian_filter(image, 4, output=out)
    assert got is out
    np.testing.assert_allclose(out, scipy_ndimage.gaussian_filter(image, 4, output=np.float64),
                               rtol=0, atol=1e-12 * np.abs(image).max())
    # Float results: the product of the axes' weights, found separable by the planner.
    import fastconv

    ndimage.gaussian_filter(image, 4)
    assert fastconv.last_method() == "separable"
    untouched = ndimage.gaussian_filter(image, 0)
    assert untouched is not image and np.array_equal(untouched, image)
    written = np.zeros(image.shape, np.int32)
    assert ndimage.gaussian_filter(image, (0, 0), output=written) is written
    np.testing.assert_array_equal(written, scipy_ndimage.gaussian_filter(image, 0,
                                                                         output=np.int32))


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    (dict(sigma="a"), TypeError, "`sigma` must be a real number or one per filtered axis"),
    (dict(sigma=np.nan), ValueError, "`sigma` must be finite; got nan"),
    (dict(sigma=1, order=-1), ValueError, "`order` must be non-negative; got -1"),
    (dict(sigma=1, order=1.5), TypeError, "`order` must be an int or one per filtered axis"),
    (dict(sigma=1, radius=-2), ValueError, "`radius` must be non-negative"),
    (dict(sigma=1, radius=2.5), ValueError, "`radius` must be None, an int or one per"),
    (dict(sigma=1, truncate=np.inf), ValueError, "`truncate` must be a finite real number"),
    (dict(sigma=(1, 2, 3)), RuntimeError, "`sigma`: sequence argument must have length"),
    (dict(sigma=1, mode="bogus"), RuntimeError, "`mode` must be one of"),
])
def test_gaussian_filter_errors(kwargs, error, words):
    with pytest.raises(error) as raised:
        ndimage.gaussian_filter(np.ones((4, 5)), **kwargs)
    assert words in str(raised.value)
