"""Property tests: random geometries against the SciPy oracle, for every registered method."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import assert_close, declined, reference_conv2d
from scipy import signal

import fastconv
from fastconv._validate import conv2d_problem, scipy_problem
from fastconv.core.geometry import PADDING_MODES

METHOD = st.sampled_from(fastconv.METHODS)


@st.composite
def conv_problems(draw):
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = tuple(draw(st.integers(0, 4)) for _ in range(4))
    height = draw(st.integers(max(1, dh * (kh - 1) + 1 - pad[0] - pad[1]), 12))
    width = draw(st.integers(max(1, dw * (kw - 1) + 1 - pad[2] - pad[3]), 40))
    return dict(
        input_shape=(draw(st.integers(1, 2)), cg * groups, height, width),
        weight_shape=(kg * groups, cg, kh, kw),
        groups=groups,
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        dilation=(dh, dw),
        padding=pad,
        padding_mode=draw(st.sampled_from(PADDING_MODES)),
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=60, deadline=None)
@given(problem=conv_problems(), method=METHOD)
def test_conv2d_matches_oracle(problem, method):
    rng = np.random.default_rng(problem["seed"])
    dtype = problem["dtype"]
    x = rng.standard_normal(problem["input_shape"]).astype(dtype)
    w = rng.standard_normal(problem["weight_shape"]).astype(dtype)
    bias = rng.standard_normal(problem["weight_shape"][0]).astype(dtype)
    top, bottom, left, right = problem["padding"]
    options = dict(stride=problem["stride"], dilation=problem["dilation"],
                   groups=problem["groups"], padding_mode=problem["padding_mode"])
    padding = ((top, bottom), (left, right))
    geometry = conv2d_problem(x, w, bias, options["stride"], padding, options["dilation"],
                              options["groups"], options["padding_mode"])[0].geometry
    if declined(method, geometry):
        with pytest.raises(ValueError, match=f"`method` '{method}' cannot run this problem"):
            fastconv.conv2d(x, w, bias, padding=padding, method=method, **options)
        return
    got = fastconv.conv2d(x, w, bias, padding=padding, method=method, **options)
    expected = reference_conv2d(x, w, bias, padding=problem["padding"], **options)
    scale = reference_conv2d(abs(x), abs(w), abs(bias), padding=problem["padding"], **options)
    assert_close(got, expected, scale, dtype, method)


@settings(max_examples=60, deadline=None)
@given(
    shape1=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    shape2=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    mode=st.sampled_from(["full", "same", "valid"]),
    boundary=st.sampled_from(["fill", "wrap", "symm"]),
    convolve=st.booleans(),
    dtype=st.sampled_from([np.int16, np.int64, np.uint8]),
    seed=st.integers(0, 2**32 - 1),
    method=METHOD,
)
def test_integer_dropins_equal_scipy_exactly(shape1, shape2, mode, boundary, convolve, dtype, seed,
                                             method):
    if mode == "valid" and not (
        all(a >= b for a, b in zip(shape1, shape2, strict=True))
        or all(b >= a for a, b in zip(shape1, shape2, strict=True))
    ):
        return
    rng = np.random.default_rng(seed)
    in1 = rng.integers(0, 120, shape1).astype(dtype)
    in2 = rng.integers(0, 120, shape2).astype(dtype)
    if declined(method, scipy_problem(in1, in2, mode, boundary, 7, convolve)[0].geometry):
        return
    name = "convolve2d" if convolve else "correlate2d"
    expected = getattr(signal, name)(in1, in2, mode, boundary, 7)
    got = getattr(fastconv, name)(in1, in2, mode, boundary, 7, method=method)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
