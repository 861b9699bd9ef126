"""The SciPy oracle and the one tolerance table every test uses.

The reference for ``conv2d`` is built from ``scipy.signal.correlate2d`` only: per-channel valid
correlations of the ``numpy.pad``-padded input, summed over the input channels of a group, with
dilation as a zero-inserted kernel and stride as slicing. Computed in float64/complex128.
"""

import math

import numpy as np
from scipy import signal

import fastconv
from fastconv.core.geometry import NUMPY_PAD_MODES
from fastconv.strategies import REGISTRY

# Error bound per element, relative to the local scale sum |x| * |w| of that output (the classical
# forward-error bound of a sum of products is n*u times it; the typical error is sqrt(n)*u).
# Measured worst cases: fp32 4e-7, fp64 6e-16 (../shared/notes/algorithms.md, section 4).
LOCAL_TOLERANCE = {
    np.dtype(np.float32): 1e-5,
    np.dtype(np.complex64): 1e-5,
    np.dtype(np.float64): 1e-13,
    np.dtype(np.complex128): 1e-13,
}

# Every strategy's error is bounded per element by LOCAL_TOLERANCE; its error model
# (fastconv.strategies.ERROR_MODELS) says which normwise term it adds (normwise_bound).

# Winograd F(2x2, 3x3) mixes the 4x4 input patch of a 2x2 output tile and a 16-term channel sum
# per transformed point: its error follows the largest local scale of the plane, not each
# output's own. Measured at most 1.5 * u * max(scale) (random data, fp32 and fp64).
WINOGRAD_FACTOR = 8
# Separable kernels of rank 2 and up (an SVD's factors) are bounded by ||w|| * ||x_window|| of
# each output's window (fastconv/strategies/separable/detect.py), which the tests' noise-like data
# and smooth kernels keep within a factor of about two of sum |x| * |w| (``scale``): the window
# term is that factor times the elementwise tolerance. Rank-1 kernels are elementwise, but the
# tests take a strategy's worst model.
WINDOW_FACTOR = 2


def check_conv2d(method, x, w, bias, **options):
    """fastconv.conv2d(method=...) with conv2d's ``options`` against the oracle."""
    from fastconv._validate import int_pair, parse_padding

    got = fastconv.conv2d(x, w, bias, method=method, **options)
    stride = int_pair(options.get("stride", 1), "stride", 1)
    dilation = int_pair(options.get("dilation", 1), "dilation", 1)
    pad = parse_padding(options.get("padding", 0), w.shape[2:], stride, dilation)
    reference = dict(stride=stride, padding=pad, dilation=dilation,
                     groups=options.get("groups", 1),
                     padding_mode=options.get("padding_mode", "zeros"))
    expected = reference_conv2d(x, w, bias, **reference)
    scale = reference_conv2d(abs(x), abs(w), abs(bias), **reference)
    assert_close(got, expected, scale, x.dtype, method)


def random_layer(rng, input_shape, weight_shape, dtype):
    """Standard-normal input, weights and bias of a layer, in ``dtype``."""
    return (rng.standard_normal(input_shape).astype(dtype),
            rng.standard_normal(weight_shape).astype(dtype),
            rng.standard_normal(weight_shape[0]).astype(dtype))


def dilate(kernel, dilation):
    """Zero-insert ``dilation - 1`` samples between kernel taps (last two axes)."""
    dh, dw = dilation
    kh, kw = kernel.shape[-2:]
    out = np.zeros(kernel.shape[:-2] + ((kh - 1) * dh + 1, (kw - 1) * dw + 1), kernel.dtype)
    out[..., ::dh, ::dw] = kernel
    return out


