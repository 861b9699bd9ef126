"""The planner: plans are pure and explain themselves, every candidate runs and matches the
oracle, declined strategies are never picked, a plan runs with its own budget and says when its
fallback ran, the cache file survives corruption and concurrent writers, and method='measure'
returns what the method it picked returns."""

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import warnings
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import assert_close, random_layer, reference_conv2d

import fastconv
from fastconv._validate import conv2d_problem
from fastconv.core.costing import Work
from fastconv.core.geometry import NdGeometry
from fastconv.core.workspace import largest_fitting
from fastconv.planning import cachefile, measure
from fastconv.planning.constants import (
    MachineConstants,
    defaults,
    evaluate,
    machine_constants,
    save_constants,
    set_machine_constants,
)
from fastconv.planning.plan import BOUND_MARGIN, _choose, build_plan, clear_cache, make_plan
from fastconv.strategies import REGISTRY, Strategy, registered

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (input shape, weight shape, options)
PROBLEMS = {
    "image-64x80-k5": ((64, 80), (5, 5), dict(padding=2)),
    "image-40x40-k15-even": ((40, 40), (14, 15), dict(padding="same")),
    "layer-16ch-3x3": ((2, 16, 12, 12), (16, 16, 3, 3), dict(padding=1)),
    "layer-1x1": ((2, 32, 9, 7), (8, 32, 1, 1), {}),
    "layer-depthwise": ((2, 8, 10, 10), (8, 1, 3, 3), dict(padding=1, groups=8)),
    "layer-strided-dilated": ((1, 4, 21, 19), (6, 4, 3, 5), dict(stride=2, dilation=(2, 1))),
}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test reads and writes its own cache directory, with fresh in-memory state."""
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FASTCONV_PERSIST", raising=False)
    set_machine_constants(None)
    measure.clear()
    yield
    set_machine_constants(None)
    measure.clear()


def _plan_of(name, dtype=np.float64, **extra):
    input_shape, weight_shape, options = PROBLEMS[name]
    return fastconv.plan(input_shape, weight_shape, dtype=dtype, **options, **extra)


def test_plan_is_a_pure_function_of_its_inputs():
    for name in PROBLEMS:
        first = _plan_of(name, np.float32, threads=1)
        clear_cache()
        second = _plan_of(name, np.float32, threads=1)
        assert first == second and first is not second
        assert hash(first) == hash(second)
        # Equality leaves out the estimates, which are computed on demand: they must agree too.
        assert first.candidates == second.candidates and first.reason == second.reason
        assert {first: name}[second] == name
        assert first != _plan_of(name, np.float64, threads=1)


def test_a_pickled_plan_hashes_like_a_fresh_one_in_another_process():
    plan = _plan_of("layer-16ch-3x3", np.float32, threads=1)
    hash(plan)  # caches the geometry's hash in this process
    assert pickle.loads(pickle.dumps(plan)) == plan
    # The geometry's padding_mode is a string, whose hash is salted per process: a hash cached
    # here and pickled would be wrong there.
    script = textwrap.dedent(f"""
        import pickle, sys
        plan = pickle.loads({pickle.dumps(plan)!r})
        fresh = type(plan.geometry)(**{{name: getattr(plan.geometry, name)
                                         for name in plan.geometry.__dataclass_fields__}})
        sys.exit(0 if hash(plan.geometry) == hash(fresh) else 1)
    """)
    subprocess.run([sys.executable, "-c", script], check=True)


def test_plan_lists_every_strategy_and_explains_the_choice():
    plan = _plan_of("layer-16ch-3x3", np.float32)
    assert [c.method for c in plan.candidates] == list(fastconv.METHODS)
    assert plan.method in fastconv.METHODS and plan.threads <= plan.max_threads
    chosen = plan.candidate(plan.method)
    runnable = [c for c in plan.candidates if c.declined is None and c.seconds is not None]
    assert chosen.seconds == min(c.seconds for c in runnable)
    text = repr(plan)
    for method in fastconv.METHODS:
        assert f" {method} " in text
    assert f"> {plan.method} " in text and f"Chosen: {plan.method}" in text
    assert "(2, 16, 12, 12) * (16, 16, 3, 3) -> (2, 16, 12, 12) float32" in text
    assert plan.reason in text and "constants: shipped defaults" in text


def test_forced_method_plan_and_auto_calls_use_the_planner():
    plan = _plan_of("image-64x80-k5", method="direct")
    assert plan.method == "direct" and plan.reason == "requested"
    forced = _plan_of("layer-16ch-3x3", method="fft")
    assert forced.candidates == _plan_of("layer-16ch-3x3").candidates  # estimated on demand
    assert forced.threads == forced.candidate("fft").threads
    problem, _ = conv2d_problem(np.ones((64, 80)), np.ones((5, 5)), None, 1, 2, 1, 1, "zeros")
    auto = _plan_of("image-64x80-k5", threads=2)
    assert make_plan(replace(problem.geometry, kernel_rank=None), "auto", 2) == auto


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_every_candidate_runs_and_matches_the_oracle(name, dtype, rng):
    input_shape, weight_shape, options = PROBLEMS[name]
    plan = _plan_of(name, dtype)
    x = rng.standard_normal(input_shape).astype(dtype)
    w = rng.standard_normal(weight_shape).astype(dtype)
    g = plan.geometry
    reference = dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)
    x4 = x.reshape(g.batch, g.channels, g.height, g.width)
    w4 = w.reshape(g.out_channels, -1, g.kernel_height, g.kernel_width)
    expected = reference_conv2d(x4, w4, **reference).reshape(fastconv.conv2d(x, w, **options,
                                                                             method=plan).shape)
    scale = reference_conv2d(abs(x4), abs(w4), **reference).reshape(expected.shape)
    ran = 0
    for candidate in plan.candidates:
        if candidate.declined is not None:
            continue
        got = fastconv.conv2d(x, w, **options, method=candidate.method)
        assert_close(got, expected, scale, dtype, candidate.method)
        ran += 1
    assert ran >= 2
    assert_close(fastconv.conv2d(x, w, **options, method=plan), expected, scale, dtype,
                 plan.method)


@st.composite
def plan_problems(draw):
    """(input shape, weight shape, options) of a single image or a layer, any dtype fastconv
    plans, up to sizes where every strategy's model takes its other paths."""
    kh, kw = draw(st.integers(1, 31)), draw(st.integers(1, 31))
    if draw(st.booleans()):
        height, width = draw(st.integers(kh, 2000)), draw(st.integers(kw, 2000))
        input_shape, weight_shape, groups = (height, width), (kh, kw), 1
    else:
        kh, kw = min(kh, 7), min(kw, 7)
        groups = draw(st.sampled_from([1, 1, 2, 4]))
        cg, kg = draw(st.sampled_from([1, 3, 16, 64, 128])), draw(st.sampled_from([1, 16, 64]))
        if draw(st.booleans()):
            groups, cg, kg = draw(st.sampled_from([32, 128])), 1, 1  # depthwise
        size = draw(st.integers(max(kh, kw), 112))
        input_shape = (draw(st.integers(1, 16)), cg * groups, size, size)
        weight_shape = (kg * groups, cg, kh, kw)
    options = dict(
        dtype=draw(st.sampled_from([np.float32, np.float64, np.complex64, np.complex128,
                                    np.int64])),
        stride=draw(st.sampled_from([1, 1, 2, (1, 3)])),
        dilation=draw(st.sampled_from([1, 1, 2])),
        groups=groups,
        padding_mode=draw(st.sampled_from(["zeros", "zeros", "reflect", "circular"])),
        padding=draw(st.sampled_from([0, 1, (3, 0)])),
    )
    return input_shape, weight_shape, options


