"""``python -m fastconv``: help, info, warmup (into a new cache folder, which a later process
then loads from) and calibrate's progress, each in a new process except the last."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastconv
from fastconv import __main__ as cli

ROOT = Path(__file__).resolve().parent.parent


def _run(*args, **env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env=os.environ | {"PYTHONPATH": str(ROOT)} | env)


@pytest.mark.parametrize("args", [[], ["--help"]], ids=["bare", "help"])
def test_help(args):
    result = _run("-m", "fastconv", *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m fastconv")
    for command in ("info", "warmup", "calibrate"):
        assert f"\n{command} " in result.stdout
    assert "``" not in result.stdout


def test_info(tmp_path):
    result = _run("-m", "fastconv", "info", NUMBA_CACHE_DIR=str(tmp_path / "numba"),
                  FASTCONV_CACHE_DIR=str(tmp_path / "calibration"), FASTCONV_NO_CACHE="0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"fastconv {fastconv.__version__} (Python ")
    for start in ("CPU: ", "LLVM target: ", "Numba threads: ", "threading layer: ", "BLAS: ",
                  "Numba cache: on", f"  {tmp_path / 'numba'}",
                  f"calibration file: {tmp_path / 'calibration'}"):
        assert any(line.startswith(start) for line in lines), (start, lines)
    assert "(missing; constants in force: shipped defaults" in lines[-1]


def test_warmup_compiles_what_a_later_call_loads(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "FASTCONV_NO_CACHE": "0"}
    result = _run("-m", "fastconv", "warmup", "--methods", "direct", "--dtypes", "float64",
                  "--jobs", "2", **env)
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("warmup [")]
    assert [line.split("] ")[1].split(":")[0] for line in progress] in (
        ["1/2 planner", "2/2 direct float64"], ["1/2 direct float64", "2/2 planner"])
    code = """
        import numpy as np, fastconv
        from fastconv.strategies.direct.kernels import correlate_direct, correlate_direct_serial
        from fastconv.strategies.fft.runner import _search_tiles
        fastconv.correlate2d(np.ones((30, 31)), np.ones((3, 3)), "same", method="direct",
                             threads=1)
        fastconv.correlate2d(np.ones((300, 310)), np.ones((3, 3)), "same", method="direct",
                             threads=2)
        fastconv.plan((1, 1, 300, 300), (1, 1, 21, 21), dtype=np.float64)
        for function in (correlate_direct_serial, correlate_direct, _search_tiles):
            stats = function.stats
            print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
        """
    later = _run("-c", textwrap.dedent(code), **env)
    assert later.returncode == 0, later.stderr
    # Loaded, nothing compiled: the direct kernel's serial twin (one thread) and parallel self.
    assert later.stdout.split() == ["1", "0", "1", "0", "1", "0"]


def test_warmup_refuses_without_a_cache():
    result = _run("-m", "fastconv", "warmup", "--methods", "direct", FASTCONV_NO_CACHE="1")
    assert result.returncode == 1
    assert "nothing to keep, the Numba cache is off (FASTCONV_NO_CACHE=1)" in result.stderr


def test_calibrate_compiles_with_progress_then_times(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "_warmup", lambda *args: calls.append(("warmup", *args)))
    monkeypatch.setattr("fastconv.planning.calibrate.main",
                        lambda **kw: calls.append(("calibrate", kw)))
    assert cli.main(["calibrate", "--no-save", "--threads", "1"]) == 0
    assert calls == [("warmup", fastconv.METHODS, ("float32", "float64"), None),
                     ("calibrate", {"threads": 1, "save": False})]
    assert capsys.readouterr().err.splitlines() == [
        "calibrate: step 1 of 2, compiling the kernels",
        "calibrate: step 2 of 2, timing every strategy's problems"]
