"""conv1d and conv3d layers: fastconv (every method and 'auto') against torch's conv1d/conv3d and,
for single-channel volumes, scipy.ndimage.correlate; one case per (layer, dtype, threads,
library). Interleaved medians and ratios of the same cases: bench/ranks.py."""

import numpy as np
import pytest
from conftest import THREADS
from libraries import (
    optional,
    rank_data,
    rank_declines,
    rank_error_bound,
    rank_libraries,
    thread_count,
)
from workloads import RANK_GRIDS

import fastconv


def pytest_generate_tests(metafunc):
    if "rank_case" in metafunc.fixturenames:
        cases = [(threads, workload, library)
                 for threads in metafunc.config.stash[THREADS]
                 for workload in RANK_GRIDS[metafunc.config.getoption("grid")]
                 for library in rank_libraries() if library.applies(workload)]
        metafunc.parametrize("rank_case", cases, ids=[
            f"{w.name}-t{t}-{lib.name}" for t, w, lib in cases])


def test_rank_layer(benchmark, rank_case):
    threads, workload, library = rank_case
    benchmark.group = f"{workload.name} threads={threads}"
    benchmark.extra_info.update(problem=workload.name, kind="rank", label=workload.label,
                                rank=workload.rank, dtype=workload.dtype, threads=threads,
                                library=library.name, macs=workload.macs,
                                input_shape=workload.input_shape,
                                weight_shape=workload.weight_shape, padding=workload.padding)
    if optional(library.module) is None:
        pytest.skip(f"{library.name}: {library.module} is not installed")
    refusal = rank_declines(library, workload)
    if refusal is not None:
        pytest.skip(f"{library.name} declines {workload.name}: {refusal}")
    x, w = rank_data(workload)
    with thread_count(threads):
        call = library.prepare(workload, x, w, threads)
        function = fastconv.conv1d if workload.rank == 1 else fastconv.conv3d
        expected = function(x, w, padding=workload.padding, method="direct", threads=threads)
        error = float(np.max(np.abs(np.asarray(call()) - expected)))
        assert error <= rank_error_bound(workload, x, w), (library.name, error)
        benchmark.extra_info["max_abs_difference"] = error
        if library.method == "auto":
            benchmark.extra_info["auto_choice"] = fastconv.last_method()
        benchmark(call)
