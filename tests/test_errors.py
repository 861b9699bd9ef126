"""Every user-facing error: its type and its message (argument name, expectation, value)."""

import numpy as np
import pytest
from scipy import signal

import fastconv

X = np.ones((1, 2, 6, 6))
W = np.ones((3, 2, 3, 3))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(input=X.astype(complex)), TypeError, r"`input` must be real .*correlate2d"),
        (dict(weight=W.astype(complex)), TypeError, r"`input` must be real .*complex128"),
        (dict(input=X.astype(object)), TypeError, r"`input` must be a numeric array.*object"),
        (dict(input=np.array([["a"]])), TypeError, r"`input` must be a numeric array.*<U1"),
        (dict(weight=W.astype("datetime64[s]")), TypeError, r"`weight` must be a numeric"),
        (dict(input=np.ones(5)), ValueError, r"`input` must be 2-D .*got shape \(5,\)"),
        (dict(input=np.ones((1,) * 5)), ValueError, r"`input` must be 2-D .*4-D"),
        (dict(input=np.ones((6, 6))), ValueError, r"`weight` must be 2-D \(kh, kw\) for a 2-D"),
        (dict(weight=np.ones((3, 3))), ValueError, r"`weight` must be 4-D .*got shape \(3, 3\)"),
        (dict(input=np.ones((1, 2, 0, 6))), ValueError, r"`input` must be non-empty"),
        (dict(weight=np.ones((0, 2, 3, 3))), ValueError, r"`weight` must be non-empty"),
        (dict(groups=1.0), TypeError, r"`groups` must be a positive int; got 1.0"),
        (dict(groups=0), ValueError, r"`groups` must be a positive divisor .*got 0"),
        (dict(groups=2), ValueError, r"`groups` must be a positive divisor of in_channels=2 and "
                                     r"out_channels=3; got 2"),
        (dict(weight=np.ones((3, 1, 3, 3))), ValueError, r"`weight` must be of shape "
                                                         r"\(out_channels, 2, kh, kw\)"),
        (dict(bias=np.ones(2)), ValueError, r"`bias` must be of shape \(3,\); got shape \(2,\)"),
        (dict(bias=np.ones(3, complex)), TypeError, r"`bias` must be real"),
        (dict(stride=0), ValueError, r"`stride` must be >= 1 .*got 0"),
        (dict(stride=(1, -2)), ValueError, r"`stride` must be >= 1 .*got \(1, -2\)"),
        (dict(stride=1.5), TypeError, r"`stride` must be an int or a pair of ints; got 1.5"),
        (dict(stride=(1, 2, 3)), TypeError, r"`stride` must be an int or a pair"),
        (dict(stride=True), TypeError, r"`stride` must be an int or a pair"),
        (dict(dilation=0), ValueError, r"`dilation` must be >= 1"),
        (dict(padding=-1), ValueError, r"`padding` must be >= 0 .*got -1"),
        (dict(padding=((1, -1), (0, 0))), ValueError, r"`padding` must be >= 0"),
        (dict(padding=1.5), TypeError, r"`padding` must be an int or a pair"),
        (dict(padding="half"), ValueError, r"`padding` must be .*\('valid', 'same', 'full'\); "
                                           r"got 'half'"),
        (dict(padding="same", stride=2), ValueError, r"`stride` must be 1 when padding='same'"),
        (dict(padding_mode="mirror"), ValueError, r"`padding_mode` must be one of \('zeros', "
                                                  r"'reflect', 'replicate', 'circular', "
                                                  r"'symmetric'\); got 'mirror'"),
        (dict(method="winograd4x4"), ValueError, r"`method` must be 'auto' or one of \('direct'"),
        (dict(threads=0), ValueError, r"`threads` must be >= 1; got 0\."),
        (dict(threads=-2), ValueError, r"`threads` must be >= 1; got -2\."),
        (dict(threads=2.0), TypeError, r"`threads` must be None or a positive int; got 2.0"),
        (dict(weight=np.ones((3, 2, 7, 3))), ValueError, r"`weight` must be no larger \(after "
                                                         r"dilation\) than the padded input "
                                                         r"\(6, 6\); got dilated kernel size "
                                                         r"\(7, 3\)"),
        (dict(dilation=3), ValueError, r"got dilated kernel size \(7, 7\)"),
    ],
)
def test_conv2d_errors(kwargs, error, match):
    arguments = dict(input=X, weight=W) | kwargs
    with pytest.raises(error, match=match):
        fastconv.conv2d(**arguments)


def test_output_shape_errors():
    with pytest.raises(ValueError, match=r"`input_shape` and `weight_shape` must be"):
        fastconv.output_shape((1, 2, 3, 4), (3, 3))
    with pytest.raises(ValueError, match=r"`weight_shape` must fit the padded input"):
        fastconv.output_shape((4, 4), (5, 5))
    with pytest.raises(ValueError, match=r"`stride` must be >= 1"):
        fastconv.output_shape((4, 4), (3, 3), stride=0)


