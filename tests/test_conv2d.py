"""conv2d against the SciPy oracle, for every registered method."""

import itertools

import numpy as np
import pytest
from oracle import assert_close, declined, reference_conv2d

import fastconv
from fastconv._validate import conv2d_problem, parse_padding
from fastconv.core.geometry import PADDING_MODES

# name: (input shape, weight shape, groups)
SHAPES = {
    "1x1x7x9-3x3": ((1, 1, 7, 9), (1, 1, 3, 3), 1),
    "2x3x5x6-1x1": ((2, 3, 5, 6), (4, 3, 1, 1), 1),
    "1x2x8x7-even4x2": ((1, 2, 8, 7), (3, 2, 4, 2), 1),
    "1x1x5x5-kernel=image": ((1, 1, 5, 5), (2, 1, 5, 5), 1),
    "1x1x9x1-1px-wide": ((1, 1, 9, 1), (1, 1, 3, 1), 1),
    "2x4x6x7-groups2": ((2, 4, 6, 7), (6, 2, 3, 3), 2),
    "2x3x6x6-depthwise": ((2, 3, 6, 6), (3, 1, 3, 3), 3),
    "1x1x6x70-wide-rows": ((1, 1, 6, 70), (1, 1, 3, 5), 1),
    "1x5x4x4-many-taps": ((1, 5, 4, 4), (2, 5, 3, 2), 1),
}
PADDINGS = [0, 1, (2, 1), ((1, 0), (0, 2)), "same", "full", ((3, 4), (5, 6))]
STRIDES = [1, 2, (1, 3)]
DILATIONS = [1, (2, 1)]
DTYPES = [np.float32, np.float64]


def _options(weight_shape, input_shape):
    for padding, stride, dilation in itertools.product(PADDINGS, STRIDES, DILATIONS):
        stride2 = (stride, stride) if isinstance(stride, int) else stride
        dilation2 = (dilation, dilation) if isinstance(dilation, int) else dilation
        if padding == "same" and stride2 != (1, 1):
            continue
        pad = parse_padding(padding, weight_shape[2:], stride2, dilation2)
        spans = [d * (k - 1) + 1 for d, k in zip(dilation2, weight_shape[2:], strict=True)]
        if spans[0] > input_shape[2] + pad[0] + pad[1] or spans[1] > input_shape[3] + sum(pad[2:]):
            continue
        yield padding, stride2, dilation2, pad


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("case", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", fastconv.METHODS)
def test_matches_oracle(method, dtype, case, padding_mode, rng):
    input_shape, weight_shape, groups = SHAPES[case]
    x = rng.standard_normal(input_shape).astype(dtype)
    w = rng.standard_normal(weight_shape).astype(dtype)
    bias = rng.standard_normal(weight_shape[0]).astype(dtype)
    checked = 0
    for padding, stride, dilation, pad in _options(weight_shape, input_shape):
        checked += 1
        call = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=padding_mode, method=method)
        geometry = conv2d_problem(x, w, bias, stride, padding, dilation, groups,
                                  padding_mode)[0].geometry
        if declined(method, geometry):
            with pytest.raises(ValueError, match=f"`method` '{method}' cannot run this problem"):
                fastconv.conv2d(x, w, bias, **call)
            continue
        got = fastconv.conv2d(x, w, bias, **call)
        options = dict(stride=stride, padding=pad, dilation=dilation, groups=groups,
                       padding_mode=padding_mode)
        expected = reference_conv2d(x, w, bias, **options)
        scale = reference_conv2d(abs(x), abs(w), abs(bias), **options)
        try:
            assert_close(got, expected, scale, dtype, method)
        except AssertionError as error:
            raise AssertionError(f"padding={padding} stride={stride} dilation={dilation}: "
                                 f"{error}") from None
    assert checked >= 10


@pytest.mark.parametrize("method", fastconv.METHODS)
def test_input_forms_2d_3d_4d(method, rng):
    x = rng.standard_normal((3, 9, 8))
    w = rng.standard_normal((2, 3, 3, 3))
    four = fastconv.conv2d(x[None], w, method=method)
    assert four.shape == (1, 2, 7, 6)
    np.testing.assert_array_equal(fastconv.conv2d(x, w, method=method), four[0])
    image, kernel = x[0], w[0, 0]
    got = fastconv.conv2d(image, kernel, 0.5, padding="same", method=method)
    expected = reference_conv2d(image[None, None], kernel[None, None], [0.5], padding=(1, 1, 1, 1))
    assert_close(got, expected[0, 0], reference_conv2d(
        abs(image[None, None]), abs(kernel[None, None]), [0.5], padding=(1, 1, 1, 1))[0, 0],
        np.float64, method)


