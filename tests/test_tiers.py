"""The test tiers and the Makefile around them: `make unit` leaves out every test that starts a
chain node (a test that starts anvil without the `node` marker fails), `make test` runs the whole
suite, and `make help` lists every target with its one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

MAKEFILE = REPO_ROOT / "Makefile"

PROBE = """
import os

import pytest

from chains.anvil import start_anvil


def test_unmarked_starts_anvil():
    start_anvil(31337).stop()


def test_unmarked_without_anvil():
    assert os.environ["ANVIL_BIN"] != "/real/anvil"


@pytest.mark.node
def test_marked_gets_the_real_anvil_path():
    assert os.environ["ANVIL_BIN"] == "/real/anvil"


def test_with_the_anvil_fixture(anvil):
    pass


def test_reads_vectors(vectors):
    assert (vectors / "SOURCES.md").is_file()
"""


def unit_markers() -> str:
    match = re.search(r"^UNIT_MARKERS := (.+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert match, "Makefile: no UNIT_MARKERS"
    return match[1]


def run_probe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest on PROBE with this repository's conftest as a plugin; ANVIL_BIN names a real-looking
    path that the `node` tests must get back."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_ANVIL_LOG", "PYTEST_ADDOPTS")}
    env["ANVIL_BIN"] = "/real/anvil"
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-rA", "-q"]
    return subprocess.run(
        [*command, "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), *args, str(tmp_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def outcomes(output: str) -> dict[str, set[str]]:
    """Test name -> its outcomes in the short summary (a test can fail, then error in teardown)."""
    found: dict[str, set[str]] = {}
    for kind, name in re.findall(r"^(PASSED|FAILED|ERROR) \S*::(\w+)", output, re.MULTILINE):
        found.setdefault(name, set()).add(kind)
    return found


@pytest.mark.process
def test_a_test_that_starts_anvil_without_the_node_marker_fails(tmp_path: Path) -> None:
    done = run_probe(tmp_path, "-k", "not fixture")
    result = outcomes(done.stdout)
    assert "PASSED" not in result["test_unmarked_starts_anvil"], done.stdout
    assert "ERROR" in result["test_unmarked_starts_anvil"], done.stdout
    assert "test_unmarked_starts_anvil started anvil but is not marked `node`" in done.stdout
    assert "anvil --host 127.0.0.1" in done.stdout  # the stand-in's log of the call
    assert result["test_unmarked_without_anvil"] == {"PASSED"}, done.stdout
    assert result["test_marked_gets_the_real_anvil_path"] == {"PASSED"}, done.stdout
    assert result["test_reads_vectors"] == {"PASSED"}, done.stdout


@pytest.mark.process
def test_make_unit_deselects_node_tests(tmp_path: Path) -> None:
    done = run_probe(tmp_path, "--collect-only", "-m", unit_markers())
    collected = set(re.findall(r"::(\w+)$", done.stdout, re.MULTILINE))
    assert collected == {"test_unmarked_starts_anvil", "test_unmarked_without_anvil", "test_reads_vectors"}, done.stdout


def make(*args: str) -> str:
    # not the variables of a make that runs this test (`make test PYTEST_WORKERS=4`): the Makefile's own
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTEST_WORKERS")}
    command = ["make", "--no-print-directory", *args]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_unit_excludes_every_tier_that_needs_more_than_python() -> None:
    markers = unit_markers()
    assert markers == "not node and not tools and not process and not property"
    assert f'-m pytest -q -m "{markers}"' in make("-n", "unit")


def test_test_runs_the_whole_suite_and_ci_runs_test() -> None:
    commands = make("-n", "test").splitlines()
    assert ".venv/bin/python -m pytest -q -n 0 --dist loadfile" in commands  # serially by default
    assert not any("pytest" in line and " -m " in line.split("pytest", 1)[1] for line in commands)
    assert ".venv/bin/python -m pytest -q -n 4 --dist loadfile" in make("-n", "test", "PYTEST_WORKERS=4").splitlines()
    ci = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert "make test" in ci


def test_help_lists_every_target_with_one_line() -> None:
    phony = re.search(r"^\.PHONY: (.+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert phony
    listed = dict(re.findall(r"^  (\S+) +(\S.*)$", make("help"), re.MULTILINE))
    assert set(listed) == set(phony[1].split())
    assert {"help", "setup", "unit", "test", "demo", "lint", "pytest", "bench"} <= set(listed)