def _scaled_constants(draw):
    """The shipped constants, each scaled as a calibration on another machine might (some to
    zero; threads below or above the reference's parallel speed)."""
    values = {}
    for name, value in defaults().values.items():
        if name == "parallel":
            values[name] = value * draw(st.sampled_from([0.5, 1.0, 1.7]))
        else:
            values[name] = value * draw(st.sampled_from([0.0, 0.3, 1.0, 3.0]))
    return MachineConstants("scaled", values)


@settings(max_examples=150, deadline=None)
@given(problem=plan_problems(), threads=st.integers(1, 8), data=st.data(),
       budget=st.sampled_from([2**16, 2**20, 64 * 2**20]))
def test_lower_bounds_never_exceed_the_models_and_skipping_keeps_the_choice(problem, threads,
                                                                            data, budget):
    input_shape, weight_shape, options = problem
    try:
        geometry = fastconv.plan(input_shape, weight_shape, **options).geometry
    except ValueError:
        return  # the kernel does not fit the padded input
    constants = data.draw(st.sampled_from([defaults(), None]))
    constants = constants or _scaled_constants(data.draw)
    plan = build_plan(geometry, "auto", threads, budget, constants)
    for candidate in plan.candidates:
        strategy = REGISTRY[candidate.method]
        bound = strategy.bound(geometry, threads, constants)
        if candidate.declined is not None or bound is None:
            continue
        for count in {1, threads}:
            work = strategy.work(geometry, count, budget, constants)
            seconds = evaluate(work.terms, constants)
            assert bound <= seconds * (1 + BOUND_MARGIN), (candidate.method, count)
    chosen, _ = _choose(plan.candidates, geometry.dtype)
    assert (chosen.method, chosen.threads) == (plan.method, plan.threads)


