"""``python -m fastconv calibrate``: fit the cost model's machine constants to timings of the
strategies on this machine, and store them in the per-user cache file.

Every strategy with a cost model is timed on a fixed set of small problems (a few milliseconds each,
chosen to separate the terms of its model: short and long rows, few and many taps and channels,
strides, float32 and float64), on one thread, and on a few conv1d and conv3d problems
(RANK_PROBLEMS), timed whole through the rank reduction (planning/ranks.py: 3-D gathers or plane
maps included) and priced as the 2-D problem they run as. Its constants are then the non-negative
least-squares fit of the model's terms to those timings (constants it shares with a strategy fitted
before it, such as the GEMM's, keep that fit), weighted by 1/time so that small and large problems
count alike (the planner's mistakes cost in ratios, not in seconds). The two threading constants
come from one small and one large direct problem timed on one thread and on all of them.
"""

import time
from datetime import UTC, datetime

import numpy as np

from ..core.geometry import NdGeometry, Problem, make_geometry
from ..core.threads import numba_threads
from ..strategies import REGISTRY
from .constants import defaults, evaluate, save_constants
from .ranks import correlate_nd, plan_nd, reduce_nd

# Each problem is timed in ROUNDS rounds over every strategy's problems (see _time), each round
# spending up to SECONDS_PER_ROUND on it; the minimum over all runs is kept.
ROUNDS = 7
SECONDS_PER_ROUND = 0.04
MAX_RUNS = 10
# A parallel launch this slow means other processes hold the cores (idle: 4-30 us, depending on
# the threading layer; the omp layer stalls ~8 ms per launch under contention).
BUSY_LAUNCH = 1e-3
THREAD_PAIRS = 5
# The budget the problems are planned and timed under (each fits it whole).
BUDGET = 64 * 2**20




def _rank_problem(input_shape, weight_shape, padding, dtype):
    rank = len(input_shape) - 2
    return NdGeometry(input_shape=input_shape, weight_shape=weight_shape, stride=(1,) * rank,
                      dilation=(1,) * rank, padding=((padding, padding),) * rank, groups=1,
                      padding_mode="zeros", dtype=np.dtype(dtype))


# conv1d and conv3d problems every strategy that runs them is also timed on (none of them in
# bench/regret_ranks.py): sequences with channels and one long one-channel signal; one-channel
# volumes (small and large kernels) and a volume with channels.
RANK_PROBLEMS = [
    _rank_problem(x, w, padding, dtype)
    for dtype in ("float32", "float64")
    for x, w, padding in [
        ((4, 16, 4096), (16, 16, 9), 4),
        ((8, 32, 1024), (32, 32, 3), 1),
        ((1, 1, 2**17), (1, 1, 31), 0),
        ((1, 1, 64, 64, 64), (1, 1, 3, 3, 3), 1),
        ((1, 1, 40, 40, 40), (1, 1, 7, 7, 7), 3),
        ((1, 4, 24, 24, 24), (8, 4, 3, 3, 3), 1),
    ]
]


def problems():
    """Each modelled strategy's calibration problems: its own (declared beside its model), then
    the RANK_PROBLEMS whose reduction it runs."""
    chosen = {}
    for name, strategy in REGISTRY.items():
        if strategy.calibration_problems():
            chosen[name] = list(strategy.calibration_problems()) + [
                nd for nd in RANK_PROBLEMS
                if strategy.declines(reduce_nd(nd, BUDGET).geometry, BUDGET) is None]
    return chosen


