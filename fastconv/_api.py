"""Public entry points: validate, plan, run, return."""

import numpy as np

from ._methods import METHODS, REGISTRY
from ._plan import make_plan
from ._threads import numba_threads
from ._validate import (
    Geometry,
    conv2d_problem,
    int_pair,
    parse_padding,
    scipy_problem,
    threads_count,
)


def _check_method(method):
    if method != "auto" and method not in REGISTRY:
        raise ValueError(f"`method` must be 'auto' or one of {METHODS}; got {method!r}.")


def _run(problem, method, threads):
    plan = make_plan(problem.geometry, method, threads)
    with numba_threads(plan.threads):
        return REGISTRY[plan.method].run(problem, plan.threads)


def conv2d(input, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", method="auto", threads=None):
    """2-D cross-correlation as in deep learning (PyTorch's ``conv2d``; the kernel is not flipped).

    Parameters
    ----------
    input : array_like
        ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``. Any layout and strides; never modified.
    weight : array_like
        ``(K, C // groups, kh, kw)`` for 3-D and 4-D input, ``(kh, kw)`` for 2-D input.
    bias : array_like, optional
        ``(K,)``; a scalar for 2-D input.
    stride, dilation : int or (int, int)
        At least 1.
    padding : int, (int, int), ((int, int), (int, int)) or {'valid', 'same', 'full'}
        Rows and columns added on each side: one number for all sides, ``(ph, pw)``, or
        ``((top, bottom), (left, right))``. ``'same'`` (stride 1 only) pads
        ``dilation*(k-1)`` in total, ``total // 2`` before and the rest after, like PyTorch and
        ``correlate2d(..., 'same')``; ``'full'`` pads ``dilation*(k-1)`` on every side.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular', 'symmetric'}
        What the padding holds. ``'reflect'`` mirrors without repeating the edge sample (PyTorch),
        ``'symmetric'`` repeats it (SciPy's ``symm``). Padding wider than the image is allowed and
        follows ``numpy.pad``.
    method : {'auto', 'direct', ...}
        A name from ``fastconv.METHODS``, or ``'auto'`` to let the planner choose.
    threads : int, optional
        Threads for this call only; default: ``numba.get_num_threads()``.

    Returns
    -------
    numpy.ndarray
        ``(N, K, Ho, Wo)``, ``(K, Ho, Wo)`` or ``(Ho, Wo)`` with
        ``Ho = (H + top + bottom - dilation*(kh-1) - 1) // stride + 1``. float32 input and
        weight give float32; float64 gives float64; mixed types follow ``numpy.result_type``;
        integer and bool inputs compute in float64, float16 in float32 and longdouble in float64.
        NaN and Inf reach only the outputs whose window contains them.

    Raises
    ------
    TypeError
        Complex or non-numeric dtypes (use :func:`correlate2d` for complex data), non-integer
        stride, dilation, padding, groups or threads.
    ValueError
        Bad shapes, groups that do not divide the channels, non-positive stride or dilation,
        negative padding, unknown names, a kernel larger than the padded input, empty arrays.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> fastconv.conv2d(x, np.ones((2, 2)), padding="valid")
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])
    >>> batch = np.ones((2, 3, 8, 8), np.float32)
    >>> fastconv.conv2d(batch, np.ones((4, 3, 3, 3), np.float32), stride=2, padding=1).shape
    (2, 4, 4, 4)
    """
    _check_method(method)
    count = threads_count(threads)
    problem, lead = conv2d_problem(input, weight, bias, stride, padding, dilation, groups,
                                   padding_mode)
    out = _run(problem, method, count)
    if lead is None:
        return out[0, 0]
    return out if lead else out[0]


def _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, convolve):
    _check_method(method)
    count = threads_count(threads)
    problem, dtype, reverse_conjugate = scipy_problem(in1, in2, mode, boundary, fillvalue, convolve)
    if problem is None:
        from scipy import signal  # longdouble: Numba has no such type; SciPy is exact here.

        scipy_function = signal.convolve2d if convolve else signal.correlate2d
        return scipy_function(in1, in2, mode, boundary, fillvalue)
    out = _run(problem, method, count)[0, 0]
    if reverse_conjugate:
        out = np.conj(out[::-1, ::-1])
    return out.astype(dtype, copy=False)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
                threads=None):
    """Cross-correlate two 2-D arrays: a drop-in for :func:`scipy.signal.correlate2d`.

    Same arguments, output shapes, dtypes and errors as SciPy, computed in parallel.

    Parameters
    ----------
    in1, in2 : array_like
        2-D arrays. ``in2`` is conjugated (complex correlation).
    mode : {'full', 'valid', 'same'}
        ``'valid'`` needs one input at least as large as the other in every dimension; the
        inputs are swapped when ``in2`` is the larger one, as SciPy does.
    boundary : {'fill', 'pad', 'wrap', 'circular', 'symm', 'symmetric'}
    fillvalue : scalar
        Value outside ``in1`` for ``boundary='fill'``; cast to the output dtype as SciPy does.
    method : {'auto', 'direct', ...}
        A name from ``fastconv.METHODS`` or ``'auto'``.
    threads : int, optional
        Threads for this call only; default: ``numba.get_num_threads()``.

    Returns
    -------
    numpy.ndarray
        SciPy's dtype: ``numpy.result_type(in1, in2)``. Integer results are exact and wrap on
        overflow like SciPy's. longdouble inputs are computed by SciPy itself.

    Notes
    -----
    Differences from SciPy 1.17, where SciPy's result is wrong:

    * complex inputs in 'valid' mode with ``in2`` larger than ``in1``: SciPy swaps the inputs
      without conjugating and returns the complex conjugate of the correlation; fastconv returns
      the correlation itself (the same as ``scipy.signal.correlate(in1, in2, 'valid')``).
    * empty inputs raise ValueError instead of returning zero-filled arrays of odd shapes.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.correlate2d(np.eye(3), np.array([[1, 2], [3, 4]]), "valid")
    array([[5., 3.],
           [2., 5.]])
    """
    return _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, convolve=False)


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
               threads=None):
    """Convolve two 2-D arrays: a drop-in for :func:`scipy.signal.convolve2d`.

    Same arguments, output shapes, dtypes and errors as SciPy, computed in parallel; see
    :func:`correlate2d` for the parameters. ``in2`` is flipped, not conjugated.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.convolve2d(np.eye(3, dtype=int), np.array([[1, 2], [3, 4]]), "same")
    array([[1, 2, 0],
           [3, 5, 2],
           [0, 3, 5]])
    """
    return _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, convolve=True)


