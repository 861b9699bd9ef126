"""The separable strategy: rank detection on known kernels and at the edge of its tolerance, the
oracle over padding modes x ranks x dtypes x stride x dilation x groups x batches, the error
bound, 'auto' finding it from the weights, plans that stay pure, and its compiled loops."""

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from oracle import LOCAL_TOLERANCE, assert_close, reference_conv2d
from scipy import signal

import fastconv
from fastconv.core.geometry import PADDING_MODES
from fastconv.strategies.separable import detect as detect_module
from fastconv.strategies.separable.detect import RANK_UNITS, detect, rank_tolerance

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def gaussian(k, sigma=None):
    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-(t**2) / (2 * (sigma or k / 6) ** 2))
    return g / g.sum()


def rank_of(w, dtype=np.float64):
    w = np.asarray(w, dtype)
    return detect(w.reshape((1, 1) + w.shape) if w.ndim == 2 else w).rank


def low_rank(rng, shape, rank):
    """Weights (K, Cg, kh, kw) whose every slice is a sum of ``rank`` random outer products."""
    k, cg, kh, kw = shape
    return sum(rng.standard_normal((k, cg, kh, 1)) * rng.standard_normal((k, cg, 1, kw))
               for _ in range(rank))


# ---- rank detection on known kernels --------------------------------------------------------

SOBEL = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128],
                         ids=lambda d: np.dtype(d).name)
def test_known_kernels_have_their_rank(dtype):
    g15 = gaussian(15)
    assert rank_of(np.outer(g15, g15), dtype) == 1
    assert rank_of(np.full((31, 31), 1 / 961), dtype) == 1  # box
    assert rank_of(SOBEL, dtype) == 1
    assert rank_of(np.outer(gaussian(9), [1, 4, 6, 4, 1]), dtype) == 1  # rectangular
    dog = np.outer(g15, g15) - np.outer(gaussian(15, 4), gaussian(15, 4))
    assert rank_of(dog, dtype) == 2
    assert rank_of(np.zeros((5, 5)), dtype) == 0
    random = np.random.default_rng(0).standard_normal((7, 7))
    assert rank_of(random, dtype) == 7
    if np.dtype(dtype).kind == "c":
        phase = np.exp(1j * np.linspace(0, 2, 9))
        assert rank_of(np.outer(phase * gaussian(9), gaussian(9) / phase), dtype) == 1


def test_integer_kernels_are_separable_only_as_exact_outer_products():
    assert rank_of(SOBEL, np.int64) == 1
    assert rank_of([[2, 3], [4, 6]], np.int64) == 1
    found = detect(np.array([[[[2, 3], [4, 6]]]], np.int64))
    np.testing.assert_array_equal(found.cols[0, 0, :, None] * found.rows[0, 0], [[2, 3], [4, 6]])
    assert found.cols.dtype == np.int64
    laplacian = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    assert rank_of(laplacian, np.int64) >= 2
    assert rank_of([[1, 2], [2, 5]], np.int64) == 2
    # Entries too large for exact 2x2 minors in int64 are not tested exactly: declined.
    assert rank_of(np.outer([1, 2], [2**31, 1]), np.int64) >= 2


def test_weights_holding_nan_have_no_rank():
    w = np.outer(gaussian(5), gaussian(5))
    w[2, 2] = np.nan
    assert rank_of(w) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64],
                         ids=lambda d: np.dtype(d).name)
def test_full_rank_found_from_the_first_slice(dtype, monkeypatch, rng):
    """A layer's weights whose first slice has full rank: rank min(kh, kw) at once, without the
    analysis of every slice, and no factors. A first slice of lower rank: the full analysis,
    whose largest rank counts (a later full-rank slice), with factors."""
    analysed = []
    original = detect_module._rank_one_float
    monkeypatch.setattr(detect_module, "_rank_one_float",
                        lambda slices, dtype: analysed.append(len(slices)) or original(slices,
                                                                                      dtype))
    w = rng.standard_normal((6, 4, 3, 5)).astype(dtype)
    found = detect(w)
    assert (found.rank, found.cols, found.rows, analysed) == (3, None, None, [])
    w[0, 0] = np.outer(np.arange(3), np.arange(5))
    found = detect(w)
    assert found.rank == 3 and analysed == [24] and found.cols.shape == (6, 4 * 3, 3)
    w[:] = np.outer(np.arange(1, 4), np.arange(5))
    assert detect(w).rank == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k", [7, 31])
