"""Regret of ``method='auto'`` on 1-D and 3-D problems (issue 16's N-D grid; none of them is a
calibration problem): t(auto) / the fastest forced strategy, per problem, float32 and float64.

    python bench/regret_ranks.py [--threads 2]

Targets: median <= 1.05, worst <= 1.5. Each time is the minimum of three repeats of a batch of
calls lasting about 50 ms, after a warm-up call.
"""

import argparse
import statistics
import timeit

import numba
import numpy as np

import fastconv

# (rank, input shape, weight shape, options)
PROBLEMS = [
    (1, (8, 64, 4096), (64, 64, 3), dict(padding=1)),
    (1, (8, 32, 2048), (32, 32, 9), {}),
    (1, (1, 1, 65536), (1, 1, 31), dict(padding="same")),
    (1, (4, 16, 8192), (16, 1, 15), dict(groups=16, padding=7)),
    (1, (2, 8, 20000), (8, 8, 101), {}),
    (1, (16, 128, 512), (256, 128, 1), {}),
    (1, (8, 64, 2048), (64, 64, 5), dict(stride=2, padding=2)),
    (1, (1, 4, 100000), (4, 4, 7), dict(dilation=3)),
    (3, (2, 16, 24, 24, 24), (16, 16, 3, 3, 3), dict(padding=1)),
    (3, (1, 1, 64, 64, 64), (1, 1, 5, 5, 5), {}),
    (3, (1, 4, 32, 32, 32), (8, 4, 3, 3, 3), dict(stride=2, padding=1)),
    (3, (1, 1, 48, 48, 48), (1, 1, 9, 9, 9), dict(padding=4)),
    (3, (2, 8, 16, 32, 32), (8, 1, 3, 3, 3), dict(groups=8, padding=1)),
    (3, (1, 32, 16, 16, 16), (64, 32, 1, 1, 1), {}),
    (3, (1, 2, 40, 40, 40), (4, 2, 7, 7, 7), dict(padding=3)),
    (3, (4, 8, 12, 12, 12), (16, 8, 3, 3, 3), {}),
]


def _seconds(function, x, w, method, options):
    def call():
        function(x, w, method=method, **options)

    call()
    start = timeit.default_timer()
    call()
    number = max(1, min(50, int(0.05 / max(timeit.default_timer() - start, 1e-9))))
    return min(timeit.repeat(call, number=number, repeat=3)) / number


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    numba.set_num_threads(parser.parse_args(argv).threads)
    rng = np.random.default_rng(0)
    regrets = []
    for dtype in (np.float32, np.float64):
        for rank, x_shape, w_shape, options in PROBLEMS:
            function = fastconv.conv1d if rank == 1 else fastconv.conv3d
            x = rng.standard_normal(x_shape).astype(dtype)
            w = rng.standard_normal(w_shape).astype(dtype)
            times = {}
            for method in (*fastconv.METHODS, "auto"):
                try:
                    times[method] = _seconds(function, x, w, method, options)
                except ValueError:  # the strategy declines the problem
                    pass
            auto = times.pop("auto")
            fastest = min(times, key=times.get)
            regrets.append(auto / times[fastest])
            print(f"{rank}-D {x_shape} * {w_shape} {np.dtype(dtype).name}: auto "
                  f"{auto * 1e3:.3f} ms, fastest {fastest} {times[fastest] * 1e3:.3f} ms, "
                  f"regret {regrets[-1]:.2f}", flush=True)
    regrets.sort()
    within = sum(r <= 1.15 for r in regrets) / len(regrets)
    print(f"N-D regret over {len(regrets)} problems: median {statistics.median(regrets):.3f}, "
          f"worst {regrets[-1]:.3f}, within 1.15: {within:.0%}")


if __name__ == "__main__":
    main()
