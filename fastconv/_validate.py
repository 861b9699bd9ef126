"""The one place that inspects user input.

Every public entry point turns its arguments into a :class:`Problem`: canonical C-contiguous
arrays of one compute dtype in NCHW / KCHW layout plus a hashable :class:`Geometry` that the
planner and the runners read. Every user-facing error is raised here, following one template:
``"`name` must be <expectation>; got <value>."``.
"""

import numbers
from dataclasses import fields
from functools import lru_cache

import numpy as np

from .core.geometry import PADDING_MODES, Geometry, Problem
from .core.messages import Shown
from .core.messages import fail as _fail
from .planning.plan import Plan
from .strategies import methods

PADDING_WORDS = ("valid", "same", "full")
_INT_TYPE = {int}

SCIPY_MODES = ("full", "same", "valid")
SCIPY_BOUNDARIES = {
    "fill": "zeros",
    "pad": "zeros",
    "wrap": "circular",
    "circular": "circular",
    "symm": "symmetric",
    "symmetric": "symmetric",
}


def as_array(value, name):
    """``value`` as an ndarray (no copy when it already is one); rejects non-numeric dtypes."""
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        _fail(TypeError, name, "a numeric array (bool, integer, float or complex)",
              Shown(f"dtype {array.dtype}"))
    return array


def is_int(value):
    """An integer that is not a bool (``type(...) is int`` first: the ABC check costs ~1 us, which
    planning a cached shape cannot afford several times over)."""
    return type(value) is int or (
        isinstance(value, numbers.Integral) and not isinstance(value, bool))


def int_pair(value, name, minimum):
    """An int or a pair of ints, each >= minimum, as a 2-tuple."""
    if type(value) is int and value >= minimum:  # the common spelling, checked in one step
        return value, value
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not (is_int(items[0]) and is_int(items[1])):
        _fail(TypeError, name, "an int or a pair of ints", value)
    if any(v < minimum for v in items):
        _fail(ValueError, name, f">= {minimum} (an int or a pair of ints)", value)
    return int(items[0]), int(items[1])