def test_rank_tolerance_edge(dtype, k):
    """A rank-1 kernel plus an orthogonal rank-1 part of Frobenius norm just below / just above
    RANK_UNITS * u * sigma_1: rank 1, then 2."""
    g = gaussian(k)
    u1 = g / np.linalg.norm(g)
    q, _ = np.linalg.qr(np.column_stack([u1, np.cos(np.arange(k))]))
    u2 = q[:, 1]
    tolerance = rank_tolerance(dtype)
    for factor, rank in ((0.7, 1), (1.5, 2)):
        w = np.outer(u1, u1) + factor * tolerance * np.outer(u2, u2)
        assert rank_of(w.astype(dtype).astype(np.float64), dtype) == rank, factor


def test_detection_is_cached_per_weight_content():
    detect_module.clear_detection_cache()
    x = np.ones((64, 64))
    w = np.outer(gaussian(5), gaussian(5))
    fastconv.conv2d(x, w, padding="same")
    fastconv.conv2d(x + 1, w.copy(), padding="same")
    assert detect_module.detection_cache_size() == 1
    w[0, 0] += 1  # changed in place: a new digest
    fastconv.conv2d(x, w, padding="same")
    assert detect_module.detection_cache_size() == 2


# ---- the oracle ---------------------------------------------------------------------------

# name: (input shape, weight shape, groups, stride, dilation, padding)
CASES = {
    "1x1x23x31-5x5-same": ((1, 1, 23, 31), (1, 1, 5, 5), 1, 1, 1, "same"),
    "2x1x17x19-5x7-stride2x3": ((2, 1, 17, 19), (1, 1, 5, 7), 1, (2, 3), 1, ((2, 1), (4, 3))),
    "1x1x20x21-5x4-dilated": ((1, 1, 20, 21), (1, 1, 5, 4), 1, 1, (2, 3), "full"),
    "2x3x12x13-depthwise": ((2, 3, 12, 13), (3, 1, 5, 5), 3, 1, 1, 2),
    "1x4x10x11-groups2": ((1, 4, 10, 11), (6, 2, 5, 5), 2, (1, 2), 1, 2),
    "1x2x9x9-wide-padding": ((1, 2, 9, 9), (2, 2, 5, 5), 1, 1, 1, ((11, 0), (2, 12))),
    # Tall kernels: output rows four at a time (separable.kernels.ROWS4_FROM), one at a time
    # where a constant padding row is read and in a block's last rows.
    "1x1x41x37-15x13-same": ((1, 1, 41, 37), (1, 1, 15, 13), 1, 1, 1, "same"),
    "2x2x30x20-13x5-groups2": ((2, 2, 30, 20), (4, 1, 13, 5), 2, (1, 2), 1, ((3, 9), (2, 2))),
}


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_matches_oracle(dtype, case, padding_mode, rank, rng):
    input_shape, weight_shape, groups, stride, dilation, padding = CASES[case]
    x = rng.standard_normal(input_shape).astype(dtype)
    w = low_rank(rng, weight_shape, rank).astype(dtype)
    bias = rng.standard_normal(weight_shape[0]).astype(dtype)
    assert rank_of(w, dtype) == rank
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                   padding_mode=padding_mode)
    from fastconv._validate import int_pair, parse_padding

    got = fastconv.conv2d(x, w, bias, method="separable", **options)
    assert fastconv.last_method() == "separable"
    s, d = int_pair(stride, "stride", 1), int_pair(dilation, "dilation", 1)
    pad = parse_padding(padding, w.shape[2:], s, d)
    reference = dict(options, stride=s, dilation=d, padding=pad)
    expected = reference_conv2d(x, w, bias, **reference)
    scale = reference_conv2d(abs(x), abs(w), abs(bias), **reference)
    assert_close(got, expected, scale, dtype, "separable")


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("function", ["correlate2d", "convolve2d"])
def test_complex_dropins_match_scipy(function, boundary, dtype, rng):
    image = (rng.standard_normal((19, 23)) + 1j * rng.standard_normal((19, 23))).astype(dtype)
    a = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    b = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    kernel = (np.outer(a, b) + np.outer(b[:5], a[::-1].tolist() + [1j])).astype(dtype)  # rank 2
    for mode in ("same", "full", "valid"):
        got = getattr(fastconv, function)(image, kernel, mode, boundary, 1 - 2j,
                                          method="separable")
        expected = getattr(signal, function)(image, kernel, mode, boundary, 1 - 2j)
        scale = getattr(signal, function)(abs(image), abs(kernel), mode, boundary, 5 ** 0.5)
        assert got.dtype == dtype
        assert np.all(abs(got - expected) <= 2 * LOCAL_TOLERANCE[np.dtype(dtype)] * scale)


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int64], ids=lambda d: np.dtype(d).name)
def test_integer_outer_products_are_exact(dtype, boundary, rng):
    image = rng.integers(0, 100, (40, 37)).astype(dtype)
    kernels = [np.outer([1, 4, 6, 4, 1], [1, 2, 1])]
    if np.dtype(dtype).kind == "i":  # Sobel's -1 would wrap to 255 in uint8
        kernels.append(SOBEL)
    for kernel in kernels:
        kernel = kernel.astype(dtype)
        for function in ("correlate2d", "convolve2d"):
            got = getattr(fastconv, function)(image, kernel, "same", boundary, 3,
                                              method="separable")
            expected = getattr(signal, function)(image, kernel, "same", boundary, 3)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


