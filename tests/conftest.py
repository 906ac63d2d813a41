"""Shared fixtures: the third-party vectors folder and real anvil nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
VECTORS = REPO_ROOT.parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """`../shared/vectors` beside the repository. Absent: skip, or fail under CI=true."""
    if not VECTORS.is_dir():
        message = f"third-party vectors folder {VECTORS} is absent (see ../shared/vectors/SOURCES.md)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
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
