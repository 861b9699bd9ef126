"""fastconv on dask arrays (``fastconv.dask``) against dask-image and in-memory fastconv.

    pytest bench/test_dask.py [--grid smoke|quick|full] [--threads 2]

Problems: a float32 image held by a dask array (from NumPy), ``'same'`` output with PyTorch's
``'reflect'`` padding, on the threads scheduler with one worker per thread. Libraries, one case
each, in the same benchmark group per problem:

* ``fastconv.dask``: ``fastconv.conv2d`` of the dask array, ``.compute()`` (one Numba thread per
  task, the default);
* ``dask_image.correlate``: ``dask_image.ndfilters.correlate(mode='mirror')`` (scipy.ndimage per
  chunk; 'mirror' is PyTorch's 'reflect'), ``.compute()``;
* ``fastconv.conv2d-in-memory``: ``fastconv.conv2d`` of the NumPy array with ``threads``;
* ``dask.overlap-floor``: no filter at all, the overlapped copy every ``map_overlap`` filter
  pays (``dask.array.map_overlap`` of the identity with the kernel's halo and reflected
  boundary, ``.compute()``): the least a dask filter of this problem can cost. Not checked.

Each library is checked against in-memory fastconv before it is timed. ``test_zarr_out_of_core``
filters a zarr array on disk 4x larger than an address-space limit (``RLIMIT_AS`` in a child
process) into another zarr array and records the throughput in ``extra_info`` (MB/s of input).
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import THREADS
from libraries import optional, thread_count

import fastconv


@dataclass(frozen=True)
class DaskWorkload:
    side: int
    chunk: int
    kernel: int
    dtype: str = "float32"

    @property
    def name(self):
        return (f"{self.side}x{self.side}-chunks{self.chunk}-k{self.kernel}-same-reflect-"
                f"{self.dtype}")


GRIDS = {
    "smoke": [DaskWorkload(512, 128, 5)],
    "quick": [DaskWorkload(8192, 2048, 5), DaskWorkload(8192, 2048, 31)],
}
GRIDS["full"] = GRIDS["quick"]
LIBRARIES = ("fastconv.dask", "dask_image.correlate", "fastconv.conv2d-in-memory",
             "dask.overlap-floor")
# Address-space limit of the out-of-core case and the array's size relative to it.
LIMIT_BYTES = {"smoke": 2 * 2**30, "quick": 2**30 + 2**29, "full": 2**30 + 2**29}
OVERSIZE = {"smoke": None, "quick": 4, "full": 4}


def pytest_generate_tests(metafunc):
    if "dask_case" in metafunc.fixturenames:
        grid = metafunc.config.getoption("grid")
        cases = [(threads, workload, library) for threads in metafunc.config.stash[THREADS]
                 for workload in GRIDS[grid] for library in LIBRARIES]
        metafunc.parametrize("dask_case", cases, ids=[f"{w.name}-t{t}-{lib}"
                                                      for t, w, lib in cases])


_data = {}


def data(workload):
    if workload not in _data:
        _data.clear()
        rng = np.random.default_rng(workload.side * 1000 + workload.kernel)
        x = rng.standard_normal((workload.side, workload.side), np.float32)
        w = rng.standard_normal((workload.kernel, workload.kernel), np.float32)
        expected = fastconv.conv2d(x, w, padding="same", padding_mode="reflect")
        bound = 1e-5 * float(np.abs(x).max()) * float(np.abs(w).sum())
        _data[workload] = x, w, expected, bound
    return _data[workload]


def prepare(library, x, w, threads, chunk):
    import dask.array as da

    if library == "fastconv.conv2d-in-memory":
        return lambda: fastconv.conv2d(x, w, padding="same", padding_mode="reflect",
                                       threads=threads)
    lazy_x = da.from_array(x, chunks=chunk)
    if library == "dask.overlap-floor":
        halo = w.shape[0] // 2
        lazy = da.map_overlap(lambda block: block[halo:-halo, halo:-halo], lazy_x, depth=halo,
                              boundary="reflect", trim=False, dtype=x.dtype)
    elif library == "fastconv.dask":
        lazy = fastconv.conv2d(lazy_x, w, padding="same", padding_mode="reflect")
    else:
        from dask_image import ndfilters

        lazy = ndfilters.correlate(lazy_x, w, mode="mirror")
    return lambda: lazy.compute(scheduler="threads", num_workers=threads)


def test_dask_image(benchmark, dask_case):
    threads, workload, library = dask_case
    module = {"dask_image.correlate": "dask_image.ndfilters"}.get(library, "dask.array")
    if optional(module) is None:
        pytest.skip(f"{library}: {module} is not installed")
    benchmark.group = f"{workload.name} threads={threads}"
    benchmark.extra_info.update(problem=workload.name, library=library, threads=threads,
                                chunk=workload.chunk, kernel=workload.kernel)
    with thread_count(threads):
        x, w, expected, bound = data(workload)
        run = prepare(library, x, w, threads, workload.chunk)
        result = run()  # also the warm-up
        if library != "dask.overlap-floor":
            error = float(np.max(np.abs(result - expected)))
            assert error <= bound, f"{library} differs from fastconv by {error:.3g} > {bound:.3g}"
            benchmark.extra_info["max_abs_difference"] = error
        benchmark.pedantic(run, rounds=3, iterations=1)


CHILD = """
import json, resource, sys, time
limit, source, target, threads, band = (int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                        int(sys.argv[4]), int(sys.argv[5]))
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import dask, dask.array as da, numpy as np, zarr, fastconv
from dask.diagnostics import ProgressBar