def test_integer_kernel_of_higher_rank_is_declined():
    image = np.arange(64, dtype=np.int64).reshape(8, 8)
    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    with pytest.raises(ValueError, match="exact integer outer products"):
        fastconv.correlate2d(image, laplacian, "same", method="separable")
    np.testing.assert_array_equal(fastconv.correlate2d(image, laplacian, "same"),
                                  signal.correlate2d(image, laplacian, "same"))


def test_depthwise_bank_of_gaussians_with_batches(rng):
    x = rng.standard_normal((3, 4, 40, 33)).astype(np.float32)
    bank = np.stack([np.outer(gaussian(9, s), gaussian(9, s)) for s in (0.8, 1.5, 2, 3)])
    w = bank[:, None].astype(np.float32)
    got = fastconv.conv2d(x, w, groups=4, padding=4, padding_mode="reflect", method="separable")
    options = dict(padding=(4, 4, 4, 4), groups=4, padding_mode="reflect")
    expected = reference_conv2d(x, w, **options)
    assert_close(got, expected, reference_conv2d(abs(x), abs(w), **options), np.float32,
                 "separable")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_rank_one_error_is_elementwise_on_wide_ranging_data(dtype, rng):
    """Data spanning 20 orders of magnitude: every output within the elementwise tolerance of
    its own sum |x| * |w| (the rank-1 bound of detect.py)."""
    x = (rng.standard_normal((1, 1, 48, 52)) * 10.0 ** rng.integers(-10, 10, (1, 1, 48, 52)))
    x = x.astype(dtype)
    w = np.outer(gaussian(11), gaussian(11, 3))[None, None].astype(dtype)
    got = fastconv.conv2d(x, w, padding="same", padding_mode="symmetric", method="separable")
    options = dict(padding=(5, 5, 5, 5), padding_mode="symmetric")
    expected = reference_conv2d(x, w, **options)
    assert_close(got, expected, reference_conv2d(abs(x), abs(w), **options), dtype, "separable")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("factor", [0.7, 1.5])
