"""The one place that calls ``numba.njit`` and reads ``FASTCONV_*`` environment settings.

Settings
--------
FASTCONV_NO_CACHE=1
    Do not read or write Numba's on-disk cache (for read-only installs or when debugging).
FASTCONV_WORKSPACE_BYTES=N
    Default workspace budget in bytes (see :func:`fastconv.set_workspace_budget`).
FASTCONV_CACHE_DIR=PATH
    Directory of the calibrated machine constants and persisted measurements.
FASTCONV_PERSIST=1
    ``method="measure"`` stores its winners in that cache file unless the call says otherwise.

The last two are read at each use (so a process, or a test, can change them at run time).

Threading layer
---------------
Unless ``NUMBA_THREADING_LAYER`` is set, fastconv asks Numba for its ``'forksafe'`` layer: TBB
when it is installed, else the workqueue. Numba's default falls back to GNU OpenMP, after which a
fork-based process pool (the default on Linux) dies on its first parallel call ("fork() called
from a process already using GNU OpenMP"). This must happen before Numba's first parallel
launch in the process; if that launch already happened, the layer it chose stays.
"""

import os

import numba

# 'contract' gives FMAs, 'reassoc'/'nsz'/'arcp' let reductions vectorise. Never fastmath=True:
# its nnan/ninf flags would change how NaN and Inf propagate.
FASTMATH_FLAGS = frozenset({"contract", "reassoc", "nsz", "arcp"})

CACHE_ENABLED = os.environ.get("FASTCONV_NO_CACHE", "") in ("", "0")

DEFAULT_WORKSPACE_BYTES = int(os.environ.get("FASTCONV_WORKSPACE_BYTES", 64 * 2**20))


def _prefer_forksafe_layer():
    from numba.np.ufunc import parallel

    if "NUMBA_THREADING_LAYER" not in os.environ and not parallel._is_initialized:
        numba.config.THREADING_LAYER = "forksafe"


_prefer_forksafe_layer()


def cache_dir_setting():
    """``FASTCONV_CACHE_DIR``, or None when unset or empty."""
    return os.environ.get("FASTCONV_CACHE_DIR") or None


def persist_setting():
    """Whether ``FASTCONV_PERSIST`` asks ``method="measure"`` to store its winners."""
    return os.environ.get("FASTCONV_PERSIST", "") not in ("", "0")


def _compile(func, fastmath=True, **options):
    """numba.njit with the options every fastconv function shares: cached, GIL-free, NumPy's
    error model, no bounds checks, and (``fastmath``) the fast-math flags above."""
    if fastmath:
        options["fastmath"] = set(FASTMATH_FLAGS)
    return numba.njit(cache=CACHE_ENABLED, nogil=True, error_model="numpy", boundscheck=False,
                      **options)(func)


def parallel_kernel(func):
    """Compile ``func`` as a parallel, cached, GIL-free kernel.

    Numba's cache key ignores jit options (numba/numba#6845), so each Python function must be
    compiled with exactly one option set: kernels use only this factory.
    """
    return _compile(func, parallel=True)


def inline_helper(func):
    """Compile a small helper that kernels call (inlined by Numba at every call site)."""
    return _compile(func, inline="always")


def loop_helper(func):
    """Compile a helper that holds one vectorisable loop and is called from many places in a
    kernel: compiled once per signature and called, rather than inlined by Numba at every call
    site (which multiplies the kernel's compile time), at the cost of a call per loop."""
    return _compile(func)


def serial_function(func):
    """Compile a serial function that Python code calls on small arrays, where NumPy's per-call
    overhead would dominate (the planner's searches). Strict IEEE arithmetic: its results decide
    between candidates, so they must not depend on vectorisation."""
    return _compile(func, fastmath=False)
