"""Planning: which strategy and how many threads run a geometry. A pure function of shapes,
dtype and options; it never looks at array values."""

from dataclasses import dataclass

from ._methods import REGISTRY
from ._validate import Geometry

# Below this many multiply-adds a call runs on one thread: waking the pool (~4-30 us per launch
# on the reference machine, depending on the threading layer) costs more than it saves.
SERIAL_MACS = 2**19


@dataclass(frozen=True)
class Plan:
    """How one geometry is computed: the strategy, the thread count and why."""

    geometry: Geometry
    method: str
    threads: int
    reason: str

    def __repr__(self):
        g = self.geometry
        return (
            f"Plan(method={self.method!r}, threads={self.threads}, "
            f"problem=({g.batch}x{g.channels}x{g.height}x{g.width}) * "
            f"({g.out_channels}x{g.channels // g.groups}x{g.kernel_height}x{g.kernel_width}) "
            f"{g.dtype}, reason={self.reason!r})"
        )


def make_plan(geometry, method, threads):
    """Plan ``geometry`` with ``method`` ('auto' or a registry name) on at most ``threads``."""
    if method == "auto":
        runnable = [name for name, m in REGISTRY.items() if m.declines(geometry) is None]
        method, reason = runnable[0], "the only strategy that can run this problem"
    else:
        reason = "requested"
        refusal = REGISTRY[method].declines(geometry)
        if refusal is not None:
            raise ValueError(f"`method` {method!r} cannot run this problem: {refusal}.")
    if geometry.macs < SERIAL_MACS:
        threads = 1
    return Plan(geometry=geometry, method=method, threads=threads, reason=reason)
