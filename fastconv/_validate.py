"""The one place that inspects user input.

Every public entry point turns its arguments into a :class:`Problem`: canonical C-contiguous
arrays of one compute dtype in NCHW / KCHW layout plus a hashable :class:`Geometry` that the
planner and the runners read. Every user-facing error is raised here, following one template:
``"`name` must be <expectation>; got <value>."``.
"""

import hashlib
import math
import numbers
import operator
import os
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np

from .core.geometry import PADDING_MODES, Geometry, NdGeometry, Problem, canonical_geometry
from .core.messages import Shown
from .core.messages import fail as _fail
from .core.threads import current_threads
from .core.workspace import get_budget
from .planning.plan import Plan
from .planning.ranks import ranked, reduce_nd
from .strategies import REGISTRY, methods
from .strategies.separable.detect import detection, worth_detecting

PADDING_WORDS = ("valid", "same", "full")
ACCURACIES = ("normwise", "elementwise")
_INT_TYPE = {int}

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


def check_groups(groups, channels, out_channels):
    """``groups``: a positive int dividing the input and output channels."""
    if not is_int(groups):
        _fail(TypeError, "groups", "a positive int", groups)
    if groups < 1 or channels % groups or out_channels % groups:
        _fail(ValueError, "groups", f"a positive divisor of in_channels={channels} and "
              f"out_channels={out_channels}", groups)
    return int(groups)




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
    """The thread count a call runs with: Numba's current setting unless ``threads`` is given;
    more than Numba's pool (NUMBA_NUM_THREADS) runs on the whole pool, as PyTorch accepts any
    count, so code written for a larger machine runs on a smaller one."""
    import numba

    if threads is None:
        return current_threads()
    if not isinstance(threads, numbers.Integral) or isinstance(threads, bool):
        _fail(TypeError, "threads", "None or a positive int", threads)
    if threads < 1:
        _fail(ValueError, "threads", ">= 1", threads)
    return min(int(threads), numba.config.NUMBA_NUM_THREADS)


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

    check_groups(groups, channels, out_channels)
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
    geometry = canonical_geometry(int(x4[0]), int(x4[1]), int(x4[2]), int(x4[3]), int(w4[0]),
                                  int(w4[2]), int(w4[3]), pad, stride, dilation, int(groups),
                                  padding_mode, dtype)
    check_extents(geometry, names)
    _check_fits(geometry, names)
    return geometry


def layer_bias(bias, out_channels, unbatched_plane):
    """A layer's ``bias`` as an array (None stays None): real, of shape (out_channels,), or a
    scalar for an input without channels (``unbatched_plane``)."""
    if bias is None:
        return None
    b = as_array(bias, "bias")
    if b.dtype.kind == "c":
        _fail(TypeError, "bias", "real", Shown(f"dtype {b.dtype}"))
    expected = (out_channels,)
    if b.shape != expected and not (unbatched_plane and b.size == 1 and b.ndim <= 1):
        scalar = " or a scalar" if unbatched_plane else ""
        _fail(ValueError, "bias", f"of shape {expected}{scalar}", Shown(f"shape {b.shape}"))
    return b


@dataclass(frozen=True, eq=False)
class LayerForm:
    """A validated ``conv2d`` call without its data: what follows from the arrays' shapes and
    dtypes and the options alone, so that a repeated call skips validation (_api.py).
    ``geometry`` is before its kernel rank; ``x4``/``w4`` the 4-D shapes of input and weight;
    ``lead`` the output's leading shape (see :func:`layer_shapes`); ``detects``: whether a
    problem's geometry takes its weights' rank (:func:`with_kernel_rank`)."""

    geometry: Geometry
    x4: tuple
    w4: tuple
    lead: tuple | None
    detects: bool

    def problem(self, x, w, b, lazy=False):
        """The problem of arrays ``x``, ``w`` and ``b`` (or None) of this form's shapes and
        dtypes; ``lazy``: as in :func:`conv2d_problem`."""
        g = self.geometry
        dtype = g.dtype
        bias = np.zeros(g.out_channels, dtype) if b is None else np.ascontiguousarray(
            b.reshape(g.out_channels), dtype)
        weights = np.ascontiguousarray(w.reshape(self.w4), dtype)
        return Problem(
            geometry=_ranked(g, detection(weights).rank) if self.detects else g,
            x=None if lazy else np.ascontiguousarray(x.reshape(self.x4), dtype),
            w=weights,
            bias=bias,
            fill=np.zeros(1, dtype),
        )


