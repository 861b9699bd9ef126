"""Adversarial arguments: extreme integers and junk values for every argument of every public
function give either a correct result or a TypeError/ValueError whose message names the argument.

One argument at a time is replaced in a small valid call (the others stay valid, so a result can
be checked against the oracle). The reproductions of issue 22 are tested one by one below.
"""

import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import assert_close, reference_conv2d
from scipy import signal

import fastconv
from fastconv._validate import INDEX_LIMIT, conv2d_problem, int_pair, parse_padding

EXTREME_INTS = [0, 1, -1, 2, 3, 2**31 - 1, 2**31, 2**32, 2**62, 2**62 + 1, 2**63 - 1, 2**63,
                2**64, 2**70, 10**30, -(2**63)]
JUNK = [None, "ab", "", "same", "zeros", "elementwise", b"x", 1.5, float("nan"), float("inf"),
        True, False,
        np.int64(2), np.int8(-1), np.uint64(2**63), np.float32(2), np.array([1, 2]),
        np.array("zeros"), np.array(2), [1], [], (1, 2, 3), ((1, 2),), ((1, 2), (3, "a")), {},
        object(), 1j]

extreme = st.sampled_from(EXTREME_INTS)
values = st.one_of(
    st.sampled_from(EXTREME_INTS + JUNK),
    st.tuples(extreme, extreme),
    st.tuples(st.tuples(extreme, extreme), st.tuples(extreme, extreme)),
)

X = np.random.default_rng(1).standard_normal((1, 2, 5, 6))
W = np.random.default_rng(2).standard_normal((2, 2, 2, 3))
B = np.array([0.5, -1.0])
CONV2D = dict(input=X, weight=W, bias=B, stride=1, padding=0, dilation=1, groups=1,
              padding_mode="zeros", method="auto", threads=None, persist=None,
              accuracy="normwise")
A2 = np.random.default_rng(3).standard_normal((5, 6))
K2 = np.random.default_rng(4).standard_normal((2, 3))
DROPIN = dict(in1=A2, in2=K2, mode="full", boundary="fill", fillvalue=0, method="auto",
              threads=None, persist=None, accuracy="normwise")
PLAN = dict(input_shape=(1, 2, 5, 6), weight_shape=(2, 2, 2, 3), dtype=np.float64, stride=1,
            padding=0, dilation=1, groups=1, padding_mode="zeros", method="auto", threads=None,
            accuracy="normwise")
OUTPUT_SHAPE = dict(input_shape=(1, 2, 5, 6), weight_shape=(2, 2, 2, 3), stride=1, padding=0,
                    dilation=1)
# Messages of SciPy's own wording (the drop-ins raise them unchanged) and the word each uses for
# the argument.
SCIPY_WORDS = {"in1": "in1|inputs", "in2": "in2|inputs", "mode": "mode", "boundary": "boundary",
               "fillvalue": "fillvalue"}
# A shape that does not match the other one may be reported as the other one's error.
PAIRS = {"input": "input|weight", "weight": "input|weight", "input_shape":
         "input_shape|weight_shape", "weight_shape": "input_shape|weight_shape"}
# Counts of outcomes per function (read by the report, printed with -s).
OUTCOMES = {}


def _names(message, name):
    word = SCIPY_WORDS.get(name) or PAIRS.get(name, name)
    return re.search(rf"\b({word})\b", message) is not None


def _record(function, outcome):
    OUTCOMES[function, outcome] = OUTCOMES.get((function, outcome), 0) + 1


def _call(function, arguments):
    with warnings.catch_warnings():
        # NumPy's own warnings on casting junk fill values (as SciPy gets them too).
        warnings.simplefilter("ignore")
        return function(**arguments)


def _rejects(function, name, arguments):
    """The call's result, or None after checking that it raised TypeError/ValueError naming
    ``name``."""
    try:
        return _call(function, arguments)
    except (TypeError, ValueError) as error:
        assert _names(str(error), name), f"{type(error).__name__} does not name {name}: {error}"
        _record(function.__name__, type(error).__name__)
        return None


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(name=st.sampled_from(sorted(CONV2D)), value=values)
def test_conv2d_fuzz(name, value):
    arguments = CONV2D | {name: value}
    got = _rejects(fastconv.conv2d, name, arguments)
    if got is None:
        return
    _record("conv2d", "result")
    problem, _ = conv2d_problem(*(arguments[k] for k in (
        "input", "weight", "bias", "stride", "padding", "dilation", "groups", "padding_mode")))
    g = problem.geometry
    options = dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups,
                   padding_mode=g.padding_mode)
    x = np.asarray(arguments["input"], float)
    w = np.asarray(arguments["weight"], float)
    bias = None if arguments["bias"] is None else np.asarray(arguments["bias"], float)
    scale_bias = None if bias is None else abs(bias)
    expected = reference_conv2d(x, w, bias, **options)
    scale = reference_conv2d(abs(x), abs(w), scale_bias, **options)
    assert_close(got, expected, scale, g.dtype, "fft")  # the loosest bound: any method


