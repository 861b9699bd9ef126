"""``python -m fastconv warmup``: compile the kernels ahead of use, into Numba's on-disk cache.

A first call compiles the kernels its strategy needs (seconds each); after a warmup, later
processes load them from the cache instead. Each task, one (strategy, dtype) or the planner,
runs in its own worker process on the problems that calibrate that strategy (calibrate.py:
chosen to cover its routes, each a few milliseconds), so it compiles exactly what those calls
compile. Workers share the cache under the JIT factory's file lock (see core/jit.py).
"""

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

DTYPES = ("float32", "float64")
PLANNER = "planner"
# Longest compilations first, so that the last task to start is a short one.
ORDER = ("im2col", "winograd", "fft", "direct", PLANNER)


def tasks(methods, dtypes):
    """The (task, dtype) pairs of a warmup: each strategy x dtype, then the planner once."""
    ordered = sorted(methods, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))
    return [(method, dtype) for method in ordered for dtype in dtypes] + [(PLANNER, None)]


def warm(method, dtype):
    """Compile one task's kernels in this process by running its problems once; returns the
    seconds spent. The planner task plans every calibration problem of float32 (its searches
    do not depend on the dtype)."""
    from dataclasses import replace

    import numba
    import numpy as np

    from .core.geometry import Geometry
    from .planning.calibrate import problems as calibration_problems
    from .planning.calibrate import random_problem
    from .planning.execute import execute
    from .planning.plan import make_plan

    started = time.perf_counter()
    # The 2-D problems: conv1d and conv3d ones (calibrate.RANK_PROBLEMS) run the same kernels.
    problems = {name: [g for g in geometries if isinstance(g, Geometry)]
                for name, geometries in calibration_problems().items()}
    if method == PLANNER:
        for geometries in problems.values():
            for geometry in geometries:
                if geometry.dtype == np.float32:
                    make_plan(geometry, "auto", 1)
    else:
        rng = np.random.default_rng(0)
        for geometry in problems[method]:
            if geometry.dtype == np.dtype(dtype):
                plan = make_plan(geometry, method, 1)
                problem = random_problem(geometry, rng)
                execute(plan, problem)
                if numba.config.NUMBA_NUM_THREADS > 1:
                    # The same work on several threads: a kernel with a serial twin for calls
                    # on one thread (core/jit.py) compiles its parallel self here.
                    execute(replace(plan, threads=2), problem)
    return time.perf_counter() - started


def _bar(done, total, width=24):
    filled = round(width * done / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def run(methods, dtypes, workers=None, stream=sys.stderr):
    """Warm up ``methods`` x ``dtypes`` (and the planner) in ``workers`` processes (default: one
    per CPU), printing one progress line per finished task; returns the wall seconds."""
    todo = tasks(methods, dtypes)
    workers = max(1, min(len(todo), workers or os.cpu_count() or 1))
    started = time.perf_counter()
    print(f"warmup: {len(todo)} tasks in {workers} worker processes", file=stream, flush=True)
    # spawn: a worker must not inherit this process's Numba thread pool (fork is unsafe with
    # the OpenMP and TBB layers once started).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(warm, method, dtype): (method, dtype) for method, dtype in todo}
        for done, future in enumerate(as_completed(futures), 1):
            method, dtype = futures[future]
            seconds = future.result()
            name = method if dtype is None else f"{method} {dtype}"
            print(f"warmup {_bar(done, len(todo))} {name}: {seconds:.1f} s "
                  f"(elapsed {time.perf_counter() - started:.1f} s)", file=stream, flush=True)
    return time.perf_counter() - started
