"""``threads=`` above Numba's pool runs on the whole pool (as PyTorch accepts any count), so the
README's example, which asks for 4 threads, runs on a 1-thread machine."""

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np

import fastconv

ROOT = Path(__file__).resolve().parent.parent


def test_more_threads_than_the_pool_use_the_pool(rng):
    pool = numba.config.NUMBA_NUM_THREADS
    shapes = ((2, 8, 40, 40), (8, 8, 3, 3))
    assert (fastconv.plan(*shapes, dtype=np.float32, threads=pool + 7)
            == fastconv.plan(*shapes, dtype=np.float32, threads=pool))
    x, w = rng.standard_normal((1, 2, 12, 11)), rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_array_equal(fastconv.conv2d(x, w, method="direct", threads=pool + 7),
                                  fastconv.conv2d(x, w, method="direct", threads=pool))


def test_readme_example_runs_with_one_thread():
    readme = (ROOT / "README.md").read_text()
    example = readme.split("## Example", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "threads=" in example  # what this test is about
    result = subprocess.run(
        [sys.executable, "-c", example + "\nprint(depthwise.shape, numba.get_num_threads())"
         .replace("print", "import numba; print", 1)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env=os.environ | {"NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(8,", "64,", "56,", "56)", "1"]