def test_planning_skips_models_that_cannot_win_and_estimates_them_when_asked():
    plan = fastconv.plan((1000, 1000), (15, 15), dtype=np.float32, padding=7, threads=2)
    settled = dict(plan.settled)
    assert plan.method == "fft" and settled["fft"] == plan.candidate("fft")
    assert settled["direct"] is None  # its bound exceeds the FFT's estimate
    direct = plan.candidate("direct")
    assert direct.seconds > REGISTRY["direct"].bound(plan.geometry, 2, defaults()) > (
        plan.candidate("fft").seconds)
    assert "direct" in repr(plan) and plan.reason.startswith("estimated")


@settings(max_examples=300, deadline=None)
@given(base=st.integers(0, 10**4), step=st.integers(0, 500), block=st.integers(1, 64),
       steps=st.lists(st.integers(0, 3000), max_size=3), limit=st.integers(0, 40_000),
       upper=st.integers(1, 300))
def test_largest_fitting_is_exact(base, step, block, steps, limit, upper):
    """Against a scan, for nondecreasing sizes: affine, rounded up to blocks, with jumps."""

    def size(n):
        return base + -(-n * step // block) * block + sum(jump for jump in steps if n > jump % 50)

    fitting = [n for n in range(1, upper + 1) if size(n) <= limit]
    assert largest_fitting(size, limit, upper) == (fitting[-1] if fitting else 0)


def test_plan_with_other_shapes_or_threads_is_refused():
    plan = fastconv.plan((1, 3, 16, 16), (4, 3, 3, 3), padding=1, threads=1)
    x, w = np.ones((1, 3, 16, 16)), np.ones((4, 3, 3, 3))
    assert fastconv.conv2d(x, w, padding=1, method=plan).shape == (1, 4, 16, 16)
    with pytest.raises(ValueError, match=r"`method` must be a Plan made for this call's problem; "
                                         r"the plan differs in height 16 != 17"):
        fastconv.conv2d(np.ones((1, 3, 17, 16)), w, padding=1, method=plan)
    with pytest.raises(ValueError, match=r"differs in padding \(1, 1, 1, 1\) != \(0, 0, 0, 0\)"):
        fastconv.conv2d(x, w, method=plan)
    with pytest.raises(ValueError, match=r"differs in dtype float64 != float32"):
        fastconv.conv2d(x.astype(np.float32), w.astype(np.float32), padding=1, method=plan)
    with pytest.raises(ValueError, match=r"`threads` must be None or 1 \(the plan's thread "
                                         r"limit\) when `method` is a Plan; got 2"):
        fastconv.conv2d(x, w, padding=1, method=plan, threads=2)
    image = fastconv.plan((16, 16), (3, 3), padding="full", threads=1)
    got = fastconv.correlate2d(np.ones((16, 16)), np.ones((3, 3)), "full", method=image)
    assert got.shape == (18, 18) and got[5, 5] == 9.0


def test_a_plan_runs_with_its_own_budget_under_another(rng):
    """A plan made under the default budget and reused where the global budget is 64 KiB runs
    with the tiling and budget it was made for (the kernel spectra of this 1x1 layer need ~4 MiB,
    so FFT itself declines a 64 KiB budget)."""
    x, w, bias = random_layer(rng, (2, 64, 14, 14), (64, 64, 1, 1), np.float32)
    plan = fastconv.plan(x.shape, w.shape, dtype=np.float32, method="fft")
    assert plan.workspace_budget == fastconv.get_workspace_budget() > 2**16
    with fastconv.workspace_budget(2**16):
        assert REGISTRY["fft"].declines(plan.geometry, 2**16) is not None
        with pytest.raises(ValueError, match=r"`method` 'fft' cannot run this problem: its "
                                             r"kernel spectra and buffers do not fit"):
            fastconv.conv2d(x, w, bias, method="fft")
        got = fastconv.conv2d(x, w, bias, method=plan)
        assert fastconv.last_method() == "fft"
    expected = reference_conv2d(x, w, bias)
    assert_close(got, expected, reference_conv2d(abs(x), abs(w), abs(bias)), np.float32, "fft")


@pytest.mark.parametrize("method", [name for name, strategy in REGISTRY.items()
                                    if strategy.non_finite_fallback])
def test_non_finite_data_run_on_the_plans_fallback_and_say_so(method, rng):
    """Data too dense in NaN and Inf for the strategy's exact propagation run on the plan's
    fallback, the direct strategy: its repr states the rule, last_method() what ran."""
    x, w, bias = random_layer(rng, (2, 3, 13, 12), (4, 3, 3, 3), np.float64)
    w = rng.standard_normal((4, 3, 3, 1)) * rng.standard_normal((4, 3, 1, 3))  # separable too
    plan = fastconv.plan(x.shape, w.shape, padding=1, method=method, weights=w)
    assert plan.fallback is not None
    assert "\n  Rule: data holding NaN or Inf run on direct" in repr(plan)
    assert "Rule:" not in repr(fastconv.plan(x.shape, w.shape, padding=1, method="direct",
                                             weights=w))
    fastconv.conv2d(x, w, bias, padding=1, method=plan)
    assert fastconv.last_method() == method
    x[0, :, ::2] = np.nan  # the first image only: the second one's outputs stay finite
    x[0, 1, 1, 1] = np.inf
    got = fastconv.conv2d(x, w, bias, padding=1, method=plan)
    assert fastconv.last_method() == "direct"
    np.testing.assert_array_equal(got, fastconv.conv2d(x, w, bias, padding=1, method="direct"))
    assert np.isnan(got[0]).all() and np.isfinite(got[1]).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(input_shape=(1, 2, 8)), ValueError, r"`weight_shape` must be of shape "
                                                  r"\(out_channels, 1, kh, kw\)"),
        (dict(input_shape=(8,)), ValueError, r"`input_shape` must be 2-D \(H, W\), 3-D"),
        (dict(input_shape=(1, 1, 8, -8)), ValueError, r"`input_shape` must be a tuple of "
                                                      r"positive ints; got \(1, 1, 8, -8\)"),
        (dict(input_shape=(1, 1, 8.0, 8)), TypeError, r"`input_shape` must be a tuple of ints"),
        (dict(input_shape=8), TypeError, r"`input_shape` must be a tuple of ints; got 8"),
        (dict(weight_shape=(3, 3)), ValueError, r"`weight_shape` must be 4-D"),
        (dict(dtype="U3"), TypeError, r"`dtype` must be numeric .*got <U3"),
        (dict(dtype="no-such-type"), TypeError, r"`dtype` must be a NumPy dtype"),
        (dict(method="fastest"), ValueError, r"`method` must be 'auto' or one of \('direct'"),
        (dict(method="measure"), ValueError, r"`method` must be 'auto' or one of"),
        (dict(threads=0), ValueError, r"`threads` must be >= 1; got 0\."),
        (dict(groups=3), ValueError, r"`groups` must be a positive divisor"),
        (dict(stride=0), ValueError, r"`stride` must be >= 1"),
        (dict(padding="half"), ValueError, r"`padding` must be"),
        (dict(padding_mode="mirror"), ValueError, r"`padding_mode` must be one of"),
        (dict(weight_shape=(2, 2, 9, 9)), ValueError, r"`weight_shape` must be no larger"),
    ],
)
def test_plan_argument_errors(kwargs, error, match):
    arguments = dict(input_shape=(1, 2, 8, 8), weight_shape=(2, 2, 3, 3)) | kwargs
    with pytest.raises(error, match=match):
        fastconv.plan(**arguments)