@pytest.mark.parametrize("method", fastconv.METHODS)
def test_layouts_and_read_only_inputs_are_not_modified(method, rng):
    base = rng.standard_normal((2, 2, 12, 14))
    w = rng.standard_normal((3, 2, 3, 3))
    expected = fastconv.conv2d(np.ascontiguousarray(base), w, padding=1, method=method)
    fortran = np.asfortranarray(base)
    negative = base[:, :, ::-1, ::-1][:, :, ::-1, ::-1]
    strided = np.repeat(base, 2, axis=3)[..., ::2]
    frozen = base.copy()
    frozen.flags.writeable = False
    for view in (fortran, negative, strided, frozen):
        before = view.copy()
        got = fastconv.conv2d(view, w, padding=1, method=method)
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
        np.testing.assert_array_equal(view, before)
    flipped = base[:, :, ::-1, :]
    np.testing.assert_allclose(
        fastconv.conv2d(flipped, w, padding=1, method=method),
        fastconv.conv2d(flipped.copy(), w, padding=1, method=method), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(
    ("x_dtype", "w_dtype", "expected"),
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float64, np.float64),
        (np.float32, np.float64, np.float64),
        (np.int32, np.int32, np.float64),
        (np.uint8, np.float32, np.float32),
        (np.bool_, np.bool_, np.float64),
        (np.float16, np.float16, np.float32),
    ],
)
def test_output_dtype(x_dtype, w_dtype, expected):
    x = np.ones((1, 1, 5, 5), x_dtype)
    w = np.ones((1, 1, 2, 2), w_dtype)
    got = fastconv.conv2d(x, w)
    assert got.dtype == expected
    np.testing.assert_array_equal(got, np.full((1, 1, 4, 4), 4))


@pytest.mark.parametrize("method", fastconv.METHODS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_stay_local(method, bad, rng):
    x = rng.standard_normal((1, 1, 40, 50))
    x[0, 0, 20, 30] = bad
    w = rng.standard_normal((1, 1, 3, 3))
    got = fastconv.conv2d(x, w, method=method)[0, 0]
    window = np.zeros(got.shape, bool)
    window[18:21, 28:31] = True
    assert np.all(np.isfinite(got[~window]))
    assert not np.any(np.isfinite(got[window]))


def test_bias_none_equals_zero_bias(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    np.testing.assert_array_equal(fastconv.conv2d(x, w), fastconv.conv2d(x, w, np.zeros(4)))


@pytest.mark.parametrize(
    ("input_shape", "weight_shape", "options", "expected"),
    [
        ((8, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3), (8, 64, 112, 112)),
        ((3, 10, 11), (4, 3, 3, 2), dict(padding="same"), (4, 10, 11)),
        ((10, 11), (3, 3), dict(padding="full", dilation=2), (14, 15)),
        ((10, 11), (3, 3), dict(padding=((1, 0), (0, 2)), stride=(2, 3)), (5, 4)),
    ],
)
def test_output_shape(input_shape, weight_shape, options, expected, rng):
    assert fastconv.output_shape(input_shape, weight_shape, **options) == expected
    got = fastconv.conv2d(np.zeros(input_shape, np.float32), np.zeros(weight_shape, np.float32),
                          **options)
    assert got.shape == expected


def test_threads_argument_restores_numba_setting(rng):
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    x = rng.standard_normal((1, 1, 300, 300))
    w = rng.standard_normal((1, 1, 5, 5))
    numba.set_num_threads(2)
    try:
        one = fastconv.conv2d(x, w, threads=1)
        assert numba.get_num_threads() == 2
        np.testing.assert_allclose(one, fastconv.conv2d(x, w, threads=2), rtol=1e-13, atol=1e-12)
        with pytest.raises(ValueError, match="padding_mode"):
            fastconv.conv2d(x, w, threads=1, padding_mode="bogus")
        assert numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_torch_semantics_when_available(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 11, 13)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 4)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    for mode in ("zeros", "reflect", "replicate", "circular"):
        layer = torch.nn.Conv2d(4, 6, (3, 4), stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                groups=2, padding_mode=mode)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))
            expected = layer(torch.from_numpy(x)).numpy()
        got = fastconv.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2,
                              padding_mode=mode)
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
