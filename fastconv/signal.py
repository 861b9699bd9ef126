"""Drop-ins for SciPy's N-D convolutions in :mod:`scipy.signal`, on fastconv's parallel engine.

Change one import, ``from fastconv import signal``, and ``signal.correlate``, ``convolve``,
``fftconvolve``, ``oaconvolve``, ``correlate2d``, ``convolve2d`` and ``choose_conv_method`` take
the same arguments and return SciPy 1.17's shapes and dtypes (integers exact), computed in
parallel by the strategy fastconv's planner picks. This module does not import
:mod:`scipy.signal` (SciPy computes only what Numba cannot: longdouble and object arrays).
"""

import timeit

import numpy as np

from ._api import convolve2d, correlate2d
from ._ndengine import DryRun, Planned, correlate_nd
from ._validate import (
    SIGNAL_METHODS,
    fft_axes,
    same_rank,
    signal_inputs,
    signal_method,
    signal_mode,
    threads_count,
)

__all__ = ["choose_conv_method", "convolve", "convolve2d", "correlate", "correlate2d",
           "fftconvolve", "oaconvolve"]

# SciPy's bound for integer data on its FFT path: exact while every result is below 2**52.
_FFT_EXACT = 2**52 - 1


def _scipy_signal():
    # Only for types Numba cannot compute (longdouble, object). The private module: SciPy's own
    # functions even when its namespace is patched (tests/scipy_suite/plugin.py).
    from scipy.signal import _signaltools

    return _signaltools


def _fft_exact(image, kernel):
    """SciPy's rule: integer data may go to an FFT only while max|in1| max|in2| min(size) fits
    in float64's mantissa (``choose_conv_method``)."""
    if image.dtype.kind == "b" and kernel.dtype.kind == "b":
        return False
    if image.dtype.kind not in "iu" and kernel.dtype.kind not in "iu":
        return True
    bound = float(np.max(np.abs(image.astype(np.float64))))
    bound *= float(np.max(np.abs(kernel.astype(np.float64))))
    return bound * min(image.size, kernel.size) <= _FFT_EXACT


