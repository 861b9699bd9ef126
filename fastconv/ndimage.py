"""Drop-ins for the convolutions of :mod:`scipy.ndimage`, on fastconv's parallel engine.

Change one import, ``from fastconv import ndimage``, and ``ndimage.correlate``, ``convolve``,
``correlate1d``, ``convolve1d``, ``gaussian_filter`` and ``gaussian_filter1d`` take the same
arguments (every boundary mode, per-axis origins, ``output`` as an array or a dtype, ``axes``) and
return SciPy 1.17's results, computed in parallel by the strategy fastconv's planner picks (a
Gaussian as separable passes). This module does not import :mod:`scipy.ndimage`.

The boundary modes are ``numpy.pad``'s, padding wider than the input included (checked against
SciPy for every mode, kernel and origin): ``reflect``/``grid-mirror`` = ``'symmetric'``,
``mirror`` = ``'reflect'``, ``nearest`` = ``'edge'``, ``wrap``/``grid-wrap`` = ``'wrap'``,
``constant``/``grid-constant`` = ``cval`` (the grid- names differ from the others only in
SciPy's interpolation functions, not in its filters).
"""

import numbers

import numpy as np
from numpy.lib.array_utils import normalize_axis_index
from numpy.polynomial.hermite_e import hermeval

from ._ndengine import correlate_nd
from ._validate import (
    as_array,
    ndimage_axes,
    ndimage_cval,
    ndimage_modes,
    ndimage_origin,
    ndimage_output,
    ndimage_weights,
    per_axis,
    threads_count,
)
from .core.messages import fail

__all__ = ["convolve", "convolve1d", "correlate", "correlate1d", "gaussian_filter",
           "gaussian_filter1d"]


def _input(input):
    x = as_array(input, "input")
    if x.dtype.itemsize > (16 if x.dtype.kind == "c" else 8):
        raise RuntimeError(f"`input` must have a dtype of at most 64-bit precision; got "
                           f"{x.dtype} (SciPy does not support it either).")
    return x


def _compute_dtype(x, w, out):
    """complex128 for complex data and float64 for the rest, as SciPy; float32 (and float16)
    images written to float32 (or float16) stay in float32, at twice the speed."""
    if x.dtype.kind == "c" or w.dtype.kind == "c":
        return np.dtype(np.complex128)
    if x.dtype.kind == "f" and x.dtype.itemsize <= 4 and out.dtype.kind == "f" \
            and out.dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _merged(shape, kernel, pads, modes):
    """The problem with axes where the kernel has one tap (and so no padding) folded away:
    leading ones into the batch, runs of them into one axis (C order makes both free)."""
    batch = 1
    axis = 0
    while axis < len(shape) - 1 and kernel[axis] == 1:
        batch *= shape[axis]
        axis += 1
    x_shape, w_shape, out_pads, out_modes = [], [], [], []
    for n in range(axis, len(shape)):
        if kernel[n] == 1 and w_shape and w_shape[-1] == 1:
            x_shape[-1] *= shape[n]
            continue
        x_shape.append(shape[n])
        w_shape.append(kernel[n])
        out_pads.append(pads[n])
        out_modes.append(modes[n])
    return batch, x_shape, w_shape, out_pads, out_modes