# Bad SciPy drop-in calls: fastconv raises SciPy's exception type with SciPy's message start.
SCIPY_BAD_CALLS = [
    ((np.ones(5), np.ones((2, 2))), {}, r"inputs must both be 2-D arrays; got `in1` of shape"),
    ((np.ones((1, 3, 3)), np.ones((2, 2))), {}, r"inputs must both be 2-D arrays"),
    ((3.0, np.ones((2, 2))), {}, r"inputs must both be 2-D arrays"),
    ((np.ones((3, 3)), np.ones((2, 2))), dict(mode="FULL"),
     r"Acceptable mode flags are 'valid', 'same', or 'full'; got 'FULL'"),
    ((np.ones((3, 3)), np.ones((2, 2))), dict(boundary="reflect"),
     r"Acceptable boundary flags are 'fill', 'circular' \(or 'wrap'\), and 'symmetric' \(or "
     r"'symm'\); got 'reflect'"),
    ((np.ones((3, 5)), np.ones((4, 2))), dict(mode="valid"),
     r"For 'valid' mode, one must be at least as large as the other in every dimension; got "
     r"shapes \(3, 5\) and \(4, 2\)"),
    ((np.ones((3, 3)), np.ones((2, 2))), dict(fillvalue=[1, 2]),
     r"`fillvalue` must be scalar or an array with one element; got shape \(2,\)"),
    ((np.ones((3, 3)), np.ones((2, 2))), dict(fillvalue=[]), r"`fillvalue` cannot be an empty"),
    ((np.ones((3, 3)), np.ones((2, 2))), dict(fillvalue=1j),
     r"could not cast `fillvalue` directly to the output type float64; got 1j"),
    ((np.ones((3, 3), int), np.ones((2, 2), int)), dict(fillvalue=np.nan),
     r"could not cast `fillvalue` directly to the output type int64"),
    ((np.ones((3, 3), np.int8), np.ones((2, 2), np.int8)), dict(fillvalue=300),
     r"could not cast `fillvalue` directly to the output type int8; got 300"),
    ((np.ones((3, 3), np.int8), np.ones((2, 2), np.int8)), dict(fillvalue=np.array(5)),
     r"could not cast `fillvalue` directly"),
    ((np.ones((3, 3), bool), np.ones((2, 2), bool)), {},
     r"convolve2d not available for this type: .*got bool"),
    ((np.ones((3, 3), np.float16), np.ones((2, 2), np.float16)), {},
     r"convolve2d not available for this type: .*got float16"),
    ((np.ones((3, 3), object), np.ones((2, 2))), {}, r"convolve2d not available for this type"),
]


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@pytest.mark.parametrize(("args", "kwargs", "match"), SCIPY_BAD_CALLS)
@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
def test_dropin_errors_match_scipy(name, args, kwargs, match):
    with pytest.raises(ValueError):
        getattr(signal, name)(*args, **kwargs)
    with pytest.raises(ValueError, match=match):
        getattr(fastconv, name)(*args, **kwargs)


def test_dropin_rejects_empty_inputs():
    with pytest.raises(ValueError, match=r"correlate2d inputs must be non-empty; got shapes "
                                         r"\(0, 3\) and \(2, 2\)"):
        fastconv.correlate2d(np.ones((0, 3)), np.ones((2, 2)))


def test_dropin_method_and_threads_errors():
    with pytest.raises(ValueError, match=r"`method` must be 'auto' or one of"):
        fastconv.correlate2d(np.ones((3, 3)), np.ones((2, 2)), method="magic")
    with pytest.raises(TypeError, match=r"`threads` must be None or a positive int"):
        fastconv.convolve2d(np.ones((3, 3)), np.ones((2, 2)), threads="2")


def test_workspace_budget_errors():
    with pytest.raises(TypeError, match=r"`nbytes` must be an int number of bytes; got 1.5"):
        fastconv.set_workspace_budget(1.5)
    with pytest.raises(ValueError, match=r"`nbytes` must be at least 65536 \(64 KiB\); got 10"):
        fastconv.set_workspace_budget(10)
    before = fastconv.get_workspace_budget()
    with fastconv.workspace_budget(2**20):
        assert fastconv.get_workspace_budget() == 2**20
    assert fastconv.get_workspace_budget() == before


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (np.zeros((1, 1, 64, 64, 64)),
         "got ndarray of shape (1, 1, 64, 64, 64) and dtype float64."),
        (list(range(1000)), "got [0, 1, 2, 3, "),
        ((1, 2, 3), "got (1, 2, 3)."),
    ],
)
def test_a_long_value_is_described_not_printed(value, shown):
    # A message names what was given without printing a huge value: an array by its shape and
    # dtype, anything else by the start of its repr and its length.
    with pytest.raises((TypeError, ValueError)) as error:
        fastconv.plan(value, (1, 1, 3, 3, 3)) if isinstance(value, np.ndarray) else (
            fastconv.conv2d(X, W, stride=value))
    message = str(error.value)
    assert shown in message and len(message) < 300, message
    if isinstance(value, list):
        assert message.endswith("... (a list of 4890 characters).")
