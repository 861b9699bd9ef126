"""Extra memory stays within the workspace budget for huge strides, dilations and paddings, in
every strategy; the gathered axes of the direct strategy read what np.pad would give.

Peak memory is the resident set's high-water mark of a fresh process (Linux: /proc/self/status
VmHWM, reset through /proc/self/clear_refs before each call), because Numba's allocations are
invisible to tracemalloc and its NRT statistics count allocations, not bytes.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv._validate import PADDING_MODES
from fastconv.core.padding import axis_sources

# Cases with a small output (at most 3x3) whose padded extents are huge.
EXTREME = [
    dict(padding=1, stride=20000),
    dict(padding=1, stride=10**9),
    dict(padding=2**31, stride=2**31),
    dict(padding="full", dilation=(2**20, 1), stride=(2**20, 20)),
    dict(padding=((0, 2**40), (1, 1)), stride=(2**40, 20)),
    dict(padding=((2**33, 3), (0, 2**33)), dilation=(3, 2**32), stride=(2**32 + 1, 5)),
]
# The budget plus what a call needs besides its workspace (the output, Python objects, pages of
# code touched for the first time).
SLACK = 16 * 2**20

needs_clear_refs = pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK),
    reason="needs Linux's /proc/self/clear_refs to reset the peak RSS")

# The start of every child script: fastconv and the resident-set reader.
PRELUDE = """
import json, sys
import numpy as np
import fastconv

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

def peak(call):
    \"\"\"call() and how far the resident set grew above its start while it ran.\"\"\"
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    result = call()
    return result, status("VmHWM") - before
"""

CHILD = PRELUDE + """
x, k = np.ones((16, 16), np.float32), np.ones((3, 3), np.float32)
results = []
for method in ["auto", *fastconv.METHODS]:
    try:
        fastconv.conv2d(x, k, padding=1, method=method)  # load the kernels first
    except ValueError:
        pass
    for options in json.loads(sys.argv[1]):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS")
        try:
            fastconv.conv2d(x, k, method=method, **options)
            outcome = "ok"
        except ValueError as error:
            outcome = str(error)
        results.append((method, options, status("VmHWM") - before, outcome))
