"""One benchmark case, from the skip rules to the timed call.

A case is (thread count, workload, library). In order it: skips a library that is not installed;
skips a fastconv method that declines the problem; skips a case whose estimated call time exceeds
the grid's limit (saying so); checks the library against fastconv on this problem (once per
library and problem, which also warms up JIT compilation and caches) or else makes one warm-up
call; then times the call with pytest-benchmark. Skipped cases are recorded so the report can
show them instead of silently dropping them.
"""

import time
from dataclasses import asdict, dataclass

import pytest
from libraries import (
    Library,
    auto_choice,
    declines,
    difference,
    error_bound,
    fastconv_geometry,
    fastconv_libraries,
    make_data,
    optional,
    reference,
    thread_count,
)
from workloads import Workload

# Libraries measured on the reference machine run at least ~1.5e8 multiply-adds/s (PyTorch fp64
# and scipy.ndimage on single images), so a problem under limit * this many multiply-adds cannot
# come near the limit and is run without calibrating an estimate first.
SLOWEST_MACS_PER_SECOND = 5e7
# A calibration call at least this long is dominated by work rather than per-call overhead.
CALIBRATION_SECONDS = 0.02


@dataclass(frozen=True)
class Case:
    threads: int
    workload: Workload
    library: Library

    @property
    def id(self):
        return f"{self.workload.name}-t{self.threads}-{self.library.name}"

    @property
    def group(self):
        """pytest-benchmark's group: fastconv's methods and the peers line up per problem."""
        return f"{self.workload.name} threads={self.threads}"

    def info(self):
        """JSON-ready fields: the extra_info of a timed case, the record of a skipped one."""
        workload = asdict(self.workload)
        out_height, out_width = self.workload.out_size
        return dict(
            workload, problem=self.workload.name, family=self.workload.family,
            out_height=out_height, out_width=out_width, macs=self.workload.macs,
            threads=self.threads, library=self.library.name, fastconv_method=self.library.method,
            library_threads=self.threads if self.library.threaded else 1, note=self.library.note,
        )


class BenchState:
    """What cases share: the current problem's data and reference, the checks done, the skips."""

    def __init__(self, max_call_seconds):
        self.max_call_seconds = max_call_seconds
        self.skipped = []
        self.results_written = False  # set when pytest-benchmark writes this run's JSON
        self._checked = {}  # (library name, problem name) -> largest difference from fastconv
        self._data = None  # (problem name, Data): the current problem only
        self._reference = None  # (problem name, reference result, error bound)

    def data(self, workload):
        if self._data is None or self._data[0] != workload.name:
            self._data = (workload.name, make_data(workload))
        return self._data[1]

    def reference(self, workload, threads):
        if self._reference is None or self._reference[0] != workload.name:
            self._reference = None  # free the previous problem's result first
            data = self.data(workload)
            self._reference = (workload.name, reference(workload, data, threads),
                               error_bound(workload, data))
        return self._reference[1:]

    def skip(self, case, reason, kind, **extra):
        self.skipped.append(dict(case.info(), skip=kind, reason=reason, **extra))
        pytest.skip(reason)

    def check(self, case, call):
        """Run the call once: check it against fastconv the first time this library meets this
        problem, otherwise just warm up. Returns the largest difference found by the check."""
        key = (case.library.name, case.workload.name)
        result = call.run()
        if key not in self._checked:
            expected, bound = self.reference(case.workload, case.threads)
            output, offset = call.output(result)
            error = difference(case.library.name, output, offset, expected)
            if not error <= bound:
                raise AssertionError(
                    f"{case.library.name} and fastconv disagree on {case.workload.name}: largest "
                    f"difference {error:.3g} > bound {bound:.3g}, so timing them would not compare "
                    "like with like.")
            self._checked[key] = error
        return self._checked[key]


def _seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def estimate_seconds(library, workload, threads, limit):
    """Estimated time of one call, or None when the problem is too small to come near ``limit``.

    Times the library on the same problem shrunk to a small output (growing it until a call takes
    CALIBRATION_SECONDS) and scales by the number of outputs the library computes: per output,
    every library's cost depends on the kernel and channels, which are unchanged. Small inputs cost
    more per output (borders, overheads), so the estimate errs on the high side.
    """
    if workload.macs < limit * SLOWEST_MACS_PER_SECOND:
        return None
    side = 32
    while True:
        small = workload.shrunk(side)
        data = make_data(small)
        if library.method is not None and declines(library, fastconv_geometry(small, data)):
            return None
        call = library.prepare(small, data, threads)
        call.run()
        seconds = min(_seconds(call.run), _seconds(call.run))
        if seconds >= CALIBRATION_SECONDS or small == workload:
            break
        side *= 2
    scale = library.outputs(workload) / library.outputs(small)
    return seconds * scale, f"{seconds * 1e3:.3g} ms on a {small.height}x{small.width} input"


def run_case(benchmark, case, state):
    benchmark.group = case.group
    benchmark.extra_info.update(case.info())
    library, workload, threads = case.library, case.workload, case.threads
    if optional(library.module) is None:
        state.skip(case, f"{library.name}: {library.module} is not installed", "missing")
    with thread_count(threads):
        data = state.data(workload)
        estimated_as = library
        if library.method is not None:
            geometry = fastconv_geometry(workload, data)
            refusal = declines(library, geometry)
            if refusal is not None:
                state.skip(case, f"{library.name} declines {workload.name}: {refusal}", "declined")
            if library.method == "auto":
                choice = auto_choice(geometry, threads)
                benchmark.extra_info["auto_choice"] = choice
                # Estimate 'auto' by the method it runs: the planner may choose differently for the
                # shrunk calibration problem.
                estimated_as = next(lib for lib in fastconv_libraries() if lib.method == choice)
        estimate = estimate_seconds(estimated_as, workload, threads, state.max_call_seconds)
        if estimate is not None and estimate[0] > state.max_call_seconds:
            reason = (f"{library.name} on {workload.name}: estimated {estimate[0]:.3g} s per call "
                      f"> --max-call-seconds={state.max_call_seconds:g} (from {estimate[1]}, "
                      "scaled by output size)")
            state.skip(case, reason, "slow", estimated_seconds=estimate[0])
        call = library.prepare(workload, data, threads)
        benchmark.extra_info["max_abs_difference"] = state.check(case, call)
        benchmark(call.run)
