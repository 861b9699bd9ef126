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


def conv2d_problem(input, weight, bias, stride, padding, dilation, groups, padding_mode):
    """Validate ``conv2d`` arguments. Returns the problem and the output's leading shape."""
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
        x=np.ascontiguousarray(x.reshape(x4), dtype),
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


def scipy_problem(in1, in2, mode, boundary, fillvalue, convolve):
    """Validate a ``correlate2d``/``convolve2d`` call in SciPy's order of checks.

    Returns ``(problem, result_dtype, reverse_conjugate)``. ``problem`` is None for longdouble
    types, which Numba cannot compute. ``reverse_conjugate`` marks a swapped 'valid' correlation,
    whose output is ``conj(out[::-1, ::-1])``.
    """
    name = "convolve2d" if convolve else "correlate2d"
    a, b, dtype, swapped = scipy_inputs(in1, in2, mode, name)
    padding_mode = scipy_padding_mode(boundary)
    fill = scipy_fill(fillvalue, dtype) if padding_mode == "zeros" else np.zeros(1, dtype)
    if dtype.itemsize > (16 if dtype.kind == "c" else 8):
        return None, dtype, False
    compute = np.dtype(np.int64) if dtype.kind in "iu" else dtype
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
        x=np.ascontiguousarray(image.reshape(1, 1, *image.shape), compute),
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


# Transposed convolutions and gradients (fastconv/_transpose.py computes them). These checks are
# written for every rank: ``rank`` is the number of spatial axes.


def int_tuple(value, name, minimum, rank):
    """An int or a tuple of ``rank`` ints, each >= minimum, as a ``rank``-tuple."""
    if is_int(value):
        items = (value,) * rank
    elif isinstance(value, (tuple, list)) and len(value) == rank and all(map(is_int, value)):
        items = tuple(value)
    else:
        _fail(TypeError, name, f"an int or a tuple of {rank} ints", value)
    if any(v < minimum for v in items):
        _fail(ValueError, name, f">= {minimum} (an int or a tuple of {rank} ints)", value)
    return tuple(int(v) for v in items)


def padding_pairs(padding, kernel, stride, dilation):
    """Canonical ((before, after), ...) padding per spatial axis from any spelling ``conv2d``
    accepts: an int, one int per axis, one (before, after) pair per axis, or a word."""
    rank = len(kernel)
    spans = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * rank
        if padding == "full":
            return tuple((s, s) for s in spans)
        if padding == "same":
            if any(s != 1 for s in stride):
                _fail(ValueError, "stride", "1 when padding='same'", stride,
                      "Pad explicitly for a strided convolution.")
            return tuple((s // 2, s - s // 2) for s in spans)
        _fail(ValueError, "padding", f"an int, a tuple of {rank} ints or of {rank} (before, "
              f"after) pairs, or one of {PADDING_WORDS}", padding)
    if isinstance(padding, (tuple, list)) and len(padding) == rank and all(
            isinstance(p, (tuple, list)) for p in padding):
        pairs = tuple(int_tuple(tuple(p), "padding", 0, 2) for p in padding)
        return pairs
    return tuple((p, p) for p in int_tuple(padding, "padding", 0, rank))


def _nd_shapes(x_shape, w_shape, rank, names, transposed):
    """Full (N, C, *spatial) and weight shapes and the output's leading shape (None: spatial
    input, ``()``: one unbatched image, ``(N,)``) of a ``rank``-D layer, as ``conv2d`` accepts
    them. ``transposed``: the weight is (C_in, C_out / groups, *k) (conv_transpose)."""
    input_name, weight_name = names
    full = rank + 2
    if len(x_shape) not in (rank, rank + 1, full):
        _fail(ValueError, input_name, f"{rank}-D (spatial), {rank + 1}-D (C, *spatial) or "
              f"{full}-D (N, C, *spatial)", Shown(f"shape {x_shape}"))
    expected_w = rank if len(x_shape) == rank else full
    if len(w_shape) != expected_w:
        layout = "(in_channels, out_channels/groups, *k)" if transposed else (
            "(out_channels, in_channels/groups, *k)")
        _fail(ValueError, weight_name, f"{rank}-D (*k) for a {rank}-D input" if expected_w == rank
              else f"{full}-D {layout}", Shown(f"shape {w_shape}"))
    if 0 in x_shape:
        _fail(ValueError, input_name, "non-empty", Shown(f"shape {x_shape}"))
    if 0 in w_shape:
        _fail(ValueError, weight_name, "non-empty", Shown(f"shape {w_shape}"))
    lead = None if len(x_shape) == rank else x_shape[:-rank - 1]
    return (1,) * (full - len(x_shape)) + x_shape, (1,) * (full - len(w_shape)) + w_shape, lead


def _check_groups(groups, channels, out_channels):
    if not is_int(groups):
        _fail(TypeError, "groups", "a positive int", groups)
    if groups < 1 or channels % groups or out_channels % groups:
        _fail(ValueError, "groups", f"a positive divisor of in_channels={channels} and "
              f"out_channels={out_channels}", groups)
    return int(groups)


def _layer_options(x_full, w_full, groups, stride, padding, dilation, padding_mode, names):
    """Check the options of a ``rank``-D forward layer (conv weight layout); returns
    (groups, stride, padding pairs, dilation, forward output spatial shape)."""
    rank = len(x_full) - 2
    channels, (out_channels, cg) = x_full[1], w_full[:2]
    groups = _check_groups(groups, channels, out_channels)
    if cg * groups != channels:
        _fail(ValueError, names[1], f"of shape (out_channels, {channels // groups}, *k) for "
              f"{channels} input channels and groups={groups}", Shown(f"shape {w_full}"))
    stride = int_tuple(stride, "stride", 1, rank)
    dilation = int_tuple(dilation, "dilation", 1, rank)
    pads = padding_pairs(padding, w_full[2:], stride, dilation)
    if padding_mode not in PADDING_MODES:
        _fail(ValueError, "padding_mode", f"one of {PADDING_MODES}", padding_mode)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x_full[2:], pads, strict=True))
    spans = tuple(d * (k - 1) + 1 for d, k in zip(dilation, w_full[2:], strict=True))
    if any(span > size for span, size in zip(spans, padded, strict=True)):
        _fail(ValueError, names[1], f"no larger (after dilation) than the padded input {padded}",
              Shown(f"dilated kernel size {spans}"), "Increase `padding` or use a smaller kernel.")
    out = tuple((size - span) // s + 1 for size, span, s in zip(padded, spans, stride,
                                                                 strict=True))
    return groups, stride, pads, dilation, out


