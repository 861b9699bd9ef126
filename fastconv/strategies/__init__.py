"""The registry of strategies, built from the ``STRATEGY`` object of each strategy folder (see
protocol.py). It drives the ``method=`` check, the docs table, the planner, calibration, the
test parametrization and the benchmarks.

Adding a strategy is one folder beside these and one entry in ``_BUILT_IN``; a strategy defined
elsewhere (a plugin, a test) is added with :func:`register` or, for a block of code,
:func:`registered`.
"""

from contextlib import contextmanager

from ..core.messages import fail
from . import direct, fft, im2col, winograd
from .protocol import ERROR_MODELS, Strategy

_BUILT_IN = (direct.STRATEGY, im2col.STRATEGY, fft.STRATEGY, winograd.STRATEGY)

REGISTRY: dict[str, Strategy] = {strategy.name: strategy for strategy in _BUILT_IN}
"""Strategy name -> Strategy, in the order the planner lists them."""

_listeners = []


def methods():
    """The registered strategy names, in registry order."""
    return tuple(REGISTRY)


def on_change(listener):
    """Call ``listener()`` whenever the registry changes (caches derived from it)."""
    _listeners.append(listener)


def register(strategy):
    """Add ``strategy`` (a :class:`Strategy`) to the registry under its name."""
    if not isinstance(strategy, Strategy):
        fail(TypeError, "strategy", "a fastconv.strategies.Strategy", strategy)
    if strategy.name in REGISTRY or strategy.name in ("auto", "measure"):
        fail(ValueError, "strategy", "named by a name not taken", strategy.name)
    REGISTRY[strategy.name] = strategy
    for listener in _listeners:
        listener()


def unregister(name):
    """Remove the strategy ``name`` (built-in ones cannot be removed)."""
    if name in {strategy.name for strategy in _BUILT_IN} or name not in REGISTRY:
        fail(ValueError, "name", "a strategy added by register()", name)
    del REGISTRY[name]
    for listener in _listeners:
        listener()


@contextmanager
def registered(strategy):
    """Register ``strategy`` for the body of a ``with`` block."""
    register(strategy)
    try:
        yield strategy
    finally:
        unregister(strategy.name)


__all__ = ["ERROR_MODELS", "REGISTRY", "Strategy", "methods", "register", "registered",
           "unregister"]