def test_method_and_persist_errors():
    x, w = np.ones((6, 6)), np.ones((3, 3))
    with pytest.raises(ValueError, match=r"`method` must be 'auto' or one of \('direct'.*, "
                                         r"'measure' or a fastconv.Plan; got 'best'"):
        fastconv.conv2d(x, w, method="best")
    with pytest.raises(ValueError, match=r"`persist` must be None, or True or False with "
                                         r"method='measure'; got True with method='auto'"):
        fastconv.conv2d(x, w, persist=True)
    with pytest.raises(ValueError, match=r"`persist` must be None, or True or False"):
        fastconv.correlate2d(x, w, method="measure", persist="yes")


def _toy(name, declines, model=None):
    """A strategy that runs the direct strategy's kernel and tiling, priced by ``model`` (None:
    no cost model)."""
    direct = REGISTRY["direct"]

    def work(geometry, threads, budget, constants):
        tiling = direct.work(geometry, threads, budget, constants).tiling
        if model is None:
            return Work(None, None, tiling)
        return replace(model(geometry, threads, budget, constants), tiling=tiling)

    return Strategy(name=name, summary="test strategy", declines=declines, work=work,
                    run=direct.run)


def test_a_declining_strategy_is_never_chosen():
    def only_3x3(geometry, budget):
        if (geometry.kernel_height, geometry.kernel_width) != (3, 3):
            return "3x3 kernels only"
        return None

    def free(geometry, threads, budget, constants):
        return Work({}, 0)  # estimated at 0 s: the fastest wherever it runs

    with registered(_toy("only3x3", only_3x3, free)):
        assert fastconv.plan((32, 32), (3, 3)).method == "only3x3"
        plan = fastconv.plan((32, 32), (5, 5))
        assert plan.method != "only3x3"
        assert plan.candidate("only3x3").declined == "3x3 kernels only"
        assert "only3x3" in repr(plan) and "declines: 3x3 kernels only" in repr(plan)
        with pytest.raises(ValueError, match=r"`method` 'only3x3' cannot run this problem: 3x3 "
                                             r"kernels only"):
            make_plan(plan.geometry, "only3x3", 1)


