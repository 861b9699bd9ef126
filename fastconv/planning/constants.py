"""The machine constants the cost models are priced with: the shipped defaults of every constant
that core.costing and the registered strategies declare, or a calibrated table from the cache
file (see :func:`machine_constants`)."""

import threading

from ..core.costing import SHARED_CONSTANTS
from ..strategies import REGISTRY, on_change
from . import cachefile

# Fitted on the reference machine (2-vCPU Intel Xeon, AVX-512, LLVM cpu "rocketlake"; numba
# 0.68.1, SciPy 1.17.1's OpenBLAS 0.3.30, omp threading layer) by `python -m fastconv calibrate`:
# the median of each constant over three runs (2026-11-22 05:12 UTC); implicit_f32/f64 from three
# later runs after the micro-kernel's buffers were aligned to cache lines. Terms that least
# squares leaves at 0 are a cost that the fit could not separate from the others on its problems
# (it is counted in them). The values are declared beside the models that price them.
SHIPPED = "shipped defaults (reference machine)"

# A calibrated constant more than this factor away from its shipped default is not a measurement
# of any machine fastconv runs on (a corrupt or hand-edited file: 1e308 or 1e-300 would make one
# strategy win or lose every plan). 0 is allowed: least squares leaves inseparable terms at 0.
PLAUSIBLE_FACTOR = 1e4


class MachineConstants:
    """Seconds per unit of work of each building block (1 thread unless noted), by name, and
    where the numbers come from (``source``, shown in a plan's repr). Immutable and hashable;
    read a constant as an attribute: ``constants.launch``."""

    __slots__ = ("source", "values", "_hash")

    def __init__(self, source, values):
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "values", dict(values))
        object.__setattr__(self, "_hash", hash((source, tuple(sorted(self.values.items())))))

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("MachineConstants are immutable: use replace()")

    def replace(self, source=None, **values):
        """A copy with ``values`` changed (and ``source``, when given)."""
        unknown = set(values) - set(self.values)
        if unknown:
            raise KeyError(f"unknown machine constants {sorted(unknown)}")
        return MachineConstants(self.source if source is None else source,
                                {**self.values, **values})

    def __eq__(self, other):
        return (isinstance(other, MachineConstants) and self.source == other.source
                and self.values == other.values)

    def __hash__(self):
        return self._hash

    def __reduce__(self):
        return MachineConstants, (self.source, self.values)

    def __repr__(self):
        values = ", ".join(f"{name}={value:.4g}" for name, value in self.values.items())
        return f"MachineConstants(source={self.source!r}, {values})"


def declared():
    """Every declared constant: core.costing's shared ones, then each strategy's."""
    constants = list(SHARED_CONSTANTS)
    for strategy in REGISTRY.values():
        constants.extend(strategy.constants)
    return constants


def defaults():
    """The shipped values of every declared constant."""
    return MachineConstants(SHIPPED, {c.name: float(c.default) for c in declared()})


def evaluate(terms, constants):
    """Seconds of a term table under ``constants``."""
    values = constants.values
    return sum(coefficient * values[name] for name, coefficient in terms.items())


_lock = threading.Lock()
_constants = None


def from_file(data, path):
    """MachineConstants from a cache file's ``constants`` entry, or None (with one warning) when
    the entry is missing constants, has unknown ones, holds values that are not finite
    non-negative numbers, or ones more than PLAUSIBLE_FACTOR times off the shipped defaults."""
    entry = data.get("constants")
    if entry is None:
        return None
    shipped = defaults()
    if not isinstance(entry, dict) or set(entry) != set(shipped.values) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf")
        for v in entry.values()
    ) or not entry["parallel"] > 0:
        cachefile.warn(path, "its constants do not match this version's cost model (missing, "
                       "unknown or negative values)")
        return None
    absurd = sorted(k for k, v in entry.items() if not _plausible(shipped, k, v))
    if absurd:
        cachefile.warn(path, f"its constants {', '.join(absurd)} are more than "
                       f"{PLAUSIBLE_FACTOR:g} times off the shipped defaults")
        return None
    source = f"calibrated {data.get('calibrated', '')}".strip()
    return shipped.replace(source=source, **{k: float(v) for k, v in entry.items()})


def _plausible(shipped, name, value):
    if value == 0:
        return True
    if value > 2**1023:  # an int beyond float range (json reads 10**400 as an int)
        return False
    default = shipped.values[name]
    if default == 0:  # no scale of its own: the range of all the shipped constants
        positive = [v for v in shipped.values.values() if v > 0]
        low, high = min(positive), max(positive)
    else:
        low, high = default, default
    return low / PLAUSIBLE_FACTOR <= value <= high * PLAUSIBLE_FACTOR


def machine_constants():
    """The constants in force: the calibrated ones from the cache file when it holds valid ones,
    else the shipped defaults. Read once per process (see :func:`set_machine_constants`)."""
    global _constants
    constants = _constants
    if constants is None:
        with _lock:
            if _constants is None:
                data = cachefile.read()
                loaded = from_file(data, cachefile.path()) if data else None
                _constants = loaded or defaults()
            constants = _constants
    return constants


def set_machine_constants(constants):
    """Use ``constants`` from now on (None: read the cache file again at the next plan)."""
    global _constants
    with _lock:
        _constants = constants


def save_constants(constants, when):
    """Write ``constants`` into the cache file (keeping its measured winners)."""
    values = dict(constants.values)

    def change(data):
        data["constants"] = values
        data["calibrated"] = when

    path = cachefile.update(change)
    set_machine_constants(constants.replace(source=f"calibrated {when}"))
    return path


on_change(lambda: set_machine_constants(None))
