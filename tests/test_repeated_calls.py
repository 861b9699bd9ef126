"""A repeated call of the same shapes, dtypes and options skips its validation and planning
(_api.py's memo): it must give every later call the result, error and plan a first call would."""

import numba
import numpy as np
import pytest
from scipy import signal

import fastconv
from fastconv import _api

X = np.arange(64.0).reshape(8, 8)
W = np.arange(9.0).reshape(3, 3)


@pytest.mark.parametrize("call, valid, invalid, error", [
    ("conv2d", {"stride": 1}, {"stride": 1.0}, TypeError),
    ("conv2d", {"stride": 1}, {"stride": True}, TypeError),
    ("conv2d", {"padding": (1, 1)}, {"padding": (1.0, 1)}, TypeError),
    ("conv2d", {"padding": 1}, {"padding": -1}, ValueError),
    ("conv2d", {"groups": 1}, {"groups": True}, TypeError),
    ("conv2d", {"padding_mode": "zeros"}, {"padding_mode": "Zeros"}, ValueError),
    ("conv2d", {"threads": 1}, {"threads": 0}, ValueError),
    ("conv2d", {"threads": 1}, {"threads": True}, TypeError),
    ("conv2d", {"method": "direct"}, {"method": "Direct"}, ValueError),
    ("conv2d", {"accuracy": "normwise"}, {"accuracy": "Normwise"}, ValueError),
    ("correlate2d", {"mode": "same"}, {"mode": "Same"}, ValueError),
    ("correlate2d", {"boundary": "fill"}, {"boundary": "fil"}, ValueError),
    ("correlate2d", {"fillvalue": 0}, {"fillvalue": [1, 2]}, ValueError),
    ("correlate2d", {"fillvalue": 0}, {"fillvalue": 1j}, ValueError),
])
def test_a_repeated_call_never_skips_a_check(call, valid, invalid, error):
    function = getattr(fastconv, call)
    first = function(X, W, **valid)
    with pytest.raises(error):
        function(X, W, **invalid)
    np.testing.assert_array_equal(function(X, W, **valid), first)


@pytest.mark.parametrize("fillvalue", [0, 0.0, -0.0, 2, 2.5, True, np.float32(2.5), np.nan])
def test_repeated_fill_values_are_each_their_own(fillvalue):
    # 0, 0.0 and False are equal keys; 2 and 2.5 cast alike to an integer type only.
    # NaN has no integer value: SciPy and fastconv refuse it there, each time.
    x, w = np.arange(30).reshape(5, 6), np.arange(4).reshape(2, 2)
    for image in (x, x.astype(np.float64)):
        for _ in range(2):
            if image.dtype.kind == "i" and np.isnan(fillvalue):
                with pytest.raises(ValueError, match="fillvalue"):
                    fastconv.correlate2d(image, w, "same", fillvalue=fillvalue)
                continue
            expected = signal.correlate2d(image, w, "same", fillvalue=fillvalue)
            got = fastconv.correlate2d(image, w, "same", fillvalue=fillvalue)
            assert got.dtype == expected.dtype
            np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)


def test_repeated_calls_follow_their_arrays(rng):
    # Same shapes and dtypes, other values and layouts; the kernel rank changes the plan.
    x = rng.standard_normal((96, 96))
    column, row = rng.standard_normal(5), rng.standard_normal(5)
    kernels = [np.outer(column, row), rng.standard_normal((5, 5)), np.outer(row, column)]
    images = [x, np.asfortranarray(x), x[::-1, ::-1], rng.standard_normal((192, 96))[::2]]
    for image in images:
        for kernel in kernels:
            copies = image.copy(), kernel.copy()
            got = fastconv.correlate2d(image, kernel, "same")
            np.testing.assert_allclose(got, signal.correlate2d(image, kernel, "same"),
                                       rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(image, copies[0])
            np.testing.assert_array_equal(kernel, copies[1])
            got = fastconv.conv2d(image[None], kernel[None, None], padding="same")[0]
            np.testing.assert_allclose(got, signal.correlate2d(image, kernel, "same"),
                                       rtol=1e-12, atol=1e-12)


def test_repeated_longdouble_calls_are_computed_by_scipy():
    x, w = X.astype(np.longdouble), W.astype(np.longdouble)
    for _ in range(2):
        got = fastconv.convolve2d(x, w)
        assert got.dtype == np.longdouble
        np.testing.assert_array_equal(got, signal.convolve2d(x, w))


@pytest.fixture
def plans_run(monkeypatch):
    """The plans that calls run, in order."""
    plans = []

    def execute(plan, problem):
        plans.append(plan)
        return run(plan, problem)

    run = _api.execute
    monkeypatch.setattr(_api, "execute", execute)
    return plans


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_repeated_calls_follow_the_thread_count_and_the_budget(plans_run):
    x = np.ones((1, 64, 128, 128))
    w = np.ones((64, 64, 3, 3))
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        fastconv.conv2d(x, w, padding=1)
        numba.set_num_threads(1)
        fastconv.conv2d(x, w, padding=1)
    finally:
        numba.set_num_threads(previous)
    with fastconv.workspace_budget(2**16):
        fastconv.conv2d(x, w, padding=1)
    first, one_thread, small_budget = plans_run
    assert (first.max_threads, one_thread.max_threads) == (2, 1)
    assert small_budget.workspace_budget < first.workspace_budget