def test_a_strategy_without_cost_model_is_chosen_only_when_nothing_else_runs():
    with registered(_toy("unmodelled", lambda geometry, budget: None)):
        plan = fastconv.plan((2, 4, 16, 16), (4, 4, 3, 3))
        assert plan.method != "unmodelled" and plan.candidate("unmodelled").seconds is None
        assert "not estimated: unmodelled" in plan.reason and "unknown" in repr(plan)
        # The built-in direct strategy runs everything: 'auto's choice among candidates where
        # every other strategy declines.
        others_decline = [c if c.method == "unmodelled" else replace(c, seconds=None,
                                                                     declined="no")
                          for c in plan.candidates]
        assert _choose(others_decline, plan.geometry.dtype)[0].method == "unmodelled"


def test_integer_data_never_goes_to_a_rounding_strategy():
    image = np.arange(200 * 200).reshape(200, 200) % 7
    kernel = np.ones((41, 41), np.int64)
    # Shapes only: the all-ones kernel is also an exact integer outer product (separable).
    geometry = replace(conv2d_problem(image, kernel, None, 1, 0, 1, 1, "zeros")[0].geometry,
                       kernel_rank=None)
    integer = replace(geometry, dtype=np.dtype(np.int64))
    floating = make_plan(geometry, "auto", 1)
    assert REGISTRY[floating.method].rounds_integers  # the large kernel favours FFT for floats
    plan = make_plan(integer, "auto", 1)
    assert not REGISTRY[plan.method].rounds_integers and "rounds integer results" in plan.reason
    got = fastconv.correlate2d(image, kernel, "valid")
    np.testing.assert_array_equal(got, fastconv.correlate2d(image, kernel, "valid",
                                                            method="direct"))


