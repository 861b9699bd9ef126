"""Padding as index maps: kernels read the virtually padded input through them, so no padded copy
of the image is ever made."""

import numpy as np

from ._validate import NUMPY_PAD_MODES


def index_maps(geometry):
    """Source row and column for every padded row and column (-1 means the constant fill).

    Built with ``np.pad`` on an index ramp, so every mode has NumPy's semantics, including
    padding wider than the image (the reflection repeats).
    """
    top, bottom, left, right = geometry.padding
    mode = NUMPY_PAD_MODES[geometry.padding_mode]
    extra = {"constant_values": -1} if mode == "constant" else {}
    rows = np.pad(np.arange(geometry.height, dtype=np.int64), (top, bottom), mode, **extra)
    cols = np.pad(np.arange(geometry.width, dtype=np.int64), (left, right), mode, **extra)
    return rows, cols