def _filter(input, weights, output, mode, cval, origin, axes, convolve, threads, one_axis=False):
    x = _input(input)
    w = np.asarray(weights)
    cval = ndimage_cval(cval, x.dtype.kind == "c", w.dtype.kind == "c")
    if one_axis:
        axes = (normalize_axis_index(axes, x.ndim),)
        if w.ndim != 1 or w.size == 0:
            raise RuntimeError(f"`weights` must be a non-empty 1-D array; got shape {w.shape}.")
        modes = ndimage_modes(mode, 1, sequence=False)
    else:
        axes = ndimage_axes(axes, x.ndim)
        w = ndimage_weights(w, len(axes))
        modes = ndimage_modes(mode, len(axes))
    # As SciPy: the weights' axes follow the filtered axes in increasing order, while the i-th
    # mode and origin belong to the i-th entry of ``axes``.
    kernel = [1] * x.ndim
    for axis, k in zip(sorted(axes), w.shape, strict=True):
        kernel[axis] = k
    origins = [0] * x.ndim
    all_modes = ["zeros"] * x.ndim
    for axis, o, m in zip(axes, per_axis(origin, len(axes), "origin"), modes, strict=True):
        origins[axis] = ndimage_origin(o, kernel[axis])
        all_modes[axis] = m
    complex_output = x.dtype.kind == "c" or w.dtype.kind == "c"
    out = ndimage_output(output, x, complex_output)
    count = threads_count(threads)
    if x.size == 0:
        return out if isinstance(output, np.ndarray) else np.zeros(out.shape, out.dtype)
    w = w.reshape(kernel)
    if convolve:  # flip, and move the centre to the mirrored tap (SciPy's rule for even sizes)
        w = w[(slice(None, None, -1),) * w.ndim]
        origins = [-o - (1 - k % 2) for o, k in zip(origins, kernel, strict=True)]
    elif w.dtype.kind == "c":
        w = np.conj(w)
    dtype = _compute_dtype(x, w, out)
    pads = [(k // 2 + o, k - 1 - k // 2 - o) for k, o in zip(kernel, origins, strict=True)]
    batch, x_shape, w_shape, pads, all_modes = _merged(x.shape, kernel, pads, all_modes)
    xs = np.ascontiguousarray(x, dtype).reshape(batch, 1, *x_shape)
    ws = np.ascontiguousarray(w, dtype).reshape(1, 1, *w_shape)
    fill = np.asarray(cval, dtype).item()
    result = correlate_nd(xs, ws, pads, all_modes, fill, 1, "auto", count).reshape(x.shape)
    if not isinstance(output, np.ndarray):
        if result.dtype == out.dtype:
            return result  # a new array of the output's dtype: no copy
        out = np.empty(out.shape, out.dtype)  # ``out`` was a stand-in (see ndimage_output)
    with np.errstate(invalid="ignore"):  # NaN to integers: C's cast, as SciPy's
        np.copyto(out, result, casting="unsafe")
    return out


def correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None,
              threads=None):
    """Multidimensional correlation: a drop-in for :func:`scipy.ndimage.correlate`.

    Parameters
    ----------
    input : array_like
        Any rank; bool, integer, float and complex.
    weights : array_like
        One axis per filtered axis (``input.ndim``, or ``len(axes)``). Complex weights are
        conjugated (as SciPy and ``numpy.correlate`` do).
    output : numpy.ndarray or dtype, optional
        The array to write (the input's shape), or the dtype of the result. Default: the input's
        dtype (complex for complex weights).
    mode : str or sequence of str
        ``'reflect'`` (default; ``'grid-mirror'``), ``'mirror'``, ``'nearest'``, ``'wrap'``
        (``'grid-wrap'``), ``'constant'`` (``'grid-constant'``): how the input extends beyond its
        edges, as ``numpy.pad``'s 'symmetric', 'reflect', 'edge', 'wrap' and constant ``cval``.
        A sequence gives one mode per filtered axis.
    cval : scalar
        The value beyond the edges in the constant modes.
    origin : int or sequence of int
        Shifts the kernel's centre (``k // 2`` on each axis) by ``origin`` taps; one per filtered
        axis, ``-(k // 2) <= origin <= (k - 1) // 2``.
    axes : int or sequence of int, optional
        The axes to filter (default all).
    threads : int, optional
        Threads for this call; default ``numba.get_num_threads()``. Not a SciPy argument.

    Returns
    -------
    numpy.ndarray
        ``output`` itself when it is an array. Integer outputs truncate toward zero and wrap, as
        SciPy's C casts do.

    Notes
    -----
    As SciPy, the sums are formed in float64 (complex128 for complex data), except that float32
    and float16 images written to a float32 or float16 output are summed in float32: the result
    differs from SciPy's by float32 rounding (relative ~1e-7 of the window's sum of magnitudes).
    Integer outputs truncate the float64 sum as SciPy does, but a sum whose exact value is an
    integer can come out one ulp below it in a different order of additions than SciPy's, and
    truncate to the integer below. Extensions of SciPy: a sequence of modes (SciPy's
    ``correlate`` raises RuntimeError), float16 data.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> a = np.arange(9.0).reshape(3, 3)
    >>> ndimage.correlate(a, np.ones((2, 2)), mode="nearest")
    array([[ 0.,  2.,  6.],
           [ 6.,  8., 12.],
           [18., 20., 24.]])
    >>> ndimage.correlate(np.arange(5), [1, 1, 1], mode="constant", cval=10)
    array([11,  3,  6,  9, 17])
    """
    return _filter(input, weights, output, mode, cval, origin, axes, False, threads)


def convolve(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None,
             threads=None):
    """Multidimensional convolution: a drop-in for :func:`scipy.ndimage.convolve`.

    Arguments, results and differences from SciPy as :func:`correlate`; the weights are flipped
    (not conjugated), and the centre moves to the mirrored tap: ``origin`` o becomes ``-o - 1``
    on even axes, ``-o`` on odd ones, as in SciPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> ndimage.convolve(np.array([1, 2, 0, 4]), [1, 2], mode="constant")
    array([4, 4, 4, 8])
    """
    return _filter(input, weights, output, mode, cval, origin, axes, True, threads)


def correlate1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
                threads=None):
    """One-dimensional correlation along ``axis``: a drop-in for
    :func:`scipy.ndimage.correlate1d`.

    Arguments and results as :func:`correlate` with 1-D ``weights``, one ``mode`` (a string) and
    one ``origin``.

    Examples
    --------
    >>> from fastconv import ndimage
    >>> ndimage.correlate1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([ 8, 26,  8, 12,  7, 28, 36,  9])
    """
    return _filter(input, weights, output, mode, cval, origin, axis, False, threads,
                   one_axis=True)