def conv2d_form(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                forced=False):
    """Validate ``conv2d`` arguments. Returns their :class:`LayerForm` and the input, weight and
    bias as arrays (bias None when not given); ``forced``: the separable strategy is asked for
    (see :func:`with_kernel_rank`)."""
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    if x.dtype.kind == "c" or w.dtype.kind == "c":
        _fail(TypeError, "input", "real (conv2d is a deep-learning layer)",
              Shown(f"dtype {x.dtype} and weight dtype {w.dtype}"),
              "Use fastconv.correlate2d for complex data.")
    x4, w4, lead = layer_shapes(x.shape, w.shape, groups)
    b = layer_bias(bias, w4[0], x.ndim == 2)
    dtype = conv2d_dtype(x, w, b)
    geometry = layer_geometry(x4, w4, groups, stride, padding, dilation, padding_mode, dtype)
    check_output_size(geometry.out_shape, dtype)
    return LayerForm(geometry, x4, w4, lead, worth_detecting(geometry, forced)), x, w, b


def conv2d_problem(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                   lazy=False):
    """Validate ``conv2d`` arguments. Returns the problem and the output's leading shape.

    ``lazy``: ``input`` is a stand-in with the data's shape and dtype (see :func:`lazy_input`); the
    problem's ``x`` is None."""
    form, x, w, b = conv2d_form(input, weight, bias, stride, padding, dilation, groups,
                                padding_mode)
    return form.problem(x, w, b, lazy), form.lead


def with_kernel_rank(geometry, w, forced=False):
    """``geometry`` with the rank of the weights ``w`` (canonical, of the compute dtype) when
    shapes make it worth detecting or the separable strategy is ``forced``
    (strategies/separable/detect.py, cached per weight array)."""
    if not worth_detecting(geometry, forced):
        return geometry
    return _ranked(geometry, detection(w).rank)


@lru_cache(maxsize=256)
def _ranked(geometry, rank):
    # dataclasses.replace builds the geometry anew (15 us); a repeated call finds it here.
    return replace(geometry, kernel_rank=rank)


def plan_weights(weights, weight_shape, w4, dtype):
    """The ``weights`` given to ``plan()``: checked against ``weight_shape``, canonical, of the
    compute dtype ``dtype``."""
    w = as_array(weights, "weights")
    if w.shape != tuple(weight_shape):
        _fail(ValueError, "weights", f"of shape weight_shape={tuple(weight_shape)}",
              Shown(f"shape {w.shape}"))
    return np.ascontiguousarray(w.reshape(w4), dtype)


def rank_hint(kernel_rank, weights):
    """Check ``plan()``'s ``kernel_rank``: None or an int >= 0, not given with ``weights``."""
    if kernel_rank is None:
        return None
    if not is_int(kernel_rank):
        _fail(TypeError, "kernel_rank", "None or an int", kernel_rank)
    if kernel_rank < 0:
        _fail(ValueError, "kernel_rank", "None or an int >= 0", kernel_rank)
    if weights is not None:
        _fail(ValueError, "kernel_rank", "None when `weights` is given (their rank is detected)",
              kernel_rank)
    return int(kernel_rank)


def weights_key(weights):
    """A hashable key of ``plan()``'s ``weights`` for memoising (their repr is truncated)."""
    if weights is None:
        return None
    w = np.asarray(weights)
    data = np.ascontiguousarray(w)
    return (hashlib.blake2b(data.data, digest_size=16).digest(), w.shape, w.dtype.str)


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


@dataclass(frozen=True, eq=False)
class ScipyForm:
    """A validated ``correlate2d``/``convolve2d`` call without its data (see :class:`LayerForm`):
    the geometry before its kernel rank, SciPy's result ``dtype``, the ``fill`` (1,) of the
    compute dtype, whether the 'valid' inputs are ``swapped`` (``in2`` the larger), whether the
    call convolves, and whether a problem's geometry takes its weights' rank."""

    geometry: Geometry
    dtype: np.dtype
    fill: np.ndarray
    swapped: bool
    convolve: bool
    detects: bool

    @property
    def reverse_conjugate(self):
        """A swapped 'valid' correlation, whose output is ``conj(out[::-1, ::-1])``."""
        return self.swapped and not self.convolve

    def problem(self, in1, in2, lazy=False):
        """The problem of arrays ``in1`` and ``in2`` of this form's shapes and dtypes; ``lazy``:
        as in :func:`conv2d_problem`."""
        g = self.geometry
        image, kernel = (in2, in1) if self.swapped else (in1, in2)
        if self.convolve:
            kernel = kernel[::-1, ::-1]
        elif kernel.dtype.kind == "c":
            kernel = np.conj(kernel)
        weights = np.ascontiguousarray(kernel.reshape(1, 1, g.kernel_height, g.kernel_width),
                                       g.dtype)
        return Problem(
            geometry=_ranked(g, detection(weights).rank) if self.detects else g,
            x=None if lazy else np.ascontiguousarray(image.reshape(1, 1, g.height, g.width),
                                                     g.dtype),
            w=weights,
            bias=np.zeros(1, g.dtype),
            fill=self.fill,
        )


