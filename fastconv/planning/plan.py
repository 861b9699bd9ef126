"""Planning: which strategy and how many threads run a geometry, and why.

A pure function of the geometry, the thread limit, the workspace budget and the machine constants
(never of array values). Every registered strategy is a candidate: it either declines the
geometry (and says why) or gets an estimate from its cost model (its ``work``), at one thread and
at the limit; 'auto' takes the fastest. 'auto' estimates the candidates in increasing order of a
lower bound on their models and skips those whose bound exceeds the best estimate; a plan
computes those estimates when its candidates are first read. Plans are memoised per key, so
planning a shape seen before costs a dictionary lookup.

A plan carries the work its strategy will execute (the tiling its model priced) and, for a
strategy that leaves non-finite data to the direct strategy, the direct strategy's work: running
a plan (execute.py) plans nothing and reads no global setting.
"""

import threading
from dataclasses import dataclass, field, replace
from functools import cached_property

import cachetools

from ..core.costing import Work
from ..core.geometry import Geometry
from ..core.messages import cannot_run
from ..core.workspace import get_budget
from ..strategies import REGISTRY, on_change
from .constants import MachineConstants, evaluate, machine_constants

# A strategy without a cost model runs on one thread below this many multiply-adds: waking the
# pool (~4-30 us per launch on the reference machine, depending on the threading layer) costs more
# than it saves.
SERIAL_MACS = 2**19
# From this many multiply-adds (about 0.1 ms of work) a strategy's one-thread estimate is not
# worked out, which halves planning a new shape: with a parallel efficiency above one half, more
# than one work item makes the model's time at the limit the shorter, and a single item costs
# one launch (~1-2 us) more, a negligible difference at this size.
PARALLEL_MACS = 2**22
# Relative slack of a lower bound over an estimate before the estimate is skipped.
BOUND_MARGIN = 1e-9
# Plans remembered per process (least recently used dropped first); one plan is ~2 KB.
CACHE_SIZE = 1024


@dataclass(frozen=True)
class Candidate:
    """One strategy's standing on a plan's geometry."""

    method: str
    seconds: float | None
    """Estimated seconds at ``threads``; None when the strategy declines or has no cost model."""
    workspace: int | None
    """Estimated extra bytes (beyond the output); None when unknown."""
    threads: int
    declined: str | None = None
    """Why the strategy cannot run the geometry, or None."""


