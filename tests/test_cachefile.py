"""The per-user cache file can never break a call: whatever it holds (or whatever the path is),
planning, 'auto' and method='measure' (with persist=True) go on, with at most one RuntimeWarning
per process, and a file fastconv writes is always valid again."""

import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv.planning import cachefile, measure
from fastconv.planning import constants as machine

X = np.arange(81.0).reshape(9, 9)
K = np.ones((3, 3))
EXPECTED = fastconv.conv2d(X, K, method="direct")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FASTCONV_PERSIST", raising=False)
    _reset()
    yield
    _reset()


def _reset():
    machine.set_machine_constants(None)
    cachefile._warned.clear()
    measure.clear()


def _valid():
    """The content of a valid cache file (constants and one measured winner)."""
    header = {"format": cachefile.FORMAT, "fastconv": fastconv.__version__,
              "cpu": cachefile.cpu_model()}
    constants = dict(machine.defaults().values)
    return header | {"constants": constants, "calibrated": "now", "measured": {}}


def _calls_go_on():
    """Plan, 'auto' and a persisted measurement on the current cache file; returns the
    RuntimeWarnings they raised."""
    _reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        constants = machine.machine_constants()
        assert isinstance(constants, machine.MachineConstants)
        assert fastconv.plan((9, 9), (3, 3)).method in fastconv.METHODS
        np.testing.assert_allclose(fastconv.conv2d(X, K), EXPECTED)
        for _ in range(2):  # the second call reads the winner back
            np.testing.assert_allclose(fastconv.conv2d(X, K, method="measure", persist=True),
                                       EXPECTED)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) <= 1, [str(w.message) for w in runtime]
    return runtime


def _write(content):
    path = cachefile.path()
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as f:
        f.write(content)
    return path


def _with(**changes):
    return json.dumps(_valid() | changes)


def _constants_with(**changes):
    return json.dumps(_valid() | {"constants": _valid()["constants"] | changes})


@pytest.mark.parametrize(("content", "reason"), [
    (b"\xff\xfe{\x00", "codec can't decode"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "not valid JSON"),
    ("1" * 5000, "not valid JSON"),  # beyond Python's int digits limit
    (_constants_with(launch=10**400), "do not match|more than"),
    (_constants_with(launch=1e308), "launch are more than 10000 times off the shipped defaults"),
    (_constants_with(gemm_f32=1e-300), "gemm_f32 are more than 10000 times off"),
    (_constants_with(gemm_b=1e300), "gemm_b are more than 10000 times off"),
    (_constants_with(launch=float("nan")), "do not match this version's cost model"),
    (_constants_with(launch=float("inf")), "do not match this version's cost model"),
    (_constants_with(launch="1e-6"), "do not match this version's cost model"),
    (_constants_with(launch=True), "do not match this version's cost model"),
    (_with(constants=[1, 2]), "do not match this version's cost model"),
], ids=["invalid-utf8", "deep-list", "deep-dict", "long-int", "constant-10**400",
        "constant-1e308", "constant-1e-300", "zero-default-1e300", "nan", "inf", "string",
        "bool", "constants-list"])
def test_corrupt_file_warns_once_and_calls_go_on(content, reason):
    _write(content)
    (warning,) = _calls_go_on()
    assert "fastconv: ignoring the cache file" in str(warning.message)
    assert any(r in str(warning.message) for r in reason.split("|")), str(warning.message)
    with open(cachefile.path(), encoding="utf-8") as f:
        json.load(f)  # the persisted measurement replaced the bad content


@pytest.mark.parametrize("entry", [
    {"method": ["direct"], "threads": 1},
    {"method": {"a": 1}, "threads": 1},
    {"method": "direct", "threads": True},
    {"method": "direct", "threads": 10**30},
    {"method": "direct", "threads": "1"},
    {"method": "nonsense", "threads": 1},
    ["direct", 1],
    None,
], ids=["method-list", "method-dict", "threads-bool", "threads-huge", "threads-str",
        "unknown-method", "entry-list", "entry-null"])
def test_bad_measured_entries_are_measured_again(entry):
    plan = fastconv.plan((9, 9), (3, 3), weights=K)  # the calls' geometry, the kernel's rank too
    key = measure.problem_key(plan.geometry, plan.max_threads, fastconv.get_workspace_budget())
    _write(_with(measured={key: entry}))
    assert not _calls_go_on()
    with open(cachefile.path(), encoding="utf-8") as f:
        assert json.load(f)["measured"][key]["method"] in fastconv.METHODS


def test_cache_path_that_is_a_directory():
    os.makedirs(cachefile.path())
    (warning,) = _calls_go_on()
    assert "Is a directory" in str(warning.message)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only directories")
def test_unwritable_cache_directory(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        (warning,) = _calls_go_on()
    finally:
        os.chmod(tmp_path, 0o700)
    assert "fastconv: cannot write the cache file" in str(warning.message)


def test_plausible_constants_are_used():
    fitted = machine.defaults().replace(launch=machine.defaults().launch * 50, gemm_b=1e-12,
                                        fft_other=0)
    _write(json.dumps(_valid() | {"constants": {
        k: v for k, v in fitted.values.items()}}))
    assert not _calls_go_on()
    assert machine.machine_constants() == fitted.replace(source="calibrated now")


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(where=st.sampled_from(["constants", "constant", "measured", "entry", "top", "bytes"]),
       value=json_values, raw=st.binary(max_size=64))
def test_fuzzed_cache_file_never_breaks_a_call(where, value, raw):
    data = _valid()
    geometry = fastconv.plan((9, 9), (3, 3)).geometry
    key = measure.problem_key(geometry, fastconv.plan((9, 9), (3, 3)).max_threads,
                               fastconv.get_workspace_budget())
    if where == "constants":
        data["constants"] = value
    elif where == "constant":
        data["constants"]["direct_call"] = value
    elif where == "measured":
        data["measured"] = value
    elif where == "entry":
        data["measured"] = {key: value}
    elif where == "top":
        data = value
    _write(raw if where == "bytes" else json.dumps(data))
    _calls_go_on()