def scipy_form(in1, in2, mode, boundary, fillvalue, convolve, lazy=False, forced=False):
    """Validate a ``correlate2d``/``convolve2d`` call in SciPy's order of checks.

    Returns its :class:`ScipyForm` (None for longdouble types, which Numba cannot compute: SciPy
    computes them), SciPy's result dtype and the inputs as arrays. ``lazy``: ``in1`` is a
    stand-in (see :func:`conv2d_problem`): a swapped 'valid' call, whose image would be ``in2``,
    and longdouble types are refused. ``forced``: as in :func:`conv2d_form`.
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
        return None, dtype, a, b
    compute = np.dtype(np.int64) if dtype.kind in "iu" else dtype
    if lazy and swapped:
        _fail(ValueError, "in2", "no larger than `in1` in every dimension for mode='valid' when "
              "`in1` is a dask array", Shown(f"shape {b.shape} for `in1` of shape {a.shape}"))
    (height, width), (kh, kw) = (b.shape, a.shape) if swapped else (a.shape, b.shape)
    if mode == "full":
        pad = (kh - 1, kh - 1, kw - 1, kw - 1)
    elif mode == "valid":
        pad = (0, 0, 0, 0)
    elif convolve:
        pad = (kh // 2, (kh - 1) // 2, kw // 2, (kw - 1) // 2)
    else:
        pad = ((kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2)
    if padding_mode == "zeros" and any(pad) and fill.item() != 0:  # NaN counts as non-zero
        padding_mode = "constant"  # a fill that is not zero: see core/geometry.py
    geometry = canonical_geometry(1, 1, height, width, 1, kh, kw, pad, (1, 1), (1, 1), 1,
                                  padding_mode, compute)
    check_output_size(geometry.out_shape, compute)
    form = ScipyForm(geometry, dtype, fill.astype(compute), swapped, convolve,
                     worth_detecting(geometry, forced))
    return form, dtype, a, b


def scipy_problem(in1, in2, mode, boundary, fillvalue, convolve, lazy=False):
    """Validate a ``correlate2d``/``convolve2d`` call (:func:`scipy_form`). Returns ``(problem,
    result_dtype, reverse_conjugate)``; ``problem`` is None for longdouble types."""
    form, dtype, a, b = scipy_form(in1, in2, mode, boundary, fillvalue, convolve, lazy)
    if form is None:
        return None, dtype, False
    return form.problem(a, b, lazy), dtype, form.reverse_conjugate


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


def check_plan(plan, geometry, weights=None):
    """Check that a Plan passed as ``method`` was made for ``geometry`` and, when its strategy
    reads the kernel's rank, for weights (``weights``, canonical) of at most that rank. A plan
    made without the rank (from shapes alone) serves any weights."""
    if plan.geometry != geometry:
        differ = ", ".join(
            f"{f.name} {_shown(getattr(plan.geometry, f.name))} != "
            f"{_shown(getattr(geometry, f.name))}"
            for f in fields(Geometry)
            if f.name != "kernel_rank"
            and getattr(plan.geometry, f.name) != getattr(geometry, f.name)
        )
        if not differ:
            _check_plan_rank(plan, geometry, weights)
            return
        raise ValueError(f"`method` must be a Plan made for this call's problem; the plan "
                         f"differs in {differ} (plan != call). Make one with fastconv.plan(...) "
                         "for these shapes and options.")


def _check_plan_rank(plan, geometry, weights):
    planned, actual = plan.geometry.kernel_rank, geometry.kernel_rank
    unranked = replace(plan.geometry, kernel_rank=None)
    if planned is None or REGISTRY[plan.method].declines(unranked, get_budget()) is None:
        return  # the plan's strategy does not read the rank
    if actual is None and weights is not None:
        actual = detection(weights).rank
    if actual is None or actual > planned:
        _fail(ValueError, "method", f"a Plan made for weights of rank at most {planned}",
              Shown(f"weights of rank {actual}"),
              "Make the plan with fastconv.plan(..., weights=weight).")


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
    check_extents(geometry, ("input_shape", "weight_shape"))
    if min(geometry.out_height, geometry.out_width) < 1:
        raise ValueError(f"`weight_shape` must fit the padded input after dilation; got "
                         f"{weight_shape} for input {input_shape} with padding {pad} and "
                         f"dilation {dilation}.")
    return input_shape, weight_shape, geometry


def check_nd_plan(plan, nd, w):
    """Check that a Plan passed as ``method`` to conv1d/conv3d was made for this call (``w``
    its canonical weights: a plan made for a kernel rank runs only weights of at most that
    rank)."""
    if plan.reduction is not None and replace(plan.reduction.nd, kernel_rank=None,
                                              outer_product=False) == nd:
        if plan.reduction.depth_pass is not None:
            if not ranked(nd, w, forced=True).outer_product:
                _fail(ValueError, "method", "a Plan made for weights whose slices are outer "
                      "products of a depth, a height and a width factor (it runs three passes)",
                      Shown("weights that are not"),
                      "Make the plan with fastconv.plan(..., weights=weight).")
        elif plan.geometry.kernel_rank is not None:  # the 2-D slices the engine runs
            k = nd.weight_shape[0]
            slices = w.reshape(k, -1, *w.shape[-2:])
            _check_plan_rank(plan, replace(plan.geometry, kernel_rank=None), slices)
        return
    made = plan.reduction.text.split(";")[0] if plan.reduction is not None else "a conv2d call"
    needs = reduce_nd(nd, plan.workspace_budget).text.split(";")[0]
    raise ValueError(f"`method` must be a Plan made for this call's problem; the plan is for "
                     f"{made}, the call needs {needs}. Make one with fastconv.plan(...) for these "
                     "shapes and options.")


def budget_bytes(nbytes):
    """A workspace budget: an int of at least 64 KiB."""
    if not isinstance(nbytes, numbers.Integral) or isinstance(nbytes, bool):
        _fail(TypeError, "nbytes", "an int number of bytes", nbytes)
    if nbytes < 2**16:
        _fail(ValueError, "nbytes", "at least 65536 (64 KiB)", nbytes)
    return int(nbytes)


# --- Every spatial rank (conv1d, conv3d; conv2d's rules per axis) ---------------------------------

# rank: (name of the function, spatial axes of the input, kernel axes of the weight)
RANK_LAYOUTS = {1: ("conv1d", "L", "k"), 2: ("conv2d", "H, W", "kh, kw"),
                3: ("conv3d", "D, H, W", "kd, kh, kw")}


@dataclass(frozen=True, eq=False)
class NdProblem:
    """Validated arrays of one compute dtype: ``x`` (N, C, *spatial), ``w`` (K, C/groups,
    *kernel), ``bias`` (K,), all C-contiguous, and their :class:`NdGeometry`."""

    geometry: NdGeometry
    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray


def int_tuple(value, name, minimum, rank, remedy=""):
    """An int or a tuple of ``rank`` ints, each >= minimum, as a tuple (``int_pair`` for rank 2,
    with its messages)."""
    if rank == 2:
        return int_pair(value, name, minimum)
    if type(value) is int and value >= minimum:
        return (value,) * rank
    items = value if isinstance(value, (tuple, list)) else (value,) * rank
    if len(items) != rank or not all(is_int(v) for v in items):
        _fail(TypeError, name, f"an int or a tuple of {rank} ints", value, remedy)
    if any(v < minimum for v in items):
        _fail(ValueError, name, f">= {minimum} (an int or a tuple of {rank} ints)", value)
    return tuple(int(v) for v in items)


def padding_pairs(padding, kernel_shape, stride, dilation):
    """Canonical ((before, after), ...) padding of every spatial axis from any accepted spelling
    (``parse_padding``, with its messages, for rank 2)."""
    rank = len(kernel_shape)
    if rank == 2:
        top, bottom, left, right = parse_padding(padding, kernel_shape, stride, dilation)
        return ((top, bottom), (left, right))
    if type(padding) is int and padding >= 0:
        return ((padding, padding),) * rank
    spans = [d * (k - 1) for d, k in zip(dilation, kernel_shape, strict=True)]
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * rank
        if padding == "full":
            return tuple((span, span) for span in spans)
        if padding == "same":
            if any(s != 1 for s in stride):
                _fail(ValueError, "stride", "1 when padding='same'", stride,
                      "Pad explicitly for a strided convolution.")
            return tuple((span // 2, span - span // 2) for span in spans)
        _fail(ValueError, "padding", f"an int, a tuple of {rank} ints, {rank} (before, after) "
              f"pairs or one of {PADDING_WORDS}", padding)
    if isinstance(padding, (tuple, list)) and len(padding) == rank and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        return tuple(int_pair(p, "padding", 0) for p in padding)
    remedy = "Write ((left, right),) to pad the two sides differently." if rank == 1 else ""
    return tuple((p, p) for p in int_tuple(padding, "padding", 0, rank, remedy))


def nd_shapes(input_shape, weight_shape, groups, rank, names=("input", "weight")):
    """Check the shapes of a ``conv1d``/``conv3d`` call (arrays or shapes alone) and ``groups``.

    Returns the canonical input (N, C, *spatial) and weight (K, C/groups, *kernel) shapes and
    the output's leading shape: None for an input without channels, ``()`` for one image,
    ``(N,)`` for a batch.
    """
    if rank == 2:
        return layer_shapes(input_shape, weight_shape, groups, names)
    input_name, weight_name = names
    function, axes, kernel_axes = RANK_LAYOUTS[rank]
    x_shape, w_shape = tuple(input_shape), tuple(weight_shape)
    if len(x_shape) not in (rank, rank + 1, rank + 2):
        _fail(ValueError, input_name, f"{rank}-D ({axes}{',' if rank == 1 else ''}), {rank + 1}-D "
              f"(C, {axes}) or {rank + 2}-D (N, C, {axes}) for {function}",
              Shown(f"shape {x_shape}"))
    if len(x_shape) == rank and len(w_shape) != rank:
        _fail(ValueError, weight_name, f"{rank}-D ({kernel_axes}{',' if rank == 1 else ''}) for "
              f"a {rank}-D input of {function}", Shown(f"shape {w_shape}"))
    if len(x_shape) > rank and len(w_shape) != rank + 2:
        _fail(ValueError, weight_name, f"{rank + 2}-D (out_channels, in_channels/groups, "
              f"{kernel_axes}) for {function}", Shown(f"shape {w_shape}"))
    if 0 in x_shape:
        _fail(ValueError, input_name, "non-empty", Shown(f"shape {x_shape}"))
    if 0 in w_shape:
        _fail(ValueError, weight_name, "non-empty", Shown(f"shape {w_shape}"))
    lead = None if len(x_shape) == rank else x_shape[:1] if len(x_shape) == rank + 2 else ()
    xc = (1,) * (rank + 2 - len(x_shape)) + x_shape
    wc = (1,) * (rank + 2 - len(w_shape)) + w_shape
    out_channels, cg = wc[:2]
    channels = xc[1]
    check_groups(groups, channels, out_channels)
    if cg * groups != channels:
        _fail(ValueError, weight_name, f"of shape (out_channels, {channels // groups}, "
              f"{kernel_axes}) for {channels} input channels and groups={groups}",
              Shown(f"shape {w_shape}"))
    return xc, wc, lead


def nd_geometry(xc, wc, groups, stride, padding, dilation, padding_mode, dtype):
    """Check the options of a call of any rank and build its :class:`NdGeometry` (shapes from
    :func:`nd_shapes`, ``dtype`` the compute dtype)."""
    rank = len(xc) - 2
    stride = int_tuple(stride, "stride", 1, rank)
    dilation = int_tuple(dilation, "dilation", 1, rank)
    pad = padding_pairs(padding, wc[2:], stride, dilation)
    if padding_mode not in PADDING_MODES:
        _fail(ValueError, "padding_mode", f"one of {PADDING_MODES}", padding_mode)
    geometry = NdGeometry(
        input_shape=tuple(int(n) for n in xc), weight_shape=tuple(int(n) for n in wc),
        stride=stride, dilation=dilation, padding=pad, groups=int(groups),
        padding_mode=padding_mode, dtype=dtype)
    if min(geometry.out_spatial) < 1:
        padded = tuple(n + a + b for n, (a, b) in zip(xc[2:], pad, strict=True))
        span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, wc[2:], strict=True))
        _fail(ValueError, "weight", f"no larger (after dilation) than the padded input {padded}",
              Shown(f"dilated kernel size {span}"), "Increase `padding` or use a smaller kernel.")
    return geometry


def nd_problem(input, weight, bias, rank, stride, padding, dilation, groups, padding_mode,
               lazy=False):
    """Validate ``conv1d``/``conv3d`` arguments (``conv2d``'s rules). Returns the problem and the
    output's leading shape; with ``lazy`` (a dask input's stand-in) the problem holds no ``x``."""
    function = RANK_LAYOUTS[rank][0]
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    if x.dtype.kind == "c" or w.dtype.kind == "c":
        _fail(TypeError, "input", f"real ({function} is a deep-learning layer)",
              Shown(f"dtype {x.dtype} and weight dtype {w.dtype}"),
              "Use scipy.signal.correlate for complex data.")
    xc, wc, lead = nd_shapes(x.shape, w.shape, groups, rank)
    out_channels = wc[0]
    b = layer_bias(bias, out_channels, lead is None)
    dtype = conv2d_dtype(x, w, b)
    geometry = nd_geometry(xc, wc, groups, stride, padding, dilation, padding_mode, dtype)
    bias_array = np.zeros(out_channels, dtype) if b is None else np.ascontiguousarray(
        b.reshape(out_channels), dtype)
    problem = NdProblem(geometry=geometry,
                        x=None if lazy else np.ascontiguousarray(x.reshape(xc), dtype),
                        w=np.ascontiguousarray(w.reshape(wc), dtype), bias=bias_array)
    return problem, lead


def infer_rank(input_shape, weight_shape, rank):
    """The spatial rank of a problem given by shapes alone (``plan``, ``output_shape``): from the
    weight's dimensions, or ``rank`` where both shapes are 3-D (a (N, C, L) batch with a
    (K, C/groups, k) weight, or a (D, H, W) volume with a (kd, kh, kw) kernel)."""
    if rank is not None:
        if rank not in RANK_LAYOUTS:
            _fail(ValueError, "rank", "None, 1, 2 or 3", rank)
        return rank
    x_ndim, w_ndim = len(input_shape), len(weight_shape)
    if x_ndim == w_ndim == 3:
        _fail(ValueError, "rank", "given when both shapes are 3-D (1 for a (N, C, L) input with "
              "a (K, C/groups, k) weight, 3 for a (D, H, W) volume with a (kd, kh, kw) kernel)",
              None)
    return {1: 1, 2: 2, 3: 1, 4: 2, 5: 3}.get(w_ndim, 2)


def nd_output_shape(input_shape, weight_shape, rank, stride, padding, dilation):
    """``output_shape`` of a 1-D or 3-D problem (shapes alone; groups are not checked)."""
    _, axes, kernel_axes = RANK_LAYOUTS[rank]
    x_shape, w_shape = tuple(input_shape), tuple(weight_shape)
    if len(x_shape) not in (rank, rank + 1, rank + 2) or len(w_shape) != (
            rank if len(x_shape) == rank else rank + 2):
        one = "," if rank == 1 else ""
        raise ValueError(
            f"`input_shape` and `weight_shape` must be ({axes}{one}) and ({kernel_axes}{one}), or "
            f"(C, {axes}) / (N, C, {axes}) and (K, C/groups, {kernel_axes}); got {x_shape} and "
            f"{w_shape}.")
    stride = int_tuple(stride, "stride", 1, rank)
    dilation = int_tuple(dilation, "dilation", 1, rank)
    pad = padding_pairs(padding, w_shape[-rank:], stride, dilation)
    spatial = tuple(
        (n + a + b - d * (k - 1) - 1) // s + 1 for n, k, (a, b), s, d in zip(
            x_shape[-rank:], w_shape[-rank:], pad, stride, dilation, strict=True))
    if min(spatial) < 1:
        raise ValueError(f"`weight_shape` must fit the padded input; got {w_shape} for input "
                         f"{x_shape} with padding {pad}.")
    if len(x_shape) == rank:
        return spatial
    return x_shape[:-rank - 1] + (w_shape[0],) + spatial


def nd_plan_dtype(dtype, rank):
    """``plan_dtype`` for a call of ``rank``: complex only for rank 2 (the 2-D drop-ins)."""
    compute = plan_dtype(dtype)
    if compute.kind == "c" and rank != 2:
        _fail(TypeError, "dtype", f"real for {RANK_LAYOUTS[rank][0]}", Shown(str(np.dtype(dtype))))
    return compute


# --- N-D SciPy drop-ins: fastconv.signal and fastconv.ndimage --------------------------------
# SciPy's exception types for the same bad input; the messages follow the house template.

SIGNAL_METHODS = ("auto", "direct", "fft")


def signal_method(method):
    """``method`` of ``fastconv.signal``: SciPy's 'auto', 'direct', 'fft', 'measure' or a
    registered strategy's name."""
    if not (isinstance(method, str) and method in ("auto", "measure", *methods())):
        raise ValueError(f"`method` must be 'auto', 'direct', 'fft', 'measure' or one of "
                         f"{methods()} (acceptable method flags are 'auto', 'direct', or "
                         f"'fft'); got {method!r}.")
    return method


