"""Public entry points: validate, plan, run, return."""

from contextlib import contextmanager
from dataclasses import replace
from typing import NamedTuple

import numba
import numpy as np

from ._transpose import transposed
from ._typing import (
    Array,
    ArrayLike,
    Boundary,
    DTypeLike,
    Method,
    Mode,
    Padding,
    PaddingMode,
    Pair,
    PlanMethod,
    Scalar,
    Shape,
)
from ._validate import (
    budget_bytes,
    check_accuracy,
    check_method,
    check_nd_plan,
    check_plan,
    check_plan_accuracy,
    check_plan_method,
    conv2d_form,
    infer_rank,
    is_dask_array,
    layer_geometry,
    layer_shapes,
    nd_geometry,
    nd_output_shape,
    nd_plan_dtype,
    nd_problem,
    nd_shapes,
    output_shape_geometry,
    plan_dtype,
    plan_weights,
    rank_hint,
    scipy_form,
    shape_tuple,
    threads_count,
    weights_key,
    with_kernel_rank,
)
from .core import workspace
from .core.threads import current_threads
from .planning.execute import execute
from .planning.measure import run_measured
from .planning.plan import Plan, make_plan, memoised
from .planning.ranks import correlate_nd, plan_nd, ranked
from .strategies.separable.detect import forces_separable


def _run(problem, method, threads, persist, accuracy="normwise", plan=None):
    """Compute ``problem`` with ``method`` on at most ``threads`` threads; ``plan``: the plan
    already made for it (see :class:`_Validated`)."""
    if plan is not None:
        return execute(plan, problem)
    if method == "measure":
        return run_measured(problem, threads, persist, accuracy)
    if isinstance(method, Plan):
        check_plan(method, problem.geometry, problem.w)
        plan = method
        check_plan_accuracy(plan, accuracy)
    else:
        plan = make_plan(problem.geometry, method, threads, accuracy=accuracy)
    return execute(plan, problem)


class _Validated(NamedTuple):
    """A call's options and the form of its arrays, validated (``form``: see
    ``_validate.LayerForm``), its thread limit and accuracy, and its ``plan`` when the weights'
    values cannot change it (None: planned per call)."""

    form: object
    count: int
    accuracy: str
    plan: Plan | None


def _validated(form, method, count, accuracy):
    plannable = (form is not None and isinstance(method, str) and method != "measure"
                 and not form.detects)
    plan = make_plan(form.geometry, method, count, accuracy=accuracy) if plannable else None
    return _Validated(form, count, accuracy, plan)


# Types whose repr gives their value exactly (an array's depends on the print options).
_REPR_TYPES = frozenset({float, complex, bool, type(None)})
_UNKEYED = object()


def _key_part(value):
    """``value`` in a memo key: an int or a str itself, a float, complex, bool or None as its
    type and repr (1, 1.0 and True are equal keys but not equally valid arguments), a tuple part
    by part; _UNKEYED for other types."""
    kind = type(value)
    if kind is int or kind is str:
        return value
    if kind in _REPR_TYPES:
        return kind, repr(value)
    if kind is tuple:
        parts = tuple(map(_key_part, value))
        return _UNKEYED if _UNKEYED in parts else (tuple, parts)
    return _UNKEYED


def _call_key(name, arrays, options, method, threads, persist, accuracy):
    """The memo key of a call whose validation and plan follow from its arrays' shapes and
    dtypes (``arrays``: ndarrays or None) and its ``options`` alone; None for a call that is
    validated in full (other array types, 'measure', a Plan, ``persist``). A repeated small call
    then skips its validation and planning: about 8 of a 4x4 ``correlate2d``'s 24 us."""
    if type(method) is not str or method == "measure" or persist is not None:
        return None
    if threads is None:
        threads = (None, current_threads())
    elif type(threads) is not int:
        return None
    key = [name, method, threads]
    for array in arrays:
        if array is None:
            key.append(None)
        elif type(array) is np.ndarray:
            key += (array.shape, array.dtype)
        else:
            return None
    for value in (*options, accuracy):
        part = _key_part(value)
        if part is _UNKEYED:
            return None
        key.append(part)
    return tuple(key)