def _correlate(a, b, mode, method, threads, convolve, dtype, compute, swapped, dry=False):
    """Correlation (or convolution) of validated non-empty ``a`` and ``b`` of one rank."""
    image, kernel = (b, a) if swapped else (a, b)
    if convolve:
        kernel = kernel[(slice(None, None, -1),) * kernel.ndim]
    elif kernel.dtype.kind == "c":
        kernel = np.conj(kernel)
    if mode == "full":
        pads = [(k - 1, k - 1) for k in kernel.shape]
    elif mode == "valid":
        pads = [(0, 0)] * kernel.ndim
    else:  # SciPy's 'same' is the centre of 'full', starting at (k - 1) // 2
        pads = [(k // 2, (k - 1) // 2) for k in kernel.shape]
    if method == "auto" and compute.kind == "i" and not _fft_exact(image, kernel):
        method = "direct"
    x = np.ascontiguousarray(image, compute).reshape(1, 1, *image.shape)
    w = np.ascontiguousarray(kernel, compute).reshape(1, 1, *kernel.shape)
    if dry:
        method = DryRun(method)
    out = correlate_nd(x, w, pads, ["zeros"] * x.ndim, 0, 1, method, threads)[0, 0]
    if swapped and not convolve:  # correlate(a, b) = reverse(conj(correlate(b, a)))
        out = out[(slice(None, None, -1),) * out.ndim]
        out = np.conj(out) if out.dtype.kind == "c" else out
    if dtype.kind == "b":
        return out != 0
    return out.astype(dtype, copy=False)


def _nd_call(in1, in2, mode, method, threads, convolve):
    a, b = np.asarray(in1), np.asarray(in2)
    if a.ndim == b.ndim == 0:
        return a * (b if convolve or b.dtype.kind != "c" else np.conj(b))
    a, b, dtype, compute, swapped = signal_inputs(a, b, mode, method)
    count = threads_count(threads)
    if compute is None:
        scipy_function = _scipy_signal().convolve if convolve else _scipy_signal().correlate
        return scipy_function(a, b, mode, method if method in SIGNAL_METHODS else "auto")
    if a.size == 0 or b.size == 0:
        if mode == "same":
            return np.zeros(a.shape, dtype)
        raise ValueError(f"`in1` and `in2` must be non-empty in {mode!r} mode; got shapes "
                         f"{a.shape} and {b.shape}.")
    return _correlate(a, b, mode, method, count, convolve, dtype, compute, swapped)


def correlate(in1, in2, mode="full", method="auto", *, threads=None):
    """Cross-correlate two N-dimensional arrays: a drop-in for :func:`scipy.signal.correlate`.

    Parameters
    ----------
    in1, in2 : array_like
        Arrays of the same number of dimensions (0-D inputs multiply). ``in2`` is conjugated.
    mode : {'full', 'valid', 'same'}
        As in SciPy: ``'same'`` is ``in1``'s shape, the centre of ``'full'`` (it starts at
        ``(len(in2) - 1) // 2``; :func:`correlate2d`'s even-kernel offset differs, as SciPy's
        does); ``'valid'`` needs one input at least as large as the other on every axis.
    method : {'auto', 'direct', 'fft', 'measure', 'im2col', 'winograd', ...}
        ``'auto'``: fastconv's planner chooses (see :func:`choose_conv_method`); ``'direct'`` and
        ``'fft'`` force fastconv's direct and FFT strategies; any name in ``fastconv.METHODS`` or
        ``'measure'`` as in :func:`fastconv.conv2d`.
    threads : int, optional
        Threads for this call; default ``numba.get_num_threads()``.

    Returns
    -------
    numpy.ndarray
        ``numpy.result_type(in1, in2)``, as SciPy. Integers and bool are computed exactly in int64
        and wrap on overflow as SciPy's do; with ``method='fft'`` they are rounded, as SciPy
        rounds. longdouble and object arrays are computed by SciPy itself.

    Notes
    -----
    Differences from SciPy 1.17: ``'auto'`` chooses from fastconv's cost model, and integers use
    an FFT only within SciPy's exactness bound; bool and float16 inputs of any rank are computed
    (SciPy's direct method raises for them beyond 1-D; float16 is computed in float32); NaN and
    Inf reach only the outputs whose window holds them, whatever the method; empty inputs in
    'full' or 'valid' mode raise ValueError (SciPy returns arrays of inconsistent shapes).
    Ranks 1 to 3 run on the 2-D engine; higher ranks sum rank-3 correlations over the leading
    kernel axes (correct, but slow for large arrays).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.correlate([1, 2, 3], [0, 1, 0.5])
    array([0.5, 2. , 3.5, 3. , 0. ])
    >>> signal.correlate(np.ones((4, 5, 6)), np.ones((2, 2, 2)), "valid").shape
    (3, 4, 5)
    """
    return _nd_call(in1, in2, mode, method, threads, convolve=False)


def convolve(in1, in2, mode="full", method="auto", *, threads=None):
    """Convolve two N-dimensional arrays: a drop-in for :func:`scipy.signal.convolve`.

    Same arguments, shapes, dtypes and differences from SciPy as :func:`correlate`; ``in2`` is
    flipped, not conjugated.

    Examples
    --------
    >>> from fastconv import signal
    >>> signal.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> signal.convolve([1, 2, 3], [1, 1], "same")
    array([1, 3, 5])
    """
    return _nd_call(in1, in2, mode, method, threads, convolve=True)


def _fft_dtype(dtype):
    """SciPy's FFT result type of one input: integers and bool become float64, float16
    float32."""
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def _centre(array, lengths):
    start = [(n - m) // 2 for n, m in zip(array.shape, lengths, strict=True)]
    return array[tuple(slice(s, s + m) for s, m in zip(start, lengths, strict=True))]


def _broadcast_convolve(in1, in2, mode, axes, method, threads):
    a, b = np.asarray(in1), np.asarray(in2)
    if a.ndim == b.ndim == 0:
        return a * b
    same_rank(a, b)
    signal_mode(mode)
    signal_method(method)
    if a.size == 0 or b.size == 0:
        return np.array([])  # SciPy's result for empty inputs
    requested = range(a.ndim) if axes is None else None
    conv_axes, swapped = fft_axes(a, b, mode, axes)
    if requested is None:
        requested = {n % a.ndim for n in ((axes,) if np.isscalar(axes) else axes)}
    s1 = a.shape  # 'same' keeps the first input's shape
    if swapped:
        a, b = b, a
    dtype = np.result_type(_fft_dtype(a.dtype), _fft_dtype(b.dtype))
    if dtype.kind not in "fc" or dtype.itemsize > (16 if dtype.kind == "c" else 8):
        scipy_function = _scipy_signal().fftconvolve
        return scipy_function(in1, in2, mode, axes)
    if not conv_axes:
        out = a * b
    else:
        out = _batched(a, b, mode, conv_axes, dtype, method, threads_count(threads))
    if mode == "same":
        # The first input's length on the convolved axes, and on axes of length 1 that were asked
        # to be convolved (SciPy broadcasts those, which is the same convolution); axes that are
        # not convolved keep the broadcast length (SciPy cuts them too: scipy/scipy#21876).
        lengths = [s1[n] if n in conv_axes or n in requested else out.shape[n]
                   for n in range(out.ndim)]
        out = _centre(out, lengths)
    return np.array(out, copy=True) if not conv_axes else out


def _batched(a, b, mode, conv_axes, dtype, method, threads):
    """Convolution over ``conv_axes`` broadcast over the other axes, in ``dtype``."""
    ndim = a.ndim
    batch_axes = [n for n in range(ndim) if n not in conv_axes]
    order = batch_axes + list(conv_axes)
    x, w = np.transpose(a, order), np.transpose(b, order)
    batch = np.broadcast_shapes(x.shape[:len(batch_axes)], w.shape[:len(batch_axes)])
    spatial_x, spatial_w = x.shape[len(batch_axes):], w.shape[len(batch_axes):]
    count = int(np.prod(batch, dtype=np.int64))
    w = w[(Ellipsis, *[slice(None, None, -1)] * len(conv_axes))]
    if all(n == 1 for n in w.shape[:len(batch_axes)]):  # one kernel for every image
        xs = np.ascontiguousarray(x, dtype).reshape(count, 1, *spatial_x)
        ws = np.ascontiguousarray(w, dtype).reshape(1, 1, *spatial_w)
        groups = 1
    elif all(n == 1 for n in x.shape[:len(batch_axes)]):  # one image, a kernel per output
        xs = np.ascontiguousarray(x, dtype).reshape(1, 1, *spatial_x)
        ws = np.ascontiguousarray(w, dtype).reshape(count, 1, *spatial_w)
        groups = 1
    else:  # pairs: one group per batch position
        xs = np.ascontiguousarray(np.broadcast_to(x, (*batch, *spatial_x)), dtype).reshape(
            1, count, *spatial_x)
        ws = np.ascontiguousarray(np.broadcast_to(w, (*batch, *spatial_w)), dtype).reshape(
            count, 1, *spatial_w)
        groups = count
    if mode == "full":
        pads = [(k - 1, k - 1) for k in spatial_w]
    else:  # 'valid' (inputs ordered) or 'same' (cut from 'full' afterwards when in2 is longer)
        pads = [(0, 0) if mode == "valid" or k > n else (k // 2, (k - 1) // 2)
                for n, k in zip(spatial_x, spatial_w, strict=True)]
        if mode == "same":  # computed as 'full' on the axes where the kernel is the longer one
            pads = [(k - 1, k - 1) if k > n else p
                    for n, k, p in zip(spatial_x, spatial_w, pads, strict=True)]
    out = correlate_nd(xs, ws, pads, ["zeros"] * len(conv_axes), 0, groups, method, threads)
    out = out.reshape(*batch, *out.shape[2:])
    return np.transpose(out, np.argsort(order))


def fftconvolve(in1, in2, mode="full", axes=None, *, method="auto", threads=None):
    """Convolve two N-dimensional arrays: a drop-in for :func:`scipy.signal.fftconvolve`.

    Parameters
    ----------
    in1, in2 : array_like
        Arrays of the same number of dimensions.
    mode : {'full', 'valid', 'same'}
    axes : int or sequence of int, optional
        Axes to convolve (default all). On the other axes the inputs broadcast (equal lengths or
        length 1): a batch of convolutions. Axes where either input has length 1 broadcast too,
        as in SciPy.
    method : str, optional
        fastconv's strategy (default ``'auto'``: the planner chooses; the result is exact up to
        float roundoff whichever it picks). Not a SciPy argument.
    threads : int, optional
        Threads for this call; default ``numba.get_num_threads()``.

    Returns
    -------
    numpy.ndarray
        SciPy's dtype: float64 for integer and bool inputs, float32 for float16, else
        ``result_type``. Empty inputs give ``array([])`` as in SciPy.

    Notes
    -----
    Where SciPy 1.17 is wrong, fastconv is right: in 'same' mode SciPy cuts the axes that are
    not convolved to ``in1``'s length too, so a batch broadcast from ``in2`` loses all but its
    middle entry (scipy/scipy#21876); fastconv keeps the broadcast batch. NaN and Inf reach
    only the outputs whose window holds them (SciPy's FFT spreads them everywhere).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.fftconvolve([1.0, 2.0, 3.0], [0.0, 1.0, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> images, kernels = np.ones((4, 32, 32)), np.ones((1, 5, 5))
    >>> signal.fftconvolve(images, kernels, "same", axes=(1, 2)).shape
    (4, 32, 32)
    """
    return _broadcast_convolve(in1, in2, mode, axes, method, threads)


def oaconvolve(in1, in2, mode="full", axes=None, *, method="auto", threads=None):
    """Convolve two N-dimensional arrays: a drop-in for :func:`scipy.signal.oaconvolve`.

    The same convolution as :func:`fftconvolve` (SciPy's overlap-add is one way to compute it;
    fastconv's planner picks the tiling, overlap-save FFT tiles among them). Same arguments,
    shapes, dtypes and differences from SciPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.oaconvolve(np.ones(1000), np.ones(10), "valid").shape
    (991,)
    """
    return _broadcast_convolve(in1, in2, mode, axes, method, threads)


def _planned_method(a, b, mode, threads):
    a, b, dtype, compute, swapped = signal_inputs(a, b, mode, "auto")
    if compute is None or a.size == 0 or b.size == 0:
        return "direct"
    try:
        _correlate(a, b, mode, "auto", threads, True, dtype, compute, swapped, dry=True)
    except Planned as planned:
        return planned.plan.method
    return "direct"


def choose_conv_method(in1, in2, mode="full", measure=False, *, threads=None):
    """Which of SciPy's methods fastconv would use for :func:`convolve` / :func:`correlate`: a
    drop-in for :func:`scipy.signal.choose_conv_method`.

    Parameters
    ----------
    in1, in2 : array_like
    mode : {'full', 'valid', 'same'}
    measure : bool
        False: answer from fastconv's plan ('fft' when it picks the FFT strategy, else 'direct';
        im2col and Winograd sum the products directly). True: time ``convolve`` with
        ``method='fft'`` and ``'direct'`` and return the faster with the times.
    threads : int, optional
        The thread limit the plan is made for; default ``numba.get_num_threads()``.

    Returns
    -------
    method : str
        ``'direct'`` or ``'fft'``.
    times : dict, only if ``measure``
        Seconds per call of each method.

    Notes
    -----
    Integer inputs whose results could exceed 2**52 (SciPy's bound) and bool inputs get
    'direct'. The plan is made from the shapes and from ``in2``'s numerical rank (a separable
    kernel such as a Gaussian or a box runs as 1-D passes, which sum products directly), as the
    call would make it; ``in1``'s values are read only for that bound.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.choose_conv_method(np.ones(100000), np.ones(5), "same")
    'direct'
    >>> kernel = np.random.default_rng(0).standard_normal((63, 63))
    >>> signal.choose_conv_method(np.ones((512, 512)), kernel, "same")
    'fft'
    >>> signal.choose_conv_method(np.ones((512, 512)), np.ones((63, 63)), "same")  # rank 1
    'direct'
    """
    a, b = np.asarray(in1), np.asarray(in2)
    count = threads_count(threads)
    if measure:
        times = {}
        for method in ("fft", "direct"):
            timer = timeit.Timer(lambda m=method: convolve(a, b, mode, m, threads=count))
            number = 1
            while timer.timeit(number) < 5e-4 and number < 10**6:
                number *= 10
            times[method] = min(timer.repeat(3, number)) / number
        return ("fft" if times["fft"] < times["direct"] else "direct"), times
    if a.ndim == 0 or a.ndim != b.ndim:
        same_rank(a, b)
        return "direct"
    if a.dtype.kind == "b" and b.dtype.kind == "b":
        return "direct"
    chosen = _planned_method(a, b, mode, count)
    return "fft" if chosen == "fft" else "direct"
