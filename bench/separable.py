"""Separable kernels given whole to fastconv, against the peers that take the 1-D factors.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/separable.py [--rounds 7]

Workloads (issue 19): Gaussian k = 7, 15, 31, 63 and box 31 on 4096x4096 float32 and
2048x2048 float64. Every library runs on 2 threads (SciPy's ndimage on one: it has no threads),
in interleaved rounds (each round times every library once per workload, so load from other
processes spoils a round of all of them alike); the table shows medians and the spread
(min-max over rounds) in milliseconds, and each peer's median over fastconv's:

* ``fastconv.conv2d``: ``conv2d(x, outer(g, g), padding="same", padding_mode="reflect")`` (auto);
* ``cv2.sepFilter2D``: ``BORDER_REFLECT_101`` (the same padding);
* ``ndimage.correlate1d x2``: along each axis, ``mode="mirror"`` (the same padding);
* ``fastconv.correlate2d``: ``correlate2d(x, outer(g, g), "same", "symm")`` (auto), and
  ``before``: the same call with the plan fastconv made before the separable strategy (from the
  shapes alone: the rank unknown, so every other strategy competes as before);
* ``gaussian_filter``: ``fastconv.ndimage.gaussian_filter`` and SciPy's, the same Gaussian by its
  sigma and radius (``mode="mirror"``; Gaussian rows only);
* ``copy``: ``np.copyto`` of the image: reading and writing it once, the memory bound two passes
  should approach. ``GB/s`` is (input + output bytes) / median time for fastconv.conv2d and copy.

Volumes (``--volumes``): Gaussian k = 5, 9, 17 (k^3 kernels) on 128^3 float32 and float64, given
whole to ``conv3d(x, g3, padding="same", padding_mode="reflect")`` (labelled fastconv.conv2d in the
table, the column everything is divided by): three passes where the estimates say so. Peers:
``ndimage.correlate1d x3`` (what ``gaussian_filter`` does), ``before`` (the plan made from the
shapes alone: depth taps folded into channels, as before the passes) and ``copy``.

Every result is checked against fastconv's ``direct`` method before timing.
"""

import argparse
import statistics
import time

import numpy as np
from libraries import thread_count

import fastconv

THREADS = 2


def gaussian(k):
    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-(t**2) / (2 * (k / 6) ** 2))
    return g / g.sum()