def signal_mode(mode):
    if not (isinstance(mode, str) and mode in SCIPY_MODES):
        raise ValueError(f"`mode`: acceptable mode flags are 'valid', 'same', or 'full'; got "
                         f"{mode!r}.")
    return mode


def same_rank(a, b):
    if a.ndim != b.ndim:
        raise ValueError(f"`in1` and `in2`: in1 and in2 should have the same dimensionality; "
                         f"got shapes {a.shape} and {b.shape}.")


def valid_swap(mode, shape1, shape2, axes):
    """SciPy's rule: in 'valid' mode one input must be at least as large as the other on every
    axis in ``axes``; True when ``in2`` is the larger one (the inputs are swapped)."""
    if mode != "valid" or not shape1:
        return False
    ok1 = all(shape1[i] >= shape2[i] for i in axes)
    ok2 = all(shape2[i] >= shape1[i] for i in axes)
    if not (ok1 or ok2):
        raise ValueError(f"`in1` and `in2`: For 'valid' mode, one must be at least as large as "
                         f"the other in every dimension; got shapes {shape1} and {shape2}.")
    return not ok1


def nd_compute_dtype(dtype, integers):
    """The engine's compute dtype for a result dtype: ``integers`` (int64, exact) for bool and
    integers, float32 for float16, the dtype itself for float32/64 and complex64/128, None for
    what Numba cannot compute (longdouble, object: SciPy computes those)."""
    if dtype.kind in "biu":
        return np.dtype(integers)
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "fc" and dtype.itemsize <= (16 if dtype.kind == "c" else 8):
        return dtype
    return None