@FUZZ
@given(name=st.sampled_from(sorted(DROPIN)), value=values,
       convolve=st.booleans())
def test_dropin_fuzz(name, value, convolve):
    arguments = DROPIN | {name: value}
    ours = fastconv.convolve2d if convolve else fastconv.correlate2d
    theirs = signal.convolve2d if convolve else signal.correlate2d
    got = _rejects(ours, name, arguments)
    scipy_arguments = {k: v for k, v in arguments.items() if k in SCIPY_WORDS}
    if name in SCIPY_WORDS:
        # Same outcome as SciPy: its result, or an error (SciPy's own type) where it raises.
        try:
            expected = _call(theirs, scipy_arguments)
        except (TypeError, ValueError, OverflowError):
            assert got is None, f"SciPy raises but fastconv returned for {name}={value!r}"
            return
        assert got is not None, f"fastconv raises where SciPy returns for {name}={value!r}"
    elif got is None:
        return
    else:
        expected = _call(theirs, scipy_arguments)
    _record(ours.__name__, "result")
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@FUZZ
@given(name=st.sampled_from(sorted(PLAN)), value=values,
       shape_value=st.sampled_from([v for v in EXTREME_INTS if v > 0]),
       shape_index=st.integers(0, 3))
def test_plan_fuzz(name, value, shape_value, shape_index):
    if name in ("input_shape", "weight_shape") and shape_index < 3:
        # Also extreme entries inside a shape tuple.
        value = list(PLAN[name])
        value[shape_index] = shape_value
        value = tuple(value)
    got = _rejects(fastconv.plan, name, PLAN | {name: value})
    if got is None:
        return
    _record("plan", "result")
    assert got.method in fastconv.METHODS
    assert all(c.declined or c.seconds is None or c.seconds >= 0 for c in got.candidates)
    repr(got)