def test_calibrate_fits_every_strategy_and_the_threads(monkeypatch):
    from fastconv.planning import calibrate

    problems = calibrate.problems()
    # Every strategy is also timed on the conv1d/conv3d problems whose reduction it runs.
    ranked = {method: [g for g in chosen if isinstance(g, NdGeometry)]
              for method, chosen in problems.items()}
    assert ranked["direct"] == ranked["im2col"] == ranked["fft"] == calibrate.RANK_PROBLEMS
    assert {g.rank for g in calibrate.RANK_PROBLEMS} == {1, 3}
    assert ranked["winograd"] and all(g.rank == 3 and g.weight_shape[3:] == (3, 3)
                                      for g in ranked["winograd"])
    assert ranked["separable"] == []
    # A quarter of the problems, timed briefly: this checks the fit, not the machine.
    monkeypatch.setattr(calibrate, "problems",
                        lambda: {method: chosen[::4] for method, chosen in problems.items()})
    monkeypatch.setattr(calibrate, "ROUNDS", 1)
    monkeypatch.setattr(calibrate, "THREAD_PAIRS", 2)
    lines = []
    constants = calibrate.calibrate(2, lines.append)
    assert lines[0].startswith("timed ")
    assert [line.split(":")[0] for line in lines[1:]] == [*problems, "threads"]
    values = constants.values
    assert all(np.isfinite(value) and value >= 0 for value in values.values()), values
    assert 0.3 <= constants.parallel <= 1.0


def test_constants_round_trip_through_the_cache_file(tmp_path):
    fitted = defaults().replace(direct_pass=3e-8, gemm_f32=1e-11, fft_mac=1.7)
    path = save_constants(fitted, "2026-01-01 00:00 UTC")
    assert os.path.dirname(path) == str(tmp_path)
    set_machine_constants(None)
    loaded = machine_constants()
    assert loaded == fitted.replace(source="calibrated 2026-01-01 00:00 UTC")
    plan = fastconv.plan((64, 64), (3, 3))
    assert "constants: calibrated 2026-01-01" in repr(plan)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "written for another format, version or CPU"),
        (None, "written for another format, version or CPU"),
        ("constants", "do not match this version's cost model"),
    ],
)
def test_corrupt_or_stale_cache_file_warns_and_falls_back_to_defaults(content, reason):
    save_constants(defaults().replace(launch=1.0), "now")
    path = cachefile.path()
    with open(path) as f:
        data = json.load(f)
    if content is None:
        text = json.dumps(data | {"fastconv": "0.0.1"})
    elif content == "constants":
        text = json.dumps(data | {"constants": data["constants"] | {"launch": -1}})
    else:
        text = content
    with open(path, "w") as f:
        f.write(text)
    set_machine_constants(None)
    with pytest.warns(RuntimeWarning, match=reason):
        assert machine_constants() == defaults()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the measured winners' read warns too
        out = fastconv.conv2d(np.ones((9, 9)), np.ones((3, 3)), method="measure", persist=True)
    assert out.shape == (7, 7)
    with open(path) as f:
        assert json.load(f)["measured"]  # the update replaced the bad content


