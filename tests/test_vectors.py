"""tests/vectors: the third-party vectors are in the repository, unmodified, each with its licence.

SHA256SUMS (`sha256sum -c` format) pins every file as copied; LICENSES.md names each file's
upstream repository and licence (SPDX). Nothing under tests/, bench/ or native/ reads the team's
folder beside the repository any more.
"""

from __future__ import annotations

import hashlib
import re
import subprocess

from tests.conftest import REPO_ROOT, VECTORS

OWN_FILES = {"LICENSES.md", "SHA256SUMS"}  # written beside the copies, not copied
SPDX = {"MIT", "CC0-1.0", "MPL-2.0", "MIT OR Apache-2.0"}
ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<source>[^|]+) \| (?P<licence>[^|]+) \|$")


def copied_files() -> set[str]:
    return {p.relative_to(VECTORS).as_posix() for p in VECTORS.rglob("*") if p.is_file()} - OWN_FILES


def test_vectors_live_in_the_repository() -> None:
    assert VECTORS == REPO_ROOT / "tests" / "vectors"
    assert (VECTORS / "SOURCES.md").is_file() and (VECTORS / "verkle" / "SOURCES.md").is_file()
    assert len(copied_files()) == 108


def test_every_file_is_unmodified() -> None:
    sums = {}
    for line in (VECTORS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    assert set(sums) == copied_files()
    changed = [
        name for name, digest in sums.items() if hashlib.sha256((VECTORS / name).read_bytes()).hexdigest() != digest
    ]
    assert changed == []


def test_every_file_has_its_source_and_licence() -> None:
    rows = {}
    for line in (VECTORS / "LICENSES.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match["file"]] = (match["source"].strip(), match["licence"].strip())
    assert set(rows) == copied_files()
    for name, (source, licence) in rows.items():
        assert source, name
        parts = {re.sub(r"\s*\(.*\)$", "", part.strip()) for part in licence.split(";")}
        assert parts <= SPDX, (name, licence)


def test_nothing_reads_the_folder_beside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "grep", "--untracked", "-l", "-e", "shared/vectors", "-e", "../shared", "--", "tests", "bench",
         "native", "Makefile", ".ci", "pyproject.toml", ":!tests/vectors", ":!tests/test_vectors.py"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tracked.returncode in (0, 1), tracked.stderr
    assert tracked.stdout.split() == []
