"""The README documents what the registry holds and the test command CI runs."""

import pathlib
import re

import fastconv
from fastconv.strategies import REGISTRY

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_method_table_lists_every_method():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Methods", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.*) \|$", section, flags=re.MULTILINE)
    assert rows == [(name, REGISTRY[name].summary) for name in fastconv.METHODS]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = readme.split("## Tests", 1)[1].split("```bash\n", 1)[1].split("\n", 1)[0]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci


def test_readme_links_point_into_the_repository():
    """Images and relative links resolve to committed files (a report written to /tmp once left
    the README pointing there)."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)\)", readme)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links no local files"
    missing = [t for t in local if not (ROOT / t).resolve().is_relative_to(ROOT)
               or not (ROOT / t).exists()]
    assert not missing, missing
