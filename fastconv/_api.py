"""Public entry points: validate, plan, run, return."""

import numba
import numpy as np

from ._measure import run_measured
from ._methods import METHODS, REGISTRY
from ._plan import Plan, make_plan, memoised
from ._threads import numba_threads
from ._validate import (
    Geometry,
    check_accuracy,
    check_extents,
    conv2d_problem,
    int_pair,
    layer_geometry,
    layer_shapes,
    parse_padding,
    plan_dtype,
    scipy_problem,
    shape_tuple,
    threads_count,
)


def _check_method(method, threads=None, persist=None):
    """Check ``method``, and ``threads`` and ``persist`` against it; returns the thread limit."""
    if not (isinstance(method, Plan) or isinstance(method, str) and method in (
            "auto", "measure", *METHODS)):
        raise ValueError(f"`method` must be 'auto' or one of {METHODS}, 'measure' or a "
                         f"fastconv.Plan; got {method!r}.")
    count = threads_count(threads)
    if isinstance(method, Plan) and threads is not None and count != method.max_threads:
        raise ValueError(f"`threads` must be None or {method.max_threads} (the plan's thread "
                         f"limit) when `method` is a Plan; got {threads!r}.")
    if persist is not None and (not isinstance(persist, bool) or method != "measure"):
        raise ValueError(f"`persist` must be None, or True or False with method='measure'; got "
                         f"{persist!r} with method={method!r}.")
    return method.max_threads if isinstance(method, Plan) else count


def _shown(value):
    return str(value) if isinstance(value, np.dtype) else repr(value)


def _check_plan(plan, geometry):
    if plan.geometry != geometry:
        differ = ", ".join(
            f"{name} {_shown(getattr(plan.geometry, name))} != {_shown(getattr(geometry, name))}"
            for name in Geometry.__dataclass_fields__
            if getattr(plan.geometry, name) != getattr(geometry, name)
        )
        raise ValueError(f"`method` must be a Plan made for this call's problem; the plan "
                         f"differs in {differ} (plan != call). Make one with fastconv.plan(...) "
                         "for these shapes and options.")


def _run(problem, method, threads, persist, accuracy):
    if method == "measure":
        return run_measured(problem, threads, persist, accuracy)
    if isinstance(method, Plan):
        _check_plan(method, problem.geometry)
        plan = method
        if accuracy == "elementwise" and REGISTRY[plan.method].normwise:
            raise ValueError(f"`method` must be a Plan of an elementwise-accurate strategy with "
                             f"accuracy='elementwise'; got a Plan of {plan.method!r}. Make it "
                             "with fastconv.plan(..., accuracy='elementwise').")
    else:
        plan = make_plan(problem.geometry, method, threads, accuracy)
    with numba_threads(plan.threads):
        return REGISTRY[plan.method].run(problem, plan.threads)


def conv2d(input, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", method="auto", threads=None, persist=None,
           accuracy="normwise"):
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
    method : {'auto', 'measure', 'direct', ...} or Plan
        ``'auto'`` lets the planner choose from the shapes (see :func:`plan`); a name from
        ``fastconv.METHODS`` forces a strategy; ``'measure'`` times every strategy that can run
        the call once, returns the fastest one's result and remembers the winner for this exact
        problem; a :class:`Plan` from :func:`plan` skips planning (its shapes and options must
        be this call's).
    threads : int, optional
        Threads for this call only (at most; the planner may use fewer on small problems);
        default: ``numba.get_num_threads()``, or the plan's limit when ``method`` is a Plan.
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
    count = _check_method(method, threads, persist)
    accuracy = check_accuracy(accuracy)
    problem, lead = conv2d_problem(input, weight, bias, stride, padding, dilation, groups,
                                   padding_mode)
    out = _run(problem, method, count, persist, accuracy)
    if lead is None:
        return out[0, 0]
    return out if lead else out[0]


def _scipy_call(in1, in2, mode, boundary, fillvalue, method, threads, persist, accuracy,
                convolve):
    count = _check_method(method, threads, persist)
    accuracy = check_accuracy(accuracy)
    problem, dtype, reverse_conjugate = scipy_problem(in1, in2, mode, boundary, fillvalue, convolve)
    if problem is None:
        from scipy import signal  # longdouble: Numba has no such type; SciPy is exact here.

        scipy_function = signal.convolve2d if convolve else signal.correlate2d
        return scipy_function(in1, in2, mode, boundary, fillvalue)
    out = _run(problem, method, count, persist, accuracy)[0, 0]
    if reverse_conjugate:
        out = np.conj(out[::-1, ::-1])
    return out.astype(dtype, copy=False)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
                threads=None, persist=None, accuracy="normwise"):
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
    method : {'auto', 'measure', 'direct', ...} or Plan
        As in :func:`conv2d`. A Plan must describe the equivalent ``conv2d`` problem: a
        ``(1, 1, H, W)`` input, the padding of ``mode`` and ``boundary``, and the compute dtype.
    threads : int, optional
        Threads for this call only; default: ``numba.get_num_threads()``.
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


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto",
               threads=None, persist=None, accuracy="normwise"):
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


