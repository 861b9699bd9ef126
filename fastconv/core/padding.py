"""Padding as index maps: kernels read the virtually padded input through them, so no padded copy
of the image is ever made."""

from functools import lru_cache

import numpy as np

from .geometry import NUMPY_PAD_MODES


@lru_cache(maxsize=512)
def _axis_map(size, before, after, padding_mode):
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
    rows = _axis_map(geometry.height, top, bottom, mode)
    return rows, _axis_map(geometry.width, left, right, mode)