@dataclass(frozen=True)
class Plan:
    """How one problem is computed: the chosen strategy and thread count, every candidate's
    estimate, and why. Pass it back as ``method=plan`` to skip planning for the same shapes."""

    geometry: Geometry
    method: str
    threads: int
    """Threads the call runs on (the cost model may choose fewer than ``max_threads``)."""
    max_threads: int
    """The thread limit the plan was made for."""
    workspace_budget: int
    constants: str
    """Where the machine constants behind the estimates come from."""
    requested: bool
    """Whether ``method`` was asked for rather than chosen by 'auto'."""
    machine: MachineConstants = field(repr=False)
    """The machine constants behind the estimates."""
    settled: tuple = field(repr=False, compare=False)
    """(strategy, Candidate or None) for each registered strategy: None where planning skipped
    the model (its lower bound exceeded the chosen estimate); ``candidates`` computes it."""
    work: Work = field(repr=False, compare=False)
    """What ``method`` executes on ``threads`` threads: its tiling, price and workspace (a pure
    function of the compared fields)."""
    fallback: Work | None = field(repr=False, compare=False)
    """The direct strategy's work on ``threads`` threads, when ``method`` leaves data holding
    NaN or Inf to it (``non_finite_fallback``); else None."""
    accuracy: str = "normwise"
    """'elementwise' when 'auto' was limited to strategies accurate per output element."""
    reduction: object = None
    """For a 1-D or 3-D call, the :class:`~fastconv.planning.ranks.Reduction` that maps it onto
    ``geometry``, the 2-D problem that runs (one chunk's for 3-D); None for a 2-D call."""
    remainder: object = field(default=None, repr=False, compare=False)
    """For a 3-D call whose last chunk holds fewer images or depths: that chunk's plan (the same
    strategy and threads)."""
    fold_bytes: int = 0
    """For a 3-D call, the bytes its depth fold copies per chunk for a strategy that does not read
    plane maps, priced in that strategy's estimate (``fold_byte``)."""

    @cached_property
    def candidates(self):
        """One :class:`Candidate` per registered strategy, in registry order."""
        return tuple(
            _estimate(name, self.geometry, self.max_threads, self.workspace_budget,
                      self.machine, self.fold_bytes)[0]
            if candidate is None else candidate for name, candidate in self.settled)

    @cached_property
    def reason(self):
        """Why ``method`` was chosen: 'requested', or how its estimate compares."""
        if self.requested:
            return "requested"
        return _choose(self.candidates, self.geometry.dtype)[1]

    def candidate(self, method):
        """The :class:`Candidate` of ``method``."""
        return next(c for c in self.candidates if c.method == method)

    def __repr__(self):
        g = self.geometry
        weight = (g.out_channels, g.channels // g.groups, g.kernel_height, g.kernel_width)
        lines = [self.reduction.text] if self.reduction is not None else []
        lines += [
            f"Plan: ({g.batch}, {g.channels}, {g.height}, {g.width}) * {weight} -> "
            f"{g.out_shape} {g.dtype}",
            f"  stride {g.stride}, dilation {g.dilation}, padding {g.padding} {g.padding_mode}, "
            f"groups {g.groups}; {g.macs:.3g} multiply-adds"
            + ("" if g.kernel_rank is None else f"; kernel rank {g.kernel_rank}"),
            f"  {'method':<10}{'estimate':>11}{'workspace':>12}{'threads':>9}",
        ]
        for c in self.candidates:
            mark = ">" if c.method == self.method else " "
            if c.declined is not None:
                lines.append(f"{mark} {c.method:<10}{'-':>11}{'-':>12}{'-':>9}  declines: "
                             f"{c.declined}")
                continue
            seconds = "unknown" if c.seconds is None else _time(c.seconds)
            workspace = "unknown" if c.workspace is None else _bytes(c.workspace)
            lines.append(f"{mark} {c.method:<10}{seconds:>11}{workspace:>12}{c.threads:>9}")
        lines.append(f"Chosen: {self.method} on {self.threads} thread"
                     f"{'s' if self.threads > 1 else ''}: {self.reason}.")
        if self.fallback is not None:
            lines.append("  Rule: data holding NaN or Inf run on direct (its exact propagation of "
                         "non-finite values).")
        lines.append(f"  (threads <= {self.max_threads}, workspace budget "
                     f"{_bytes(self.workspace_budget)}, constants: {self.constants}"
                     f"{', accuracy: elementwise' if self.accuracy == 'elementwise' else ''})")
        return "\n".join(lines)


def _scaled(value, units, step):
    """``value`` with 3 significant digits in the first unit where it is below 1000."""
    for unit in units[:-1]:
        if round(value, 3 - len(str(int(value)))) < 1000:
            return f"{value:.3g} {unit}"
        value /= step
    return f"{value:.3g} {units[-1]}"


def _ratio(value):
    """A speed ratio to two significant figures below 10 (1.0, not 1, for 6.43 against 6.69 ms),
    whole above."""
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _time(seconds):
    return _scaled(seconds * 1e9, ("ns", "us", "ms", "s"), 1000)


def _bytes(n):
    return _scaled(float(n), ("B", "KiB", "MiB", "GiB"), 1024)


def _estimate(name, geometry, max_threads, budget, constants, fold_bytes=0):
    """(Candidate, Work) of a strategy that does not decline ``geometry``; ``fold_bytes``: see
    Plan."""
    strategy = REGISTRY[name]
    fold = {"fold_byte": fold_bytes} if fold_bytes and not strategy.reads_planes else {}
    # One thread and the limit: a launch and the items' imbalance decide between them.
    counts = (max_threads,) if geometry.macs >= PARALLEL_MACS or max_threads == 1 else (
        1, max_threads)
    best = None
    for threads in counts:
        work = strategy.work(geometry, threads, budget, constants)
        if work.terms is not None and fold:
            work = replace(work, terms=work.terms | fold)
        if work.terms is None:
            threads = 1 if geometry.macs < SERIAL_MACS else max_threads
            work = strategy.work(geometry, threads, budget, constants)
            return Candidate(name, None, None, threads), work
        seconds = evaluate(work.terms, constants)
        if best is None or seconds < best[0].seconds:
            best = Candidate(name, seconds, int(work.workspace), threads), work
    return best


def _choose(candidates, dtype):
    """(chosen candidate, reason) of 'auto' among ``candidates`` (those not estimated may be
    None: their lower bound exceeds a known estimate)."""
    runnable = [c for c in candidates if c is not None and c.declined is None]
    skipped = ""
    if dtype.kind in "iu":
        rounding = [c.method for c in runnable if REGISTRY[c.method].rounds_integers]
        if rounding and len(rounding) < len(runnable):
            runnable = [c for c in runnable if not REGISTRY[c.method].rounds_integers]
            skipped = f"; not {', '.join(rounding)}: rounds integer results"
    known = sorted((c for c in runnable if c.seconds is not None), key=lambda c: c.seconds)
    if not known:
        return runnable[0], ("no strategy that can run this problem has a cost model; the first "
                             "one registered" + skipped)
    chosen = known[0]
    if len(known) == 1:
        reason = "the only strategy with a cost model that can run this problem"
    else:
        runner_up = known[1]
        ratio = runner_up.seconds / chosen.seconds if chosen.seconds > 0 else float("inf")
        reason = f"estimated {_ratio(ratio)}x faster than {runner_up.method}"
    unknown = [c.method for c in runnable if c.seconds is None]
    if unknown:
        reason += f" (not estimated: {', '.join(unknown)})"
    return chosen, reason + skipped


def _normwise(name, geometry):
    return REGISTRY[name].error_model_for(geometry) != "elementwise"


def _refusal(name, geometry, budget, accuracy="normwise"):
    """The declined Candidate of ``name`` on ``geometry``, or None when it can run it."""
    if accuracy == "elementwise" and _normwise(name, geometry):
        return Candidate(name, None, None, 1, "its error is normwise (accuracy='elementwise')")
    reason = REGISTRY[name].declines(geometry, budget)
    return None if reason is None else Candidate(name, None, None, 1, reason)


def _settle(geometry, threads, budget, constants, accuracy="normwise", fold_bytes=0):
    """(strategy, Candidate or None) for each registered strategy under 'auto', and the Work of
    each estimated one: every refusal, and the estimates in increasing order of the strategies'
    lower bounds until a bound exceeds the best estimate so far. The skipped ones (None) cannot
    be chosen: their estimates would exceed that one. On the regret benchmark's new shapes this
    leaves one or two models of four to compute, about half of planning a new shape."""
    settled = {}
    works = {}
    pending = []
    integers = geometry.dtype.kind in "iu"
    for name, strategy in REGISTRY.items():
        settled[name] = _refusal(name, geometry, budget, accuracy)
        if settled[name] is not None:
            continue
        if integers and strategy.rounds_integers:
            # Rounding ones may be all there is for integers: always estimated.
            settled[name], works[name] = _estimate(name, geometry, threads, budget, constants,
                                                   fold_bytes)
            continue
        bound = strategy.bound(geometry, threads, constants)
        pending.append((0.0 if bound is None else bound, name))
    best = None
    for bound, name in sorted(pending, key=lambda pair: pair[0]):
        # The margin covers rounding: a bound computed another way may exceed an equal estimate.
        if best is not None and bound > best * (1 + BOUND_MARGIN):
            continue
        candidate, works[name] = _estimate(name, geometry, threads, budget, constants, fold_bytes)
        settled[name] = candidate
        if candidate.seconds is not None and (best is None or candidate.seconds < best):
            best = candidate.seconds
    return tuple(settled.items()), works


def build_plan(geometry, method, threads, budget, constants, accuracy="normwise", fold_bytes=0):
    """The plan of ``geometry`` with ``method`` ('auto' or a registry name) on at most ``threads``
    threads: a pure function of its arguments. ``accuracy='elementwise'`` keeps 'auto' from
    normwise strategies (a forced one is computed as asked); ``fold_bytes``: see Plan."""
    if method == "auto":
        settled, works = _settle(geometry, threads, budget, constants, accuracy, fold_bytes)
        chosen, _ = _choose([candidate for _, candidate in settled], geometry.dtype)
        work = works[chosen.method]
    else:
        refused = _refusal(method, geometry, budget)
        if refused is not None:
            raise cannot_run(method, refused.declined)
        chosen, work = _estimate(method, geometry, threads, budget, constants, fold_bytes)
        # The others' refusals now, estimates on demand.
        settled = tuple((name, chosen if name == method else _refusal(name, geometry, budget))
                        for name in REGISTRY)
    fallback = None
    if REGISTRY[chosen.method].non_finite_fallback:
        fallback = REGISTRY["direct"].work(geometry, chosen.threads, budget, constants)
    return Plan(geometry=geometry, method=chosen.method, threads=chosen.threads,
                max_threads=threads, workspace_budget=budget, constants=constants.source,
                requested=method != "auto", machine=constants, settled=settled,
                accuracy=accuracy, work=work, fallback=fallback, fold_bytes=fold_bytes)


class _PlanCache:
    """A bounded, thread-safe map from plan keys to plans (least recently used dropped first),
    emptied when the machine constants or the registry change."""

    def __init__(self, size):
        self.lock = threading.Lock()
        self.plans = cachetools.LRUCache(maxsize=size)
        self.constants = None

    def get(self, key, constants):
        with self.lock:
            if constants is not self.constants:
                self.plans.clear()
                self.constants = constants
                return None
            try:  # one lookup (cachetools' get looks the key up twice)
                return self.plans[key]
            except KeyError:
                return None

    def put(self, key, plan, constants):
        with self.lock:
            if constants is self.constants:
                self.plans[key] = plan

    def clear(self):
        with self.lock:
            self.plans.clear()


_cache = _PlanCache(CACHE_SIZE)


def make_plan(geometry, method, threads, budget=None, accuracy="normwise", fold_bytes=0):
    """Plan ``geometry`` with ``method`` ('auto' or a registry name) on at most ``threads``
    threads, under ``budget`` (default: the current workspace budget) and the current machine
    constants (memoised); ``fold_bytes``: see Plan."""
    budget = get_budget() if budget is None else budget
    constants = machine_constants()
    key = (geometry, method, threads, budget, accuracy, fold_bytes)
    plan = _cache.get(key, constants)
    if plan is None:
        plan = build_plan(geometry, method, threads, budget, constants, accuracy, fold_bytes)
        _cache.put(key, plan, constants)
    return plan


def memoised(arguments, compute):
    """The plan of a :func:`fastconv.plan` call from its raw ``arguments`` (a hashable key, e.g.
    their repr plus the thread count), validating and planning with ``compute()`` only the first
    time: validating shapes and options costs more than the 20 us a cached plan may take."""
    budget = get_budget()
    constants = machine_constants()
    key = (arguments, budget)
    plan = _cache.get(key, constants)
    if plan is None:
        plan = compute()
        _cache.put(key, plan, constants)
    return plan


def clear_cache():
    """Forget every memoised plan."""
    _cache.clear()


on_change(clear_cache)