@FUZZ
@given(name=st.sampled_from(sorted(OUTPUT_SHAPE)), value=values)
def test_output_shape_fuzz(name, value):
    arguments = OUTPUT_SHAPE | {name: value}
    got = _rejects(fastconv.output_shape, name, arguments)
    if got is None:
        return
    _record("output_shape", "result")
    assert all(type(n) is int and 0 < n <= INDEX_LIMIT for n in got)
    input_shape, weight_shape = tuple(arguments["input_shape"]), tuple(arguments["weight_shape"])
    (height, width), (kh, kw) = input_shape[-2:], weight_shape[-2:]
    stride = int_pair(arguments["stride"], "stride", 1)
    dilation = int_pair(arguments["dilation"], "dilation", 1)
    top, bottom, left, right = parse_padding(arguments["padding"], (kh, kw), stride, dilation)
    spatial = ((height + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1,
               (width + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1)
    lead = () if len(input_shape) == 2 else input_shape[:-3] + weight_shape[:1]
    assert got == lead + spatial


X16 = np.ones((16, 16), np.float32)
K3 = np.ones((3, 3), np.float32)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: fastconv.conv2d(X16, K3, padding="full", dilation=2**62), ValueError,
     r"`dilation` must be at most 2\*\*62 // \(kernel size - 1\) \(an index limit\); got "
     r"\(4611686018427387904, 4611686018427387904\)\. The weight is 3x3\."),
    (lambda: fastconv.conv2d(X16, K3, padding=((0, 2**62), (0, 0))), ValueError,
     r"`padding` must be at most 2\*\*62 in total with the input size \(an index limit\); got "
     r"\(top, bottom, left, right\) = \(0, 4611686018427387904, 0, 0\)\. The input is 16x16\."),
    (lambda: fastconv.plan((16, 16), (3, 3), padding=2**62, method="direct"), ValueError,
     r"`padding` must be at most 2\*\*62 in total"),
    (lambda: fastconv.conv2d(X16, K3, stride=10**30), ValueError,
     r"`stride` must be at most 2\*\*62 \(an index limit\); got 10{30}\."),
    (lambda: fastconv.conv2d(X16, K3, stride=2**63), ValueError,
     r"`stride` must be at most 2\*\*62"),
    (lambda: fastconv.conv2d(X16, K3, padding=2**31), ValueError,
     r"`input`, `weight`, `stride`, `padding` and `dilation` must give an output that fits in "
     r"memory \(.* here\); got an output of shape \(1, 1, 4294967310, 4294967310\) float32: 64 "
     r"EiB\."),
    (lambda: fastconv.output_shape((16, 16), (3, 3), padding=2**70), ValueError,
     r"`padding` must be at most 2\*\*62 \(an index limit\); got 1180591620717411303424\."),
    (lambda: fastconv.output_shape(None, (3, 3)), TypeError,
     r"`input_shape` must be a tuple of ints; got None\."),
    (lambda: fastconv.output_shape("ab", (3, 3)), TypeError,
     r"`input_shape` must be a tuple of ints; got 'ab'\."),
    (lambda: fastconv.output_shape((16, 2**63), (3, 3)), ValueError,
     r"`input_shape` must be a tuple of ints at most 2\*\*62 \(an index limit\)"),
    (lambda: fastconv.conv2d(X16, K3, padding_mode=np.array("zeros")), TypeError,
     r"`padding_mode` must be one of \('zeros', .*\); got array\('zeros'"),
    (lambda: fastconv.correlate2d(X16, K3, mode=np.array("full")), TypeError,
     r"`mode` must be one of \('full', 'same', 'valid'\); got array\('full'"),
    (lambda: fastconv.convolve2d(X16, K3, boundary=["fill"]), TypeError,
     r"`boundary` must be one of \('fill', 'pad', 'wrap', .*\); got \['fill'\]\."),
], ids=["full-dilation-2**62", "padding-2**62", "plan-padding-2**62", "stride-10**30",
        "stride-2**63", "padding-2**31-output", "output_shape-padding-2**70", "output_shape-None",
        "output_shape-str", "output_shape-2**63", "padding_mode-array", "mode-array",
        "boundary-list"])
def test_reproductions_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _windows_reference(x, k, stride, padding, dilation):
    """Zero-padded 2-D correlation by explicit loops over the outputs and taps, reading only the
    samples each output reads (so huge strides, paddings and dilations cost nothing)."""
    (sh, sw), (dh, dw) = stride, dilation
    top, bottom, left, right = padding
    kh, kw = k.shape
    ho = (x.shape[0] + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[1] + left + right - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((ho, wo))
    for i in range(ho):
        for j in range(wo):
            for p in range(kh):
                for q in range(kw):
                    r, c = i * sh + p * dh - top, j * sw + q * dw - left
                    if 0 <= r < x.shape[0] and 0 <= c < x.shape[1]:
                        out[i, j] += k[p, q] * x[r, c]
    return out


@pytest.mark.parametrize("method", ["auto", *fastconv.METHODS])
@pytest.mark.parametrize("options", [
    dict(padding=1, stride=2**31),
    dict(padding=1, stride=2**62),
    dict(padding=2**31, stride=2**31),
    dict(padding=((0, 2**40), (1, 1)), stride=(2**40, 20)),
    dict(padding="full", dilation=(2**20, 1), stride=(2**20, 20)),
    dict(padding=((2**33, 3), (0, 2**33)), dilation=(3, 2**32), stride=(2**32 + 1, 5)),
], ids=["stride-2**31", "stride-2**62", "padding-and-stride-2**31", "padding-2**40",
        "dilation-2**20", "mixed-2**33"])
def test_extreme_geometries_compute(method, options):
    """Geometries of huge strides, paddings and dilations with small outputs: computed (by the
    strategies that accept them) and equal to an explicit sum, not rejected."""
    x = np.random.default_rng(5).standard_normal((16, 16))
    k = np.random.default_rng(6).standard_normal((3, 3))
    plan = fastconv.plan(x.shape, k.shape, **options)
    if method != "auto" and plan.candidate(method).declined:
        with pytest.raises(ValueError, match=f"`method` '{method}' cannot run this problem"):
            fastconv.conv2d(x, k, method=method, **options)
        return
    got = fastconv.conv2d(x, k, method=method, **options)
    g = plan.geometry
    expected = _windows_reference(x, k, g.stride, g.padding, g.dilation)
    assert got.shape == expected.shape and got.size <= 64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
