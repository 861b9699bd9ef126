"""Per-call time of small calls, where overhead rather than arithmetic decides (issue 21's table).

    python bench/overhead.py [--threads 2] [--rounds 15] [--markdown PATH]

Each call runs in loops of about 2 ms after a warm-up (kernels compiled, plans cached); a round
is one such loop per library, the libraries interleaved, and the table gives the median over
rounds of the time per call. Ratios are the peer's median over fastconv's (above 1: fastconv is
faster); the issue's targets are:

* ``correlate2d`` from 4x4 to 64x64 within 2x of ``cv2.filter2D`` (ratio >= 0.5);
* ``conv2d`` of (1,1,28,28) and (32,1,28,28) with (8,1,3,3) float32 at or below torch (>= 1);
* ``correlate2d`` of 512x512 with k = 3 to 11 at least 100x ``scipy.signal.correlate2d``.

The empty call (1x1 with 1x1) is reported next to ``numpy.add`` of the same arrays: the least a
NumPy call costs. cv2 and torch rows are skipped when those libraries are absent.
"""

import argparse
import statistics
import sys
import time

import numba
import numpy as np
from libraries import optional

import fastconv

LOOP_SECONDS = 2e-3


def correlate_cases(rng):
    """(name, {library: call}) of the correlate2d rows."""
    cv2 = optional("cv2")
    from scipy import signal

    cases = []
    small = [(side, k, mode, "float64") for side, k, mode in ((4, 2, "valid"), (28, 3, "same"),
                                                               (64, 5, "same"))]
    large = [(512, k, "same", dtype) for dtype in ("float32", "float64") for k in (3, 5, 7, 9, 11)]
    for side, k, mode, dtype in small + large:
        x = rng.standard_normal((side, side)).astype(dtype)
        w = rng.standard_normal((k, k)).astype(dtype)
        calls = {"fastconv": lambda x=x, w=w, mode=mode: fastconv.correlate2d(x, w, mode)}
        if side < 512 and cv2 is not None:
            # 'valid': the window of cv2's output anchored at the kernel's corner.
            anchor, rows = ((0, 0), side - k + 1) if mode == "valid" else ((-1, -1), side)
            calls["cv2.filter2D"] = lambda x=x, w=w, anchor=anchor, rows=rows: cv2.filter2D(
                x, -1, w, anchor=anchor, borderType=cv2.BORDER_CONSTANT)[:rows, :rows]
        if side >= 512 or side <= 64:
            calls["scipy.signal"] = lambda x=x, w=w, mode=mode: signal.correlate2d(x, w, mode)
        cases.append((f"correlate2d {side}x{side} * {k}x{k} {mode} {dtype}", calls))
    return cases


def layer_cases(rng):
    torch = optional("torch")
    cases = []
    for batch in (1, 32):
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        w = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
        calls = {"fastconv": lambda x=x, w=w: fastconv.conv2d(x, w, padding=1)}
        if torch is not None:
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)
            calls["torch"] = lambda tx=tx, tw=tw: torch.nn.functional.conv2d(
                tx, tw, padding=1).numpy()
        cases.append((f"conv2d ({batch},1,28,28) * (8,1,3,3) padding 1 float32", calls))
    return cases


def empty_case():
    x, w = np.ones((1, 1)), np.ones((1, 1))
    return ("empty call 1x1 * 1x1", {"fastconv": lambda: fastconv.correlate2d(x, w),
                                     "numpy.add": lambda: np.add(x, w)})


def per_call(call):
    """Seconds per call of one loop of about LOOP_SECONDS."""
    start = time.perf_counter()
    call()
    single = max(time.perf_counter() - start, 1e-7)
    repeats = max(1, int(LOOP_SECONDS / single))
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def measure(cases, rounds):
    """{case: {library: median seconds per call}}, libraries interleaved in every round."""
    medians = {}
    for name, calls in cases:
        for call in calls.values():
            for _ in range(20):
                call()
        samples = {library: [] for library in calls}
        for _ in range(rounds):
            for library, call in calls.items():
                samples[library].append(per_call(call))
        medians[name] = {library: statistics.median(times) for library, times in samples.items()}
    return medians


def table(medians):
    lines = ["| call | fastconv | peer | peer / fastconv |", "|---|---|---|---|"]
    for name, by_library in medians.items():
        mine = by_library["fastconv"]
        peers = [library for library in by_library if library != "fastconv"] or [None]
        for peer in peers:
            if peer is None:
                lines.append(f"| {name} | {mine * 1e6:.1f} us | - | - |")
                continue
            theirs = by_library[peer]
            lines.append(f"| {name} | {mine * 1e6:.1f} us | {peer} {theirs * 1e6:.1f} us | "
                         f"{theirs / mine:.2f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    torch = optional("torch")
    if torch is not None:
        torch.set_num_threads(args.threads)
    cv2 = optional("cv2")
    if cv2 is not None:
        cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(0)
    cases = correlate_cases(rng) + layer_cases(rng) + [empty_case()]
    text = (f"threads={args.threads}, rounds={args.rounds}, medians of the time per call\n\n"
            + table(measure(cases, args.rounds)))
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
