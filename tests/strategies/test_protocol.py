"""The strategy protocol (fastconv/strategies/protocol.py): a toy strategy registered for a block
of code is a method like the built-in ones and leaves no trace; bad registrations raise the
house template; and every registered strategy keeps the protocol's promises."""

import re
from dataclasses import replace

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from oracle import assert_close, check_conv2d, random_layer, reference_conv2d
from scipy import signal

import fastconv
from fastconv._validate import conv2d_problem, scipy_problem, with_kernel_rank
from fastconv.core.costing import Constant, Work
from fastconv.core.geometry import NUMPY_PAD_MODES, Problem
from fastconv.core.threads import numba_threads
from fastconv.planning.calibrate import BUDGET as CALIBRATION_BUDGET
from fastconv.planning.constants import defaults, evaluate
from fastconv.planning.plan import BOUND_MARGIN, make_plan
from fastconv.strategies import (
    ERROR_MODELS,
    REGISTRY,
    Strategy,
    register,
    registered,
    unregister,
)

# The toy declines problems above this many multiply-adds: NumPy's einsum is slow.
REFERENCE_MACS = 2**22


def _reference_declines(geometry, budget):
    if geometry.macs > REFERENCE_MACS:
        return f"more than {REFERENCE_MACS} multiply-adds: too slow"
    return None


def _reference_work(geometry, threads, budget, constants):
    """Its tiling: images per einsum call (all of them); priced per multiply-add."""
    return Work({"reference_mac": float(geometry.macs)}, 0, geometry.batch)


def _reference_run(problem, images, threads):
    """The sum itself: NumPy's einsum over windows of the numpy.pad-padded input, ``images`` at
    a time (the validated weights are already flipped or conjugated)."""
    g = problem.geometry
    top, bottom, left, right = g.padding
    mode = NUMPY_PAD_MODES[g.padding_mode]
    fill = {"constant_values": problem.fill[0]} if mode == "constant" else {}
    span = ((g.kernel_height - 1) * g.dilation[0] + 1, (g.kernel_width - 1) * g.dilation[1] + 1)
    cg, kg = g.channels // g.groups, g.out_channels // g.groups
    out = np.empty(g.out_shape, g.dtype)
    for first in range(0, g.batch, images):
        x = np.pad(problem.x[first:first + images], ((0, 0), (0, 0), (top, bottom), (left, right)),
                   mode, **fill)
        windows = sliding_window_view(x, span, axis=(2, 3))[
            :, :, ::g.stride[0], ::g.stride[1], ::g.dilation[0], ::g.dilation[1]]
        for group in range(g.groups):
            outputs = slice(group * kg, (group + 1) * kg)
            out[first:first + images, outputs] = np.einsum(
                "nchwij,kcij->nkhw", windows[:, group * cg:(group + 1) * cg], problem.w[outputs])
    out += problem.bias[:, None, None]
    return out


REFERENCE = Strategy(
    name="reference",
    summary="NumPy's einsum over padded windows: a toy strategy for the protocol's tests.",
    declines=_reference_declines,
    work=_reference_work,
    run=_reference_run,
    constants=(Constant("reference_mac", 1e-9, "One multiply-add of NumPy's einsum."),),
    error_model="elementwise",
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """A registered strategy's constants are not in a calibrated cache file: read an empty one."""
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))


