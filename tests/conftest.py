"""Shared fixtures and the test tiers: the third-party vectors, real anvil nodes, the markers.

Tiers (DESIGN section 5: unit, vectors, property, integration, faults), as markers registered in
pyproject.toml. `make unit` runs the unit and vectors tiers: `-m "not node and not tools and not
process and not property"`; `make test` runs everything.

- `node`: the test starts a chain node (anvil, or ganache in tests/integration). Given to every
  test under tests/integration/ and tests/contracts/, to every `integration` test and to every
  test using the `anvil` fixture;
  any other test that starts anvil carries `@pytest.mark.node` itself. A test without the marker
  that starts anvil fails (see `pytest_runtest_setup`), so none can slip into `make unit`.
- `integration`: real nodes, the daemon as a process (every test under tests/integration/).
- `tools`: runs an external Debian tool (promtool, systemd-analyze, clang with libFuzzer, valgrind,
  the PostgreSQL server); given to every test using the `postgres` fixtures (tests/pg.py).
- `process`: runs a program per case: the relayer command (`python -m relayer.cli`) or a node.js
  reference (OpenZeppelin merkle-tree, verkle-cryptography-wasm); about a second each to start.
- `property`: a hypothesis test (given to every `@given` test).
- `vectors`: reads the third-party vectors in tests/vectors/ (given to every user of `vectors`).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS = REPO_ROOT / "tests"
VECTORS = TESTS / "vectors"

# Folders whose every test starts a chain node.
NODE_FOLDERS = ("integration", "contracts")
# Fixtures that start anvil.
NODE_FIXTURES = frozenset({"anvil"})
# Fixtures that start the PostgreSQL server (a Debian tool).
TOOL_FIXTURES = frozenset({"postgres_cluster", "postgres", "postgres_store"})
# What `ANVIL_BIN` points to while a test without the `node` marker runs: it exits at once with
# this code, and writes why into the file named by NO_ANVIL_LOG.
NO_ANVIL_EXIT = 97
NO_ANVIL_SCRIPT = '#!/bin/sh\necho "anvil $*" >> "$NO_ANVIL_LOG"\nexit {code}\n'
_NO_ANVIL = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def vectors() -> Path:
    """tests/vectors: the third-party vectors the repository carries (SOURCES.md, LICENSES.md).

    Never skips: a missing folder fails the test (tests/test_vectors.py checks each file)."""
    if not VECTORS.is_dir():
        pytest.fail(f"third-party vectors folder {VECTORS} is missing from the checkout (see tests/vectors/SOURCES.md)")
    return VECTORS


@pytest.fixture
def anvil() -> Iterator[object]:
    """A fresh anvil node (chain id 31337) for one test; never skipped: fails if anvil is missing."""
    from chains.anvil import start_anvil

    node = start_anvil(31337)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[object]:
    """A throwaway PostgreSQL cluster for the session (tests/pg.py): a unix socket in a temporary
    directory, stopped and removed at the end; never skipped: fails if the server is missing."""
    from tests.pg import throwaway_cluster

    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_store_template(postgres_cluster: object) -> str:
    """A database on the session's cluster holding an empty store's tables (made once by
    relayer.storage.store.Store, then closed): the template of each test's fresh store."""
    import psycopg

    from relayer.storage.store import Store
    from tests.pg import Cluster

    assert isinstance(postgres_cluster, Cluster)
    with psycopg.connect(postgres_cluster.conninfo(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE store_template")
    Store(postgres_cluster.url("store_template")).close()
    return "store_template"


@pytest.fixture
def postgres_store(postgres_cluster: object, postgres_store_template: str) -> Iterator[str]:
    """A fresh PostgreSQL store for one test (a new database copied from the template): its
    `postgresql://` URL, for `Store(url)`."""
    from tests.pg import Cluster, fresh_database

    assert isinstance(postgres_cluster, Cluster)
    with fresh_database(postgres_cluster, template=postgres_store_template, url=True) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.tools)])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's fresh store is, once per backend: a SQLite file in `tmp_path`, or the URL of
    a `postgres_store` (the `tools` tier: it needs the PostgreSQL server). Open it with
    `Store(store_location)`, again to reopen."""
    if request.param == "sqlite":
        return tmp_path / "relayer.sqlite"
    return str(request.getfixturevalue("postgres_store"))


@pytest.fixture
def postgres(postgres_cluster: object) -> Iterator[str]:
    """A fresh empty database on the session's cluster for one test: its libpq connection string."""
    from tests.pg import Cluster, fresh_database

    assert isinstance(postgres_cluster, Cluster)
    with fresh_database(postgres_cluster) as conninfo:
        yield conninfo


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give the tier markers that follow from a test's folder and fixtures."""
    for item in items:
        path = Path(str(item.path))
        folder = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else ""
        fixtures = set(getattr(item, "fixturenames", ()))
        if folder == "integration":
            item.add_marker(pytest.mark.integration)
        if folder in NODE_FOLDERS or fixtures & NODE_FIXTURES or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.node)
        if fixtures & TOOL_FIXTURES:
            item.add_marker(pytest.mark.tools)
        if "vectors" in fixtures:
            item.add_marker(pytest.mark.vectors)
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)


_REAL_ANVIL_BIN = os.environ.get("ANVIL_BIN")


def pytest_configure(config: pytest.Config) -> None:
    """Write the stand-in anvil (a shell script) into a folder of this run."""
    folder = Path(tempfile.mkdtemp(prefix="no-anvil-"))
    script = folder / "anvil"
    script.write_text(NO_ANVIL_SCRIPT.format(code=NO_ANVIL_EXIT))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    config.stash[_NO_ANVIL] = script


def pytest_unconfigure(config: pytest.Config) -> None:
    script = config.stash.get(_NO_ANVIL, None)
    if script is not None:
        shutil.rmtree(script.parent, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of `item`: a test without the `node` marker gets a stand-in anvil
    (ANVIL_BIN) that refuses to start; a `node` test gets the real one back."""
    if item.get_closest_marker("node") is not None:
        if _REAL_ANVIL_BIN is None:
            os.environ.pop("ANVIL_BIN", None)
        else:
            os.environ["ANVIL_BIN"] = _REAL_ANVIL_BIN
        os.environ.pop("NO_ANVIL_LOG", None)
        return
    script = item.config.stash[_NO_ANVIL]
    os.environ["ANVIL_BIN"] = str(script)
    os.environ["NO_ANVIL_LOG"] = str(script.parent / "calls.log")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test without the `node` marker that tried to start anvil fails with the reason."""
    report = yield
    log = os.environ.get("NO_ANVIL_LOG")
    if call.when != "teardown" or not log or not Path(log).exists():
        return report
    calls = Path(log).read_text()
    Path(log).unlink()
    report.outcome = "failed"
    report.longrepr = (
        f"{item.nodeid} started anvil but is not marked `node` (tests/conftest.py): give it "
        f"@pytest.mark.node so `make unit` leaves it out. Calls:\n{calls}"
    )
    return report
