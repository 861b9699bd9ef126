"""Padding as index maps: kernels read the virtually padded input through them, so no padded copy
of the image is ever made."""

from functools import lru_cache

import numpy as np

from .geometry import NUMPY_PAD_MODES
from .jit import inline_helper


@lru_cache(maxsize=512)
def axis_map(size, before, after, padding_mode):
    """Source index of every padded position of one axis (-1: the constant fill), read-only."""
    # np.pad costs ~35 us a call, more than a small convolution: maps are cached (read-only).
    mode = NUMPY_PAD_MODES[padding_mode]
    extra = {"constant_values": -1} if mode == "constant" else {}
    index = np.pad(np.arange(size, dtype=np.int64), (before, after), mode, **extra)
    index.flags.writeable = False
    return index


def index_maps(geometry):
    """Source row and column for every padded row and column (-1 means the constant fill).

    Built with ``np.pad`` on an index ramp, so every mode has NumPy's semantics, including
    padding wider than the image (the reflection repeats).
    """
    top, bottom, left, right = geometry.padding
    mode = geometry.padding_mode
    rows = axis_map(geometry.height, top, bottom, mode)
    return rows, axis_map(geometry.width, left, right, mode)


def axis_sources(positions, size, before, padding_mode):
    """Source index (or -1 for the constant fill) of the given padded positions of an axis of
    ``size`` samples with ``before`` padded ones first: ``index_maps``'s entries computed one by
    one, without building the whole padded axis (np.pad's modes are periodic beyond the image:
    'wrap' with period size, 'symmetric' 2 * size, 'reflect' 2 * (size - 1))."""
    u = np.asarray(positions, np.int64) - before
    mode = NUMPY_PAD_MODES[padding_mode]
    if mode == "constant":
        return np.where((u >= 0) & (u < size), u, -1)
    if mode == "edge":
        return np.clip(u, 0, size - 1)
    if mode == "wrap":
        return u % size
    period = 2 * size if mode == "symmetric" else 2 * (size - 1)
    if period == 0:  # reflect of a single sample
        return np.zeros_like(u)
    v = u % period
    return np.where(v < size, v, period - 1 - v if mode == "symmetric" else period - v)


@inline_helper
def pad_columns(row, source, left, colmap, fill):
    """The padded columns of ``row``, whose columns ``left .. left + len(source)`` hold the
    input row ``source``: column j < left or past them is ``source[colmap[j]]``, or ``fill``
    where the map says -1 (the constant padding). For kernels' padded row buffers."""
    for j in range(left):
        cm = colmap[j]
        row[j] = source[cm] if cm >= 0 else fill
    for j in range(left + source.shape[0], row.shape[0]):
        cm = colmap[j]
        row[j] = source[cm] if cm >= 0 else fill
