"""Latency a user meets before the first result: ``import fastconv`` and the first call.

    python bench/latency.py [--methods auto direct ...] [--calls image layer]
                            [--dtypes float32 float64] [--threads N] [--repeat 5] [--warmup]
                            [--json PATH]

Every number comes from a new Python process (interpreter start-up excluded):

* import: ``import fastconv``, and ``import numba`` alone for comparison (median of --repeat);
* first call, cold cache: NUMBA_CACHE_DIR is a new empty folder, so the call compiles its kernels;
* first call, warm cache: a second process on that folder, so the call loads them from disk;
* later call: the second call of the warm process, i.e. the work itself;
* warmup (``--warmup``): ``python -m fastconv warmup --dtypes ...`` (every strategy and the
  planner) into a new empty NUMBA_CACHE_DIR, wall time, then the first call of each --calls x
  --dtypes with method 'auto' in a new process on that folder (nothing left to compile).

Calls: ``image`` is ``correlate2d`` of a 256x256 image with a 5x5 kernel, 'same'; ``layer`` is
``conv2d`` of a 1x16x32x32 input with 16x16x3x3 weights, padding 1. Prints a markdown table;
``--json`` also saves the numbers for ``bench/report.py --latency``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine

IMPORT_CHILD = """
import time
start = time.perf_counter()
import {module}
print(time.perf_counter() - start)
"""

CALL_CHILD = """
import json, sys, time
import numpy as np
import fastconv
method, kind, dtype, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = np.random.default_rng(0)
if kind == "image":
    x, w = (rng.standard_normal(s).astype(dtype) for s in ((256, 256), (5, 5)))
    call = lambda: fastconv.correlate2d(x, w, "same", method=method, threads=threads)
else:
    x, w = (rng.standard_normal(s).astype(dtype) for s in ((1, 16, 32, 32), (16, 16, 3, 3)))
    call = lambda: fastconv.conv2d(x, w, padding=1, method=method, threads=threads)
seconds = []
try:
    for _ in range(2):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
except ValueError as error:  # the method declines this problem
    print(json.dumps({"error": str(error)}))
else:
    print(json.dumps({"first": seconds[0], "later": seconds[1]}))
"""


def _child(code, args=(), cache_dir=None):
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_warmup(calls, dtypes, threads):
    """Seconds of a full warmup from an empty cache, and of each first call after it."""
    with tempfile.TemporaryDirectory(prefix="fastconv-warmup-") as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, FASTCONV_NO_CACHE="0")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fastconv", "warmup", "--dtypes", *dtypes],
                              env=env, capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"the warmup failed:\n{done.stderr}")
        first = [{"call": kind, "dtype": dtype,
                  **_child(CALL_CHILD, ("auto", kind, dtype, threads), cache_dir)}
                 for kind in calls for dtype in dtypes]
    return {"dtypes": list(dtypes), "seconds": seconds, "first_calls": first}


def measure(methods, calls, dtypes, threads, repeat):
    data = {
        "machine": machine.describe(),
        "threads": threads,
        "import_seconds": {
            module: [_child(IMPORT_CHILD.format(module=module)) for _ in range(repeat)]
            for module in ("fastconv", "numba")
        },
        "calls": [],
    }
    for method in methods:
        for kind in calls:
            for dtype in dtypes:
                with tempfile.TemporaryDirectory(prefix="fastconv-latency-") as cache_dir:
                    args = (method, kind, dtype, threads)
                    cold = _child(CALL_CHILD, args, cache_dir)
                    warm = _child(CALL_CHILD, args, cache_dir)
                row = {"method": method, "call": kind, "dtype": dtype}
                if "error" in cold:
                    row["error"] = cold["error"]
                else:
                    row.update(cold_first=cold["first"], warm_first=warm["first"],
                               later=warm["later"])
                data["calls"].append(row)
                print(f"measured {method} {kind} {dtype}", file=sys.stderr)
    return data


def _seconds(value):
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"


def markdown(data):
    """The latency section of the report, as markdown lines."""
    imports = {module: statistics.median(values)
               for module, values in data["import_seconds"].items()}
    repeat = len(data["import_seconds"]["fastconv"])
    warmup = data.get("warmup")
    lines = [
        f"### Latency ({data['threads']} thread(s), each number from a new process)", "",
        f"- `import fastconv`: {_seconds(imports['fastconv'])} (median of {repeat}; "
        f"`import numba` alone: {_seconds(imports['numba'])})", "",
        "| method | call | dtype | first call, cold cache (compiles) | first call, warm cache "
        "| later calls |",
        "|---|---|---|---|---|---|",
    ]
    for row in data["calls"]:
        cells = ([f"declined: {row['error']}", "", ""] if "error" in row else
                 [_seconds(row["cold_first"]), _seconds(row["warm_first"]), _seconds(row["later"])])
        lines.append("| " + " | ".join([row["method"], row["call"], row["dtype"], *cells]) + " |")
    lines += ["", "Calls: `image` = `correlate2d` of 256x256 with 5x5, 'same'; `layer` = `conv2d` "
              "of 1x16x32x32 with 16x16x3x3, padding 1."]
    if warmup is not None:
        firsts = ", ".join(f"{row['call']} {row['dtype']} {_seconds(row['first'])}"
                           for row in warmup["first_calls"])
        lines += ["", f"- `python -m fastconv warmup --dtypes {' '.join(warmup['dtypes'])}` "
                  f"from an empty cache: {_seconds(warmup['seconds'])}; first calls ('auto') "
                  f"after it: {firsts}"]
    return lines


def main(argv=None):
    import numba

    import fastconv

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["auto", *fastconv.METHODS],
                        choices=["auto", *fastconv.METHODS])
    parser.add_argument("--calls", nargs="+", default=["image", "layer"],
                        choices=["image", "layer"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"],
                        choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--repeat", type=int, default=5, help="processes timing each import")
    parser.add_argument("--warmup", action="store_true",
                        help="also time a full warmup from an empty cache (minutes)")
    parser.add_argument("--json", type=Path, help="also save the numbers here")
    args = parser.parse_args(argv)
    data = measure(args.methods, args.calls, args.dtypes, args.threads, args.repeat)
    if args.warmup:
        data["warmup"] = measure_warmup(args.calls, args.dtypes, args.threads)
    if args.json is not None:
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    print("\n".join(markdown(data)))


if __name__ == "__main__":
    main()