def test_error_within_documented_bound_at_the_edge(dtype, factor, rng):
    """Kernels just below / above the rank tolerance (rank 1 dropping a part of Frobenius norm D,
    or rank 2): each output within D * ||x_window|| + 2 (kh + kw) u (sum of sigma) ||x_window||."""
    k = 15
    g = gaussian(k)
    u1 = g / np.linalg.norm(g)
    q, _ = np.linalg.qr(np.column_stack([u1, np.cos(np.arange(k))]))
    w = (np.outer(u1, u1) + factor * rank_tolerance(dtype) * np.outer(q[:, 1], q[:, 1]))
    w = w.astype(dtype)[None, None]
    x = rng.standard_normal((1, 1, 60, 64)).astype(dtype)
    got = fastconv.conv2d(x, w, padding="same", method="separable")
    exact = reference_conv2d(x, w, padding=(7, 7, 7, 7))
    sigma = np.linalg.svd(w[0, 0].astype(np.float64), compute_uv=False)
    rank = rank_of(w, dtype)
    dropped = np.sqrt(np.sum(sigma[rank:] ** 2))
    window = np.sqrt(reference_conv2d(x.astype(np.float64) ** 2, np.ones_like(w, np.float64),
                                      padding=(7, 7, 7, 7)))
    u = np.finfo(dtype).eps / 2
    bound = (dropped + 2 * 2 * k * u * sigma[:rank].sum()) * window
    assert np.all(np.abs(got - exact) <= bound)
    assert dropped <= RANK_UNITS * u * sigma[0]


def test_non_finite_data_fall_back_to_direct(rng):
    x = rng.standard_normal((30, 40))
    x[10, 12], x[20, 30] = np.nan, np.inf
    w = np.outer(SOBEL[:, 0], SOBEL[0]).astype(float)  # holds zeros: 0 * inf is NaN
    got = fastconv.conv2d(x, w, padding=1, method="separable")
    assert fastconv.last_method() == "direct"
    expected = reference_conv2d(x[None, None], w[None, None], padding=(1, 1, 1, 1))[0, 0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))


# ---- planning -----------------------------------------------------------------------------


def test_auto_picks_separable_for_a_large_gaussian_not_for_a_random_kernel(rng):
    x = rng.standard_normal((512, 512)).astype(np.float32)
    g = gaussian(31).astype(np.float32)
    got = fastconv.conv2d(x, np.outer(g, g), padding="same", padding_mode="reflect")
    assert fastconv.last_method() == "separable"
    expected = fastconv.conv2d(x, np.outer(g, g), padding="same", padding_mode="reflect",
                               method="direct")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    random = rng.standard_normal((31, 31)).astype(np.float32)
    fastconv.conv2d(x, random, padding="same")
    assert fastconv.last_method() not in (None, "separable")
    image = rng.standard_normal((600, 700))
    fastconv.correlate2d(image, np.outer(gaussian(21), gaussian(21)), "same", "symm")
    assert fastconv.last_method() == "separable"


def test_every_rank_and_drop_in_finds_the_rank(rng):
    # The N-D engine carries the rank of the 2-D slices it runs: the drop-ins and conv3d (each
    # depth tap's slice of a separable volume kernel) are priced with it too.
    from scipy import ndimage as scipy_ndimage

    from fastconv import ndimage as fastconv_ndimage
    from fastconv import signal as fastconv_signal

    image = rng.standard_normal((300, 320))
    w2 = np.outer(gaussian(21), gaussian(21))
    got = fastconv_ndimage.correlate(image, w2, mode="mirror")
    assert fastconv.last_method() == "separable"
    np.testing.assert_allclose(got, scipy_ndimage.correlate(image, w2, mode="mirror"),
                               rtol=0, atol=1e-13)
    got = fastconv_signal.convolve(image, w2, "same")
    assert fastconv.last_method() == "separable"
    np.testing.assert_allclose(got, signal.convolve(image, w2, "same"), rtol=0, atol=1e-13)
    volume = rng.standard_normal((40, 48, 56))
    w3 = gaussian(5)[:, None, None] * np.outer(gaussian(15), gaussian(13))
    got = fastconv_ndimage.correlate(volume, w3, mode="reflect")
    assert fastconv.last_method() == "separable"
    np.testing.assert_allclose(got, scipy_ndimage.correlate(volume, w3, mode="reflect"),
                               rtol=0, atol=1e-13)
    plan = fastconv.plan(volume.shape, w3.shape, padding="same", rank=3, weights=w3,
                         dtype=np.float64)
    assert plan.geometry.kernel_rank == 1 and plan.reduction.depth_pass is not None
    assert "kernel rank 1" in repr(plan) and "three passes" in repr(plan)
    # A hint gives the slices' rank only (not that they are one outer product): folded.
    hinted = fastconv.plan(volume.shape, w3.shape, padding="same", rank=3, kernel_rank=1,
                           dtype=np.float64, method="separable")
    assert hinted.geometry.kernel_rank == 1 and hinted.reduction.depth_pass is None
    for made in (plan, hinted):
        got = fastconv.conv3d(volume, w3, padding="same", method=made)
        np.testing.assert_allclose(got, fastconv.conv3d(volume, w3, padding="same",
                                                        method="direct"), rtol=0, atol=1e-13)
    dense = rng.standard_normal(w3.shape)
    with pytest.raises(ValueError, match="`method` must be a Plan made for weights of rank at "
                       "most 1; got weights of rank 13"):
        fastconv.conv3d(volume, dense, padding="same", method=hinted)
    with pytest.raises(ValueError, match="`method` must be a Plan made for weights whose "
                       "slices are outer products"):
        fastconv.conv3d(volume, dense, padding="same", method=plan)


