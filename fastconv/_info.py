"""``python -m fastconv info``: what a bug report needs, and where the caches live.

Nothing here compiles or starts Numba's threads: the threading layer is reported as configured
until a parallel kernel has run in this process.
"""

import importlib
import os
import sys
from pathlib import Path


def jitted_functions():
    """Every function of the package compiled through the JIT factory (its modules imported)."""
    from numba.core.registry import CPUDispatcher

    from . import _api  # noqa: F401 (loads every kernel module)
    from .planning import calibrate, measure  # noqa: F401

    found = {}
    for name, module in list(sys.modules.items()):
        if name == "fastconv" or name.startswith("fastconv."):
            for value in vars(module).values():
                if isinstance(value, CPUDispatcher) and value.py_func.__module__ == name:
                    found[id(value)] = value
    return sorted(found.values(), key=lambda d: (d.py_func.__module__, d.__name__))


def numba_cache():
    """(state, {cache folder: number of jitted functions cached there}), the folders Numba would
    use in this process; the count of files already there tells whether a warmup ran."""
    from numba.core.caching import FunctionCache

    from .core.settings import numba_cache_enabled

    if not numba_cache_enabled():
        return "off (FASTCONV_NO_CACHE=1): kernels compile in memory in every process", {}
    folders = {}
    for dispatcher in jitted_functions():
        try:
            path = FunctionCache(dispatcher.py_func).cache_path
        except RuntimeError:
            return ("no writable location: kernels compile in memory in every process (set "
                    "NUMBA_CACHE_DIR to a writable folder)"), {}
        folders.setdefault(path, []).append(dispatcher)
    return "on", {path: len(functions) for path, functions in folders.items()}


def _cache_files(path):
    """(index files, compiled signatures, bytes) of fastconv's functions in a cache folder."""
    files = list(Path(path).glob("*.nb[ic]")) if os.path.isdir(path) else []
    size = sum(f.stat().st_size for f in files)
    return (sum(f.suffix == ".nbi" for f in files), sum(f.suffix == ".nbc" for f in files), size)


def threading_layer():
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # chosen at the first parallel call
        available = []
        for layer, module in (("tbb", "tbbpool"), ("omp", "omppool"),
                              ("workqueue", "workqueue")):
            try:
                importlib.import_module(f"numba.np.ufunc.{module}")
            except ImportError:
                continue
            available.append(layer)
        return (f"not chosen yet (NUMBA_THREADING_LAYER={numba.config.THREADING_LAYER!r}; "
                f"available: {', '.join(available)})")


def blas():
    """One line per BLAS library loaded in this process (the im2col and winograd GEMMs)."""
    from threadpoolctl import threadpool_info

    from .core import blas  # noqa: F401 (loads SciPy's BLAS)

    return [f"{pool.get('internal_api')} {pool.get('version')} "
            f"({pool.get('architecture')}, {pool.get('num_threads')} threads) "
            f"{pool.get('filepath')}"
            for pool in threadpool_info() if pool.get("user_api") == "blas"]


def lines():
    """The report of ``python -m fastconv info``, one line per item."""
    import numba

    from . import __version__
    from .core import target as _target
    from .planning.cachefile import cpu_model
    from .planning.cachefile import path as cache_path
    from .planning.constants import machine_constants

    state, folders = numba_cache()
    features = os.environ.get("NUMBA_CPU_FEATURES")
    out = [
        f"fastconv {__version__} (Python {sys.version.split()[0]}, NumPy "
        f"{importlib.import_module('numpy').__version__}, Numba {numba.__version__})",
        f"CPU: {cpu_model()}",
        f"LLVM target: {_target.cpu_name()}"
        + (f" with NUMBA_CPU_FEATURES={features}" if features is not None else
           " with the host's features")
        + f"; {_target.vector_bits()}-bit vectors, FMA {'yes' if _target.has('fma') else 'no'}",
        f"Numba threads: {numba.get_num_threads()} of NUMBA_NUM_THREADS="
        f"{numba.config.NUMBA_NUM_THREADS} (os.cpu_count() = {os.cpu_count()})",
        f"threading layer: {threading_layer()}",
    ]
    out += [f"BLAS: {line}" for line in blas()] or ["BLAS: none found by threadpoolctl"]
    out.append(f"Numba cache: {state}")
    for path, functions in folders.items():
        index, compiled, size = _cache_files(path)
        out.append(f"  {path} ({functions} jitted functions): {index} cached, {compiled} "
                   f"compiled signatures, {size / 2**20:.1f} MiB")
    calibration = cache_path()
    constants = machine_constants().source
    out.append(f"calibration file: {calibration} "
               f"({'present' if os.path.exists(calibration) else 'missing'}; "
               f"constants in force: {constants})")
    return out
