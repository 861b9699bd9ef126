"""Interleaved timings of the conv1d/conv3d workloads (workloads.RANK_LAYERS): every library of
a problem runs once per round, in turn, so the machine's load drifts over all of them alike.

    python bench/ranks.py [--grid quick] [--threads 2] [--rounds 7] [--dtypes float32 float64]

Prints, per problem, each library's median (min-max) and its ratio to the peer (torch, or
scipy.ndimage.correlate where that applies): peer time / library time, above 1 when fastconv is
faster. Results are checked against fastconv's direct method first.
"""

import argparse
import statistics
import time

import numpy as np
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(RANK_GRIDS), default="quick")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--only", nargs="*", default=None, help="labels of RANK_LAYERS to run")
    args = parser.parse_args()
    print(f"threads={args.threads}, rounds={args.rounds}, grid={args.grid}")
    print("| problem | library | median | min-max | peer / library |")
    print("|---|---|---|---|---|")
    for workload in RANK_GRIDS[args.grid]:
        if workload.dtype not in args.dtypes or (args.only and workload.label not in args.only):
            continue
        x, w = rank_data(workload)
        calls = {}
        with thread_count(args.threads):
            function = fastconv.conv1d if workload.rank == 1 else fastconv.conv3d
            expected = function(x, w, padding=workload.padding, method="direct",
                                threads=args.threads)
            bound = rank_error_bound(workload, x, w)
            for library in rank_libraries():
                if not library.applies(workload) or optional(library.module) is None:
                    continue
                if rank_declines(library, workload) is not None:
                    continue
                call = library.prepare(workload, x, w, args.threads)
                error = float(np.max(np.abs(np.asarray(call()) - expected)))  # also warms up
                assert error <= bound, (library.name, workload.name, error, bound)
                calls[library.name] = call
            times = {name: [] for name in calls}
            for _ in range(args.rounds):
                for name, call in calls.items():
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
        peer = "scipy.ndimage.correlate" if "scipy.ndimage.correlate" in times else "torch"
        peer_median = statistics.median(times[peer]) if peer in times else None
        for name, seconds in times.items():
            median = statistics.median(seconds)
            ratio = "" if peer_median is None or name == peer else f"{peer_median / median:.2f}x"
            print(f"| {workload.name} | {name} | {median * 1e3:.2f} ms | "
                  f"{min(seconds) * 1e3:.2f}-{max(seconds) * 1e3:.2f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
