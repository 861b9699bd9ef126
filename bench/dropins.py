"""Interleaved timings of the N-D SciPy drop-ins (fastconv.signal, fastconv.ndimage) against
SciPy and OpenCV: every library of a problem runs once per round, in turn, so the machine's load
drifts over all of them alike.

    python bench/dropins.py [--threads 2] [--rounds 7] [--only signal ndimage3d image fft]

Prints, per problem, each library's median (min-max) and the peer's median over fastconv's
(above 1 when fastconv is faster). Every library's result is checked against fastconv's first.
SciPy's single-threaded ndimage on 4096x4096 with kernels above 7x7 takes seconds per call: it is
timed on a 1024x1024 crop and scaled by 16 (the work is proportional to the pixels), and the
table says so.
"""

import argparse
import statistics
import time

import numpy as np
from libraries import optional, thread_count

from fastconv import ndimage, signal


def _problems(only):
    rng = np.random.default_rng(17)
    scipy_signal = optional("scipy.signal")
    scipy_ndimage = optional("scipy.ndimage")
    cv2 = optional("cv2")
    if only is None or "signal" in only:
        x = rng.standard_normal(2**20)
        for k in (31, 255, 1023):
            w = rng.standard_normal(k)
            yield (f"signal.correlate 2^20 float64, k={k}, same", {
                "fastconv": lambda x=x, w=w: signal.correlate(x, w, "same"),
                "scipy auto": lambda x=x, w=w: scipy_signal.correlate(x, w, "same"),
            }, "scipy auto", 1)
    if only is None or "ndimage3d" in only:
        for dtype in ("float32", "float64"):
            x = rng.standard_normal((128, 128, 128)).astype(dtype)
            for k in (3, 7):
                w = rng.standard_normal((k, k, k))
                yield (f"ndimage.correlate 128^3 {dtype}, k={k}, reflect", {
                    "fastconv": lambda x=x, w=w: ndimage.correlate(x, w),
                    "scipy.ndimage": lambda x=x, w=w: scipy_ndimage.correlate(x, w),
                }, "scipy.ndimage", 1)
    if only is None or "image" in only:
        x = rng.standard_normal((4096, 4096)).astype(np.float32)
        crop = np.ascontiguousarray(x[:1024, :1024])
        for k in (3, 5, 7, 9, 11, 13, 15):
            w = rng.standard_normal((k, k)).astype(np.float32)
            scaled = k > 7
            calls = {
                "fastconv": lambda x=x, w=w: ndimage.correlate(x, w),
                "scipy.ndimage": (lambda c=crop, w=w: scipy_ndimage.correlate(c, w)) if scaled
                else (lambda x=x, w=w: scipy_ndimage.correlate(x, w)),
            }
            if cv2 is not None:
                calls["cv2.filter2D"] = lambda x=x, w=w: cv2.filter2D(
                    x, -1, w, borderType=cv2.BORDER_REFLECT)
            yield (f"ndimage.correlate 4096^2 float32, k={k}, reflect", calls, "scipy.ndimage",
                   {"scipy.ndimage": 16} if scaled else 1)
    if only is None or "fft" in only:
        for label, s1, s2 in (("2-D", (2048, 2048), (95, 95)), ("3-D", (128, 128, 128),
                                                                (31, 31, 31))):
            a, b = rng.standard_normal(s1), rng.standard_normal(s2)
            for name in ("fftconvolve", "oaconvolve"):
                yield (f"{name} {label} {s1} * {s2} float64, same", {
                    "fastconv": lambda a=a, b=b, n=name: getattr(signal, n)(a, b, "same"),
                    "scipy (workers=2)": lambda a=a, b=b, n=name: getattr(scipy_signal, n)(
                        a, b, "same"),
                }, "scipy (workers=2)", 1)


def _check(results, name):
    ours = np.asarray(results["fastconv"], np.float64)
    other = np.asarray(results[name], np.float64)
    if other.shape != ours.shape:  # a crop, timed for scaling: compare its interior
        h, w = other.shape
        ours, other = ours[:h - 16, :w - 16], other[:h - 16, :w - 16]
    error = float(np.max(np.abs(ours - other)))
    scale = float(np.max(np.abs(ours)))
    tolerance = 1e-4 if results["fastconv"].dtype == np.float32 else 1e-9
    assert error <= tolerance * scale, (name, error, scale)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    print(f"threads={args.threads}, rounds={args.rounds}")
    print("| problem | library | median | min-max | peer / fastconv |")
    print("|---|---|---|---|---|")
    for label, calls, _peer, factors in _problems(args.only):
        factors = factors if isinstance(factors, dict) else {}
        with thread_count(args.threads):
            results = {name: call() for name, call in calls.items()}  # warms up, and checks
            for name in calls:
                if name != "fastconv":
                    _check(results, name)
            del results
            times = {name: [] for name in calls}
            for _ in range(args.rounds):
                for name, call in calls.items():
                    start = time.perf_counter()
                    call()
                    times[name].append((time.perf_counter() - start) * factors.get(name, 1))
        base = statistics.median(times["fastconv"])
        for name, seconds in times.items():
            median = statistics.median(seconds)
            ratio = "" if name == "fastconv" else f"{median / base:.2f}x"
            note = " (1024^2 crop x 16)" if name in factors else ""
            print(f"| {label} | {name}{note} | {median * 1e3:.1f} ms | "
                  f"{min(seconds) * 1e3:.1f}-{max(seconds) * 1e3:.1f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