def convolve1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
               threads=None):
    """One-dimensional convolution along ``axis``: a drop-in for
    :func:`scipy.ndimage.convolve1d`.

    Examples
    --------
    >>> from fastconv import ndimage
    >>> ndimage.convolve1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([14, 24,  4, 13, 12, 36, 27,  0])
    """
    return _filter(input, weights, output, mode, cval, origin, axis, True, threads,
                   one_axis=True)


# SciPy filters an axis only where its sigma exceeds this.
SIGMA_FLOOR = 1e-15


def _gaussian_weights(sigma, order, radius):
    """The correlation weights of a Gaussian of ``sigma`` over -radius..radius, normalised to sum
    1, or of its ``order``-th derivative: that times (-1/sigma)**order He_order(x / sigma), the
    probabilists' Hermite polynomial (d^n/dx^n exp(-x^2 / 2) = (-1)^n He_n(x) exp(-x^2 / 2)),
    reversed for correlation as SciPy does."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    phi /= phi.sum()
    if order:
        phi *= (-1 / sigma) ** order * hermeval(x / sigma, [0] * order + [1])
    return phi[::-1]


def _gaussian_axis(sigma, order, truncate, radius):
    """Checked (sigma, order, radius) of one axis: the radius is ``int(truncate * sigma + 0.5)``
    unless given."""
    if not isinstance(sigma, numbers.Real) or isinstance(sigma, bool):
        fail(TypeError, "sigma", "a real number or one per filtered axis", sigma)
    if not np.isfinite(sigma):
        fail(ValueError, "sigma", "finite", sigma)
    if not isinstance(order, numbers.Integral) or isinstance(order, bool):
        fail(TypeError, "order", "an int or one per filtered axis", order)
    if order < 0:
        fail(ValueError, "order", "non-negative", order)
    if not isinstance(truncate, numbers.Real) or not np.isfinite(truncate):
        fail(ValueError, "truncate", "a finite real number", truncate)
    if radius is None:
        radius = int(truncate * float(sigma) + 0.5)
    elif not isinstance(radius, numbers.Integral) or isinstance(radius, bool):
        fail(ValueError, "radius", "None, an int or one per filtered axis (SciPy raises "
             "ValueError too)", radius)
    if radius < 0:
        fail(ValueError, "radius", "non-negative (from truncate * sigma + 0.5 when not given)",
             radius)
    return float(sigma), int(order), int(radius)


def gaussian_filter1d(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0,
                      truncate=4.0, *, radius=None, threads=None):
    """A 1-D Gaussian filter (or its derivative of ``order``) along ``axis``: a drop-in for
    :func:`scipy.ndimage.gaussian_filter1d`, computed as :func:`correlate1d` of SciPy's weights.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> ndimage.gaussian_filter1d([1.0, 2.0, 3.0, 4.0, 5.0], 1)
    array([1.42704095, 2.06782203, 3.        , 3.93217797, 4.57295905])
    """
    sigma, order, radius = _gaussian_axis(sigma, order, truncate, radius)
    return correlate1d(input, _gaussian_weights(sigma, order, radius), axis, output, mode, cval,
                       0, threads=threads)


def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0,
                    *, radius=None, axes=None, threads=None):
    """A Gaussian filter (or its derivatives) over ``axes``: a drop-in for
    :func:`scipy.ndimage.gaussian_filter`.

    ``sigma``, ``order``, ``mode`` and ``radius`` take one value or one per filtered axis; an axis
    whose sigma is at most 1e-15 is not filtered (as SciPy). As SciPy, the axes are filtered in
    turn with :func:`gaussian_filter1d`'s weights; where the result is of a float or complex dtype
    and at most three axes are filtered, the product of those weights is given whole to
    :func:`correlate` instead, which finds it separable and runs it as one pass per axis over
    cache-resident rows (one call, no intermediate of the output's size between axes). Integer
    outputs take the axes in turn, truncating after each as SciPy does.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> image = np.zeros((5, 5))
    >>> image[2, 2] = 1
    >>> ndimage.gaussian_filter(image, 1, mode="constant").round(3)[1:4, 1:4]
    array([[0.059, 0.097, 0.059],
           [0.097, 0.159, 0.097],
           [0.059, 0.097, 0.059]])
    """
    x = _input(input)
    axes = ndimage_axes(axes, x.ndim)
    count = len(axes)
    modes = per_axis(mode, count, "mode")
    ndimage_modes(modes, count)  # SciPy's checks and messages
    filtered = []
    for axis, s, o, m, r in zip(axes, per_axis(sigma, count, "sigma"),
                                per_axis(order, count, "order"), modes,
                                per_axis(radius, count, "radius"), strict=True):
        s, o, r = _gaussian_axis(s, o, truncate, r)
        if s > SIGMA_FLOOR:
            filtered.append((axis, _gaussian_weights(s, o, r), m))
    out = ndimage_output(output, x, x.dtype.kind == "c")
    if not filtered:
        if isinstance(output, np.ndarray):
            np.copyto(output, x, casting="unsafe")
            return output
        return x.astype(out.dtype, copy=True)
    if out.dtype.kind in "fc" and len(filtered) <= 3:
        filtered.sort(key=lambda item: item[0])
        weights = filtered[0][1]
        for _, w, _ in filtered[1:]:
            weights = np.multiply.outer(weights, w)
        return correlate(x, weights, output, [m for _, _, m in filtered], cval,
                         axes=[axis for axis, _, _ in filtered], threads=threads)
    current = x
    for n, (axis, w, m) in enumerate(filtered):
        last = n == len(filtered) - 1
        current = correlate1d(current, w, axis, output if last else out.dtype, m, cval,
                              threads=threads)
    return current