def output_shape(input_shape, weight_shape, *, stride=1, padding=0, dilation=1):
    """Shape that :func:`conv2d` returns for these shapes and options (no arrays needed).

    Examples
    --------
    >>> import fastconv
    >>> fastconv.output_shape((8, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    (8, 64, 112, 112)
    >>> fastconv.output_shape((32, 32), (5, 5), padding="same")
    (32, 32)
    """
    input_shape, weight_shape = tuple(input_shape), tuple(weight_shape)
    weight_ndim = 2 if len(input_shape) == 2 else 4
    if len(input_shape) not in (2, 3, 4) or len(weight_shape) != weight_ndim:
        raise ValueError(
            "`input_shape` and `weight_shape` must be (H, W) and (kh, kw), or (C, H, W) / "
            f"(N, C, H, W) and (K, C/groups, kh, kw); got {input_shape} and {weight_shape}."
        )
    stride = int_pair(stride, "stride", 1)
    dilation = int_pair(dilation, "dilation", 1)
    pad = parse_padding(padding, weight_shape[-2:], stride, dilation)
    geometry = Geometry(
        batch=1, channels=1, height=input_shape[-2], width=input_shape[-1], out_channels=1,
        kernel_height=weight_shape[-2], kernel_width=weight_shape[-1], padding=pad,
        stride=stride, dilation=dilation, groups=1, padding_mode="zeros",
        dtype=np.dtype(np.float64),
    )
    spatial = (geometry.out_height, geometry.out_width)
    if min(spatial) < 1:
        raise ValueError(f"`weight_shape` must fit the padded input; got {weight_shape} for "
                         f"input {input_shape} with padding {pad}.")
    if len(input_shape) == 2:
        return spatial
    return input_shape[:-3] + (weight_shape[0],) + spatial