def test_plan_is_pure_and_shows_the_rank(rng):
    g = gaussian(31).astype(np.float32)
    w = np.outer(g, g)
    args = ((2048, 2048), (31, 31))
    options = dict(dtype=np.float32, padding="same", padding_mode="reflect")
    with_weights = fastconv.plan(*args, weights=w, **options)
    assert with_weights == fastconv.plan(*args, weights=w.copy(), **options)
    assert with_weights == fastconv.plan(*args, kernel_rank=1, **options)
    assert with_weights.geometry.kernel_rank == 1 and with_weights.method == "separable"
    assert "kernel rank 1" in repr(with_weights)
    shapes_only = fastconv.plan(*args, **options)
    assert shapes_only.geometry.kernel_rank is None and shapes_only.method != "separable"
    assert "rank is unknown" in shapes_only.candidate("separable").declined
    random = fastconv.plan(*args, weights=rng.standard_normal((31, 31)), **options)
    assert random.geometry.kernel_rank == 31 and random.method != "separable"
    assert "take no fewer multiply-adds" in random.candidate("separable").declined
    # Rank 8 of 31: priced, and slower than the best full-kernel method at this size.
    rank8 = fastconv.plan(*args, weights=low_rank(rng, (1, 1, 31, 31), 8)[0, 0], **options)
    assert rank8.geometry.kernel_rank == 8 and rank8.method != "separable"
    assert rank8.candidate("separable").seconds > rank8.candidate(rank8.method).seconds


def test_plans_run_only_weights_of_their_rank(rng):
    x = rng.standard_normal((40, 40))
    w = np.outer(gaussian(5), gaussian(5))
    rank_one = fastconv.plan((40, 40), (5, 5), padding=2, method="separable", kernel_rank=1)
    np.testing.assert_allclose(fastconv.conv2d(x, w, padding=2, method=rank_one),
                               fastconv.conv2d(x, w, padding=2, method="direct"), atol=1e-13)
    rank_two = fastconv.plan((40, 40), (5, 5), padding=2, method="separable", kernel_rank=2)
    np.testing.assert_allclose(fastconv.conv2d(x, w, padding=2, method=rank_two),
                               fastconv.conv2d(x, w, padding=2, method="direct"), atol=1e-13)
    with pytest.raises(ValueError, match="a Plan made for weights of rank at most 1"):
        fastconv.conv2d(x, rng.standard_normal((5, 5)), padding=2, method=rank_one)
    shapes_only = fastconv.plan((40, 40), (5, 5), padding=2)
    fastconv.conv2d(x, rng.standard_normal((5, 5)), padding=2, method=shapes_only)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(kernel_rank="1"), TypeError, "`kernel_rank` must be None or an int"),
        (dict(kernel_rank=-1), ValueError, "`kernel_rank` must be None or an int >= 0"),
        (dict(kernel_rank=1, weights=np.ones((3, 3))), ValueError, "None when `weights`"),
        (dict(weights=np.ones((3, 4))), ValueError, r"`weights` must be of shape weight_shape"),
        (dict(weights=np.array([["a"] * 3] * 3)), TypeError, "`weights` must be a numeric"),
    ],
)
def test_plan_rank_arguments_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastconv.plan((10, 10), (3, 3), **kwargs)


