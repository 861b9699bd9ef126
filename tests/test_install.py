"""Installs that never crash: ``import fastconv`` compiles nothing and touches no cache folder,
and a process with no writable location for Numba's cache (read-only package, read-only or
missing $HOME, unwritable NUMBA_CACHE_DIR) compiles in memory with one warning.

Each case runs in a new process. The tests run as root in CI, which ignores permission bits, so
an unwritable folder is one whose parent is a file: no user can create it."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastconv.core.jit import NO_CACHE_WARNING

PACKAGE = Path(__file__).resolve().parent.parent / "fastconv"

CHILD = """
import json, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    import fastconv
    from fastconv.strategies.fft.runner import _pair_bytes
    error = None
    if sys.argv[1] == "conv2d":
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal((1, 2, 9, 8)), rng.standard_normal((3, 2, 3, 3))
        got = fastconv.conv2d(x, w, method="direct", threads=1)
        windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))
        expected = np.einsum("ncijpq,kcpq->nkij", windows, w)
        error = float(abs(got - expected).max())
    else:  # the cheapest compilation that goes through the JIT factory
        _pair_bytes(*[1.0] * 9)
print(json.dumps({
    "package": fastconv.__file__,
    "runtime_warnings": [str(w.message) for w in caught if w.category is RuntimeWarning],
    "cache_path": _pair_bytes.stats.cache_path,
    "error": error,
}))
"""


def _unwritable(tmp_path, name):
    """A folder path that nobody, root included, can create: its parent is a file."""
    wall = tmp_path / f"{name}-is-a-file"
    wall.write_text("")
    return wall / name


def _package_copy(tmp_path, read_only):
    """A copy of the package; ``read_only``: each of its __pycache__ folders is a file, so Numba
    cannot cache beside the sources, as in a read-only install."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "fastconv", ignore=shutil.ignore_patterns("__pycache__"))
    if read_only:
        for folder in [site / "fastconv", *(site / "fastconv").rglob("*")]:
            if folder.is_dir():
                (folder / "__pycache__").write_text("")
    return site


def _child(tmp_path, call, site, home, numba_cache_dir=None, no_cache=None):
    env = {key: value for key, value in os.environ.items()
           if key not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "FASTCONV_NO_CACHE")}
    env.update(PYTHONPATH=str(site), HOME=str(home))
    if numba_cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache_dir)
    if no_cache is not None:
        env["FASTCONV_NO_CACHE"] = no_cache
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), call],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["package"].startswith(str(site))  # the copy, not the checkout
    return out


@pytest.mark.parametrize("numba_cache_dir", [False, True], ids=["home", "home-and-numba-cache-dir"])
def test_no_writable_cache_compiles_in_memory_with_one_warning(tmp_path, numba_cache_dir):
    """Read-only package, $HOME missing and uncreatable, and (second case) NUMBA_CACHE_DIR
    unwritable: the import and a conv2d call work, with one warning that names both switches."""
    site = _package_copy(tmp_path, read_only=True)
    out = _child(tmp_path, "conv2d", site, _unwritable(tmp_path, "home"),
                 _unwritable(tmp_path, "numba-cache") if numba_cache_dir else None)
    assert out["runtime_warnings"] == [NO_CACHE_WARNING]
    assert "NUMBA_CACHE_DIR" in NO_CACHE_WARNING and "FASTCONV_NO_CACHE=1" in NO_CACHE_WARNING
    assert out["cache_path"] is None
    assert out["error"] < 1e-12


def test_no_cache_switch_silences_the_warning(tmp_path):
    site = _package_copy(tmp_path, read_only=True)
    out = _child(tmp_path, "helper", site, _unwritable(tmp_path, "home"), no_cache="1")
    assert out["runtime_warnings"] == []
    assert out["cache_path"] is None


def test_read_only_package_caches_in_the_user_cache_directory(tmp_path):
    site = _package_copy(tmp_path, read_only=True)
    home = tmp_path / "home"
    out = _child(tmp_path, "helper", site, home)
    assert out["runtime_warnings"] == []
    assert Path(out["cache_path"]).is_relative_to(home / ".cache" / "numba")
    assert any(Path(out["cache_path"]).glob("runner._pair_bytes-*.nbi"))


def test_unwritable_numba_cache_dir_falls_back_to_the_package(tmp_path):
    """Numba's own order of locations: an unwritable NUMBA_CACHE_DIR yields to __pycache__."""
    site = _package_copy(tmp_path, read_only=False)
    out = _child(tmp_path, "helper", site, _unwritable(tmp_path, "home"),
                 _unwritable(tmp_path, "numba-cache"))
    assert out["runtime_warnings"] == []
    assert Path(out["cache_path"]) == site / "fastconv" / "strategies" / "fft" / "__pycache__"


def test_import_compiles_nothing(tmp_path):
    """No compilation, no cache lookup and no cache folder at import: every jitted function of
    the package is still without signatures, and the (empty) NUMBA_CACHE_DIR stays empty; the
    modules loaded on first use are not loaded."""
    code = """
        import json, sys
        from numba.core import event
        from numba.core.registry import CPUDispatcher

        compiled = []

        class Listener(event.Listener):
            def on_start(self, e):
                compiled.append(e.data["dispatcher"].py_func.__qualname__)

            def on_end(self, e):
                pass

        event.register("numba:compile", Listener())
        import fastconv
        lazy = ("rocket_fft", "scipy.fft", "scipy.linalg", "scipy.signal",
                "fastconv.strategies.fft.kernels", "fastconv.strategies.im2col.kernels",
                "fastconv.strategies.winograd.kernels")
        loaded = [name for name in lazy if name in sys.modules]
        # The kernels imported on first use compile nothing when imported either.
        import fastconv.strategies.fft.kernels
        import fastconv.strategies.im2col.kernels
        import fastconv.strategies.winograd.kernels
        dispatchers = {value for name, module in list(sys.modules.items())
                       if name.startswith("fastconv") for value in vars(module).values()
                       if isinstance(value, CPUDispatcher)}
        print(json.dumps({"compiled": compiled, "count": len(dispatchers), "loaded": loaded,
                          "with_signatures": [d.__name__ for d in dispatchers if d.signatures]}))
        """
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = os.environ | {"NUMBA_CACHE_DIR": str(cache), "FASTCONV_NO_CACHE": "0",
                        "PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["count"] >= 20  # the kernels and their helpers were found
    assert out["compiled"] == [] and out["with_signatures"] == []
    # Loaded on first use: the FFT kernels (rocket-fft imports scipy.fft) and the BLAS kernels
    # (scipy.linalg), 0.27 s of the import before.
    assert out["loaded"] == []
    assert list(cache.iterdir()) == []
