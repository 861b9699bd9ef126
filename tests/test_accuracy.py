"""accuracy='elementwise': 'auto' (and 'measure') keep to strategies whose error is bounded per
output element, where the normwise ones (fft, winograd) lose the digits of outputs next to much
larger values (issue 22: half 1e30, half 1e-30)."""

import numpy as np
import pytest
from oracle import LOCAL_TOLERANCE
from scipy import signal

import fastconv
from fastconv.strategies import REGISTRY

# Strategies whose error is normwise on some geometry (separable: kernels of rank 2 and up).
NORMWISE = [name for name, strategy in REGISTRY.items() if strategy.error_model != "elementwise"]


def _two_scales():
    """A 256x256 float64 image: the left half about 1e30, the right half about 1e-30."""
    rng = np.random.default_rng(22)
    image = rng.uniform(1, 2, (256, 256))
    image[:, :128] *= 1e30
    image[:, 128:] *= 1e-30
    return image, rng.uniform(1, 2, (15, 15))


def test_normwise_strategies_are_registered():
    assert NORMWISE == ["fft", "winograd", "separable"]


def test_elementwise_keeps_small_outputs_exact():
    image, kernel = _two_scales()
    assert fastconv.plan((256, 256), (15, 15), padding="same").method == "fft"
    expected = signal.correlate2d(image, kernel, "same")  # SciPy's direct sum
    small = np.s_[:, 128 + 8:]  # outputs whose window holds only the 1e-30 half
    relative = np.abs(fastconv.correlate2d(image, kernel, "same") - expected)[small] / expected[
        small]
    assert relative.max() > 1  # the FFT result is noise there
    got = fastconv.correlate2d(image, kernel, "same", accuracy="elementwise")
    bound = 225 * LOCAL_TOLERANCE[np.dtype(np.float64)]
    assert np.all(np.abs(got - expected) <= bound * np.abs(expected))
    conv = fastconv.conv2d(image, kernel, padding="same", accuracy="elementwise")
    assert np.all(np.abs(conv - expected) <= bound * np.abs(expected))


def test_elementwise_plan_declines_normwise_strategies():
    p = fastconv.plan((1, 64, 28, 28), (64, 64, 3, 3), dtype=np.float32, padding=1,
                      accuracy="elementwise")
    assert p.method in ("direct", "im2col") and p.accuracy == "elementwise"
    for name in NORMWISE:
        if REGISTRY[name].error_model_for(p.geometry) != "elementwise":
            assert p.candidate(name).declined == "its error is normwise (accuracy='elementwise')"
    assert "accuracy: elementwise" in repr(p)
    assert "accuracy" not in repr(fastconv.plan((1, 64, 28, 28), (64, 64, 3, 3), padding=1))
    x = np.ones((1, 64, 28, 28), np.float32)
    w = np.ones((64, 64, 3, 3), np.float32)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, padding=1, method=p),
                                  fastconv.conv2d(x, w, padding=1, method="direct"))


def test_separable_is_elementwise_for_rank_one_kernels_only():
    # Rank 1: exact factors (their outer product is the kernel), so each output's rounding is
    # bounded by its own sum |x| * |w|. Rank 2 and up: SVD factors, bounded by the window's norms.
    g = np.exp(-np.linspace(-3, 3, 31) ** 2 / 2)
    odd = g * np.linspace(-1, 1, 31)
    rank_two = np.outer(g, g) + 0.5 * np.outer(odd, odd)
    for weights, rank, declines in ((np.outer(g, g), 1, False), (rank_two, 2, True)):
        p = fastconv.plan((1024, 1024), (31, 31), dtype=np.float32, padding="same",
                          weights=weights, accuracy="elementwise")
        assert p.geometry.kernel_rank == rank
        refusal = p.candidate("separable").declined
        assert (refusal == "its error is normwise (accuracy='elementwise')") == declines, refusal
        normwise = fastconv.plan((1024, 1024), (31, 31), dtype=np.float32, padding="same",
                                 weights=weights)
        assert normwise.candidate("separable").declined is None
        assert normwise.method == "separable"
    p = fastconv.plan((1024, 1024), (31, 31), dtype=np.float32, padding="same",
                      weights=rank_two, method="separable")
    x = np.ones((1024, 1024), np.float32)
    with pytest.raises(ValueError, match=r"got a Plan of 'separable'"):
        fastconv.conv2d(x, rank_two.astype(np.float32), padding="same", method=p,
                        accuracy="elementwise")


def test_forced_normwise_method_is_computed_as_asked():
    image, kernel = _two_scales()
    forced = fastconv.correlate2d(image, kernel, "same", method="fft", accuracy="elementwise")
    np.testing.assert_array_equal(forced, fastconv.correlate2d(image, kernel, "same",
                                                               method="fft"))


def test_measure_with_elementwise_accuracy_times_only_elementwise_strategies():
    image, kernel = _two_scales()
    got = fastconv.correlate2d(image, kernel, "same", method="measure", accuracy="elementwise")
    expected = signal.correlate2d(image, kernel, "same")
    assert np.all(np.abs(got - expected) <= 225 * 1e-13 * np.abs(expected))


@pytest.mark.parametrize(("accuracy", "error", "match"), [
    ("exact", ValueError, r"`accuracy` must be one of \('normwise', 'elementwise'\); got "
                          r"'exact'\."),
    (None, TypeError, r"`accuracy` must be one of \('normwise', 'elementwise'\); got None\."),
    (np.array("elementwise"), TypeError, r"`accuracy` must be one of .*; got array\("),
])
def test_accuracy_errors(accuracy, error, match):
    x, k = np.ones((8, 8)), np.ones((3, 3))
    with pytest.raises(error, match=match):
        fastconv.conv2d(x, k, accuracy=accuracy)
    with pytest.raises(error, match=match):
        fastconv.correlate2d(x, k, accuracy=accuracy)
    with pytest.raises(error, match=match):
        fastconv.plan(x.shape, k.shape, accuracy=accuracy)


def test_normwise_plan_with_elementwise_accuracy_is_refused():
    p = fastconv.plan((64, 64), (15, 15), padding=7, method="fft")
    with pytest.raises(ValueError, match=r"`method` must be a Plan of an elementwise-accurate "
                                         r"strategy with accuracy='elementwise'; got a Plan of "
                                         r"'fft'\."):
        fastconv.conv2d(np.ones((64, 64)), np.ones((15, 15)), padding=7, method=p,
                        accuracy="elementwise")
