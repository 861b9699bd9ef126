"""Thread limits for one call: Numba's pool and the BLAS pools, restored afterwards; and the
threading layer.

Threading layer
---------------
Unless ``NUMBA_THREADING_LAYER`` is set, fastconv asks Numba for its ``'forksafe'`` layer: TBB
when it is installed, else the workqueue. Numba's default falls back to GNU OpenMP, after which a
fork-based process pool (the default on Linux) dies on its first parallel call ("fork() called
from a process already using GNU OpenMP"). This must happen before Numba's first parallel launch
in the process; if that launch already happened, the layer it chose stays.
"""

import os
import threading
from contextlib import contextmanager

import numba


def _prefer_forksafe_layer():
    from numba.np.ufunc import parallel

    if "NUMBA_THREADING_LAYER" not in os.environ and not parallel._is_initialized:
        numba.config.THREADING_LAYER = "forksafe"


_prefer_forksafe_layer()

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