def signal_inputs(in1, in2, mode, method):
    """Arrays, result dtype, compute dtype (None: SciPy computes it) and swap flag of a
    ``fastconv.signal.correlate``/``convolve`` call with more than 0 dimensions."""
    a, b = np.asarray(in1), np.asarray(in2)
    same_rank(a, b)
    signal_mode(mode)
    signal_method(method)
    swapped = valid_swap(mode, a.shape, b.shape, range(a.ndim))
    dtype = np.result_type(a, b)
    compute = nd_compute_dtype(dtype, np.int64)
    if compute is not None and compute.kind in "fc" and (a.dtype.kind in "biu") != (
            b.dtype.kind in "biu"):
        # One integer operand with single-precision floats: SciPy's FFT path transforms the
        # integers in double precision (and its tests' tolerances assume that accuracy), so
        # these run in double and are rounded to the result dtype.
        compute = np.result_type(compute, np.float64)
    return a, b, dtype, compute, swapped


def fft_axes(a, b, mode, axes):
    """SciPy's axes handling of ``fftconvolve``/``oaconvolve``: the convolved axes (axes where
    either input has length 1 are broadcast instead) and whether the inputs swap."""
    ndim = a.ndim
    if axes is None:
        chosen = list(range(ndim))
    else:
        items = (axes,) if isinstance(axes, numbers.Number) else axes
        try:
            chosen = [operator.index(item) for item in items]
        except TypeError:
            raise ValueError(f"`axes`: axes must be a scalar or iterable of integers; got "
                             f"{axes!r}.") from None
        chosen = [n + ndim if n < 0 else n for n in chosen]
        if any(n >= ndim or n < 0 for n in chosen):
            raise ValueError(f"`axes`: axes exceeds dimensionality of input ({ndim}-D); got "
                             f"{axes!r}.")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"`axes`: all axes must be unique; got {axes!r}.")
        if not chosen:
            raise ValueError(f"`axes`: when provided, axes cannot be empty; got {axes!r}.")
    chosen = [n for n in chosen if a.shape[n] != 1 and b.shape[n] != 1]
    if not all(a.shape[n] == b.shape[n] or 1 in (a.shape[n], b.shape[n])
               for n in range(ndim) if n not in chosen):
        raise ValueError(f"`in1` and `in2`: incompatible shapes for in1 and in2: {a.shape} and "
                         f"{b.shape} (the axes not convolved must have equal lengths or length "
                         f"1; axes={axes!r}).")
    return chosen, valid_swap(mode, a.shape, b.shape, chosen)