print(json.dumps(results))
"""


def _run_child(code, *args):
    """The JSON a child script prints last, run in a new process on this checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = os.environ | {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=900, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@needs_clear_refs
def test_extreme_geometries_stay_within_budget():
    results = _run_child(CHILD, json.dumps(EXTREME))
    assert len(results) == len(EXTREME) * (1 + len(fastconv.METHODS))
    limit = fastconv.get_workspace_budget() + SLACK
    for method, options, extra, outcome in results:
        assert extra <= limit, f"{method} {options}: +{extra / 2**20:.0f} MiB"
        # Only a strategy that declines may refuse; 'auto' and direct compute every case.
        if method in ("auto", "direct"):
            assert outcome == "ok", f"{method} {options}: {outcome}"
        else:
            assert outcome == "ok" or "cannot run this problem" in outcome, outcome


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_axis_sources_match_numpy_pad(mode):
    """The closed form the direct strategy gathers with equals index_maps' np.pad, also for
    paddings several times wider than the axis."""
    from fastconv.core.geometry import Geometry
    from fastconv.core.padding import index_maps

    for size in range(1, 7):
        for before in range(0, 20, 3):
            for after in range(0, 20, 4):
                geometry = Geometry(1, 1, size, 1, 1, 1, 1, (before, after, 0, 0), (1, 1),
                                    (1, 1), 1, mode, np.dtype(np.float64))
                expected = index_maps(geometry)[0]
                got = axis_sources(np.arange(size + before + after), size, before, mode)
                np.testing.assert_array_equal(got, expected, err_msg=f"{size} {before} {after}")


VOLUME_CHILD = PRELUDE + """
fastconv.conv3d(np.ones((9, 9, 9), np.float32), np.ones((7, 7, 7), np.float32), padding=3)
x = np.ones((512, 512, 512), np.float32)
w = np.full((7, 7, 7), 1 / 343, np.float32)
results = []
for method in sys.argv[1:]:
    out, extra = peak(lambda: fastconv.conv3d(x, w, padding=3, method=method))
    # Interior outputs average ones: 1 up to rounding.
    results.append((method, fastconv.last_method(), extra, out.nbytes,
                    float(abs(out[3:-3, 3:-3, 3:-3] - 1).max())))
    del out
print(json.dumps(results))
"""


@pytest.mark.slow
@needs_clear_refs
def test_a_512_cube_volume_runs_within_its_output_plus_the_budget():
    # conv3d's depth fold chunks its gathers (or reads in place) so that a 512^3 float32 volume
    # (512 MiB) with a 7^3 kernel needs its 512 MiB output plus the workspace budget.
    results = _run_child(VOLUME_CHILD, "auto", "direct", "fft")
    limit = fastconv.get_workspace_budget() + SLACK
    for method, ran, extra, output, error in results:
        assert extra - output <= limit, f"{method} ({ran}): +{(extra - output) / 2**20:.0f} MiB"
        assert error < 1e-5, (method, error)


PASSES_CHILD = PRELUDE + """
g = np.array([1, 4, 6, 4, 1], np.float32) / 16
w = np.repeat((g[:, None, None] * np.outer(g, g))[None, None], 4, axis=0)
fastconv.conv3d(np.ones((1, 4, 9, 9, 9), np.float32), w, padding=2, groups=4)
x = np.ones((1, 4, 128, 128, 128), np.float32)
with fastconv.workspace_budget(32 * 2**20):
    plan = fastconv.plan(x.shape, w.shape, padding=2, groups=4, weights=w, dtype=np.float32,
                         method="separable")
    out, extra = peak(lambda: fastconv.conv3d(x, w, padding=2, groups=4, method="separable"))
print(json.dumps([plan.reduction.channels, plan.reduction.chunks, extra, out.nbytes,
                  float(abs(out[:, :, 2:-2, 2:-2, 2:-2] - 1).max())]))
"""


@needs_clear_refs
def test_three_passes_stay_within_the_output_plus_the_budget():
    # Four 8 MiB channels, a 32 MiB budget: the passes' intermediate and result of one channel
    # (16 MiB) fill the fold's half, so four chunks of one channel; all at once would take
    # 64 MiB besides the output.
    channels, chunks, extra, output, error = _run_child(PASSES_CHILD)
    assert (channels, chunks) == (1, 4)
    assert extra - output <= 32 * 2**20 + SLACK, f"+{(extra - output) / 2**20:.0f} MiB"
    assert error < 1e-6


FLAT_CHILD = PRELUDE + """
fastconv.conv3d(np.ones((1, 1, 9, 9, 9), np.float32), np.ones((1, 1, 5, 5, 5), np.float32),
                method="fft")
x = np.ones((1, 1, 128, 128, 128), np.float32)
w = np.full((1, 1, 15, 15, 15), 1 / 15**3, np.float32)
with fastconv.workspace_budget(16 * 2**20):
    plan = fastconv.plan(x.shape, w.shape, padding=7, dtype=np.float32, method="fft")
    out, extra = peak(lambda: fastconv.conv3d(x, w, padding=7, method=plan))
print(json.dumps([plan.reduction.flat, plan.reduction.chunks, extra, out.nbytes,
                  float(abs(out[:, :, 7:-7, 7:-7, 7:-7] - 1).max())]))
"""


@needs_clear_refs
def test_flattened_fft_stays_within_the_output_plus_the_budget():
    # An 8 MiB volume with a 15^3 kernel and a 16 MiB budget: one image's flattened result
    # (12 MiB) exceeds the copies' share, so chunks of output depths.
    flat, chunks, extra, output, error = _run_child(FLAT_CHILD)
    assert flat and chunks > 1
    assert extra - output <= 16 * 2**20 + SLACK, f"+{(extra - output) / 2**20:.0f} MiB"
    assert error < 1e-5