def test_concurrent_writers_leave_a_valid_file(tmp_path):
    code = textwrap.dedent("""
        import sys
        from fastconv.planning import cachefile
        writer = sys.argv[1]
        for i in range(25):
            def change(data, i=i):
                data.setdefault("measured", {})[f"{writer}-{i}"] = {"method": "direct",
                                                                    "threads": 1}
            cachefile.update(change)
        """)
    env = os.environ | {"FASTCONV_CACHE_DIR": str(tmp_path)}
    writers = [subprocess.Popen([sys.executable, "-c", code, str(n)], cwd=ROOT, env=env)
               for n in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in writers)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measured = cachefile.read()["measured"]
    assert len(measured) == 100
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_measure_returns_what_its_winner_returns(rng, monkeypatch):
    x = rng.standard_normal((2, 8, 24, 24)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    got = fastconv.conv2d(x, w, padding=1, method="measure", threads=1)
    ((key, (method, threads)),) = measure.remembered().items()
    assert "2x8x24x24*8x8x3x3 float32" in key and threads == 1
    np.testing.assert_array_equal(got, fastconv.conv2d(x, w, padding=1, method=method,
                                                       threads=1))

    def no_timing(problem, threads):
        raise AssertionError("measured again")

    monkeypatch.setattr(measure, "measure", no_timing)
    again = fastconv.conv2d(x, w, padding=1, method="measure", threads=1)
    np.testing.assert_array_equal(again, got)
    assert not os.path.exists(cachefile.path())  # persist is off by default


def test_measure_times_every_runnable_strategy_without_compilation(rng):
    problem, _ = conv2d_problem(rng.standard_normal((1, 4, 20, 20)), np.ones((4, 4, 5, 5)),
                                None, 1, 2, 1, 1, "zeros")
    out, method, threads, timings = measure.measure(problem, 1)
    plan = make_plan(problem.geometry, "auto", 1)
    assert set(timings) == {c.method for c in plan.candidates if c.declined is None}
    assert timings[method] == min(timings.values())
    assert max(timings.values()) < 0.5  # a compilation (~1 s or more) would show


def test_persisted_winner_is_used_by_the_next_process(rng, tmp_path):
    image = rng.standard_normal((30, 40))
    got = fastconv.correlate2d(image, np.ones((4, 4)), "same", method="measure", persist=True)
    measured = cachefile.read()["measured"]
    ((key, entry),) = measured.items()
    assert set(entry) == {"method", "threads", "seconds"} and entry["method"] in entry["seconds"]
    code = textwrap.dedent("""
        import numpy as np, fastconv
        from fastconv.planning import measure

        def no_timing(problem, threads):
            raise AssertionError("measured again")

        measure.measure = no_timing
        image = np.random.default_rng(0).standard_normal((30, 40))
        out = fastconv.correlate2d(image, np.ones((4, 4)), "same", method="measure")
        print(out.shape, len(measure.remembered()))
        """)
    env = os.environ | {"FASTCONV_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(30,", "40)", "1"]
    assert got.shape == (30, 40)


def test_persist_by_environment_switch(monkeypatch):
    monkeypatch.setenv("FASTCONV_PERSIST", "1")
    fastconv.convolve2d(np.ones((12, 12)), np.ones((3, 3)), method="measure")
    assert len(cachefile.read()["measured"]) == 1


@pytest.fixture
def three_winners():
    """measure remembers at most 3 winners in memory, for one test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(measure, "MEMORY_SIZE", 3)
        measure.clear()
        yield
    measure.clear()


def test_measure_is_thread_safe_and_bounded(rng, three_winners):
    images = [rng.standard_normal((20 + n, 20)) for n in range(6)]
    kernel = rng.standard_normal((3, 3))
    expected = [fastconv.correlate2d(image, kernel, method="direct", threads=1)
                for image in images]
    results = {}
    errors = []

    def worker(index):
        try:
            for _ in range(3):
                for n in range(index % 2, len(images), 2):
                    out = fastconv.correlate2d(images[n], kernel, method="measure", threads=1)
                    results.setdefault(n, []).append(out)
        except Exception as error:  # reported below with the thread's context
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(measure.remembered()) <= 3
    for n, outs in results.items():
        for out in outs:
            np.testing.assert_allclose(out, expected[n], rtol=1e-12, atol=1e-12)
