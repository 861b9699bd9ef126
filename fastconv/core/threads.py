"""Thread limits for one call: Numba's pool and the BLAS pools, restored afterwards; and what
the threading layer allows.

Threading layer
---------------
fastconv keeps Numba's default layer (GNU OpenMP here): a parallel launch costs a few
microseconds, where the fork-safe workqueue costs about 60 us per launch, which made a 4x4
`correlate2d` 5.7x slower (see README, "Threads, fork and interrupts"). GNU OpenMP kills a
forked child at its first parallel region, so a child forked after a call gets a clear error
instead (its parent's threads cannot run in it); ``NUMBA_THREADING_LAYER=forksafe`` (TBB, else
the workqueue) or the 'spawn' start method lift that. Under the workqueue, which aborts the
process when two threads launch at once, fastconv's calls take turns.
"""

import os
import threading
from contextlib import contextmanager

import numba

from .messages import forked_after_openmp

_forked = False  # this process was forked from one whose OpenMP threads had run


def _after_fork_in_child():
    global _forked
    from numba.np.ufunc import parallel

    if parallel._is_initialized and numba.threading_layer() == "omp":
        _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)

# Numba's workqueue layer aborts the process when two threads launch parallel kernels at once
# ("Concurrent access has been detected"): under it, fastconv's calls take turns.
_launch_lock = threading.RLock()  # runners nest numba_threads (fft: spectra, then tiles)
_workqueue = None  # whether the layer is the workqueue; known after Numba's first launch


def _take_turns():
    global _workqueue
    if _workqueue is None:
        try:
            _workqueue = numba.threading_layer() == "workqueue"
        except ValueError:  # no launch yet: the first one may choose the workqueue
            return True
    return _workqueue


# The threading layer's own get/set of the calling thread's count (ctypes functions, bound when
# the pool starts), else Numba's Python functions.
_get_threads = _set_threads = None


def _start_pool():
    global _get_threads, _set_threads
    from numba.np.ufunc import parallel

    numba.get_num_threads()  # starts the pool, which binds the layer's functions
    _get_threads = getattr(parallel, "_get_num_threads", None) or numba.get_num_threads
    _set_threads = getattr(parallel, "_set_num_threads", None) or numba.set_num_threads


def current_threads():
    """``numba.get_num_threads()``, without its two locks once the pool has started."""
    return _get_threads() if _get_threads is not None else numba.get_num_threads()


class _ThreadCount:
    """The context manager of :func:`numba_threads`. Numba's get/set_num_threads take two
    process-wide locks each (to start the pool if needed): a small call (4x4 ``correlate2d``)
    paid about 3 us for its four calls. Once the pool has started, the threading layer's own
    functions only read and write the calling thread's count."""

    __slots__ = ("count", "previous", "locked")

    def __init__(self, count):
        self.count = count
        self.previous = None
        self.locked = False

    def __enter__(self):
        if _forked:
            raise forked_after_openmp()
        if _get_threads is None:
            _start_pool()
        self.locked = _take_turns()
        if self.locked:
            _launch_lock.acquire()
        try:
            previous = _get_threads()
            if previous != self.count:
                _set_threads(self.count)
                self.previous = previous
        except BaseException:
            if self.locked:
                _launch_lock.release()
            raise
        return self

    def __exit__(self, *exception):
        try:
            if self.previous is not None:
                _set_threads(self.previous)
        finally:
            if self.locked:
                _launch_lock.release()
        return False


def numba_threads(count):
    """A context manager: the body runs with ``count`` Numba threads, the previous count restored
    even on error; one call at a time under the workqueue threading layer."""
    return _ThreadCount(count)


_blas_libraries = None


def _blas_controllers():
    """threadpoolctl's controllers of every loaded BLAS: NumPy's and SciPy's OpenBLAS copies
    (Numba kernels call SciPy's). Found once: scanning the loaded libraries takes 0.6-2.5 ms."""
    global _blas_libraries
    if _blas_libraries is None:
        from threadpoolctl import ThreadpoolController

        _blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_libraries


@contextmanager
def blas_threads(count):
    """Run the body with every BLAS limited to ``count`` threads, restoring the previous limits
    even on error."""
    libraries = [(library, library.get_num_threads()) for library in _blas_controllers()]
    changed = [(library, old) for library, old in libraries if old is not None and old != count]
    for library, _ in changed:
        library.set_num_threads(count)
    try:
        yield
    finally:
        for library, old in changed:
            library.set_num_threads(old)
