"""``python -m fastconv calibrate``: fit the cost model's machine constants to timings of the
strategies on this machine, and store them in the per-user cache file.

Every strategy with a cost model is timed on a fixed set of small problems (a few milliseconds
each, chosen to separate the terms of its model: short and long rows, few and many taps and
channels, strides, float32 and float64), on one thread. Its constants are then the non-negative
least-squares fit of the model's terms to those timings (constants it shares with a strategy
fitted before it, such as the GEMM's, keep that fit), weighted by 1/time so that small and
large problems count alike (the planner's mistakes cost in ratios, not in seconds). The two
threading constants come from one small and one large direct problem timed on one thread and on
all of them.
"""

import time
from dataclasses import asdict, replace
from datetime import UTC, datetime

import numpy as np

from ._cost import DEFAULTS, MODELS, evaluate, save_constants
from ._methods import REGISTRY
from ._threads import numba_threads
from ._validate import Geometry, Problem

# Each problem is timed in ROUNDS rounds over every strategy's problems (see _time), each round
# spending up to SECONDS_PER_ROUND on it; the minimum over all runs is kept.
ROUNDS = 7
SECONDS_PER_ROUND = 0.04
MAX_RUNS = 10
# A parallel launch this slow means other processes hold the cores (idle: 4-30 us, depending on
# the threading layer; the omp layer stalls ~8 ms per launch under contention).
BUSY_LAUNCH = 1e-3
THREAD_PAIRS = 5


def _geometry(batch, channels, size, out_channels, kernel, dtype, stride=1, padding=0,
              dilation=1, groups=1):
    height, width = size if isinstance(size, tuple) else (size, size)
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    return Geometry(
        batch=batch, channels=channels, height=height, width=width, out_channels=out_channels,
        kernel_height=kh, kernel_width=kw, padding=(padding,) * 4, stride=(stride, stride),
        dilation=(dilation, dilation), groups=groups, padding_mode="zeros",
        dtype=np.dtype(dtype),
    )


