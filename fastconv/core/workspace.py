"""The workspace budget: the most extra memory (beyond the output) a strategy may allocate for
its buffers (im2col columns, FFT spectra, ...). One number shared by every strategy."""

import math
import threading

import numpy as np

from .settings import DEFAULT_WORKSPACE_BYTES

CACHE_LINE = 64

_budget = DEFAULT_WORKSPACE_BYTES
_lock = threading.Lock()


def get_budget():
    """The current workspace budget in bytes: what plans made from now on are made for."""
    return _budget


def set_budget(nbytes):
    """Set the workspace budget (a validated int) for plans made from now on; returns the
    previous value."""
    global _budget
    with _lock:
        previous, _budget = _budget, nbytes
    return previous


def largest_fitting(size, limit, upper):
    """The largest n in 1..upper with size(n) <= limit, or 0: the biggest tile dimension whose
    buffers fit. ``size`` (bytes) never decreases with n.

    Exact for any such ``size``, and fast for the nearly affine ones of the tilings (bytes per
    unit, perhaps rounded up to a block): unless ``upper`` fits, the affine guess through size(1)
    and size(2) is checked and corrected by galloping, then bisection. Planning a new shape calls
    this a dozen times; a plain bisection took ~2 log2(upper) evaluations each.
    """
    if size(upper) <= limit:  # often everything fits
        return upper
    first = size(1)
    if first > limit:
        return 0
    step = size(2) - first
    guess = upper - 1 if step <= 0 else min(upper - 1, 1 + (limit - first) // step)
    if size(guess) <= limit:
        low, high, stride = guess, upper - 1, 1  # low fits; the answer is in low..high
        while low < high:
            probe = min(high, low + stride)
            if size(probe) > limit:
                high = probe - 1
                break
            low, stride = probe, 2 * stride
    else:
        low, high, stride = 1, guess - 1, 1
        while True:
            probe = max(low, high - stride + 1)
            if probe == low or size(probe) <= limit:
                low = probe
                break
            high, stride = probe - 1, 2 * stride
    while low < high:
        mid = (low + high + 1) // 2
        if size(mid) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on a CACHE_LINE boundary.

    NumPy aligns large arrays to 16 bytes only: a 64-byte vector load or store of gemm's
    micro-kernel (weight panels, output tiles) then splits two cache lines. Implicit GEMM alone,
    fp32, 2 threads, aligned vs 16 or 32 bytes off: 256->256 14x14 5.6 vs 6.2 ms, 512->512 7x7
    7.1 vs 7.8 ms, 64->64 56x56 5.5 vs 5.9-6.0 ms.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    raw = np.empty(size + CACHE_LINE, np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + size].view(dtype).reshape(shape)
