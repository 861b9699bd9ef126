"""The JIT factory: the one place that calls ``numba.njit``. Every kernel and helper is compiled
through it, with the options every fastconv function shares. Nothing compiles at import, and
Numba's on-disk cache is located at a function's first compilation: a process that finds no
writable cache location (``NUMBA_CACHE_DIR``, the package's ``__pycache__``, the user cache
directory) compiles in memory and warns once (``FASTCONV_NO_CACHE=1``, read in settings.py,
switches the cache off without the warning)."""

import contextlib
import os
import threading
import warnings

import numba
from numba.core.caching import FunctionCache, NullCache

from . import settings

# 'contract' gives FMAs, 'reassoc'/'nsz'/'arcp' let reductions vectorise. Never fastmath=True:
# its nnan/ninf flags would change how NaN and Inf propagate.
FASTMATH_FLAGS = frozenset({"contract", "reassoc", "nsz", "arcp"})

NO_CACHE_WARNING = (
    "fastconv found no writable location for Numba's on-disk cache (NUMBA_CACHE_DIR, the "
    "package's __pycache__ folder, the user cache directory): its kernels are compiled in memory, "
    "again in every process. Set NUMBA_CACHE_DIR to a writable directory to keep them, or "
    "FASTCONV_NO_CACHE=1 to compile in memory without this warning."
)
_warned = threading.Event()


class _SerialCacheImpl(FunctionCache._impl_class):
    """Cache files of a serial twin (:func:`serial_twin`), named apart from its parallel kernel's:
    Numba's cache key ignores jit options (numba/numba#6845), so under one name each would load
    the other's machine code."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._filename_base = self._filename_base.replace("-", "-serial-", 1)


class _SerialFunctionCache(FunctionCache):
    _impl_class = _SerialCacheImpl


def _open_cache(py_func, serial=False):
    """Numba's on-disk cache of ``py_func`` (of its serial twin with ``serial``), or a null cache
    when it is switched off or has no writable location (then one RuntimeWarning per process)."""
    if not settings.numba_cache_enabled():
        return NullCache()
    try:
        return (_SerialFunctionCache if serial else FunctionCache)(py_func)
    except RuntimeError as error:
        if "no locator available" not in str(error):
            raise
        if not _warned.is_set():
            _warned.set()
            warnings.warn(NO_CACHE_WARNING, RuntimeWarning, stacklevel=2)
        return NullCache()


@contextlib.contextmanager
def _cache_lock(directory):
    """An exclusive lock, between processes, on the Numba cache files in ``directory``. Numba
    rewrites a function's whole index at each save, so processes compiling at once (``python -m
    fastconv warmup``'s workers, a multiprocessing pool) lose each other's entries, and readers
    racing writers have crashed (numba/numba#4807). Without flock (Windows), or where the lock
    file cannot be created, files are only replaced atomically, as Numba does."""
    try:
        import fcntl

        handle = open(os.path.join(directory, "fastconv.lock"), "a")  # noqa: SIM115
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _DeferredCache:
    """A function's on-disk cache, located at its first compilation.

    ``numba.njit(cache=True)`` looks for a writable cache directory when the module is imported
    and raises RuntimeError where there is none (a read-only install with a read-only $HOME):
    deferring that search keeps ``import fastconv`` free of file-system work and lets the first
    compilation fall back to memory. It stands in for the dispatcher's ``_cache`` (the object
    ``Dispatcher.enable_caching`` sets; Numba calls it only while compiling, under its compiler
    lock) and forwards every call to the cache it opens then.
    """

    def __init__(self, py_func, serial=False):
        self._py_func = py_func
        self._serial = serial
        self._cache = None

    def _opened(self):
        if self._cache is None:
            self._cache = _open_cache(self._py_func, self._serial)
        return self._cache

    @property
    def cache_path(self):
        return self._opened().cache_path

    def _locked(self):
        path = self._opened().cache_path
        return _cache_lock(path) if path is not None else contextlib.nullcontext()

    def load_overload(self, sig, target_context):
        with self._locked():
            return self._opened().load_overload(sig, target_context)

    def save_overload(self, sig, cres):
        with self._locked():
            self._opened().save_overload(sig, cres)

    def enable(self):
        self._opened().enable()

    def disable(self):
        self._opened().disable()

    def flush(self):
        self._opened().flush()


def _compile(func, fastmath=True, serial=False, **options):
    """numba.njit with the options every fastconv function shares: cached (see _DeferredCache),
    GIL-free, NumPy's error model, no bounds checks, and (``fastmath``) the fast-math flags
    above. Nothing compiles here: Numba compiles a signature at its first call."""
    if fastmath:
        options["fastmath"] = set(FASTMATH_FLAGS)
    dispatcher = numba.njit(nogil=True, error_model="numpy", boundscheck=False, **options)(func)
    dispatcher._cache = _DeferredCache(func, serial)
    return dispatcher


def parallel_kernel(func):
    """Compile ``func`` as a parallel, cached, GIL-free kernel.

    Numba's cache key ignores jit options (numba/numba#6845), so each Python function must be
    compiled with exactly one option set under one cache name: kernels use only this factory,
    and their serial twins (:func:`serial_twin`) cache under names of their own.
    """
    return _compile(func, parallel=True)


def serial_twin(kernel):
    """The same function as the parallel ``kernel``, compiled serially (``prange`` runs as
    ``range``), for calls planned on one thread. It skips the parallel launch of each call
    (about 1.5 us) and compiles in about half the time, with no gufunc to type and lower a
    second time: the direct kernel's first float32 call (28x28, 3x3) 10.3 -> 5.2 s, then
    12.3 -> 11.2 us per call. Its own cache files (_SerialFunctionCache)."""
    return _compile(kernel.py_func, serial=True)


def inline_helper(func):
    """Compile a small helper that kernels call (inlined by Numba at every call site). Only for
    helpers called in loops so short that a call would show in their time: Numba types and
    lowers the body of a parallel loop twice (the kernel, then its gufunc), inlined code included,
    so every inlined line costs the kernel compile time."""
    return _compile(func, inline="always")


def loop_helper(func):
    """Compile a helper that kernels call: compiled once per signature and called, rather than
    inlined by Numba at every call site, at the cost of a call. Whole steps of a parallel item
    (filling a strip, unfolding a tile, a pass over a row) are loop helpers: as called helpers
    the first fp32 compilation of im2col's unfolded kernel took 16.0 -> 10.0 s, the separable
    kernel 8.4 -> 4.7 s, the FFT tiles 8.1 -> 6.3 s (one process each, empty cache)."""
    return _compile(func)


def serial_function(func):
    """Compile a serial function that Python code calls on small arrays, where NumPy's per-call
    overhead would dominate (the planner's searches). Strict IEEE arithmetic: its results decide
    between candidates, so they must not depend on vectorisation."""
    return _compile(func, fastmath=False)
