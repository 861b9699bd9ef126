"""Thread limits for one call: Numba's pool and the BLAS pools, restored afterwards."""

from contextlib import contextmanager

import numba


@contextmanager
def numba_threads(count):
    """Run the body with ``count`` Numba threads, restoring the previous count even on error."""
    previous = numba.get_num_threads()
    if count == previous:
        yield
        return
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
