"""``method="measure"``: time every strategy that can run the call, once, on the call itself;
return the fastest one's result and remember the winner for this exact problem.

Like PyTorch's ``cudnn.benchmark``, but on the CPU and optionally across processes: winners are
kept in a bounded in-memory map keyed by the geometry, the thread limit and the workspace budget,
and, with ``persist=True`` or ``FASTCONV_PERSIST=1``, in the per-user cache file (cachefile.py)
that later processes read, so they skip the timing.

A first run that compiled or loaded a Numba kernel is not counted: the strategy is timed again
(Numba's compiler lock, which every compilation and cache load takes, is watched for that).
Measurements run one at a time, so two threads measuring at once do not slow each other's
timings; looking up a known winner takes no lock but the map's own.
"""

import threading
import time

import cachetools
from numba.core import event

from ..core import settings
from ..core.workspace import get_budget
from ..strategies import REGISTRY
from . import cachefile
from .execute import execute
from .plan import make_plan

# Winners remembered in memory per process, and in the cache file (least recently used dropped
# first); an entry is ~200 bytes in the file.
MEMORY_SIZE = 4096
PERSISTED_SIZE = 4096


class _Winners:
    """A bounded, thread-safe map from problem keys to (method, threads), least recently used
    dropped first."""

    def __init__(self, size):
        self.lock = threading.Lock()
        self.entries = cachetools.LRUCache(maxsize=size)

    def get(self, key):
        with self.lock:
            return self.entries.get(key)

    def put(self, key, entry):
        with self.lock:
            self.entries[key] = entry

    def __len__(self):
        return len(self.entries)

    def clear(self, size):
        with self.lock:
            self.entries = cachetools.LRUCache(maxsize=size)


_winners = _Winners(MEMORY_SIZE)
_measuring = threading.Lock()
_persisted = None  # the cache file's winners, read at the first measured call of the process
_persisted_lock = threading.Lock()


def problem_key(geometry, threads, budget):
    """A readable string naming one exact problem (the cache file's keys)."""
    g = geometry
    return (f"{g.batch}x{g.channels}x{g.height}x{g.width}*{g.out_channels}x"
            f"{g.channels // g.groups}x{g.kernel_height}x{g.kernel_width} {g.dtype.name} "
            f"stride={g.stride[0]},{g.stride[1]} dilation={g.dilation[0]},{g.dilation[1]} "
            f"padding={','.join(map(str, g.padding))} {g.padding_mode} groups={g.groups} "
            f"threads={threads} budget={budget}"
            + ("" if g.kernel_rank is None else f" rank={g.kernel_rank}"))


def _persisted_winner(key, geometry, threads, budget):
    global _persisted
    with _persisted_lock:
        if _persisted is None:
            measured = cachefile.read().get("measured", {})
            _persisted = measured if isinstance(measured, dict) else {}
        entry = _persisted.get(key)
    if not isinstance(entry, dict):
        return None
    method, count = entry.get("method"), entry.get("threads")
    if not isinstance(method, str) or method not in REGISTRY or REGISTRY[method].declines(
            geometry, budget) is not None:
        return None
    if type(count) is not int or not 1 <= count <= threads:
        return None
    return method, count


def _persist(key, entry):
    def change(data):
        measured = data.get("measured")
        if not isinstance(measured, dict):
            measured = {}
        measured.pop(key, None)
        measured[key] = entry
        for stale in list(measured)[:max(0, len(measured) - PERSISTED_SIZE)]:
            del measured[stale]
        data["measured"] = measured

    try:
        cachefile.update(change)
    except OSError as error:  # a cache path that is a directory, read-only, a full disk
        path = cachefile.path()
        cachefile.warn_once(path, f"fastconv: cannot write the cache file {path}: {error}. The "
                            "measured winner is kept in this process only.")
        return
    with _persisted_lock:
        if _persisted is not None:
            _persisted[key] = entry


def _run(problem, method, threads):
    return execute(make_plan(problem.geometry, method, threads), problem)


def _timed(problem, method, threads):
    """(seconds, result) of one run; a run that compiled or loaded a kernel is repeated."""
    with event.install_recorder("numba:compiler_lock") as compiled:
        start = time.perf_counter()
        out = _run(problem, method, threads)
        seconds = time.perf_counter() - start
    if compiled.buffer:
        del out
        start = time.perf_counter()
        out = _run(problem, method, threads)
        seconds = time.perf_counter() - start
    return seconds, out


def measure(problem, threads, accuracy="normwise"):
    """Time every strategy that can run ``problem`` (each on the thread count its cost model
    prefers, within ``threads``; only elementwise-accurate ones with ``accuracy='elementwise'``).
    Returns (fastest's result, method, threads, seconds per method)."""
    plan = make_plan(problem.geometry, "auto", threads, accuracy=accuracy)
    best = None
    timings = {}
    for candidate in plan.candidates:
        if candidate.declined is not None:
            continue
        seconds, out = _timed(problem, candidate.method, candidate.threads)
        timings[candidate.method] = seconds
        if best is None or seconds < best[0]:
            best = (seconds, out, candidate.method, candidate.threads)
        del out
    _, out, method, count = best
    return out, method, count, timings


def run_measured(problem, threads, persist=None, accuracy="normwise"):
    """Compute ``problem`` with the strategy measured fastest for it (measuring it first when this
    problem was never measured here or, when persisted, in an earlier process)."""
    budget = get_budget()
    key = problem_key(problem.geometry, threads, budget)
    if accuracy == "elementwise":
        key += " accuracy=elementwise"
    winner = _winners.get(key) or _persisted_winner(key, problem.geometry, threads, budget)
    if winner is not None and accuracy == "elementwise" and (
            REGISTRY[winner[0]].error_model_for(problem.geometry) != "elementwise"):
        winner = None  # a hand-edited cache file
    if winner is None:
        with _measuring:
            winner = _winners.get(key)
            if winner is None:
                out, method, count, timings = measure(problem, threads, accuracy)
                _winners.put(key, (method, count))
                if settings.persist() if persist is None else persist:
                    _persist(key, {"method": method, "threads": count,
                                   "seconds": {m: float(f"{s:.4g}") for m, s in timings.items()}})
                return out
    _winners.put(key, winner)
    return _run(problem, *winner)


def remembered():
    """The winners remembered in memory: {problem key: (method, threads)}."""
    with _winners.lock:
        return dict(_winners.entries)


def clear():
    """Forget every winner in memory (the map is sized by MEMORY_SIZE again), and re-read the
    cache file at the next measured call."""
    global _persisted
    _winners.clear(MEMORY_SIZE)
    with _persisted_lock:
        _persisted = None