def conv2d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, *,
           stride: Pair = 1, padding: Padding = 0, dilation: Pair = 1, groups: int = 1,
           padding_mode: PaddingMode = "zeros", method: Method = "auto",
           threads: int | None = None, persist: bool | None = None,
           accuracy: str = "normwise") -> Array:
    """2-D cross-correlation as in deep learning (PyTorch's ``conv2d``; the kernel is not flipped).

    Parameters
    ----------
    input : array_like or dask array
        ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``. Any layout and strides; never modified.
        A dask array gives a lazy dask array, computed chunk by chunk with one thread per task
        by default (see :mod:`fastconv.dask`).
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
    method : {'auto', 'measure', 'direct', ...} or Plan
        ``'auto'`` lets the planner choose from the shapes (see :func:`plan`); a name from
        ``fastconv.METHODS`` forces a strategy; ``'measure'`` times every strategy that can run
        the call once, returns the fastest one's result and remembers the winner for this exact
        problem; a :class:`Plan` from :func:`plan` skips planning (its shapes and options must
        be this call's).
    threads : int, optional
        Threads for this call only (at most; the planner may use fewer on small problems);
        default: ``numba.get_num_threads()``, or the plan's limit when ``method`` is a Plan.
        A count above Numba's pool (``NUMBA_NUM_THREADS``) uses the whole pool.
    persist : bool, optional
        With ``method='measure'``: also store the winner in the per-user cache file, so that
        later processes skip the timing. Default: the ``FASTCONV_PERSIST`` environment setting.
    accuracy : {'normwise', 'elementwise'}
        What ``method='auto'`` (and ``'measure'``) may trade for speed. ``'normwise'`` (default)
        allows every strategy: ``fft`` and ``winograd`` are accurate relative to the largest
        values of a tile or plane, so outputs whose windows hold only values many orders of
        magnitude smaller than elsewhere may lose all their digits. ``'elementwise'`` keeps to
        ``direct`` and ``im2col``, whose error is bounded per output by its own terms
        (``n * eps * sum |x| * |w|``). A forced method is computed as asked.

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
    options = (stride, padding, dilation, groups, padding_mode)
    key = _call_key("conv2d", (input, weight, bias), options, method, threads, persist, accuracy)
    if key is None:
        if is_dask_array(input) or is_dask_array(weight) or is_dask_array(bias):
            from . import dask

            return dask.conv2d(input, weight, bias, stride=stride, padding=padding,
                               dilation=dilation, groups=groups, padding_mode=padding_mode,
                               method=method, threads=threads, persist=persist)
        call, input, weight, bias = _validated_layer(input, weight, bias, options, method,
                                                     threads, persist, accuracy)
    else:
        call = memoised(key, lambda: _validated_layer(input, weight, bias, options, method,
                                                      threads, persist, accuracy)[0])
    form = call.form
    out = _run(form.problem(input, weight, bias), method, call.count, persist, call.accuracy,
               call.plan)
    if form.lead is None:
        return out[0, 0]
    return out if form.lead else out[0]


def _validated_layer(input, weight, bias, options, method, threads, persist, accuracy):
    """Validate a ``conv2d`` call: its :class:`_Validated`, and its input, weight and bias as
    arrays."""
    count = check_method(method, threads, persist)
    accuracy = check_accuracy(accuracy)
    form, x, w, b = conv2d_form(input, weight, bias, *options, forced=forces_separable(method))
    return _validated(form, method, count, accuracy), x, w, b


def _conv_nd(rank, input, weight, bias, stride, padding, dilation, groups, padding_mode, method,
             threads, persist):
    if is_dask_array(input) or is_dask_array(weight) or is_dask_array(bias):
        from . import dask

        return dask.conv_nd(rank, input, weight, bias, stride=stride, padding=padding,
                            dilation=dilation, groups=groups, padding_mode=padding_mode,
                            method=method, threads=threads, persist=persist)
    count = check_method(method, threads, persist)
    problem, lead = nd_problem(input, weight, bias, rank, stride, padding, dilation, groups,
                               padding_mode)
    g = problem.geometry
    if isinstance(method, Plan):
        check_nd_plan(method, g, problem.w)
    out = correlate_nd(problem.x, problem.w, problem.bias, g.stride, g.dilation, g.padding,
                       g.padding_mode, g.groups, method, count, persist)
    if lead is None:
        return out[0, 0]
    return out if lead else out[0]


def conv1d(input, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", method="auto", threads=None, persist=None):
    """1-D cross-correlation as in deep learning (PyTorch's ``conv1d``), with :func:`conv2d`'s
    extensions: per-side and 'same'/'full' padding, five padding modes, every real dtype.

    Runs on the 2-D engine as the problem with a unit height axis, so every strategy, the planner
    and the workspace budget apply unchanged (:func:`plan` shows the 2-D problem).

    Parameters
    ----------
    input : array_like
        ``(N, C, L)``, ``(C, L)`` or ``(L,)``. Any layout and strides; never modified.
    weight : array_like
        ``(K, C // groups, k)`` for 2-D and 3-D input, ``(k,)`` for 1-D input.
    bias : array_like, optional
        ``(K,)``; a scalar for 1-D input.
    stride, dilation : int or (int,)
        At least 1.
    padding : int, (int,), ((int, int),) or {'valid', 'same', 'full'}
        Samples added on each side: one number for both, or ``((left, right),)``; the words as
        in :func:`conv2d`.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular', 'symmetric'}
        As in :func:`conv2d` (padding wider than the input follows ``numpy.pad``).
    groups, method, threads, persist
        As in :func:`conv2d`. Winograd declines every 1-D problem (its 2-D problem is 1 x k).

    Returns
    -------
    numpy.ndarray
        ``(N, K, Lo)``, ``(K, Lo)`` or ``(Lo,)`` with
        ``Lo = (L + left + right - dilation*(k-1) - 1) // stride + 1``; dtypes as in
        :func:`conv2d`.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d`; a weight of another rank names the expected layout.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.conv1d(np.arange(6.0), np.array([1.0, 0.0, -1.0]))
    array([-2., -2., -2., -2.])
    >>> x = np.ones((2, 4, 100), np.float32)
    >>> fastconv.conv1d(x, np.ones((8, 4, 5), np.float32), padding="same").shape
    (2, 8, 100)
    >>> fastconv.conv1d(np.arange(4.0), np.ones(2), padding=((1, 0),), padding_mode="circular")
    array([3., 1., 3., 5.])
    """
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups, padding_mode,
                    method, threads, persist)


def conv3d(input, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", method="auto", threads=None, persist=None):
    """3-D cross-correlation as in deep learning (PyTorch's ``conv3d``), with :func:`conv2d`'s
    extensions: per-side and 'same'/'full' padding, five padding modes, every real dtype.

    Runs on the 2-D engine: for a chunk of output depths, the depth slices each one reads are
    stacked as extra input channels (channel ``c``, depth tap ``t`` -> ``c * kd + t``) and one
    2-D problem with the weight ``(K, C // groups * kd, kh, kw)`` computes them. Chunks keep the
    stacked slices within half the workspace budget, so a call needs the output plus the budget
    (:func:`plan` shows the chunks and the 2-D problem). Winograd runs ``(kd, 3, 3)`` kernels with
    stride and dilation 1 in height and width, whatever the depth options. A kernel whose slices
    are outer products of a depth, a height and a width factor (a 3-D Gaussian or box; one input
    channel per group) runs as three passes where the estimates favour them: a depth pass, then
    the separable passes of each output depth plane (``kd + kh + kw`` multiply-adds per output
    instead of ``kd * kh * kw``).

    Parameters
    ----------
    input : array_like
        ``(N, C, D, H, W)``, ``(C, D, H, W)`` or ``(D, H, W)``. Any layout; never modified.
    weight : array_like
        ``(K, C // groups, kd, kh, kw)`` for 4-D and 5-D input, ``(kd, kh, kw)`` for 3-D input.
    bias : array_like, optional
        ``(K,)``; a scalar for 3-D input.
    stride, dilation : int or (int, int, int)
        At least 1.
    padding : int, (int, int, int), three (before, after) pairs or {'valid', 'same', 'full'}
        Samples added on each side of the depth, height and width axes.
    padding_mode, groups, method, threads, persist
        As in :func:`conv2d`.

    Returns
    -------
    numpy.ndarray
        ``(N, K, Do, Ho, Wo)``, ``(K, Do, Ho, Wo)`` or ``(Do, Ho, Wo)``, each axis as in
        :func:`conv2d`; dtypes as in :func:`conv2d`.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d`; a weight of another rank names the expected layout.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.conv3d(np.arange(27.0).reshape(3, 3, 3), np.ones((2, 2, 2)))
    array([[[ 52.,  60.],
            [ 76.,  84.]],
    <BLANKLINE>
           [[124., 132.],
            [148., 156.]]])
    >>> volume = np.ones((1, 2, 16, 16, 16), np.float32)
    >>> fastconv.conv3d(volume, np.ones((4, 2, 3, 3, 3), np.float32), stride=2, padding=1).shape
    (1, 4, 8, 8, 8)
    """
    return _conv_nd(3, input, weight, bias, stride, padding, dilation, groups, padding_mode,
                    method, threads, persist)


def conv_transpose2d(input, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, method="auto", threads=None):
    """2-D transposed convolution (PyTorch's ``conv_transpose2d``): the adjoint of :func:`conv2d`
    in its input, as used by decoders, GANs and U-Nets.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, H, W)``, ``(C_in, H, W)`` or ``(H, W)``. Never modified.
    weight : array_like
        ``(C_in, C_out // groups, kh, kw)`` (PyTorch's layout: the weight of the :func:`conv2d`
        this transposes, whose output channels are ``C_in``); ``(kh, kw)`` for a 2-D input.
    bias : array_like, optional
        ``(C_out,)``; a scalar for a 2-D input.
    stride, dilation : int or (int, int)
        The stride and dilation of the convolution it transposes; at least 1.
    padding : int or (int, int)
        Rows and columns cropped from each side of the full result (the padding of the
        convolution it transposes).
    output_padding : int or (int, int)
        Rows and columns added at the bottom and right, smaller than the stride or the dilation:
        it picks one of the input sizes that a strided convolution maps to the same output size.
    groups : int
        Divides ``C_in``.
    method : {'auto', 'measure', 'direct', ...}
        ``'auto'`` lets the planner choose for each forward problem this runs (see
        :func:`fastconv.grad.plan_transpose`); a name from ``fastconv.METHODS`` forces it;
        ``'measure'`` times them (a Plan cannot be passed here).
    threads : int, optional
        As in :func:`conv2d`.

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, Ho, Wo)`` (leading axes as the input's) with
        ``Ho = (H - 1)*stride - 2*padding + dilation*(kh - 1) + output_padding + 1``; dtypes as
        in :func:`conv2d`.

    Notes
    -----
    Computed as forward correlations of the engine: one per stride phase (the stride-phase
    decomposition), each a dense correlation of ``input`` with every ``stride``-th tap of the
    flipped weight, so that no multiply touches the zeros a zero-upsampled input would hold.
    Phases of more than one tap may share one correlation, their taps side by side as output
    channels, where the planner estimates it faster than the phases apart.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d`; also an ``output_padding`` not smaller than the stride or the
        dilation, a weight whose first axis is not ``C_in``, or a padding that leaves no output.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.conv_transpose2d(np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones((2, 2)), stride=2)
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]])
    >>> x = np.ones((8, 16, 16, 16), np.float32)
    >>> w = np.ones((16, 8, 4, 4), np.float32)
    >>> fastconv.conv_transpose2d(x, w, stride=2, padding=1).shape
    (8, 8, 32, 32)
    """
    return transposed(2, input, weight, bias, stride, padding, output_padding, groups, dilation,
                      method, threads)


def conv_transpose1d(input, weight, bias=None, *, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, method="auto", threads=None):
    """1-D transposed convolution (PyTorch's ``conv_transpose1d``): :func:`conv_transpose2d` for
    ``(N, C_in, L)``, ``(C_in, L)`` or ``(L,)`` inputs and ``(C_in, C_out // groups, k)``
    weights.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.conv_transpose1d(np.array([1.0, 2.0]), np.ones(2), stride=2)
    array([1., 1., 2., 2.])
    """
    return transposed(1, input, weight, bias, stride, padding, output_padding, groups, dilation,
                      method, threads)


def conv_transpose3d(input, weight, bias=None, *, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, method="auto", threads=None):
    """3-D transposed convolution (PyTorch's ``conv_transpose3d``): :func:`conv_transpose2d` for
    ``(N, C_in, D, H, W)``, ``(C_in, D, H, W)`` or ``(D, H, W)`` inputs and
    ``(C_in, C_out // groups, kd, kh, kw)`` weights.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.conv_transpose3d(np.ones((1, 2, 4, 4, 4)), np.ones((2, 3, 2, 2, 2)),
    ...                           stride=2).shape
    (1, 3, 8, 8, 8)
    """
    return transposed(3, input, weight, bias, stride, padding, output_padding, groups, dilation,
                      method, threads)


def _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, persist, accuracy,
                convolve):
    options = (mode, boundary, fillvalue, convolve)
    key = _call_key("scipy", (in1, in2), options, method, threads, persist, accuracy)
    if key is None:
        if is_dask_array(in1) or is_dask_array(in2) or is_dask_array(fillvalue):
            from . import dask

            function = dask.convolve2d if convolve else dask.correlate2d
            return function(in1, in2, mode, boundary, fillvalue, method=method, threads=threads,
                            persist=persist)
        call, dtype, in1, in2 = _validated_scipy(in1, in2, options, method, threads, persist,
                                                 accuracy)
    else:
        call, dtype = memoised(key, lambda: _validated_scipy(in1, in2, options, method, threads,
                                                             persist, accuracy)[:2])
    form = call.form
    if form is None:
        from scipy import signal  # longdouble: Numba has no such type; SciPy is exact here.

        scipy_function = signal.convolve2d if convolve else signal.correlate2d
        return scipy_function(in1, in2, mode, boundary, fillvalue)
    out = _run(form.problem(in1, in2), method, call.count, persist, call.accuracy,
               call.plan)[0, 0]
    if form.reverse_conjugate:
        out = np.conj(out[::-1, ::-1])
    return out.astype(dtype, copy=False)


def _validated_scipy(in1, in2, options, method, threads, persist, accuracy):
    """Validate a ``correlate2d``/``convolve2d`` call: its :class:`_Validated`, SciPy's result
    dtype, and the inputs as arrays."""
    count = check_method(method, threads, persist)
    accuracy = check_accuracy(accuracy)
    form, dtype, a, b = scipy_form(in1, in2, *options, forced=forces_separable(method))
    return _validated(form, method, count, accuracy), dtype, a, b


def correlate2d(in1: ArrayLike, in2: ArrayLike, mode: Mode = "full", boundary: Boundary = "fill",
                fillvalue: Scalar = 0, *, method: Method = "auto", threads: int | None = None,
                persist: bool | None = None, accuracy: str = "normwise") -> Array:
    """Cross-correlate two 2-D arrays: a drop-in for :func:`scipy.signal.correlate2d`.

    Same arguments, output shapes, dtypes and errors as SciPy, computed in parallel.

    Parameters
    ----------
    in1, in2 : array_like
        2-D arrays. ``in2`` is conjugated (complex correlation). ``in1`` may be a dask array: the
        result is then a lazy dask array (see :mod:`fastconv.dask`).
    mode : {'full', 'valid', 'same'}
        ``'valid'`` needs one input at least as large as the other in every dimension; the
        inputs are swapped when ``in2`` is the larger one, as SciPy does.
    boundary : {'fill', 'pad', 'wrap', 'circular', 'symm', 'symmetric'}
    fillvalue : scalar
        Value outside ``in1`` for ``boundary='fill'``; cast to the output dtype as SciPy does.
    method : {'auto', 'measure', 'direct', ...} or Plan
        As in :func:`conv2d`. A Plan must describe the equivalent ``conv2d`` problem: a
        ``(1, 1, H, W)`` input, the padding of ``mode`` and ``boundary``, and the compute dtype.
    threads : int, optional
        Threads for this call only; default: ``numba.get_num_threads()``. A count above
        Numba's pool (``NUMBA_NUM_THREADS``) uses the whole pool.
    persist : bool, optional
        As in :func:`conv2d` (with ``method='measure'``).
    accuracy : {'normwise', 'elementwise'}
        As in :func:`conv2d`: ``'elementwise'`` keeps 'auto' from the FFT, whose error is
        relative to the largest values (``scipy.signal.fftconvolve`` has the same limit).

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
    return _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, persist, accuracy,
                       convolve=False)


def convolve2d(in1: ArrayLike, in2: ArrayLike, mode: Mode = "full", boundary: Boundary = "fill",
               fillvalue: Scalar = 0, *, method: Method = "auto", threads: int | None = None,
               persist: bool | None = None, accuracy: str = "normwise") -> Array:
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
    return _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, persist, accuracy,
                       convolve=True)


def plan(input_shape: Shape, weight_shape: Shape, *, dtype: DTypeLike = np.float64,
         stride: Pair = 1, padding: Padding = 0, dilation: Pair = 1, groups: int = 1,
         padding_mode: PaddingMode = "zeros", method: PlanMethod = "auto",
         threads: int | None = None, rank: int | None = None, weights: ArrayLike | None = None,
         kernel_rank: int | None = None, accuracy: str = "normwise") -> Plan:
    """Plan a :func:`conv2d` (or :func:`conv1d`, :func:`conv3d`) call from its shapes alone: the
    strategy and thread count that ``method='auto'`` would use, with every candidate's estimated
    time and workspace.

    Parameters
    ----------
    input_shape, weight_shape : tuple of int
        The shapes :func:`conv2d` would get: ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``, and
        ``(K, C // groups, kh, kw)`` (``(kh, kw)`` for a 2-D input); or those of :func:`conv1d`
        or :func:`conv3d`. The rank comes from the weight's dimensions.
    dtype : dtype, optional
        The arrays' dtype; the plan holds the compute dtype (:func:`conv2d`'s rules; complex
        dtypes, for :func:`correlate2d`, are kept). Default float64.
    stride, padding, dilation, groups, padding_mode
        As in :func:`conv2d`.
    method : {'auto', 'direct', ...}
        ``'auto'`` (default) or a name from ``fastconv.METHODS`` to see the estimates of a
        forced strategy.
    threads : int, optional
        Thread limit; default: ``numba.get_num_threads()``; at most ``NUMBA_NUM_THREADS``
        (a larger count is clamped to it).
    rank : {None, 1, 2, 3}, optional
        The spatial rank; needed only when both shapes are 3-D (a ``(N, C, L)`` batch for
        :func:`conv1d` or a ``(D, H, W)`` volume for :func:`conv3d`).
    weights : array_like, optional
        The weights themselves (of shape ``weight_shape``): the plan then knows the kernel's
        numerical rank, as :func:`conv2d` does from the weights it gets, so the ``separable``
        strategy can be priced. The rank is detected once per weight array (cached); the plan
        stays a pure function of its inputs, the weights' values included. Problems too small
        for the separable strategy to win (fewer than 8192 multiply-adds per output channel)
        are not detected unless ``method='separable'``, as in :func:`conv2d`.
    kernel_rank : int, optional
        A rank hint instead of ``weights``: the largest rank of the ``(kh, kw)`` kernel slices
        (for :func:`conv3d`, of each depth tap's slice; :func:`conv1d` kernels are one pass and
        ignore it). A plan made with it runs only weights of at most that rank (``conv2d`` and
        ``conv3d`` check). Without either, the rank is unknown and the ``separable`` strategy
        declines.
    accuracy : {'normwise', 'elementwise'}
        As in :func:`conv2d`: with ``'elementwise'``, 'auto' treats the normwise strategies
        (``fft``, ``winograd``) as declined.

    Returns
    -------
    Plan
        Frozen and hashable: ``method``, ``threads``, ``candidates`` (one :class:`Candidate` per
        registered strategy: estimated seconds and workspace bytes, or why it declines) and
        ``reason``; its repr explains the choice. Pass it back as ``conv2d(..., method=plan)``
        to skip planning on calls with these shapes. Plans are a pure function of the shapes,
        options, kernel rank (from ``weights`` or ``kernel_rank``), thread limit, workspace
        budget and machine constants (shipped defaults, or those stored by
        ``python -m fastconv calibrate``).

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> p = fastconv.plan((2, 16, 28, 28), (32, 16, 3, 3), dtype=np.float32, padding=1)
    >>> p.method in fastconv.METHODS and p == fastconv.plan((2, 16, 28, 28), (32, 16, 3, 3),
    ...                                                    dtype=np.float32, padding=1)
    True
    >>> [c.method for c in p.candidates] == list(fastconv.METHODS)
    True
    >>> x = np.ones((2, 16, 28, 28), np.float32)
    >>> fastconv.conv2d(x, np.ones((32, 16, 3, 3), np.float32), padding=1, method=p).shape
    (2, 32, 28, 28)

    ``print(p)`` shows the table: every strategy's estimated time, workspace and threads (or
    why it declines), the chosen one marked with ``>``, and the reason.

    A 1-D or 3-D call runs as 2-D problems (see :func:`conv1d`, :func:`conv3d`): its plan is
    that of the 2-D problem (one chunk's for 3-D), and ``p.reduction.text`` (the first lines of the
    repr) says how the call maps onto it.

    >>> p3 = fastconv.plan((1, 16, 32, 32, 32), (32, 16, 3, 3, 3), dtype=np.float32, padding=1)
    >>> print(p3.reduction.text)  # doctest: +NORMALIZE_WHITESPACE
    conv3d: (1, 16, 32, 32, 32) * (32, 16, 3, 3, 3) -> (1, 32, 32, 32, 32) float32,
    stride (1, 1, 1), dilation (1, 1, 1), padding ((1, 1), (1, 1), (1, 1)) zeros, groups 1;
      runs as 1 2-D problem of 1 image x 32 output depths (depth taps folded into channels,
      10 MiB copied per problem, in the estimates of the strategies that gather), each:
    >>> p3.geometry.out_shape
    (32, 32, 32, 32)

    With the weights, a separable kernel such as a Gaussian is seen as one (rank 1):

    >>> g = np.exp(-np.linspace(-3, 3, 31) ** 2 / 2)
    >>> p = fastconv.plan((2048, 2048), (31, 31), dtype=np.float32, padding="same",
    ...                   weights=np.outer(g, g))
    >>> p.geometry.kernel_rank, p.method
    (1, 'separable')
    >>> p == fastconv.plan((2048, 2048), (31, 31), dtype=np.float32, padding="same",
    ...                    kernel_rank=1)
    True
    """
    current = numba.get_num_threads() if threads is None else None

    def compute():
        check_plan_method(method)
        count = current or threads_count(threads)
        x_shape = shape_tuple(input_shape, "input_shape")
        w_shape = shape_tuple(weight_shape, "weight_shape")
        spatial_rank = infer_rank(x_shape, w_shape, rank)
        if spatial_rank != 2:
            xc, wc, _ = nd_shapes(x_shape, w_shape, groups, spatial_rank,
                                  names=("input_shape", "weight_shape"))
            compute_dtype = nd_plan_dtype(dtype, spatial_rank)
            nd = nd_geometry(xc, wc, groups, stride, padding, dilation, padding_mode,
                             compute_dtype)
            hint = rank_hint(kernel_rank, weights)
            if weights is not None:
                nd = ranked(nd, plan_weights(weights, weight_shape, wc, compute_dtype),
                            forces_separable(method))
            elif hint is not None and spatial_rank == 3:
                nd = replace(nd, kernel_rank=hint)
            return plan_nd(nd, method, count)
        x4, w4, _ = layer_shapes(x_shape, w_shape, groups, names=("input_shape", "weight_shape"))
        compute_dtype = plan_dtype(dtype)
        geometry = layer_geometry(x4, w4, groups, stride, padding, dilation, padding_mode,
                                  compute_dtype, names=("input_shape", "weight_shape"))
        hint = rank_hint(kernel_rank, weights)
        if weights is not None:
            geometry = with_kernel_rank(
                geometry, plan_weights(weights, weight_shape, w4, compute_dtype),
                forces_separable(method))
        elif hint is not None:
            geometry = replace(geometry, kernel_rank=hint)
        return make_plan(geometry, method, count, accuracy=check_accuracy(accuracy))

    # The repr tells 1 from True and 1.0, so a memoised call never skips a check that fails.
    arguments = repr((input_shape, weight_shape, dtype, stride, padding, dilation, groups,
                      padding_mode, method, threads, rank, kernel_rank, accuracy)), weights_key(
                          weights)
    return memoised((arguments, current), compute)


def output_shape(input_shape: Shape, weight_shape: Shape, *, stride: Pair = 1,
                 padding: Padding = 0, dilation: Pair = 1,
                 rank: int | None = None) -> tuple[int, ...]:
    """Shape that :func:`conv2d`, :func:`conv1d` or :func:`conv3d` returns for these shapes and
    options (no arrays needed). The rank comes from the weight's dimensions; ``rank`` (1, 2 or 3)
    is needed only when both shapes are 3-D.

    Examples
    --------
    >>> import fastconv
    >>> fastconv.output_shape((8, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    (8, 64, 112, 112)
    >>> fastconv.output_shape((32, 32), (5, 5), padding="same")
    (32, 32)
    >>> fastconv.output_shape((64, 1000), (32, 64, 9), stride=2)
    (32, 496)
    >>> fastconv.output_shape((8, 64, 1000), (32, 64, 9), stride=2, rank=1)
    (8, 32, 496)
    >>> fastconv.output_shape((2, 1, 64, 64, 64), (8, 1, 5, 5, 5), padding=((2, 2), (0, 0), (1, 1)))
    (2, 8, 64, 60, 62)
    >>> fastconv.output_shape((64, 64, 64), (3, 3, 3), rank=3)
    (62, 62, 62)
    """
    input_shape = shape_tuple(input_shape, "input_shape")
    weight_shape = shape_tuple(weight_shape, "weight_shape")
    spatial_rank = infer_rank(input_shape, weight_shape, rank)
    if spatial_rank != 2:
        return nd_output_shape(input_shape, weight_shape, spatial_rank, stride, padding, dilation)
    input_shape, weight_shape, geometry = output_shape_geometry(input_shape, weight_shape,
                                                                stride, padding, dilation)
    spatial = (geometry.out_height, geometry.out_width)
    if len(input_shape) == 2:
        return spatial
    return input_shape[:-3] + (weight_shape[0],) + spatial


def get_workspace_budget():
    """The current workspace budget in bytes (default 64 MiB, or ``FASTCONV_WORKSPACE_BYTES``):
    the most extra memory (beyond the output) a strategy may allocate for its buffers. Plans are
    made for the budget current when they are made, and keep it."""
    return workspace.get_budget()


def set_workspace_budget(nbytes):
    """Set the workspace budget in bytes for plans made from now on; returns the previous value.

    Examples
    --------
    >>> import fastconv
    >>> previous = fastconv.set_workspace_budget(256 * 2**20)
    >>> fastconv.get_workspace_budget() == 256 * 2**20
    True
    >>> _ = fastconv.set_workspace_budget(previous)
    """
    return workspace.set_budget(budget_bytes(nbytes))


@contextmanager
def workspace_budget(nbytes):
    """Use ``nbytes`` as the workspace budget inside a ``with`` block."""
    previous = set_workspace_budget(nbytes)
    try:
        yield
    finally:
        workspace.set_budget(previous)
