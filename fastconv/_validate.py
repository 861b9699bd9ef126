"""The one place that inspects user input.

Every public entry point turns its arguments into a :class:`Problem`: canonical C-contiguous
arrays of one compute dtype in NCHW / KCHW layout plus a hashable :class:`Geometry` that the
planner and the runners read. Every user-facing error is raised here, following one template:
``"`name` must be <expectation>; got <value>."``.
"""

import math
import numbers
import operator
import os
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")
PADDING_WORDS = ("valid", "same", "full")
ACCURACIES = ("normwise", "elementwise")

# padding_mode -> np.pad mode used to build the source-index maps (see _padding.py).
NUMPY_PAD_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}

SCIPY_MODES = ("full", "same", "valid")

# Every size and offset the kernels compute (shapes, strides, dilations, paddings, padded extents,
# window offsets) is an int64; this leaves room for the sum of two of them.
INDEX_LIMIT = 2**62
SCIPY_BOUNDARIES = {
    "fill": "zeros",
    "pad": "zeros",
    "wrap": "circular",
    "circular": "circular",
    "symm": "symmetric",
    "symmetric": "symmetric",
}


@dataclass(frozen=True)
class Geometry:
    """Shapes and options of one canonical problem: everything the planner may look at.

    Besides the fields: ``out_height``, ``out_width``, ``out_shape`` (N, K, Ho, Wo) and ``macs``,
    the multiply-adds of the direct sum."""

    batch: int
    channels: int
    height: int
    width: int
    out_channels: int
    kernel_height: int
    kernel_width: int
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    padding_mode: str
    dtype: np.dtype

    # Derived once at construction (attributes, not fields: equality, hashing and the repr are
    # the fields'): out_height, out_width, out_shape and macs, which planning reads many times,
    # and the hash. Planning looks plans up by geometry on every call; hashing the 13 fields each
    # time costs more (0.7 us) than the rest of a cached lookup, and on Python 3.11 each first
    # read of a functools.cached_property costs ~1 us (it takes a lock), a tenth of a new shape's
    # FFT model.
    def __post_init__(self):
        top, bottom, left, right = self.padding
        span_h = self.dilation[0] * (self.kernel_height - 1) + 1
        span_w = self.dilation[1] * (self.kernel_width - 1) + 1
        out_height = (self.height + top + bottom - span_h) // self.stride[0] + 1
        out_width = (self.width + left + right - span_w) // self.stride[1] + 1
        per_output = (self.channels // self.groups) * self.kernel_height * self.kernel_width
        self.__dict__.update(  # a frozen dataclass: bypass its __setattr__
            out_height=out_height,
            out_width=out_width,
            out_shape=(self.batch, self.out_channels, out_height, out_width),
            macs=self.batch * self.out_channels * out_height * out_width * per_output,
            _hash=hash(_geometry_fields(self)),
        )

    def __hash__(self):
        return self._hash

    def __getstate__(self):
        # Only the fields: the hash (of strings among them) belongs to this process.
        return dict(zip(_GEOMETRY_FIELDS, _geometry_fields(self), strict=True))

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()


_GEOMETRY_FIELDS = tuple(f.name for f in fields(Geometry))
_INT_TYPE = {int}
_geometry_fields = operator.attrgetter(*_GEOMETRY_FIELDS)


@dataclass(frozen=True, eq=False)
class Problem:
    """Validated arrays of one compute dtype: ``x`` (N, C, H, W), ``w`` (K, C/groups, kh, kw),
    ``bias`` (K,), ``fill`` (1,), all C-contiguous; ``w`` is already flipped or conjugated."""

    geometry: Geometry
    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    fill: np.ndarray


class Shown(str):
    """A description of a bad argument, shown as is (values are shown by repr)."""

    def __repr__(self):
        return str(self)


def _fail(exc_type, name, expectation, got, remedy=""):
    message = f"`{name}` must be {expectation}; got {got!r}."
    raise exc_type(message + (f" {remedy}" if remedy else ""))


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
    """An int or a pair of ints, each >= minimum and <= INDEX_LIMIT, as a 2-tuple."""
    if type(value) is int and minimum <= value <= INDEX_LIMIT:  # the common spelling, one step
        return value, value
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not (is_int(items[0]) and is_int(items[1])):
        _fail(TypeError, name, "an int or a pair of ints", value)
    if any(v < minimum for v in items):
        _fail(ValueError, name, f">= {minimum} (an int or a pair of ints)", value)
    if any(v > INDEX_LIMIT for v in items):
        _fail(ValueError, name, "at most 2**62 (an index limit)", value)
    return int(items[0]), int(items[1])


def parse_padding(padding, kernel_shape, stride, dilation):
    """Canonical (top, bottom, left, right) padding from any accepted spelling."""
    if type(padding) is int and 0 <= padding <= INDEX_LIMIT:
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


def check_extents(geometry, names=("input", "weight")):
    """The dilated kernel and the padded input within INDEX_LIMIT (each argument is, their sums
    may not be), so that every offset a kernel computes is an int64; raises naming the argument
    that takes them past it."""
    g = geometry
    if max(g.dilation[0] * (g.kernel_height - 1), g.dilation[1] * (g.kernel_width - 1)) >= \
            INDEX_LIMIT:
        _fail(ValueError, "dilation", "at most 2**62 // (kernel size - 1) (an index limit)",
              g.dilation, f"The {names[1]} is {g.kernel_height}x{g.kernel_width}.")
    if max(g.height + g.padding[0] + g.padding[1], g.width + g.padding[2] + g.padding[3]) > \
            INDEX_LIMIT:
        _fail(ValueError, "padding", "at most 2**62 in total with the input size (an index "
              "limit)", Shown(f"(top, bottom, left, right) = {g.padding}"),
              f"The {names[0]} is {g.height}x{g.width}.")


def _physical_memory():
    """Bytes of RAM, or None where the platform does not tell."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


PHYSICAL_MEMORY = _physical_memory()


def _shown_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"


def check_output_size(shape, dtype):
    """An output of ``shape`` and ``dtype`` can be allocated: no larger than this machine's
    memory (a larger one would fail in NumPy with a less helpful error, or be paged in until the
    process is killed)."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    limit = PHYSICAL_MEMORY or 2**63 - 1
    if nbytes > limit:
        raise ValueError(
            f"`input`, `weight`, `stride`, `padding` and `dilation` must give an output that fits "
            f"in memory ({_shown_bytes(limit)} here); got an output of shape {shape} "
            f"{np.dtype(dtype)}: {_shown_bytes(nbytes)}.")


def _check_fits(geometry, names=("input", "weight")):
    g = geometry
    if g.out_height >= 1 and g.out_width >= 1:  # the dilated kernel fits the padded input
        return
    padded = (g.height + g.padding[0] + g.padding[1], g.width + g.padding[2] + g.padding[3])
    span = (g.dilation[0] * (g.kernel_height - 1) + 1, g.dilation[1] * (g.kernel_width - 1) + 1)
    _fail(ValueError, names[1], f"no larger (after dilation) than the padded input {padded}",
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


def layer_geometry(x4, w4, groups, stride, padding, dilation, padding_mode, dtype,
                   names=("input", "weight")):
    """Check the options of a ``conv2d`` call and build its :class:`Geometry` (shapes from
    :func:`layer_shapes`, ``dtype`` the compute dtype; ``names`` those of the shapes' arguments
    in messages)."""
    stride = int_pair(stride, "stride", 1)
    dilation = int_pair(dilation, "dilation", 1)
    pad = parse_padding(padding, w4[2:], stride, dilation)
    if not isinstance(padding_mode, str):
        _fail(TypeError, "padding_mode", f"one of {PADDING_MODES}", padding_mode)
    if padding_mode not in PADDING_MODES:
        _fail(ValueError, "padding_mode", f"one of {PADDING_MODES}", padding_mode)
    geometry = Geometry(
        batch=int(x4[0]), channels=int(x4[1]), height=int(x4[2]), width=int(x4[3]),
        out_channels=int(w4[0]), kernel_height=int(w4[2]), kernel_width=int(w4[3]),
        padding=pad, stride=stride, dilation=dilation, groups=int(groups),
        padding_mode=padding_mode, dtype=dtype,
    )
    check_extents(geometry, names)
    _check_fits(geometry, names)
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
    check_output_size(geometry.out_shape, dtype)
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
    if not isinstance(mode, str):
        # SciPy raises TypeError (unhashable) for arrays and lists here; its message names nothing.
        _fail(TypeError, "mode", f"one of {SCIPY_MODES}", mode)
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
    if not isinstance(boundary, str) and boundary is not None:
        _fail(TypeError, "boundary", f"one of {tuple(SCIPY_BOUNDARIES)}", boundary)
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
    geometry = Geometry(
        batch=1, channels=1, height=image.shape[0], width=image.shape[1], out_channels=1,
        kernel_height=kh, kernel_width=kw, padding=pad, stride=(1, 1), dilation=(1, 1), groups=1,
        padding_mode=padding_mode, dtype=compute,
    )
    check_output_size(geometry.out_shape, compute)
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
    if type(shape) is tuple and set(map(type, shape)) == _INT_TYPE and min(shape) > 0 and max(
            shape) <= INDEX_LIMIT:
        return shape  # the common spelling, checked in a third of the time
    try:
        items = tuple(shape)
    except TypeError:
        items = None
    if items is None or not all(is_int(n) for n in items):
        _fail(TypeError, name, "a tuple of ints", shape)
    if not all(n > 0 for n in items):
        _fail(ValueError, name, "a tuple of positive ints", shape)
    if any(n > INDEX_LIMIT for n in items):
        _fail(ValueError, name, "a tuple of ints at most 2**62 (an index limit)", shape)
    return tuple(int(n) for n in items)


def check_accuracy(accuracy):
    """``accuracy`` as given, when it is one of ACCURACIES."""
    if type(accuracy) is str and accuracy in ACCURACIES:
        return accuracy
    _fail(ValueError if isinstance(accuracy, str) else TypeError, "accuracy",
          f"one of {ACCURACIES}", accuracy)
