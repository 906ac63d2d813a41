"""Shared fixtures: the third-party vectors (tests/vectors) and real anvil nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
VECTORS = REPO_ROOT / "tests" / "vectors"


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
