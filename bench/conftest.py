"""fastconv's benchmark suite: ``pytest bench/`` (outside the default test run).

Options (besides pytest-benchmark's own):

--grid {smoke,quick,full}
    Which workloads to run (see workloads.py); default ``quick``.
--threads N[,M...]
    Thread counts to run every case at, applied to every library; default
    ``$FASTCONV_BENCH_THREADS`` or all of Numba's threads. ``--threads 1,2`` runs both.
--max-call-seconds S
    Skip, with the estimate in the reason, cases whose single call is estimated to take longer;
    default per grid (``quick`` 2 s, ``full`` 10 s).
--report DIR
    Write pytest-benchmark's JSON to DIR/results.json (unless --benchmark-json is given) and the
    report (DIR/report.md and the plots) at the end of the run.

The quick grid also defaults to ``--benchmark-max-time=0.5 --benchmark-min-rounds=3`` (values
given on the command line win). Each case is one (problem, dtype, thread count, library) and
belongs to the benchmark group of its problem, so fastconv's methods and the peers line up in
pytest-benchmark's tables. The run prints a line whenever it enters a new group.
"""

import os
import time
from pathlib import Path

import machine
import pytest
from harness import BenchState, Case
from libraries import all_libraries
from workloads import BENCHMARK_DEFAULTS, GRIDS, MAX_CALL_SECONDS, RANK_GRIDS

STATE = pytest.StashKey[BenchState]()
THREADS = pytest.StashKey[list]()
PROGRESS = pytest.StashKey[dict]()
# Fixture name of a test function -> the workload kind it is parametrized with.
CASE_ARGUMENTS = {"image_case": "image", "layer_case": "layer"}


def pytest_addoption(parser):
    group = parser.getgroup("fastconv benchmarks")
    group.addoption("--grid", choices=sorted(GRIDS), default="quick",
                    help="workload grid: smoke (CI), quick (default, < 10 min on 2 cores) or full")
    group.addoption("--threads", default=os.environ.get("FASTCONV_BENCH_THREADS"),
                    help="comma-separated thread counts for every library (default: "
                         "$FASTCONV_BENCH_THREADS or all of Numba's threads)")
    group.addoption("--max-call-seconds", type=float, default=None,
                    help="skip cases whose estimated single call takes longer (default per grid)")
    group.addoption("--report", metavar="DIR", default=None,
                    help="write DIR/results.json and the report (markdown table, plots) there")


def thread_counts(config):
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    text = config.getoption("threads")
    if text is None:
        return [limit]
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or not all(1 <= count <= limit for count in counts):
        raise pytest.UsageError(f"--threads must be comma-separated counts between 1 and "
                                f"NUMBA_NUM_THREADS={limit}; got {text!r}.")
    return counts


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config):
    # PyTorch warns that 'same' padding with an even kernel copies the input: expected, and part
    # of the time it is measured for.
    config.addinivalue_line("filterwarnings",
                            "ignore:Using padding='same' with even kernel:UserWarning")
    given = " ".join(config.invocation_params.args)
    for option, value in BENCHMARK_DEFAULTS.get(config.getoption("grid"), {}).items():
        if "--" + option.replace("_", "-") not in given:
            setattr(config.option, option, value)
    report = config.getoption("report")
    if report is not None and config.getoption("benchmark_json", None) is None:
        Path(report).mkdir(parents=True, exist_ok=True)
        config.option.benchmark_json = Path(report) / "results.json"
    config.stash[THREADS] = thread_counts(config)
    limit = config.getoption("max_call_seconds")
    config.stash[STATE] = BenchState(
        MAX_CALL_SECONDS[config.getoption("grid")] if limit is None else limit)


def pytest_generate_tests(metafunc):
    if "gemm_threads" in metafunc.fixturenames:
        counts = metafunc.config.stash[THREADS]
        metafunc.parametrize("gemm_threads", counts, ids=[f"t{n}" for n in counts])
    for argument, kind in CASE_ARGUMENTS.items():
        if argument in metafunc.fixturenames:
            libraries = [library for library in all_libraries() if kind in library.kinds]
            cases = [
                Case(threads, workload, library)
                for threads in metafunc.config.stash[THREADS]
                for workload in GRIDS[metafunc.config.getoption("grid")] if workload.kind == kind
                for library in libraries
            ]
            metafunc.parametrize(argument, cases, ids=[case.id for case in cases])


@pytest.fixture(scope="session")
def bench_state(request):
    return request.config.stash[STATE]


def pytest_collection_finish(session):
    groups = {}
    items = {}
    for item in session.items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        case = next((params[name] for name in CASE_ARGUMENTS if name in params), None)
        if case is not None:
            items[item.nodeid] = groups.setdefault(case.group, len(groups) + 1), case.group
    session.config.stash[PROGRESS] = {"items": items, "groups": len(groups), "current": None,
                                      "start": time.perf_counter()}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    progress = item.config.stash[PROGRESS]
    entry = progress["items"].get(item.nodeid)
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    if entry is None or entry[1] == progress["current"] or reporter is None:
        return
    progress["current"] = entry[1]
    elapsed = time.perf_counter() - progress["start"]
    if item.config.get_verbosity() < 0:
        reporter.write("\n")  # quiet mode's progress dots do not end their line
    reporter.write_line(f"[bench] group {entry[0]}/{progress['groups']}: {entry[1]} "
                        f"({elapsed:.0f} s elapsed)", bold=True)


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["fastconv_bench"] = machine.describe()


def pytest_benchmark_update_json(config, benchmarks, output_json):
    state = config.stash[STATE]
    state.results_written = True
    output_json["fastconv_bench"] = {
        "grid": config.getoption("grid"),
        "threads": config.stash[THREADS],
        "max_call_seconds": state.max_call_seconds,
        # Display order for the report: the grid's problems and the suite's libraries.
        "problems": [workload.name for workload in GRIDS[config.getoption("grid")]
                     + RANK_GRIDS[config.getoption("grid")]],
        "libraries": [library.name for library in all_libraries()],
        "skipped": state.skipped,
    }


@pytest.hookimpl(trylast=True)  # after pytest-benchmark has written the JSON
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    directory = config.getoption("report")
    if directory is None or not config.stash[STATE].results_written:
        return
    results = config.getoption("benchmark_json")
    import report

    written = report.write_report(Path(results), Path(directory))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"[bench] report: {written}", bold=True)
