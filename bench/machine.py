"""The machine and library versions a set of numbers came from (recorded in the results JSON)."""

import os
import platform
from importlib import metadata

# Distribution names; the report lists the installed ones.
PACKAGES = ("fastconv", "numpy", "scipy", "numba", "llvmlite", "threadpoolctl", "torch",
            "opencv-python-headless", "opencv-python", "pytest-benchmark")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe():
    """CPU, cores, thread settings and versions, as JSON-ready data."""
    import llvmlite.binding
    import numba
    from threadpoolctl import threadpool_info

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        layer = "not yet chosen"
    return {
        "cpu_model": cpu_model(),
        "llvm_cpu": llvmlite.binding.get_host_cpu_name(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": layer,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "versions": versions,
        "thread_pools": [
            {key: pool.get(key) for key in ("internal_api", "version", "architecture",
                                             "num_threads")}
            | {"library": os.path.basename(pool["filepath"])}
            for pool in threadpool_info()
        ],
    }
