import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261121)


@pytest.fixture
def retune(monkeypatch):
    """``retune(module, name, value)``: set a strategy's tuning constant or predicate for one
    test, to force a code path chosen inside its tiling. Plans are memoised and carry their
    tiling, so the memo is emptied after each change and at the end: a plan made before the
    change does not hide it, and one made under it does not outlive the test."""
    from fastconv.planning.plan import clear_cache

    def patch(target, name, value):
        monkeypatch.setattr(target, name, value)
        clear_cache()

    yield patch
    clear_cache()