def _real_array(value, name):
    array = as_array(value, name)
    if array.dtype.kind == "c":
        _fail(TypeError, name, "real", Shown(f"dtype {array.dtype}"))
    return array


def check_adjoint_method(method):
    """``method`` of a transposed convolution or gradient: 'auto', 'measure' or a strategy. A Plan
    cannot be passed: these run one or several forward problems (see fastconv.grad.plan_*)."""
    if not (isinstance(method, str) and method in ("auto", "measure", *methods())):
        _fail(ValueError, "method", f"'auto', 'measure' or one of {methods()}", method,
              "A transposed convolution or gradient runs several forward problems: "
              "fastconv.grad.plan_transpose / plan_input / plan_weight show their plans.")


def _grad_output(grad_output, expected, context):
    gy = _real_array(grad_output, "grad_output")
    if gy.shape != expected:
        _fail(ValueError, "grad_output", f"of shape {expected} (the forward output {context})",
              Shown(f"shape {gy.shape}"))
    return gy


def grad_shapes_call(input_shape, weight_shape, stride, padding, dilation, groups, padding_mode):
    """Validate a gradient problem given by shapes alone (``fastconv.grad.plan_input`` /
    ``plan_weight``); returns the full input and weight shapes and the options (groups, stride,
    pads, dilation)."""
    x_shape = shape_tuple(input_shape, "input_shape")
    w_shape = shape_tuple(weight_shape, "weight_shape")
    rank = shapes_rank(x_shape, w_shape)
    names = ("input_shape", "weight_shape")
    x_full, w_full, _ = _nd_shapes(x_shape, w_shape, rank, names, False)
    groups, stride, pads, dilation, _ = _layer_options(
        x_full, w_full, groups, stride, padding, dilation, padding_mode, names)
    return x_full, w_full, (groups, stride, pads, dilation)


def grad_input_call(input_shape, weight, grad_output, stride, padding, dilation, groups,
                    padding_mode, rank):
    """Validate ``conv{rank}d_input``. Returns (grad_output, weight) as full-rank C-contiguous
    arrays of the compute dtype, the options (groups, stride, pads, dilation), the input's
    spatial shape and the leading shape of the result."""
    shape = shape_tuple(input_shape, "input_shape")
    w = _real_array(weight, "weight")
    x_full, w_full, lead = _nd_shapes(shape, w.shape, rank, ("input_shape", "weight"), False)
    groups, stride, pads, dilation, out = _layer_options(
        x_full, w_full, groups, stride, padding, dilation, padding_mode,
        ("input_shape", "weight"))
    expected = _leading(lead, w_full[0]) + out
    gy = _grad_output(grad_output, expected, f"of `input_shape` {shape} and `weight` {w.shape}")
    dtype = conv2d_dtype(gy, w)
    arrays = (np.ascontiguousarray(gy.reshape(x_full[:1] + w_full[:1] + out), dtype),
              np.ascontiguousarray(w.reshape(w_full), dtype))
    return arrays, (groups, stride, pads, dilation), x_full, lead