NDIMAGE_MODES = {
    "reflect": "symmetric",
    "grid-mirror": "symmetric",
    "mirror": "reflect",
    "nearest": "replicate",
    "wrap": "circular",
    "grid-wrap": "circular",
    "constant": "constant",
    "grid-constant": "constant",
}


def ndimage_axes(axes, ndim):
    """``axes`` of ``fastconv.ndimage.correlate`` as a tuple of non-negative ints."""
    if axes is None:
        return tuple(range(ndim))
    items = (axes,) if np.isscalar(axes) else axes
    try:
        chosen = tuple(operator.index(item) for item in items)
    except TypeError as error:
        raise TypeError(f"`axes` must be None, an int or a sequence of ints; got {axes!r} "
                        f"({error}).") from None
    if any(n < -ndim or n >= ndim for n in chosen):
        raise ValueError(f"`axes`: an axis is out of range for the {ndim}-D input; got "
                         f"{axes!r}.")
    chosen = tuple(n % ndim for n in chosen)
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"`axes`: axes must be unique; got {axes!r}.")
    return chosen


def per_axis(value, count, name):
    """A scalar repeated ``count`` times, or a sequence of that length (SciPy's RuntimeError)."""
    if not isinstance(value, str) and np.iterable(value):
        items = list(value)
        if len(items) != count:
            raise RuntimeError(f"`{name}`: sequence argument must have length equal to input "
                               f"rank (one per filtered axis, {count}); got {value!r}.")
        return items
    return [value] * count