def _problems():
    """Calibration problems per strategy: small, and none of them in bench/test_regret.py."""
    direct = []
    for dtype in ("float32", "float64"):
        direct += [
            _geometry(1, 1, (400, 700), 1, 3, dtype),  # long rows, few taps
            _geometry(1, 1, (1500, 24), 1, 5, dtype, padding=2),  # short rows
            _geometry(1, 1, (200, 300), 1, 13, dtype),  # many taps
            _geometry(1, 1, (300, 1100), 1, (2, 9), dtype),  # rectangular, two row chunks
            _geometry(4, 64, 20, 64, 3, dtype, padding=1, groups=64),  # depthwise, short rows
            _geometry(1, 8, 120, 12, 5, dtype, stride=2, padding=2),  # strided, channels
            _geometry(4, 24, 60, 24, 3, dtype, stride=2, padding=1, groups=24),  # strided copies
            _geometry(2, 3, 140, 4, 3, dtype, dilation=2),  # dilated
            _geometry(2, 4, 72, 8, 5, dtype, padding=2),  # channels: many passes per output
            _geometry(4, 16, 24, 16, 3, dtype, padding=1),  # more channels, short rows
            _geometry(2, 1, 96, 32, 3, dtype, padding=1),  # one channel to many: unit rows
            _geometry(1, 1, 16, 1, 3, dtype),  # tiny: the fixed cost
        ]
    im2col = []
    for dtype in ("float32", "float64"):
        im2col += [
            _geometry(2, 64, 28, 64, 3, dtype, padding=1),  # ResNet-like 3x3
            _geometry(1, 128, 10, 256, 3, dtype, padding=1),  # short rows, many channels
            _geometry(2, 96, 24, 32, 1, dtype),  # 1x1: GEMM on the input
            _geometry(1, 256, 12, 128, 1, dtype),  # 1x1, few pixels: weight packing
            _geometry(2, 128, 28, 64, 1, dtype),  # 1x1 through the micro-kernel
            _geometry(1, 3, 96, 48, 7, dtype, stride=2, padding=3),  # stem-like, strided
            _geometry(1, 16, 40, 16, 9, dtype, padding=4),  # few channels, big kernel
            _geometry(1, 32, 50, 8, 3, dtype, padding=1),  # few output channels
            _geometry(2, 1, 96, 32, 3, dtype, padding=1),  # one input channel: a shallow GEMM
            _geometry(4, 32, 16, 32, 3, dtype, padding=1, groups=4),  # groups
            _geometry(4, 48, 12, 48, 3, dtype, padding=1, groups=48),  # depthwise: a GEMM per plane
            _geometry(2, 240, 7, 240, 3, dtype, padding=1, groups=240),  # depthwise, tiny GEMMs
            _geometry(2, 24, 40, 24, 3, dtype, stride=2, padding=1, groups=24),  # strided depthwise
            _geometry(1, 1, (200, 300), 1, 5, dtype),  # single channel: streaming the columns
            _geometry(1, 1, (300, 200), 1, (25, 2), dtype),  # tall kernel: a GEMM call per row
            _geometry(1, 8, 8, 8, 3, dtype),  # tiny: the fixed costs
            _geometry(1, 8, 8, 8, 1, dtype),
            _geometry(2, 32, 30, 64, 3, dtype, padding=1),  # implicit GEMM: few input channels
            _geometry(1, 64, 16, 128, 5, dtype, padding=2),  # implicit GEMM: 5x5
            _geometry(4, 128, 9, 64, 3, dtype),  # implicit GEMM: short rows, unpadded
        ]
    fft = []
    for dtype in ("float32", "float64"):
        fft += [
            _geometry(1, 1, 200, 1, 21, dtype, padding=10),  # one tile
            _geometry(1, 1, (700, 500), 1, 15, dtype),  # overlap-save tiles
            _geometry(1, 1, 300, 1, 45, dtype, padding=22),  # large kernel
            _geometry(2, 8, 64, 8, 11, dtype, padding=5),  # channel sums
            _geometry(1, 24, 40, 24, 9, dtype, padding=4),  # more channels
            _geometry(1, 4, 100, 4, 13, dtype, stride=2, padding=6),  # strided
            _geometry(1, 1, 24, 1, 9, dtype),  # tiny: the fixed cost
        ]
    winograd = []
    for dtype in ("float32", "float64"):
        winograd += [
            _geometry(2, 64, 28, 64, 3, dtype, padding=1),  # ResNet-like
            _geometry(1, 128, 10, 256, 3, dtype, padding=1),  # short rows, many channels
            _geometry(4, 16, 48, 16, 3, dtype, padding=1),  # few channels: the transforms
            _geometry(1, 32, 90, 8, 3, dtype, padding=1),  # few output channels
            _geometry(2, 48, 21, 48, 3, dtype),  # odd sizes, unpadded
            _geometry(4, 32, 16, 32, 3, dtype, padding=1, groups=4),  # groups
            _geometry(1, 8, 8, 8, 3, dtype, padding=1),  # tiny: the fixed costs
        ]
    return {"direct": direct, "im2col": im2col, "fft": fft, "winograd": winograd}