def reference_conv2d(x, w, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                     groups=1, padding_mode="zeros"):
    """conv2d of NCHW ``x`` and KCHW ``w`` from scipy.signal.correlate2d, in float64/complex128."""
    wide = np.complex128 if np.iscomplexobj(x) or np.iscomplexobj(w) else np.float64
    x = np.asarray(x, wide)
    w = dilate(np.asarray(w, wide), dilation)
    top, bottom, left, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), NUMPY_PAD_MODES[padding_mode])
    n_images, channels = x.shape[:2]
    out_channels, cg = w.shape[:2]
    kg = out_channels // groups
    rows = [[None] * out_channels for _ in range(n_images)]
    for n in range(n_images):
        for k in range(out_channels):
            g = k // kg
            acc = sum(
                signal.correlate2d(xp[n, g * cg + c], np.conj(w[k, c]), "valid")
                for c in range(cg)
            )
            acc = acc[:: stride[0], :: stride[1]]
            rows[n][k] = acc + (0 if bias is None else bias[k])
    return np.array(rows)


def assert_close(actual, expected, scale, dtype, method="direct"):
    """Check dtype, then shape, then values within the tolerance table."""
    dtype = np.dtype(dtype)
    assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    if dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected)
        return
    bound = LOCAL_TOLERANCE[dtype] * scale + normwise_bound(method, dtype, scale)
    error = np.abs(actual.astype(np.complex128) - expected)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg="NaN positions")
    worst = np.max(error[finite] - bound[finite], initial=-np.inf)
    assert worst <= 0, f"error exceeds tolerance by {worst:.3g} (max {error[finite].max():.3g})"


def normwise_bound(method, dtype, scale):
    """The normwise term of ``method``'s error model (0 for an elementwise one); for 'auto' or
    'measure', the largest term of any strategy they may run."""
    if method not in REGISTRY:
        return np.max([normwise_bound(name, dtype, scale) * np.ones_like(scale, np.float64)
                       for name in REGISTRY], axis=0)
    error_model = REGISTRY[method].error_model
    if error_model == "normwise-transform":
        return fft_bound(dtype, scale)
    if error_model == "normwise-tile":
        return winograd_bound(dtype, scale)
    if error_model == "normwise-window":
        return WINDOW_FACTOR * LOCAL_TOLERANCE[np.dtype(dtype)] * np.asarray(scale, np.float64)
    assert error_model == "elementwise", error_model
    return 0.0


def fft_bound(dtype, scale):
    """Normwise FFT term: ``2 * u * log2(M) * max(scale)`` over each output plane, or each output
    volume of a batched 3-D call (N, K, D, H, W): the FFT transforms a conv3d's depths with its
    height and width flattened into one axis (planning/ranks.py), so its error is relative to
    the whole volume's.

    An FFT convolution is accurate relative to the norms of its operands, not per element: its
    error grows as log2(M) for an M-point transform, times ``max |x| * |w|`` of the plane (which
    bounds ``||x|| * ||w||``-style norms of every tile, also where values span many orders of
    magnitude). The test cannot see the transform size, so M is the plane's size (at least 64).
    Measured (tests/strategies/test_fft.py data, reference in float64): at most 0.3 of this bound's
    ``u * log2(M) * max(scale)`` for float32 (0.6 for all-positive data with 1024 channels).
    """
    scale = np.asarray(scale, np.float64)
    unit = np.finfo(dtype).eps
    axes = (-3, -2, -1) if scale.ndim == 5 else (-2, -1)
    plane = np.max(scale, axis=axes, keepdims=True)
    points = max(64, math.prod(scale.shape[axis] for axis in axes))
    return 2 * unit * np.log2(points) * plane


def winograd_bound(dtype, scale):
    """Winograd term: ``WINOGRAD_FACTOR * u * max(scale)`` over each output plane."""
    scale = np.asarray(scale, np.float64)
    plane = np.max(scale, axis=(-2, -1), keepdims=True)
    return WINOGRAD_FACTOR * np.finfo(dtype).eps * plane


def declined(method, geometry):
    """Whether ``method`` declines ``geometry`` under the current workspace budget (then a forced
    call must raise ValueError)."""
    return REGISTRY[method].declines(geometry, fastconv.get_workspace_budget()) is not None