def plan(input_shape, weight_shape, *, dtype=np.float64, stride=1, padding=0, dilation=1,
         groups=1, padding_mode="zeros", method="auto", threads=None, accuracy="normwise"):
    """Plan a :func:`conv2d` call from its shapes alone: the strategy and thread count that
    ``method='auto'`` would use, with every candidate's estimated time and workspace.

    Parameters
    ----------
    input_shape, weight_shape : tuple of int
        The shapes :func:`conv2d` would get: ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``, and
        ``(K, C // groups, kh, kw)`` (``(kh, kw)`` for a 2-D input).
    dtype : dtype, optional
        The arrays' dtype; the plan holds the compute dtype (:func:`conv2d`'s rules; complex
        dtypes, for :func:`correlate2d`, are kept). Default float64.
    stride, padding, dilation, groups, padding_mode
        As in :func:`conv2d`.
    method : {'auto', 'direct', ...}
        ``'auto'`` (default) or a name from ``fastconv.METHODS`` to see the estimates of a
        forced strategy.
    threads : int, optional
        Thread limit; default: ``numba.get_num_threads()``.
    accuracy : {'normwise', 'elementwise'}
        As in :func:`conv2d`: with ``'elementwise'``, 'auto' treats ``fft`` and ``winograd`` as
        declined.

    Returns
    -------
    Plan
        Frozen and hashable: ``method``, ``threads``, ``candidates`` (one :class:`Candidate` per
        registered strategy: estimated seconds and workspace bytes, or why it declines) and
        ``reason``; its repr explains the choice. Pass it back as ``conv2d(..., method=plan)``
        to skip planning on calls with these shapes. Plans are a pure function of the shapes,
        options, thread limit, workspace budget and machine constants (shipped defaults, or
        those stored by ``python -m fastconv calibrate``).

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
    """
    current = numba.get_num_threads() if threads is None else None

    def compute():
        if not (isinstance(method, str) and method in ("auto", *METHODS)):
            raise ValueError(f"`method` must be 'auto' or one of {METHODS}; got {method!r}.")
        count = current or threads_count(threads)
        check_accuracy(accuracy)
        x4, w4, _ = layer_shapes(shape_tuple(input_shape, "input_shape"),
                                 shape_tuple(weight_shape, "weight_shape"), groups,
                                 names=("input_shape", "weight_shape"))
        geometry = layer_geometry(x4, w4, groups, stride, padding, dilation, padding_mode,
                                  plan_dtype(dtype), names=("input_shape", "weight_shape"))
        return make_plan(geometry, method, count, accuracy)

    # The repr tells 1 from True and 1.0, so a memoised call never skips a check that fails.
    arguments = repr((input_shape, weight_shape, dtype, stride, padding, dilation, groups,
                      padding_mode, method, threads, accuracy))
    return memoised((arguments, current), compute)


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
    input_shape = shape_tuple(input_shape, "input_shape")
    weight_shape = shape_tuple(weight_shape, "weight_shape")
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
    check_extents(geometry, ("input_shape", "weight_shape"))
    spatial = (geometry.out_height, geometry.out_width)
    if min(spatial) < 1:
        raise ValueError(f"`weight_shape` must fit the padded input after dilation; got "
                         f"{weight_shape} for input {input_shape} with padding {pad} and "
                         f"dilation {dilation}.")
    if len(input_shape) == 2:
        return spatial
    return input_shape[:-3] + (weight_shape[0],) + spatial