def _problem(geometry, rng):
    g = geometry
    x = rng.standard_normal((g.batch, g.channels, g.height, g.width)).astype(g.dtype)
    w = rng.standard_normal(
        (g.out_channels, g.channels // g.groups, g.kernel_height, g.kernel_width)).astype(g.dtype)
    return Problem(geometry=g, x=x, w=w, bias=np.zeros(g.out_channels, g.dtype),
                   fill=np.zeros(1, g.dtype))


def _time(runs, threads):
    """Minimum seconds of each (method, problem) in ``runs``, after a warm-up run of each. Every
    round covers all of them, so that a burst of load from another process (seconds long on a
    shared machine) spoils a round of every strategy alike rather than all rounds of one."""
    best = [float("inf")] * len(runs)
    with numba_threads(threads):
        for method, problem in runs:
            REGISTRY[method].run(problem, threads)
        for _ in range(ROUNDS):
            for i, (method, problem) in enumerate(runs):
                run = REGISTRY[method].run
                spent = 0.0
                for _ in range(MAX_RUNS):
                    start = time.perf_counter()
                    run(problem, threads)
                    seconds = time.perf_counter() - start
                    best[i] = min(best[i], seconds)
                    spent += seconds
                    if spent > SECONDS_PER_ROUND:
                        break
    return best


def fit(rows, seconds, names, known):
    """Non-negative least squares of ``seconds`` on the term tables ``rows``, relative error,
    after the ``known`` seconds of each row (its terms fitted before). Returns {name: value} for
    ``names``."""
    from scipy.optimize import nnls

    a = np.array([[row.get(name, 0.0) for name in names] for row in rows])
    t = np.asarray(seconds)
    scale = a.max(axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(a / scale / t[:, None], 1 - np.asarray(known) / t)
    return dict(zip(names, solution / scale, strict=True))


def calibrate(threads, report=print):
    """Measure and fit every constant; returns the fitted MachineConstants (not saved)."""
    rng = np.random.default_rng(0)
    constants = DEFAULTS
    budget = 64 * 2**20
    fitted = set()
    problems = _problems()
    runs = [(method, _problem(g, rng)) for method, geometries in problems.items()
            for g in geometries]
    started = time.perf_counter()
    times = _time(runs, 1)
    report(f"timed {len(runs)} problems in {time.perf_counter() - started:.1f} s")
    first = 0
    for method, geometries in problems.items():
        seconds = times[first:first + len(geometries)]
        first += len(geometries)
        rows = [MODELS[method](g, 1, budget, constants).terms for g in geometries]
        # Constants shared with a strategy fitted before (the GEMM's) keep that fit.
        names = sorted({name for row in rows for name in row} - fitted)
        known = [evaluate({k: v for k, v in row.items() if k in fitted}, constants)
                 for row in rows]
        values = fit(rows, seconds, names, known)
        fitted.update(names)
        constants = replace(constants, **values)
        errors = [evaluate(row, constants) / t for row, t in zip(rows, seconds, strict=True)]
        report(f"{method}: {len(rows)} problems; estimate/measured {min(errors):.2f} .. "
               f"{max(errors):.2f}")
    if threads > 1:
        constants = _threading(constants, threads, rng, report)
    return constants


def _threading(constants, threads, rng, report):
    """``launch`` from a tiny problem and ``parallel`` from a large one, at 1 and ``threads``."""
    tiny = _geometry(1, 1, 24, 1, 3, "float32")
    large = _geometry(2, 4, (256, 512), 4, 5, "float32", padding=2)
    budget = 64 * 2**20
    problems = [_problem(g, rng) for g in (tiny, large)]
    # Minima over THREAD_PAIRS pairs of (one thread, all threads) timings, as for every other
    # timing here: a single pair varied from 0.69 to 1.00 in parallel efficiency between runs on
    # the quiet reference machine, and medians of five still gave 0.65-1.00, since another
    # process on a core slows the all-threads runs most.
    runs = [("direct", problem) for problem in problems]
    pairs = [(_time(runs, 1), _time(runs, threads)) for _ in range(THREAD_PAIRS)]
    times = {tiny: tuple(min(p[k][0] for p in pairs) for k in range(2)),
             large: tuple(min(p[k][1] for p in pairs) for k in range(2))}
    launch = max(times[tiny][1] - times[tiny][0], 0.0)
    if launch > BUSY_LAUNCH:
        report(f"threads: starting {threads} threads took {launch * 1e3:.2f} ms: the machine "
               "looks busy (another process on the cores), so the threading constants keep "
               "their defaults; calibrate again on an idle machine")
        return constants
    single, measured = times[large]
    # The model's share of the work that the slowest thread does (imbalance included, perfect
    # speed), applied to the measured one-thread work: the rest of the two-thread time is the
    # per-thread slowdown. Ratios of the model, not its absolute work, which may be off.
    ideal = replace(constants, parallel=1.0, launch=launch)
    fixed_one = constants.direct_call
    fixed_many = constants.direct_call + launch
    share = ((evaluate(MODELS["direct"](large, threads, budget, ideal).terms, ideal) - fixed_many)
             / (evaluate(MODELS["direct"](large, 1, budget, ideal).terms, ideal) - fixed_one))
    parallel = (single - fixed_one) * share / max(measured - fixed_many, 1e-9)
    parallel = min(max(parallel, 0.3), 1.0)
    report(f"threads: launch {launch * 1e6:.1f} us, parallel efficiency {parallel:.2f} "
           f"({single * 1e3:.2f} ms on 1 thread, {measured * 1e3:.2f} ms on {threads})")
    return replace(constants, launch=launch, parallel=parallel)


def main(threads=None, save=True, report=print):
    """Calibrate, print the constants (as a Python literal for fastconv/_cost.py's DEFAULTS) and
    store them in the cache file."""
    import numba

    threads = numba.config.NUMBA_NUM_THREADS if threads is None else threads
    started = time.perf_counter()
    constants = calibrate(threads, report)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    values = {k: v for k, v in asdict(constants).items() if k != "source"}
    report("MachineConstants(")
    for name, value in values.items():
        report(f"    {name}={value:.4g},")
    report(")")
    if save:
        path = save_constants(constants, when)
        report(f"saved to {path}")
    report(f"calibration took {time.perf_counter() - started:.1f} s")
    return constants