def random_problem(geometry, rng):
    """Random data of a Geometry (a Problem) or of an NdGeometry (a tuple (geometry, x, w))."""
    g = geometry
    if isinstance(g, NdGeometry):
        return (g, rng.standard_normal(g.input_shape).astype(g.dtype),
                rng.standard_normal(g.weight_shape).astype(g.dtype))
    x = rng.standard_normal((g.batch, g.channels, g.height, g.width)).astype(g.dtype)
    shape = (g.out_channels, g.channels // g.groups, g.kernel_height, g.kernel_width)
    if g.kernel_rank is None:
        w = rng.standard_normal(shape).astype(g.dtype)
    else:  # weights of the rank the geometry says (the separable strategy's problems)
        w = sum(rng.standard_normal(shape[:2] + (g.kernel_height, 1))
                * rng.standard_normal(shape[:2] + (1, g.kernel_width))
                for _ in range(g.kernel_rank)).astype(g.dtype)
    return Problem(geometry=g, x=x, w=w, bias=np.zeros(g.out_channels, g.dtype),
                   fill=np.zeros(1, g.dtype))


def _runner(method, problem, threads):
    """A function running ``problem`` with ``method``'s tiling for ``threads`` threads (an
    N-D problem: through its rank reduction)."""
    if isinstance(problem, tuple):
        nd, x, w = problem
        return lambda: correlate_nd(x, w, None, nd.stride, nd.dilation, nd.padding,
                                    nd.padding_mode, nd.groups, method, threads)
    strategy = REGISTRY[method]
    tiling = strategy.work(problem.geometry, threads, BUDGET, defaults()).tiling
    return lambda: strategy.run(problem, tiling, threads)


def _time(runs, threads):
    """Minimum seconds of each (method, problem) in ``runs``, after a warm-up run of each. Every
    round covers all of them, so that a burst of load from another process (seconds long on a
    shared machine) spoils a round of every strategy alike rather than all rounds of one."""
    best = [float("inf")] * len(runs)
    calls = [_runner(method, problem, threads) for method, problem in runs]
    with numba_threads(threads):
        for call in calls:
            call()
        for _ in range(ROUNDS):
            for i, call in enumerate(calls):
                spent = 0.0
                for _ in range(MAX_RUNS):
                    start = time.perf_counter()
                    call()
                    seconds = time.perf_counter() - start
                    best[i] = min(best[i], seconds)
                    spent += seconds
                    if spent > SECONDS_PER_ROUND:
                        break
    return best


def _terms(method, geometry, constants):
    """The model's terms of ``geometry`` run by ``method`` on one thread: an NdGeometry's are
    those of the 2-D problem its plan runs (RANK_PROBLEMS are one chunk each)."""
    if isinstance(geometry, NdGeometry):
        return plan_nd(geometry, method, 1).work.terms
    return REGISTRY[method].work(geometry, 1, BUDGET, constants).terms


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
    constants = defaults()
    fitted = set()
    timed = problems()
    runs = [(method, random_problem(g, rng)) for method, geometries in timed.items()
            for g in geometries]
    started = time.perf_counter()
    times = _time(runs, 1)
    report(f"timed {len(runs)} problems in {time.perf_counter() - started:.1f} s")
    first = 0
    for method, geometries in timed.items():
        seconds = times[first:first + len(geometries)]
        first += len(geometries)
        rows = [_terms(method, g, constants) for g in geometries]
        # Constants shared with a strategy fitted before (the GEMM's) keep that fit.
        names = sorted({name for row in rows for name in row} - fitted)
        known = [evaluate({k: v for k, v in row.items() if k in fitted}, constants)
                 for row in rows]
        values = fit(rows, seconds, names, known)
        fitted.update(names)
        constants = constants.replace(**values)
        errors = [evaluate(row, constants) / t for row, t in zip(rows, seconds, strict=True)]
        report(f"{method}: {len(rows)} problems; estimate/measured {min(errors):.2f} .. "
               f"{max(errors):.2f}")
    if threads > 1:
        constants = _threading(constants, threads, rng, report)
    return constants


def _threading(constants, threads, rng, report):
    """``launch`` from a tiny problem and ``parallel`` from a large one, at 1 and ``threads``."""
    tiny = make_geometry(1, 1, 24, 1, 3, "float32")
    large = make_geometry(2, 4, (256, 512), 4, 5, "float32", padding=2)
    problems = [random_problem(g, rng) for g in (tiny, large)]
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
    ideal = constants.replace(parallel=1.0, launch=launch)
    direct = REGISTRY["direct"].work
    fixed_one = constants.direct_call
    fixed_many = constants.direct_call + launch
    share = ((evaluate(direct(large, threads, BUDGET, ideal).terms, ideal) - fixed_many)
             / (evaluate(direct(large, 1, BUDGET, ideal).terms, ideal) - fixed_one))
    parallel = (single - fixed_one) * share / max(measured - fixed_many, 1e-9)
    parallel = min(max(parallel, 0.3), 1.0)
    report(f"threads: launch {launch * 1e6:.1f} us, parallel efficiency {parallel:.2f} "
           f"({single * 1e3:.2f} ms on 1 thread, {measured * 1e3:.2f} ms on {threads})")
    return constants.replace(launch=launch, parallel=parallel)


def main(threads=None, save=True, report=print):
    """Calibrate, print the constants (the shipped defaults are declared beside each model) and
    store them in the cache file."""
    import numba

    threads = numba.config.NUMBA_NUM_THREADS if threads is None else threads
    started = time.perf_counter()
    constants = calibrate(threads, report)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for name, value in constants.values.items():
        report(f"    {name}={value:.4g}")
    if save:
        path = save_constants(constants, when)
        report(f"saved to {path}")
    report(f"calibration took {time.perf_counter() - started:.1f} s")
    return constants