def ndimage_modes(mode, count, sequence=True):
    """One engine padding mode per filtered axis from ndimage's names (RuntimeError, as SciPy)."""
    modes = per_axis(mode, count, "mode") if sequence else [mode]
    for item in modes:
        if not (isinstance(item, str) and item in NDIMAGE_MODES):
            raise RuntimeError(f"`mode` must be one of {tuple(NDIMAGE_MODES)}"
                               f"{' or a sequence of them' if sequence else ''}; got {mode!r}.")
    return [NDIMAGE_MODES[item] for item in modes] * (1 if sequence else count)


def ndimage_origin(origin, size, name="origin"):
    """An origin for a kernel axis of ``size`` taps: -(size // 2) <= origin <= (size - 1) // 2."""
    try:
        value = operator.index(origin)
    except TypeError:
        if not isinstance(origin, numbers.Real):
            _fail(TypeError, name, "an int or a sequence of ints", origin)
        if not float(origin).is_integer():
            _fail(ValueError, name, "a whole number of taps", origin)
        value = int(origin)
    if not -(size // 2) <= value <= (size - 1) // 2:
        _fail(ValueError, name, f"between {-(size // 2)} and {(size - 1) // 2} for a kernel "
              f"axis of {size} taps (-(size // 2) <= origin <= (size - 1) // 2)", origin)
    return value


def ndimage_weights(weights, count, name="weights"):
    """Weights for ``count`` filtered axes (SciPy's RuntimeError for a wrong rank or no taps)."""
    w = as_array(weights, name)
    if w.ndim != count or 0 in w.shape:
        raise RuntimeError(f"`{name}`: {name}.ndim ({w.ndim}) must match len(axes) ({count}), "
                           f"with at least one tap per axis; got shape {w.shape}.")
    return w


def ndimage_output(output, input, complex_output):
    """The array to write: SciPy's ``output`` rules (None: the input's dtype; a dtype; an array of
    the input's shape), promoted to complex for complex data as SciPy does. For None or a dtype,
    a read-only stand-in of that shape and dtype that holds no memory: the caller allocates the
    output only if its result is not already of that dtype (a second output-sized allocation
    per call cost a 128^3 float64 filter 2 ms in page faults and zeroing)."""
    import warnings

    shape = input.shape
    if output is None:
        dtype = np.promote_types(input.dtype, np.complex64) if complex_output else input.dtype
        return np.broadcast_to(np.zeros((), dtype), shape)
    if isinstance(output, (type, np.dtype, str)):
        try:
            dtype = np.dtype(output)
        except TypeError:
            _fail(TypeError, "output", "None, a dtype or an array", output)
        if dtype.kind not in "biufc":
            raise RuntimeError(f"`output` must have a numeric dtype; got {dtype}.")
        if complex_output and dtype.kind != "c":
            if isinstance(output, str):
                raise RuntimeError(f"`output` must have a complex dtype for complex data; got "
                                   f"{dtype}.")
            warnings.warn("promoting specified output dtype to complex", stacklevel=4)
            dtype = np.promote_types(dtype, np.complex64)
        return np.broadcast_to(np.zeros((), dtype), shape)
    if not isinstance(output, np.ndarray):
        _fail(TypeError, "output", "None, a dtype or a NumPy array", Shown(type(output).__name__))
    if output.shape != shape:
        raise RuntimeError(f"`output` must have the input's shape {shape}; got shape "
                           f"{output.shape}.")
    if complex_output and output.dtype.kind != "c":
        raise RuntimeError(f"`output` must have a complex dtype for complex data; got "
                           f"{output.dtype}.")
    if output.dtype.kind not in "biufc":
        raise RuntimeError(f"`output` must have a numeric dtype; got {output.dtype}.")
    return output


def ndimage_cval(cval, complex_input, complex_weights):
    """``cval`` as a Python number; complex only for complex input (SciPy raises TypeError for
    real data, ValueError for real input with complex weights)."""
    value = np.asarray(cval)
    if value.ndim != 0 or value.dtype.kind not in "biufc":
        _fail(TypeError, "cval", "a real or complex scalar", cval)
    if value.dtype.kind == "c" and not complex_input:
        _fail(ValueError if complex_weights else TypeError, "cval", "real for real input", cval)
    return value.item()


# Transposed convolutions and gradients (fastconv/_transpose.py computes them). These checks are
# written for every rank: ``rank`` is the number of spatial axes.


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


def _layer_options(x_full, w_full, groups, stride, padding, dilation, padding_mode, names):
    """Check the options of a ``rank``-D forward layer (conv weight layout); returns
    (groups, stride, padding pairs, dilation, forward output spatial shape)."""
    rank = len(x_full) - 2
    channels, (out_channels, cg) = x_full[1], w_full[:2]
    groups = check_groups(groups, channels, out_channels)
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


def check_accuracy(accuracy):
    """``accuracy`` as given, when it is one of ACCURACIES."""
    if type(accuracy) is str and accuracy in ACCURACIES:
        return accuracy
    _fail(ValueError if isinstance(accuracy, str) else TypeError, "accuracy",
          f"one of {ACCURACIES}", accuracy)


def check_plan_accuracy(plan, accuracy):
    """A Plan passed as ``method`` with ``accuracy='elementwise'`` must be of an elementwise
    strategy."""
    if (accuracy == "elementwise"
            and REGISTRY[plan.method].error_model_for(plan.geometry) != "elementwise"):
        raise ValueError(f"`method` must be a Plan of an elementwise-accurate strategy with "
                         f"accuracy='elementwise'; got a Plan of {plan.method!r}. Make it "
                         "with fastconv.plan(..., accuracy='elementwise').")