def gaussian_filters(label, x):
    """fastconv's and SciPy's ``gaussian_filter`` of ``x`` for a Gaussian workload (sigma k / 6,
    radius k // 2, as :func:`gaussian`), or none for the box."""
    from scipy import ndimage

    from fastconv import ndimage as fastconv_ndimage

    if "gauss" not in label:
        return {}
    k = int(label.split("gauss")[1].split("^")[0])
    options = dict(sigma=k / 6, radius=k // 2, mode="mirror")
    return {"fastconv gaussian_filter": lambda: fastconv_ndimage.gaussian_filter(x, **options),
            "scipy gaussian_filter": lambda: ndimage.gaussian_filter(x, **options)}


def workloads():
    for size, dtype in ((4096, "float32"), (2048, "float64")):
        for name, k in (("gauss", 7), ("gauss", 15), ("gauss", 31), ("gauss", 63), ("box", 31)):
            g = gaussian(k) if name == "gauss" else np.full(k, 1 / k)
            yield f"{size}^2 {dtype} {name}{k}", size, np.dtype(dtype), g.astype(dtype)


def libraries(x, g):
    import cv2
    from scipy import ndimage

    w = np.outer(g, g)
    before = fastconv.plan(x.shape, w.shape, dtype=x.dtype, padding="same",
                           padding_mode="symmetric", threads=THREADS)
    out = np.empty_like(x)
    return {
        "fastconv.conv2d": lambda: fastconv.conv2d(x, w, padding="same", padding_mode="reflect"),
        "cv2.sepFilter2D": lambda: cv2.sepFilter2D(x, -1, g, g,
                                                   borderType=cv2.BORDER_REFLECT_101),
        "ndimage.correlate1d x2": lambda: ndimage.correlate1d(
            ndimage.correlate1d(x, g, axis=0, mode="mirror"), g, axis=1, mode="mirror"),
        "fastconv.correlate2d": lambda: fastconv.correlate2d(x, w, "same", "symm"),
        "before": lambda: fastconv.correlate2d(x, w, "same", "symm", method=before),
        "copy": lambda: np.copyto(out, x),
    }, before.method


def volume_workloads():
    for dtype in ("float32", "float64"):
        for k in (5, 9, 17):
            yield f"128^3 {dtype} gauss{k}^3", 128, np.dtype(dtype), gaussian(k).astype(dtype)


def volume_libraries(x, g):
    from scipy import ndimage

    w = g[:, None, None] * np.outer(g, g)
    options = dict(padding="same", padding_mode="reflect")
    before = fastconv.plan(x.shape, w.shape, dtype=x.dtype, rank=3, threads=THREADS, **options)
    out = np.empty_like(x)

    def correlate1d_x3():
        y = x
        for axis in range(3):
            y = ndimage.correlate1d(y, g, axis=axis, mode="mirror")
        return y

    return {
        "fastconv.conv2d": lambda: fastconv.conv3d(x, w, **options),
        "ndimage.correlate1d x3": correlate1d_x3,
        "before": lambda: fastconv.conv3d(x, w, method=before, **options),
        "copy": lambda: np.copyto(out, x),
    }, before.method


def check_volume(calls, x, g):
    w = g[:, None, None] * np.outer(g, g)
    tolerance = 1e-5 if x.dtype == np.float32 else 1e-13
    scale = np.abs(x).max() * np.abs(w).sum()
    expected = fastconv.conv3d(x, w, padding="same", padding_mode="reflect", method="direct")
    for name, call in calls.items():
        if name != "copy":
            error = np.abs(call().astype(np.float64) - expected).max()
            assert error <= 2 * tolerance * scale, (name, error / scale)


def check(calls, x, g):
    w = np.outer(g, g)
    tolerance = 1e-5 if x.dtype == np.float32 else 1e-13
    scale = np.abs(x).max() * np.abs(w).sum()
    reflect = fastconv.conv2d(x, w, padding="same", padding_mode="reflect", method="direct")
    symm = fastconv.correlate2d(x, w, "same", "symm", method="direct")
    for name, call in calls.items():
        if name == "copy":
            continue
        expected = symm if "correlate2d" in name or name == "before" else reflect
        error = np.abs(call().astype(np.float64) - expected).max()
        # cv2 accumulates float32 rows in float32 like fastconv; allow both their roundings.
        assert error <= 2 * tolerance * scale, (name, error / scale)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--volumes", action="store_true",
                        help="3-D Gaussians on 128^3 volumes instead of the 2-D images")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with thread_count(THREADS):
        cases = []
        for label, size, dtype, g in volume_workloads() if args.volumes else workloads():
            x = rng.standard_normal((size,) * (3 if args.volumes else 2)).astype(dtype)
            calls, before = (volume_libraries if args.volumes else libraries)(x, g)
            calls.update(gaussian_filters(label, x))
            (check_volume if args.volumes else check)(calls, x, g)
            calls["fastconv.conv2d"]()
            chosen = fastconv.last_method()
            cases.append((label, x, calls, before, chosen, {name: [] for name in calls}))
        for _ in range(args.rounds):
            for _, _, calls, _, _, times in cases:
                for name, call in calls.items():
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
        for label, x, _, before, chosen, times in cases:
            ours = statistics.median(times["fastconv.conv2d"])
            rows.append(f"\n{label}: auto chose {chosen}; before the change {before}")
            for name, seconds in times.items():
                median = statistics.median(seconds)
                extra = ""
                if name in ("fastconv.conv2d", "copy"):
                    extra = f"  {2 * x.nbytes / median / 1e9:6.2f} GB/s"
                rows.append(f"  {name:<24}{median * 1e3:9.2f} ms  ({min(seconds) * 1e3:.2f}-"
                            f"{max(seconds) * 1e3:.2f})  x{median / ours:6.2f}{extra}")
    print(f"{THREADS} threads, {args.rounds} interleaved rounds; medians (min-max), ratio to "
          "fastconv.conv2d")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
