"""The JIT factory: the one place that calls ``numba.njit``. Every kernel and helper is compiled
through it, with the options every fastconv function shares (see fastconv/core/settings.py for
the ``FASTCONV_*`` switches it reads)."""

import numba

from .settings import NUMBA_CACHE_ENABLED

# 'contract' gives FMAs, 'reassoc'/'nsz'/'arcp' let reductions vectorise. Never fastmath=True:
# its nnan/ninf flags would change how NaN and Inf propagate.
FASTMATH_FLAGS = frozenset({"contract", "reassoc", "nsz", "arcp"})


def _compile(func, fastmath=True, **options):
    """numba.njit with the options every fastconv function shares: cached, GIL-free, NumPy's
    error model, no bounds checks, and (``fastmath``) the fast-math flags above."""
    if fastmath:
        options["fastmath"] = set(FASTMATH_FLAGS)
    return numba.njit(cache=NUMBA_CACHE_ENABLED, nogil=True, error_model="numpy",
                      boundscheck=False, **options)(func)


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
