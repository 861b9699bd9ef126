"""Time the same calls on two or more source trees of fastconv, in alternating fresh processes
(interleaved, so that a slow spell of the machine hits every tree alike), and print the medians.

    python bench/compare_trees.py OLD_TREE NEW_TREE [--rounds 4] [--threads 2]

A tree is a directory holding a ``fastconv`` package (a git worktree of another commit, say).
Each process times every case (minimum over repeats) after two warm-up calls; the table gives
each case's median over the rounds and the ratio of each tree to the first.
"""

import argparse
import os
import statistics
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import sys, timeit
    sys.path.insert(0, sys.argv[1])
    import numba
    import numpy as np
    import fastconv
    numba.set_num_threads(int(sys.argv[2]))
    rng = np.random.default_rng(0)

    def image(h, k, mode="same"):
        a, b = rng.random((h, h)), rng.random((k, k))
        return lambda: fastconv.correlate2d(a, b, mode)

    def layer(n, c, k, s, kk, dtype=np.float32, padding=1, groups=1, stride=1):
        x = rng.random((n, c, s, s)).astype(dtype)
        w = rng.random((k, c // groups, kk, kk)).astype(dtype)
        return lambda: fastconv.conv2d(x, w, padding=padding, groups=groups, stride=stride)

    def volume(s, k, dtype):
        x = rng.random((s, s, s)).astype(dtype)
        w = rng.random((k, k, k)).astype(dtype)
        return lambda: fastconv.conv3d(x, w, padding=k // 2)

    def gaussian(k):
        g = np.exp(-(np.arange(k) - (k - 1) / 2) ** 2 / (2 * (k / 6) ** 2))
        return g / g.sum()

    def smoothed(shape, k):
        from fastconv import ndimage
        x = rng.random(shape)
        g = gaussian(k)
        w = g[:, None] * g if len(shape) == 2 else g[:, None, None] * np.outer(g, g)
        return lambda: ndimage.correlate(x, w)

    cases = {
        "image 1x1 k1": image(1, 1), "image 4x4 k2 valid": image(4, 2, "valid"),
        "image 28x28 k3": image(28, 3), "image 64x64 k5": image(64, 5),
        "image 512x512 k3": image(512, 3), "image 512x512 k15": image(512, 15),
        "layer 1x1x28x28 8 3x3": layer(1, 1, 8, 28, 3, padding=0),
        "layer 8x64x56x56 3x3 fp32": layer(8, 64, 64, 56, 3),
        "layer 8x256x14x14 3x3 fp32": layer(8, 256, 256, 14, 3),
        "layer 8x256x56x56 1x1 fp32": layer(8, 256, 64, 56, 1, padding=0),
        "layer 8x16x128x128 15x15 fp64": layer(8, 16, 16, 128, 15, np.float64, 7),
        "layer 8x3x112x112 16 3x3 fp32": layer(8, 3, 16, 112, 3),
        "layer 8x128x56x56 depthwise 3x3 fp32": layer(8, 128, 128, 56, 3, groups=128),
        "layer 8x144x56x56 depthwise 3x3/2 fp32": layer(8, 144, 144, 56, 3, groups=144,
                                                        stride=2),
        "layer 8x64x56x56 -> 128 3x3/2 fp32": layer(8, 64, 128, 56, 3, stride=2),
        "volume 128^3 3x3x3 fp32": volume(128, 3, np.float32),
        "volume 128^3 3x3x3 fp64": volume(128, 3, np.float64),
        "volume 64^3 5x5x5 fp32": volume(64, 5, np.float32),
        "ndimage 2048^2 Gaussian 15x15 fp64": smoothed((2048, 2048), 15),
        "ndimage 128^3 Gaussian 9^3 fp64": smoothed((128, 128, 128), 9),
    }
    for name, call in cases.items():
        call()
        call()
        start = timeit.default_timer()
        call()
        number = max(1, min(200, int(0.02 / max(timeit.default_timer() - start, 1e-9))))
        seconds = min(timeit.repeat(call, number=number, repeat=7)) / number
        print(f"{name}\\t{seconds}")
""")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    times = {tree: {} for tree in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            out = subprocess.run([sys.executable, "-c", CHILD, os.path.abspath(tree),
                                  str(args.threads)], capture_output=True, text=True, check=True,
                                 cwd=os.path.dirname(os.path.abspath(tree)) or ".").stdout
            for line in out.splitlines():
                name, seconds = line.split("\t")
                times[tree].setdefault(name, []).append(float(seconds))
    first = args.trees[0]
    print("| case | " + " | ".join(args.trees) + " | " +
          " | ".join(f"{t} / {first}" for t in args.trees[1:]) + " |")
    print("|---" * (1 + 2 * len(args.trees) - 1) + "|")
    for name in times[first]:
        medians = [statistics.median(times[tree][name]) for tree in args.trees]
        cells = [f"{m * 1e6:.1f} us" if m < 1e-3 else f"{m * 1e3:.2f} ms" for m in medians]
        ratios = [f"{m / medians[0]:.2f}" for m in medians[1:]]
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