def test_a_registered_strategy_is_a_method_for_the_block(rng):
    x, w, bias = random_layer(rng, (2, 4, 9, 11), (6, 2, 3, 2), np.float64)
    with registered(REFERENCE) as strategy:
        assert strategy is REFERENCE and REGISTRY["reference"] is REFERENCE
        assert fastconv.METHODS[-1] == "reference"
        plan = fastconv.plan(x.shape, w.shape, groups=2, padding=1)
        assert [c.method for c in plan.candidates][-1] == "reference"
        estimate = plan.candidate("reference")
        assert estimate.declined is None and estimate.seconds > 0 and "reference" in repr(plan)
        assert "reference_mac" in defaults().values
        forced = fastconv.plan(x.shape, w.shape, groups=2, padding=1, method="reference")
        assert (forced.method, forced.reason, forced.work.tiling) == ("reference", "requested", 2)
        for dtype in (np.float32, np.float64):
            check_conv2d("reference", x.astype(dtype), w.astype(dtype), bias.astype(dtype),
                         groups=2, padding=((2, 1), (0, 3)), stride=(2, 1), dilation=(1, 2),
                         padding_mode="reflect")
        assert fastconv.last_method() == "reference"
        got = fastconv.conv2d(x, w, bias, groups=2, padding=1, method=forced)
        assert fastconv.last_method() == "reference"
        assert_close(got, reference_conv2d(x, w, bias, padding=(1,) * 4, groups=2),
                     reference_conv2d(abs(x), abs(w), abs(bias), padding=(1,) * 4, groups=2),
                     np.float64, "reference")
        # The drop-ins' problems: complex (conjugated weights), integers, a non-zero fill.
        image = rng.standard_normal((8, 9)) + 1j * rng.standard_normal((8, 9))
        np.testing.assert_allclose(
            fastconv.correlate2d(image, image[:3, :2], "same", "fill", 1 - 2j, method="reference"),
            signal.correlate2d(image, image[:3, :2], "same", "fill", 1 - 2j), rtol=1e-12,
            atol=1e-12)
        integers = rng.integers(-100, 100, (7, 6)).astype(np.int16)
        np.testing.assert_array_equal(
            fastconv.convolve2d(integers, integers[:2, :3], "full", "symm", method="reference"),
            signal.convolve2d(integers, integers[:2, :3], "full", "symm"))
        large = fastconv.plan((1, 64, 64, 64), (64, 64, 3, 3))
        assert large.candidate("reference").declined == "more than 4194304 multiply-adds: too slow"
        with pytest.raises(ValueError, match=r"`method` 'reference' cannot run this problem: "
                                             r"more than 4194304 multiply-adds: too slow"):
            fastconv.conv2d(np.ones((1, 64, 64, 64)), np.ones((64, 64, 3, 3)), method="reference")
    assert "reference" not in fastconv.METHODS and "reference" not in REGISTRY
    after = fastconv.plan(x.shape, w.shape, groups=2)
    assert "reference" not in [c.method for c in after.candidates]
    assert "reference_mac" not in defaults().values
    with pytest.raises(ValueError, match=r"`method` must be 'auto' or one of \('direct'"):
        fastconv.conv2d(x, w, groups=2, method="reference")


def test_registered_unregisters_when_the_block_raises():
    with pytest.raises(KeyError), registered(REFERENCE):
        raise KeyError("in the block")
    assert "reference" not in fastconv.METHODS


def _message(name, expectation, got):
    return re.escape(f"`{name}` must be {expectation}; got {got!r}.")


def test_bad_registrations_raise_the_template():
    with pytest.raises(TypeError, match=_message("strategy", "a fastconv.strategies.Strategy",
                                                 "direct")):
        register("direct")
    for taken in ("direct", "auto", "measure"):
        with pytest.raises(ValueError, match=_message("strategy", "named by a name not taken",
                                                      taken)):
            register(replace(REFERENCE, name=taken))
    with registered(REFERENCE), pytest.raises(ValueError, match=_message(
            "strategy", "named by a name not taken", "reference")):
        register(REFERENCE)
    for name in ("direct", "reference"):
        with pytest.raises(ValueError, match=_message("name", "a strategy added by register()",
                                                      name)):
            unregister(name)
    with pytest.raises(ValueError, match=_message("error_model", f"one of {ERROR_MODELS}",
                                                  "exact")):
        replace(REFERENCE, error_model="exact")
    assert fastconv.METHODS == tuple(REGISTRY) and "reference" not in REGISTRY


