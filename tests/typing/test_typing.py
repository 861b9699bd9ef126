"""mypy on calls.py: the public API's annotations accept its correct calls and reject each
incorrect one with the expected error; the annotations' literals are the registries' names."""

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import fastconv
from fastconv import _typing, _validate

HERE = Path(__file__).resolve().parent


def _literals(alias):
    """The strings of a Literal alias, or of a union of Literals."""
    if typing.get_origin(alias) is typing.Literal:
        return list(typing.get_args(alias))
    return [value for part in typing.get_args(alias) for value in _literals(part)]


def test_literals_follow_the_registries():
    assert _literals(_typing.StrategyName) == list(fastconv.METHODS)
    assert _literals(_typing.MethodName) == ["auto", "measure", *fastconv.METHODS]
    assert _literals(_typing.PaddingMode) == list(_validate.PADDING_MODES)
    assert _literals(_typing.Padding) == list(_validate.PADDING_WORDS)
    assert _literals(_typing.Mode) == list(_validate.SCIPY_MODES)
    assert _literals(_typing.Boundary) == list(_validate.SCIPY_BOUNDARIES)


def test_mypy_accepts_correct_calls_and_rejects_the_others():
    pytest.importorskip("mypy")
    source = (HERE / "calls.py").read_text().splitlines()
    expected = {(number, match.group(1)) for number, line in enumerate(source, 1)
                if (match := re.search(r"# E: ([\w-]+)$", line))}
    assert len(expected) == 10
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
         "--show-error-codes", "--hide-error-context", "--no-error-summary", "calls.py"],
        capture_output=True, text=True, cwd=HERE, timeout=600,
        env=os.environ | {"MYPYPATH": str(HERE.parent.parent)})
    reported = {(int(number), code) for number, code in
                re.findall(r"^calls\.py:(\d+): error: .*\[([\w-]+)\]$", result.stdout, re.M)}
    assert reported == expected, result.stdout + result.stderr