image = da.from_zarr(source)
blurred = fastconv.conv2d(image, np.full((5, 5), 1 / 25, np.float32), padding="same",
                          padding_mode="reflect")
start = time.perf_counter()
with ProgressBar(out=sys.stderr, minimum=10**9), dask.config.set(scheduler="threads",
                                                                 num_workers=threads):
    if band == 0:
        blurred.to_zarr(target)
    else:  # one band of chunk rows at a time: the scheduler holds at most one band's chunks
        out = zarr.create_array(target, shape=blurred.shape, chunks=image.chunksize,
                                dtype=blurred.dtype)
        for row in range(0, blurred.shape[0], band):
            rows = slice(row, min(row + band, blurred.shape[0]))
            blurred[rows].to_zarr(out, region=(rows, slice(None)))
seconds = time.perf_counter() - start
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps(dict(seconds=seconds, vm_peak=status["VmPeak"].strip(),
                      rss_peak=status["VmHWM"].strip())))
"""
# glibc reserves 64 MiB of address space per thread arena: capped, so RLIMIT_AS measures data.
CHILD_ENVIRONMENT = {"MALLOC_ARENA_MAX": "2"}
# Rows per band in the out-of-core case (0: one to_zarr of the whole array).
BAND_ROWS = int(os.environ.get("FASTCONV_BENCH_BAND_ROWS", "2048"))


def test_zarr_out_of_core(benchmark, request, tmp_path):
    if optional("zarr") is None or optional("dask.array") is None:
        pytest.skip("zarr or dask is not installed")
    import dask.array as da

    grid = request.config.getoption("grid")
    threads = request.config.stash[THREADS][-1]
    limit, chunk = LIMIT_BYTES[grid], 256 if OVERSIZE[grid] is None else 2048
    side = 1024 if OVERSIZE[grid] is None else (
        math.ceil(math.sqrt(OVERSIZE[grid] * limit / 4) / chunk) * chunk)
    source, target = tmp_path / "image.zarr", tmp_path / "blurred.zarr"
    image = da.random.default_rng(0).standard_normal((side, side), chunks=chunk,
                                                     dtype=np.float32)
    image.to_zarr(str(source))
    nbytes = side * side * 4
    benchmark.group = f"zarr {side}x{side} float32 ({nbytes / 2**30:.1f} GiB), k5 same/reflect"
    report = {}

    def run():
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CHILD), str(limit), str(source), str(target),
             str(threads), str(BAND_ROWS)], capture_output=True, text=True, check=False,
            env=dict(os.environ, **CHILD_ENVIRONMENT))
        assert done.returncode == 0, done.stderr[-3000:]
        report.update(json.loads(done.stdout.splitlines()[-1]))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(report, limit_bytes=limit, input_bytes=nbytes, threads=threads,
                                band_rows=BAND_ROWS, mb_per_s=nbytes / 1e6 / report["seconds"])
    # The result is right: a corner and an interior chunk against in-memory fastconv.
    import zarr

    got, src = zarr.open_array(str(target), mode="r"), zarr.open_array(str(source), mode="r")
    w = np.full((5, 5), 1 / 25, np.float32)
    corner = fastconv.conv2d(np.asarray(src[:64, :64]), w, padding=((2, 0), (2, 0)),
                             padding_mode="reflect")
    assert np.allclose(got[:62, :62], corner[:62, :62], atol=1e-5)
    middle = fastconv.conv2d(np.asarray(src[chunk - 10:chunk + 10, chunk - 10:chunk + 10]), w)
    assert np.allclose(got[chunk - 8:chunk + 8, chunk - 8:chunk + 8], middle, atol=1e-5)
    for path in (source, target):
        _remove(path)


def _remove(path):
    import shutil

    shutil.rmtree(Path(path), ignore_errors=True)