def test_one_dimensional_and_unranked_kernels_are_declined():
    with pytest.raises(ValueError, match="1-D kernel is one pass already"):
        fastconv.conv2d(np.ones((9, 9)), np.ones((1, 5)), method="separable")
    with pytest.raises(ValueError, match="rank 2: 2 pairs of passes take no fewer"):
        fastconv.conv2d(np.ones((9, 9)), np.diag([1.0, 1.0, 0.0]), method="separable")
    assert "rank is unknown" in fastconv.plan((9, 9), (3, 3)).candidate("separable").declined


# ---- compiled code ------------------------------------------------------------------------


def test_passes_vectorise_and_signatures_stay_closed():
    code = """
        import re, numpy as np, fastconv
        from fastconv.strategies.separable.kernels import correlate_separable
        g = np.exp(-np.linspace(-2, 2, 7) ** 2).astype(np.float32)
        x = np.ones((2, 3, 40, 40), np.float32)
        for stride in (1, 2):
            fastconv.conv2d(x, np.outer(g, g)[None, None].repeat(3, 0), groups=3,
                            stride=stride, method="separable")
        (signature,) = correlate_separable.signatures
        asm = correlate_separable.inspect_asm(signature)
        print(len(re.findall(r"vfmadd\\w+ps\\s[^\\n]*%[yz]mm", asm)))
        """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, cwd=ROOT, env=os.environ | {"FASTCONV_NO_CACHE": "1"},
                            timeout=600)
    assert result.returncode == 0, result.stderr
    # Both passes, each with its four-tap and shorter variants, on ymm or zmm registers.
    assert int(result.stdout.split()[-1]) >= 16


def test_one_signature_per_dtype():
    from fastconv.strategies.separable.kernels import correlate_separable

    image = np.outer(np.arange(12.0), np.ones(12))
    for dtype, cast in itertools.product((np.float32, np.float64), (None, "F")):
        data = image.astype(dtype) if cast is None else np.asfortranarray(image, dtype)
        fastconv.correlate2d(data, SOBEL.astype(dtype), "same", "symm", method="separable")
    inputs = [signature[0] for signature in correlate_separable.signatures]
    assert len(inputs) == len(set(inputs)) <= 5


def _small_geometries():
    """Square 'same' images whose outputs take fewer than DETECT_WORK multiply-adds per output
    channel, for k = 3 to 15."""
    for k in (3, 5, 7, 9, 11, 15):
        for side in range(k, 64):
            if side * side * k * k < detect_module.DETECT_WORK:
                yield side, k


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_auto_never_picks_separable_below_the_detection_floor(dtype):
    # Below DETECT_WORK calls do not detect their weights' rank; that costs nothing only while
    # 'auto' would not pick the separable strategy there with the rank known.
    for side, k in _small_geometries():
        chosen = fastconv.plan((side, side), (k, k), dtype=dtype, padding="same", kernel_rank=1)
        assert chosen.method != "separable", (side, k, chosen)


def test_small_calls_detect_their_rank_only_when_separable_is_forced(rng):
    x = rng.standard_normal((12, 12))
    w = np.outer(rng.standard_normal(5), rng.standard_normal(5))
    assert 12 * 12 * 25 < detect_module.DETECT_WORK
    assert fastconv.plan(x.shape, w.shape, padding="same", weights=w).geometry.kernel_rank is None
    forced = fastconv.plan(x.shape, w.shape, padding="same", weights=w, method="separable")
    assert forced.geometry.kernel_rank == 1
    expected = signal.correlate2d(x, w, "same")
    for method in ("separable", forced):
        got = fastconv.conv2d(x, w, padding="same", method=method)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        assert fastconv.last_method() == "separable"
    big = rng.standard_normal((64, 64))
    assert fastconv.plan(big.shape, w.shape, padding="same",
                         weights=w).geometry.kernel_rank == 1