def dilate_nd(kernel, dilation):
    """Zero-insert ``dilation - 1`` samples between kernel taps along the last len(dilation)
    axes."""
    rank = len(dilation)
    spatial = kernel.shape[-rank:]
    out = np.zeros(kernel.shape[:-rank] + tuple((k - 1) * d + 1
                                                for k, d in zip(spatial, dilation, strict=True)),
                   kernel.dtype)
    out[(...,) + tuple(slice(None, None, d) for d in dilation)] = kernel
    return out


def reference_conv_nd(x, w, bias=None, stride=None, padding=None, dilation=None, groups=1,
                      padding_mode="zeros"):
    """conv1d/conv2d/conv3d of (N, C, *spatial) ``x`` and (K, C/groups, *kernel) ``w`` from
    scipy.signal.correlate: per-channel valid correlations of the ``numpy.pad``-padded input,
    summed over the group's channels, dilation as a zero-inserted kernel, stride as slicing; in
    float64/complex128. ``padding`` is one (before, after) pair per spatial axis."""
    rank = x.ndim - 2
    stride = stride or (1,) * rank
    dilation = dilation or (1,) * rank
    padding = padding or ((0, 0),) * rank
    wide = np.complex128 if np.iscomplexobj(x) or np.iscomplexobj(w) else np.float64
    x = np.asarray(x, wide)
    w = dilate_nd(np.asarray(w, wide), dilation)
    xp = np.pad(x, ((0, 0), (0, 0), *padding), NUMPY_PAD_MODES[padding_mode])
    n_images = x.shape[0]
    out_channels, cg = w.shape[:2]
    kg = out_channels // groups
    step = tuple(slice(None, None, s) for s in stride)
    out = []
    for n in range(n_images):
        planes = []
        for k in range(out_channels):
            g = k // kg
            acc = sum(signal.correlate(xp[n, g * cg + c], w[k, c], "valid", method="direct")
                      for c in range(cg))
            planes.append(acc[step] + (0 if bias is None else bias[k]))
        out.append(planes)
    return np.array(out)


def check_conv_nd(method, x, w, bias, **options):
    """fastconv.conv1d/conv2d/conv3d (by ``x``'s rank, batched (N, C, *spatial) input) with
    ``options`` against the oracle."""
    import fastconv
    from fastconv._validate import int_tuple, padding_pairs

    rank = x.ndim - 2
    function = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}[rank]
    got = function(x, w, bias, method=method, **options)
    stride = int_tuple(options.get("stride", 1), "stride", 1, rank)
    dilation = int_tuple(options.get("dilation", 1), "dilation", 1, rank)
    pad = padding_pairs(options.get("padding", 0), w.shape[2:], stride, dilation)
    reference = dict(stride=stride, padding=pad, dilation=dilation,
                     groups=options.get("groups", 1),
                     padding_mode=options.get("padding_mode", "zeros"))
    expected = reference_conv_nd(x, w, bias, **reference)
    scale = reference_conv_nd(abs(x), abs(w), None if bias is None else abs(bias), **reference)
    dtype = fastconv._validate.conv2d_dtype(x, w, bias)
    assert_close(got, expected, scale, dtype, method)


def assert_close_nd(actual, expected, scale, dtype):
    """N-D drop-ins: dtype, then shape, then values. Integers exactly; floats within the local
    tolerance of the compute precision plus the FFT's normwise term over the whole output (the
    planner may pick the FFT for any call)."""
    dtype = np.dtype(dtype)
    assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    if dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected)
        return
    compute = np.dtype(np.float32) if dtype.itemsize <= 4 or dtype == np.complex64 else \
        np.dtype(np.float64)
    scale = np.asarray(scale, np.float64)
    unit = np.finfo(compute).eps
    bound = LOCAL_TOLERANCE[compute] * scale + 2 * unit * np.log2(max(64, scale.size)) * \
        np.max(scale, initial=0.0)
    error = np.abs(actual.astype(np.complex128) - expected)
    worst = np.max(error - bound, initial=-np.inf)
    assert worst <= 0, f"error exceeds tolerance by {worst:.3g} (max {error.max():.3g})"
