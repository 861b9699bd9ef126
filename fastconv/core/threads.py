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


@contextmanager
def numba_threads(count):
    """Run the body with ``count`` Numba threads, restoring the previous count even on error;
    one call at a time under the workqueue threading layer."""
    if _forked:
        raise forked_after_openmp()
    if _take_turns():
        with _launch_lock:
            with _numba_threads(count):
                yield
        return
    with _numba_threads(count):
        yield


@contextmanager
def _numba_threads(count):
    previous = numba.get_num_threads()
    if count == previous:
        yield
        return
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


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