def parse_padding(padding, kernel_shape, stride, dilation):
    """Canonical (top, bottom, left, right) padding from any accepted spelling."""
    if type(padding) is int and padding >= 0:
        return (padding,) * 4
    spans = [d * (k - 1) for d, k in zip(dilation, kernel_shape, strict=True)]
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "full":
            return (spans[0], spans[0], spans[1], spans[1])
        if padding == "same":
            if stride != (1, 1):
                _fail(ValueError, "stride", "1 when padding='same'", stride,
                      "Pad explicitly for a strided convolution.")
            return (spans[0] // 2, spans[0] - spans[0] // 2,
                    spans[1] // 2, spans[1] - spans[1] // 2)
        _fail(ValueError, "padding", f"an int, a pair, ((top, bottom), (left, right)) or one of "
              f"{PADDING_WORDS}", padding)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        (top, bottom), (left, right) = (int_pair(p, "padding", 0) for p in padding)
        return (top, bottom, left, right)
    ph, pw = int_pair(padding, "padding", 0)
    return (ph, ph, pw, pw)


def _check_fits(geometry):
    g = geometry
    if g.out_height >= 1 and g.out_width >= 1:  # the dilated kernel fits the padded input
        return
    padded = (g.height + g.padding[0] + g.padding[1], g.width + g.padding[2] + g.padding[3])
    span = (g.dilation[0] * (g.kernel_height - 1) + 1, g.dilation[1] * (g.kernel_width - 1) + 1)
    _fail(ValueError, "weight", f"no larger (after dilation) than the padded input {padded}",
          Shown(f"dilated kernel size {span}"), "Increase `padding` or use a smaller kernel.")


def threads_count(threads):
    """The thread count a call runs with: Numba's current setting unless ``threads`` is given."""
    import numba

    if threads is None:
        return numba.get_num_threads()
    if not isinstance(threads, numbers.Integral) or isinstance(threads, bool):
        _fail(TypeError, "threads", "None or a positive int", threads)
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= threads <= limit:
        _fail(ValueError, "threads", f"between 1 and NUMBA_NUM_THREADS={limit}", threads)
    return int(threads)


def layer_shapes(input_shape, weight_shape, groups, names=("input", "weight")):
    """Check the shapes of a ``conv2d`` call (arrays or shapes alone) and ``groups``.

    Returns the input and weight shapes as 4-D tuples and the output's leading shape: None for a
    2-D input, ``()`` for 3-D, ``(N,)`` for 4-D.
    """
    input_name, weight_name = names
    x_shape, w_shape = tuple(input_shape), tuple(weight_shape)
    if len(x_shape) not in (2, 3, 4):
        _fail(ValueError, input_name, "2-D (H, W), 3-D (C, H, W) or 4-D (N, C, H, W)",
              Shown(f"shape {x_shape}"))
    if len(x_shape) == 2 and len(w_shape) != 2:
        _fail(ValueError, weight_name, "2-D (kh, kw) for a 2-D input", Shown(f"shape {w_shape}"))
    if len(x_shape) > 2 and len(w_shape) != 4:
        _fail(ValueError, weight_name, "4-D (out_channels, in_channels/groups, kh, kw)",
              Shown(f"shape {w_shape}"))
    if 0 in x_shape:
        _fail(ValueError, input_name, "non-empty", Shown(f"shape {x_shape}"))
    if 0 in w_shape:
        _fail(ValueError, weight_name, "non-empty", Shown(f"shape {w_shape}"))
    lead = x_shape[:-3] if len(x_shape) == 4 else ()
    if len(x_shape) == 2:
        lead = None
    x4 = (1,) * (4 - len(x_shape)) + x_shape
    w4 = (1,) * (4 - len(w_shape)) + w_shape
    out_channels, cg = w4[:2]
    channels = x4[1]

    if not is_int(groups):
        _fail(TypeError, "groups", "a positive int", groups)
    if groups < 1 or channels % groups or out_channels % groups:
        _fail(ValueError, "groups", f"a positive divisor of in_channels={channels} and "
              f"out_channels={out_channels}", groups)
    if cg * groups != channels:
        _fail(ValueError, weight_name, f"of shape (out_channels, {channels // groups}, kh, kw) "
              f"for {channels} input channels and groups={groups}", Shown(f"shape {w_shape}"))
    return x4, w4, lead


def layer_geometry(x4, w4, groups, stride, padding, dilation, padding_mode, dtype):
    """Check the options of a ``conv2d`` call and build its :class:`Geometry` (shapes from
    :func:`layer_shapes`, ``dtype`` the compute dtype)."""
    stride = int_pair(stride, "stride", 1)
    dilation = int_pair(dilation, "dilation", 1)
    pad = parse_padding(padding, w4[2:], stride, dilation)
    if padding_mode not in PADDING_MODES:
        _fail(ValueError, "padding_mode", f"one of {PADDING_MODES}", padding_mode)
    geometry = Geometry(
        batch=int(x4[0]), channels=int(x4[1]), height=int(x4[2]), width=int(x4[3]),
        out_channels=int(w4[0]), kernel_height=int(w4[2]), kernel_width=int(w4[3]),
        padding=pad, stride=stride, dilation=dilation, groups=int(groups),
        padding_mode=padding_mode, dtype=dtype,
    )
    _check_fits(geometry)
    return geometry


def conv2d_problem(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                   lazy=False):
    """Validate ``conv2d`` arguments. Returns the problem and the output's leading shape.

    ``lazy``: ``input`` is a stand-in with the data's shape and dtype (see :func:`lazy_input`); the
    problem's ``x`` is None."""
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    if x.dtype.kind == "c" or w.dtype.kind == "c":
        _fail(TypeError, "input", "real (conv2d is a deep-learning layer)",
              Shown(f"dtype {x.dtype} and weight dtype {w.dtype}"),
              "Use fastconv.correlate2d for complex data.")
    x4, w4, lead = layer_shapes(x.shape, w.shape, groups)
    out_channels = w4[0]

    b = None
    if bias is not None:
        b = as_array(bias, "bias")
        if b.dtype.kind == "c":
            _fail(TypeError, "bias", "real", Shown(f"dtype {b.dtype}"))
        expected = (out_channels,)
        if b.shape != expected and not (x.ndim == 2 and b.size == 1 and b.ndim <= 1):
            scalar = " or a scalar" if x.ndim == 2 else ""
            _fail(ValueError, "bias", f"of shape {expected}{scalar}", Shown(f"shape {b.shape}"))

    dtype = conv2d_dtype(x, w, b)
    geometry = layer_geometry(x4, w4, groups, stride, padding, dilation, padding_mode, dtype)
    bias_array = np.zeros(out_channels, dtype) if b is None else np.ascontiguousarray(
        b.reshape(out_channels), dtype)
    problem = Problem(
        geometry=geometry,
        x=None if lazy else np.ascontiguousarray(x.reshape(x4), dtype),
        w=np.ascontiguousarray(w.reshape(w4), dtype),
        bias=bias_array,
        fill=np.zeros(1, dtype),
    )
    return problem, lead


def conv2d_dtype(*arrays):
    """float32 stays float32, float64 stays float64, mixed follows np.result_type; integers and
    bool compute in float64, float16 in float32 and longdouble in float64."""
    dtype = np.result_type(*(a for a in arrays if a is not None))
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.itemsize > 8:
        return np.dtype(np.float64)
    return dtype


def scipy_dtype(in1, in2):
    """SciPy's output dtype for ``correlate2d``; raises SciPy's ValueError for unsupported types."""
    dtype = np.result_type(in1, in2)
    if dtype.kind not in "iufc" or dtype == np.float16:
        raise ValueError(
            f"convolve2d not available for this type: `in1` and `in2` must have a common dtype "
            f"that is integer, float32/64, longdouble or complex; got {dtype}."
        )
    return dtype


def scipy_inputs(in1, in2, mode, name):
    """Arrays, result dtype and swap flag for a SciPy drop-in call (SciPy's checks and order)."""
    a = np.asarray(in1)
    b = np.asarray(in2)
    if not a.ndim == b.ndim == 2:
        raise ValueError(f"{name} inputs must both be 2-D arrays; got `in1` of shape {a.shape} "
                         f"and `in2` of shape {b.shape}.")
    swapped = False
    if mode == "valid":
        ok1 = all(s1 >= s2 for s1, s2 in zip(a.shape, b.shape, strict=True))
        ok2 = all(s2 >= s1 for s1, s2 in zip(a.shape, b.shape, strict=True))
        if not (ok1 or ok2):
            raise ValueError("For 'valid' mode, one must be at least as large as the other in "
                             f"every dimension; got shapes {a.shape} and {b.shape}.")
        swapped = not ok1
    if mode not in SCIPY_MODES:
        raise ValueError(f"Acceptable mode flags are 'valid', 'same', or 'full'; got {mode!r}.")
    dtype = scipy_dtype(a, b)
    if 0 in a.shape or 0 in b.shape:
        raise ValueError(f"{name} inputs must be non-empty; got shapes {a.shape} and {b.shape}.")
    return a, b, dtype, swapped


def scipy_padding_mode(boundary):
    if boundary not in SCIPY_BOUNDARIES:
        raise ValueError("Acceptable boundary flags are 'fill', 'circular' (or 'wrap'), and "
                         f"'symmetric' (or 'symm'); got {boundary!r}.")
    return SCIPY_BOUNDARIES[boundary]


def scipy_fill(fillvalue, dtype):
    """``fillvalue`` cast to the compute dtype with SciPy's rules: scalars and lists convert by
    value (2.7 -> 2 for integers; 300 for int8 or NaN for integers fail), arrays only by a safe
    cast."""
    try:
        if isinstance(fillvalue, np.ndarray) and not np.can_cast(fillvalue.dtype, dtype, "safe"):
            raise TypeError
        fill = np.asarray(fillvalue, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(
            f"could not cast `fillvalue` directly to the output type {dtype}; got {fillvalue!r}."
        ) from None
    if fill.size == 0:
        raise ValueError("`fillvalue` cannot be an empty array.")
    if fill.size != 1:
        raise ValueError(f"`fillvalue` must be scalar or an array with one element; got shape "
                         f"{fill.shape}.")
    return fill.reshape(1)


def scipy_problem(in1, in2, mode, boundary, fillvalue, convolve, lazy=False):
    """Validate a ``correlate2d``/``convolve2d`` call in SciPy's order of checks.

    Returns ``(problem, result_dtype, reverse_conjugate)``. ``problem`` is None for longdouble
    types, which Numba cannot compute. ``reverse_conjugate`` marks a swapped 'valid' correlation,
    whose output is ``conj(out[::-1, ::-1])``. ``lazy``: as in :func:`conv2d_problem` (``in1``
    is a stand-in; a swapped 'valid' call, whose image would be ``in2``, is refused).
    """
    name = "convolve2d" if convolve else "correlate2d"
    a, b, dtype, swapped = scipy_inputs(in1, in2, mode, name)
    padding_mode = scipy_padding_mode(boundary)
    fill = scipy_fill(fillvalue, dtype) if padding_mode == "zeros" else np.zeros(1, dtype)
    if dtype.itemsize > (16 if dtype.kind == "c" else 8):
        if lazy:
            _fail(TypeError, "in1", "of a type no wider than float64 / complex128 when it is a "
                  "dask array (longdouble is computed by SciPy, in memory)",
                  Shown(f"dtype {dtype}"))
        return None, dtype, False
    compute = np.dtype(np.int64) if dtype.kind in "iu" else dtype
    if lazy and swapped:
        _fail(ValueError, "in2", "no larger than `in1` in every dimension for mode='valid' when "
              "`in1` is a dask array", Shown(f"shape {b.shape} for `in1` of shape {a.shape}"))
    image, kernel = (b, a) if swapped else (a, b)
    kernel = kernel[::-1, ::-1] if convolve else np.conj(kernel)
    kh, kw = kernel.shape
    if mode == "full":
        pad = (kh - 1, kh - 1, kw - 1, kw - 1)
    elif mode == "valid":
        pad = (0, 0, 0, 0)
    elif convolve:
        pad = (kh // 2, (kh - 1) // 2, kw // 2, (kw - 1) // 2)
    else:
        pad = ((kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2)
    if padding_mode == "zeros" and any(pad) and np.any(fill):
        padding_mode = "constant"  # a fill that is not zero: see core/geometry.py
    geometry = Geometry(
        batch=1, channels=1, height=image.shape[0], width=image.shape[1], out_channels=1,
        kernel_height=kh, kernel_width=kw, padding=pad, stride=(1, 1), dilation=(1, 1), groups=1,
        padding_mode=padding_mode, dtype=compute,
    )
    problem = Problem(
        geometry=geometry,
        x=None if lazy else np.ascontiguousarray(image.reshape(1, 1, *image.shape), compute),
        w=np.ascontiguousarray(kernel.reshape(1, 1, kh, kw), compute),
        bias=np.zeros(1, compute),
        fill=fill.astype(compute),
    )
    return problem, dtype, swapped and not convolve


def plan_dtype(dtype):
    """The compute dtype of a problem described by its dtype alone: ``conv2d``'s rules for real
    types, complex64 / complex128 kept (the drop-ins' complex correlation)."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        _fail(TypeError, "dtype", "a NumPy dtype", dtype)
    return _compute_dtype(dtype)


@lru_cache(maxsize=64)
def _compute_dtype(dtype):
    if dtype.kind not in "biufc":
        _fail(TypeError, "dtype", "numeric (bool, integer, float or complex)", Shown(str(dtype)))
    if dtype.kind == "c":
        return np.dtype(np.complex64) if dtype.itemsize == 8 else np.dtype(np.complex128)
    return conv2d_dtype(np.empty(0, dtype))


def shape_tuple(shape, name):
    """``shape`` as a tuple of positive ints (shapes given without arrays)."""
    if type(shape) is tuple and set(map(type, shape)) == _INT_TYPE and min(shape) > 0:
        return shape  # the common spelling, checked in a third of the time
    try:
        items = tuple(shape)
    except TypeError:
        items = None
    if items is None or not all(is_int(n) for n in items):
        _fail(TypeError, name, "a tuple of ints", shape)
    if not all(n > 0 for n in items):
        _fail(ValueError, name, "a tuple of positive ints", shape)
    return tuple(int(n) for n in items)


def check_method(method, threads=None, persist=None):
    """Check ``method``, and ``threads`` and ``persist`` against it; returns the thread limit."""
    if not (isinstance(method, Plan) or isinstance(method, str) and method in (
            "auto", "measure", *methods())):
        raise ValueError(f"`method` must be 'auto' or one of {methods()}, 'measure' or a "
                         f"fastconv.Plan; got {method!r}.")
    count = threads_count(threads)
    if isinstance(method, Plan) and threads is not None and count != method.max_threads:
        raise ValueError(f"`threads` must be None or {method.max_threads} (the plan's thread "
                         f"limit) when `method` is a Plan; got {threads!r}.")
    if persist is not None and (not isinstance(persist, bool) or method != "measure"):
        raise ValueError(f"`persist` must be None, or True or False with method='measure'; got "
                         f"{persist!r} with method={method!r}.")
    return method.max_threads if isinstance(method, Plan) else count


def check_plan_method(method):
    """Check ``plan()``'s ``method``: 'auto' or a registered strategy."""
    if not (isinstance(method, str) and method in ("auto", *methods())):
        raise ValueError(f"`method` must be 'auto' or one of {methods()}; got {method!r}.")


def _shown(value):
    return str(value) if isinstance(value, np.dtype) else repr(value)


def check_plan(plan, geometry):
    """Check that a Plan passed as ``method`` was made for ``geometry``."""
    if plan.geometry != geometry:
        differ = ", ".join(
            f"{f.name} {_shown(getattr(plan.geometry, f.name))} != "
            f"{_shown(getattr(geometry, f.name))}"
            for f in fields(Geometry)
            if getattr(plan.geometry, f.name) != getattr(geometry, f.name)
        )
        raise ValueError(f"`method` must be a Plan made for this call's problem; the plan "
                         f"differs in {differ} (plan != call). Make one with fastconv.plan(...) "
                         "for these shapes and options.")


def output_shape_geometry(input_shape, weight_shape, stride, padding, dilation):
    """Check an ``output_shape`` call; returns the shapes as tuples and a single-channel
    Geometry of the spatial problem."""
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
    if min(geometry.out_height, geometry.out_width) < 1:
        raise ValueError(f"`weight_shape` must fit the padded input; got {weight_shape} for "
                         f"input {input_shape} with padding {pad}.")
    return input_shape, weight_shape, geometry


def budget_bytes(nbytes):
    """A workspace budget: an int of at least 64 KiB."""
    if not isinstance(nbytes, numbers.Integral) or isinstance(nbytes, bool):
        _fail(TypeError, "nbytes", "an int number of bytes", nbytes)
    if nbytes < 2**16:
        _fail(ValueError, "nbytes", "at least 65536 (64 KiB)", nbytes)
    return int(nbytes)


def is_dask_array(value):
    """Whether ``value`` is a dask array, told by its type's module so that dask is never imported
    for other inputs."""
    return type(value).__module__.partition(".")[0] == "dask" and hasattr(value, "chunks")


def _described(array):
    return Shown(f"a dask array of shape {array.shape} and chunks {array.chunks}")


def reject_dask(value, name, data_name):
    """Refuse a dask array for an argument that every chunk's task needs whole (weights, bias)."""
    if is_dask_array(value):
        _fail(TypeError, name, f"array_like in memory (only `{data_name}` may be a dask array)",
              _described(value), f"Pass `{name}.compute()`.")


def lazy_input(array, name):
    """Check a dask array's chunks and dtype; returns a zero-stride NumPy stand-in of its shape and
    dtype, which the ordinary checks read without the data being loaded."""
    if any(size != size for sizes in array.chunks for size in sizes):  # NaN: unknown size
        _fail(ValueError, name, "a dask array with known chunk sizes", _described(array),
              f"Call `{name}.compute_chunk_sizes()` first.")
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biufc":
        _fail(TypeError, name, "a numeric array (bool, integer, float or complex)",
              Shown(f"dtype {dtype}"))
    return np.broadcast_to(np.zeros((), dtype), tuple(int(n) for n in array.shape))


def lazy_threads(threads):
    """Threads per dask task: 1 unless given (dask runs the tasks side by side)."""
    return 1 if threads is None else threads_count(threads)


def lazy_method(method, methods):
    """``method`` for a dask array: per-chunk shapes differ, so a Plan (made for one shape) does
    not apply."""
    if not (isinstance(method, str) and method in ("auto", "measure", *methods)):
        _fail(ValueError, "method", f"'auto', 'measure' or one of {methods} for a dask array "
              "(chunks have shapes of their own, so a Plan does not apply)", method)
    return method