def grad_weight_call(input, weight_shape, grad_output, stride, padding, dilation, groups,
                     padding_mode, rank):
    """Validate ``conv{rank}d_weight``. Returns (input, grad_output) as full-rank C-contiguous
    arrays of the compute dtype, the options (groups, stride, pads, dilation) and the full
    weight shape asked for."""
    x = _real_array(input, "input")
    shape = shape_tuple(weight_shape, "weight_shape")
    x_full, w_full, lead = _nd_shapes(x.shape, shape, rank, ("input", "weight_shape"), False)
    groups, stride, pads, dilation, out = _layer_options(
        x_full, w_full, groups, stride, padding, dilation, padding_mode,
        ("input", "weight_shape"))
    expected = _leading(lead, w_full[0]) + out
    gy = _grad_output(grad_output, expected, f"of `input` {x.shape} and `weight_shape` {shape}")
    dtype = conv2d_dtype(x, gy)
    arrays = (np.ascontiguousarray(x.reshape(x_full), dtype),
              np.ascontiguousarray(gy.reshape(x_full[:1] + w_full[:1] + out), dtype))
    return arrays, (groups, stride, pads, dilation), w_full


def _leading(lead, channels):
    """The leading axes of an array of ``channels`` channels for an input of leading shape
    ``lead`` (see _nd_shapes)."""
    return () if lead is None else tuple(lead) + (channels,)


def shapes_rank(input_shape, weight_shape):
    """The number of spatial axes of a layer given by shapes alone: the full weight shape
    (out, in / groups, *k) has two axes more; a 2-D weight is a spatial (kh, kw) kernel."""
    return 2 if len(weight_shape) <= 2 else len(weight_shape) - 2


def transpose_call(input_shape, weight_shape, stride, padding, output_padding, dilation, groups,
                   rank, names=("input", "weight")):
    """Validate the shapes and options of ``conv_transpose{rank}d`` (weight (C_in, C_out/groups,
    *k)). Returns the full input and weight shapes, the options (groups, stride, pads,
    dilation), output_padding, the output's spatial shape and the result's leading shape."""
    w_shape = tuple(weight_shape)
    x_full, w_full, lead = _nd_shapes(tuple(input_shape), w_shape, rank, names, True)
    channels = x_full[1]
    if w_full[0] != channels:
        _fail(ValueError, names[1], f"of shape ({channels}, out_channels/groups, *k) for "
              f"{channels} input channels (conv_transpose's layout)", Shown(f"shape {w_shape}"))
    if not is_int(groups):
        _fail(TypeError, "groups", "a positive int", groups)
    if groups < 1 or channels % groups:
        _fail(ValueError, "groups", f"a positive divisor of in_channels={channels}", groups)
    groups = int(groups)
    stride = int_tuple(stride, "stride", 1, rank)
    dilation = int_tuple(dilation, "dilation", 1, rank)
    pads = tuple((p, p) for p in int_tuple(padding, "padding", 0, rank))
    extra = int_tuple(output_padding, "output_padding", 0, rank)
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation, strict=True)):
        _fail(ValueError, "output_padding", f"smaller than `stride` {stride} or `dilation` "
              f"{dilation} on each axis (PyTorch's rule)", output_padding)
    out = tuple((n - 1) * s - lo - hi + d * (k - 1) + e + 1 for n, s, (lo, hi), d, k, e in zip(
        x_full[2:], stride, pads, dilation, w_full[2:], extra, strict=True))
    if min(out) < 1:
        _fail(ValueError, "padding", f"small enough to leave an output (it would have spatial "
              f"shape {out})", padding)
    return x_full, w_full, (groups, stride, pads, dilation), extra, out, lead


def transpose_arrays(input, weight, bias, stride, padding, output_padding, dilation, groups,
                     rank):
    """Validate a ``conv_transpose{rank}d`` call; returns the canonical arrays (input, weight,
    bias or None) and what :func:`transpose_call` returns."""
    x = _real_array(input, "input")
    w = _real_array(weight, "weight")
    checked = transpose_call(x.shape, w.shape, stride, padding, output_padding, dilation, groups,
                             rank)
    x_full, w_full, (groups, *_), _, _, lead = checked
    out_channels = w_full[1] * groups
    b = None
    if bias is not None:
        b = _real_array(bias, "bias")
        if b.shape != (out_channels,) and not (lead is None and b.size == 1 and b.ndim <= 1):
            scalar = " or a scalar" if lead is None else ""
            _fail(ValueError, "bias", f"of shape {(out_channels,)}{scalar}",
                  Shown(f"shape {b.shape}"))
    dtype = conv2d_dtype(x, w, b)
    arrays = (np.ascontiguousarray(x.reshape(x_full), dtype),
              np.ascontiguousarray(w.reshape(w_full), dtype),
              None if b is None else np.ascontiguousarray(b.reshape(out_channels), dtype))
    return arrays, checked
