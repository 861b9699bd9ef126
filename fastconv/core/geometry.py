"""The geometry of one canonical problem (everything planning may look at) and the validated
arrays that go with it."""

import operator
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular", "symmetric")

# padding_mode -> np.pad mode used to build the source-index maps (see padding.py). "constant"
# is internal: a constant fill that is not zero (the drop-ins' ``fillvalue``), which the FFT
# strategy's tiling must know about; conv2d's zero padding is "zeros".
NUMPY_PAD_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
    "constant": "constant",
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
    kernel_rank: int | None = None
    """The largest numerical rank of the (out_channel, in_channel) kernel slices, found from the
    weights (strategies/separable/detect.py) or given to ``plan()``; None: unknown. The one
    field that depends on weight values: only the separable strategy reads it."""

    # Derived once at construction (attributes, not fields: equality, hashing and the repr are
    # the fields'): out_height, out_width, out_shape and macs, which planning reads many times,
    # and the hash. Planning looks plans up by geometry on every call; hashing the 14 fields each
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
_geometry_fields = operator.attrgetter(*_GEOMETRY_FIELDS)


@dataclass(eq=False, slots=True)
class Problem:
    """Validated arrays of one compute dtype: ``x`` (N, C, H, W), ``w`` (K, C/groups, kh, kw),
    ``bias`` (K,), ``fill`` (1,), all C-contiguous; ``w`` is already flipped or conjugated.
    Nothing changes a problem once built (not a frozen dataclass: a frozen one's ``__init__``
    cost every call about 1 us).

    Plane maps, only for a strategy that ``reads_planes``: ``planes`` (N, C) int64, and ``x`` a
    stack of (H, W) planes of which channel c of image n is ``x[planes[n, c]]`` (-1: the fill);
    ``out_planes`` (N, K) int64 into ``out``, a stack of (Ho, Wo) planes that the strategy
    writes and returns. conv3d's depth taps, folded into channels, are read in place and its
    output depths written in place this way.

    Row and column maps, only for the FFT strategy: ``rowmap`` (padded height,) and ``colmap``
    (padded width,) int64, read-only, map every padded row and column to one of ``x`` (-1: the
    fill), instead of the geometry's padding (then none). conv3d's depths, and its height and
    width flattened into one axis, are read in place this way."""

    geometry: Geometry
    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    fill: np.ndarray
    planes: np.ndarray | None = None
    out: np.ndarray | None = None
    out_planes: np.ndarray | None = None
    rowmap: np.ndarray | None = None
    colmap: np.ndarray | None = None


@dataclass(frozen=True)
class NdGeometry:
    """Shapes and options of a validated call of any spatial rank r: ``input_shape``
    (N, C, *spatial), ``weight_shape`` (K, C/groups, *kernel), per-axis ``stride`` and
    ``dilation`` (r ints), ``padding`` (r (before, after) pairs), and the compute dtype."""

    input_shape: tuple
    weight_shape: tuple
    stride: tuple
    dilation: tuple
    padding: tuple
    groups: int
    padding_mode: str
    dtype: np.dtype
    kernel_rank: int | None = None
    """The largest numerical rank of the 2-D kernel slices the engine runs (ranks 2 and 3: the
    (kh, kw) slices, each depth tap of a 3-D kernel its own), as ``Geometry.kernel_rank``."""
    outer_product: bool = False
    """Rank 3, one input channel per group: every (k, c) kernel slice is the outer product of a
    depth, a height and a width factor (a 3-D Gaussian or box), so it runs as three passes."""

    @property
    def rank(self):
        return len(self.input_shape) - 2

    @property
    def out_spatial(self):
        return tuple(
            (size + before + after - d * (k - 1) - 1) // s + 1
            for size, k, (before, after), s, d in zip(
                self.input_shape[2:], self.weight_shape[2:], self.padding, self.stride,
                self.dilation, strict=True))

    @property
    def out_shape(self):
        return (self.input_shape[0], self.weight_shape[0], *self.out_spatial)


def make_geometry(batch, channels, size, out_channels, kernel, dtype, stride=1, padding=0,
                  dilation=1, groups=1, padding_mode="zeros"):
    """A Geometry from short arguments (calibration problems, tests): ``size`` and ``kernel`` an
    int (square) or (height, width); stride, padding and dilation the same on every axis."""
    height, width = size if isinstance(size, tuple) else (size, size)
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    return Geometry(
        batch=batch, channels=channels, height=height, width=width, out_channels=out_channels,
        kernel_height=kh, kernel_width=kw, padding=(padding,) * 4, stride=(stride, stride),
        dilation=(dilation, dilation), groups=groups, padding_mode=padding_mode,
        dtype=np.dtype(dtype),
    )


@lru_cache(maxsize=1024)
def canonical_geometry(batch, channels, height, width, out_channels, kernel_height, kernel_width,
                       padding, stride, dilation, groups, padding_mode, dtype):
    """The Geometry of these fields, one shared object per distinct geometry: validation of a
    repeated call gets the object planned before, so the plan cache finds it by identity (no
    field-by-field equality) and its derived sizes are not computed again. Saves about 3 us of
    a small call."""
    return Geometry(batch=batch, channels=channels, height=height, width=width,
                    out_channels=out_channels, kernel_height=kernel_height,
                    kernel_width=kernel_width, padding=padding, stride=stride, dilation=dilation,
                    groups=groups, padding_mode=padding_mode, dtype=dtype)
