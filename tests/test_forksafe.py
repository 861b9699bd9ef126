"""Threading layer: after a fastconv call, a fork-based process pool gets a clear error under
GNU OpenMP (Numba's default) and works under the fork-safe layer; several threads can call at
once under either; an explicit NUMBA_THREADING_LAYER is kept.

Each case runs in a fresh interpreter: Numba chooses its layer at its first parallel launch, and a
failure here (the workqueue's abort on concurrent launches, GNU OpenMP's after fork) kills the
process."""

import os
import subprocess
import sys
import textwrap

import pytest

import fastconv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


def _run(code, **env):
    environment = os.environ | {"PYTHONPATH": ROOT} | env
    environment.pop("NUMBA_THREADING_LAYER", None)
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


FORK_POOL = """
    import multiprocessing, numba, numpy as np, fastconv
    from concurrent.futures import ProcessPoolExecutor

    def job(i):
        x = np.full((8, 16, 32, 32), i, np.float32)
        return float(fastconv.conv2d(x, np.ones((16, 16, 3, 3), np.float32), padding=1,
                                     method="direct", threads=2).sum())

    if __name__ == "__main__":
        job(1)  # a parallel launch in the parent first
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            try:
                results = list(pool.map(job, range(4), timeout=300))
            except RuntimeError as error:
                print(numba.threading_layer(), "error:", error)
            else:
                assert results == [job(i) for i in range(4)], results
                print(numba.threading_layer(), "ok")
    """


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the default start method on Linux")
def test_fork_pool_after_a_call_gets_a_clear_error_under_openmp():
    out = " ".join(_run(FORK_POOL))
    if out.startswith("omp"):
        assert "error: fastconv cannot run parallel kernels in a process forked" in out, out
        assert "'spawn'" in out and "NUMBA_THREADING_LAYER=forksafe" in out
    else:  # no OpenMP on this machine: Numba's default is fork-safe
        assert out.endswith("ok"), out


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the default start method on Linux")
def test_fork_pool_after_a_call_works_under_the_forksafe_layer():
    out = _run(FORK_POOL, NUMBA_THREADING_LAYER="forksafe")
    assert out[0] in ("tbb", "workqueue") and out[-1] == "ok", out


@pytest.mark.parametrize("layer", [None, "workqueue"])
def test_threads_calling_at_once(layer):
    out = _run("""
        import threading, numba, numpy as np, fastconv
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, 16, 32, 32)).astype(np.float32)
        w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
        expected = {m: fastconv.conv2d(x, w, padding=1, method=m, threads=2)
                    for m in ("direct", "im2col", "fft", "winograd")}
        errors = []
        start = threading.Barrier(4)

        def worker(n):
            start.wait()
            for i in range(20):
                method = ("direct", "im2col", "fft", "winograd")[(n + i) % 4]
                got = fastconv.conv2d(x, w, padding=1, method=method, threads=2)
                if not np.array_equal(got, expected[method]):
                    errors.append(method)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        print(numba.threading_layer())
        """, **({} if layer is None else {"NUMBA_THREADING_LAYER": layer}))
    assert out[-1] in ("omp", "tbb", "workqueue") if layer is None else out[-1] == layer


def test_explicit_threading_layer_is_kept():
    out = _run("""
        import numba, numpy as np, fastconv
        fastconv.conv2d(np.ones((8, 16, 32, 32)), np.ones((16, 16, 3, 3)), method="direct")
        print(numba.threading_layer())
        """, NUMBA_THREADING_LAYER="omp")
    assert out[-1] == "omp"
