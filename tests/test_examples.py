"""The programs in examples/, run shortened."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_digits_learns(capsys):
    pytest.importorskip("sklearn")
    train_digits = load_example("train_digits")
    history = train_digits.main(["--epochs", "3", "--limit", "400", "--no-progress"])
    (first_loss, first_accuracy), (last_loss, last_accuracy) = history[0], history[-1]
    assert last_loss < first_loss
    assert last_accuracy > first_accuracy and last_accuracy > 0.8
    assert capsys.readouterr().out.count("accuracy") == 3