def _with_rank(problem):
    """``problem`` with its kernel rank, as a call that forces the separable strategy detects it
    (validation does not on problems this small)."""
    return replace(problem, geometry=with_kernel_rank(problem.geometry, problem.w, forced=True))


def _problems(rng, dtype):
    """Small problems every built-in strategy accepts in ``dtype``: a grouped 3x3 layer with
    reflect padding, and a drop-in's single plane with a non-zero fill ('constant' padding);
    each with the oracle's result and scale. The kernels are outer products (rank 1), which the
    separable strategy needs and the others do not mind."""
    x, w, bias = random_layer(rng, (2, 4, 10, 11), (6, 2, 3, 3), dtype)
    w = (rng.standard_normal((6, 2, 3, 1)) * rng.standard_normal((6, 2, 1, 3))).astype(dtype)
    problem, _ = conv2d_problem(x, w, bias, 1, 1, 1, 2, "reflect")
    problem = _with_rank(problem)
    options = dict(padding=(1,) * 4, groups=2, padding_mode="reflect")
    yield (problem, reference_conv2d(x, w, bias, **options),
           reference_conv2d(abs(x), abs(w), abs(bias), **options))
    image, kernel = x[0, 0], w[0, 0]
    problem, _, _ = scipy_problem(image, kernel, "full", "fill", 1.5, False)
    problem = _with_rank(problem)
    assert problem.geometry.padding_mode == "constant"
    wide, kernel = image.astype(np.float64), kernel.astype(np.float64)
    yield (problem, signal.correlate2d(wide, kernel, "full", "fill", 1.5)[None, None],
           signal.correlate2d(abs(wide), abs(kernel), "full", "fill", 1.5)[None, None])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_strategy_keeps_the_protocol(name, dtype, rng):
    strategy = REGISTRY[name]
    assert strategy.name == name and strategy.summary
    assert strategy.error_model in ERROR_MODELS
    constants = defaults()
    budget = fastconv.get_workspace_budget()
    for problem, expected, scale in _problems(rng, dtype):
        g = problem.geometry
        # 1. Declines: a reason or None, from shapes alone; these problems it runs.
        assert strategy.declines(g, budget) is None
        tiny = strategy.declines(g, 1)
        assert tiny is None or isinstance(tiny, str) and tiny
        for threads in (1, 2):
            # 2. Work: the tiling the plan stores, priced in declared constants.
            work = strategy.work(g, threads, budget, constants)
            assert isinstance(work, Work) and work.tiling is not None
            assert work.terms is None or set(work.terms) <= set(constants.values)
            seconds = None if work.terms is None else evaluate(work.terms, constants)
            assert seconds is None or seconds > 0 and work.workspace >= 0
            plan = make_plan(g, name, threads)
            assert plan.work == strategy.work(g, plan.threads, budget, constants)
            # 3. Bound: never above the model.
            bound = strategy.bound(g, threads, constants)
            assert bound is None or seconds is not None and 0 <= bound <= seconds * (
                1 + BOUND_MARGIN)
            # 4. Run: the oracle's result, with that tiling, on that many threads.
            with numba_threads(threads):
                got = strategy.run(problem, work.tiling, threads)
            assert_close(got, expected, scale, dtype, name)
        # Non-finite data: None only where the strategy leaves them to the direct one.
        bad = Problem(g, np.where(problem.x > 1, np.inf, problem.x), problem.w, problem.bias,
                      problem.fill)
        with numba_threads(1):
            got = strategy.run(bad, strategy.work(g, 1, budget, constants).tiling, 1)
        assert got is not None or strategy.non_finite_fallback
    # Calibration problems: geometries it runs under calibration's budget.
    for geometry in strategy.calibration_problems():
        assert strategy.declines(geometry, CALIBRATION_BUDGET) is None, geometry
