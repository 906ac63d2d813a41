"""The native fuzzing and memory-checking tools, run from pytest (and so by `make test`):

- ``native/fuzz/run.sh 60``: the four libFuzzer harnesses (RLP decoder, MPT / account /
  storage verification, snapshot verification with the node cache, Merkle trees and
  multiproofs, Verkle witness / point / multiproof / transcript) under ASan + UBSan, 12 s each,
  seeded from tests/vectors and generated trees; any crash, leak, UB or violated invariant
  fails;
- ``native/memcheck/run.sh``: valgrind memcheck (``--error-exitcode=1 --leak-check=full``)
  over every vector through the same harness entry points;
- every input in tests/native/regressions/<rlp|mpt|snapshot|merkle|verkle>/ replayed through its harness
  built with gcc's ASan + UBSan (no clang needed).

A missing tool (clang with libFuzzer, valgrind, gcc) fails under CI=true and skips with the
reason otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.tools

REPO = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
KINDS = ("rlp", "mpt", "snapshot", "merkle", "verkle")


def require(tool: str, *alternatives: str, hint: str) -> str:
    """The first of `tool`, `alternatives` on PATH; else fail (CI=true) or skip."""
    for name in (tool, *alternatives):
        found = shutil.which(name)
        if found:
            return found
    message = f"{tool} is not installed ({hint})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def libfuzzer_clang() -> str:
    """A clang that can link -fsanitize=fuzzer (needs the compiler-rt libFuzzer runtime)."""
    hint = "Debian: apt-get install clang-14 libclang-rt-14-dev; see `make tools`"
    cc = require("clang", "clang-14", hint=hint)
    probe = subprocess.run(
        [cc, "-fsanitize=fuzzer", "-x", "c", "-", "-o", os.devnull],
        input="int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }",
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        message = f"{cc} cannot link libFuzzer ({hint}): {probe.stderr.strip()[-300:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return cc


def test_short_fuzz_run(vectors: Path) -> None:
    cc = libfuzzer_clang()
    env = {**os.environ, "CC": cc, "VECTORS": str(vectors)}
    proc = subprocess.run(
        [str(REPO / "native/fuzz/run.sh"), "60"], cwd=REPO, env=env, capture_output=True, text=True, timeout=150
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    stats = dict(re.findall(r"^\s+(fuzz_\w+)\s+execs=(\d+)", proc.stdout, re.MULTILINE))
    assert set(stats) == {f"fuzz_{kind}" for kind in KINDS}, proc.stdout
    assert all(int(execs) > 1000 for execs in stats.values()), stats
    cov = dict(re.findall(r"^\s+(fuzz_\w+)\s.*\bcov=(\d+)", proc.stdout, re.MULTILINE))
    assert all(int(edges) > 50 for edges in cov.values()), cov


def test_memcheck_over_vectors(vectors: Path) -> None:
    require("valgrind", hint="Debian: apt-get install valgrind")
    require("gcc", "cc", hint="Debian: apt-get install gcc")
    env = {**os.environ, "VECTORS": str(vectors)}
    proc = subprocess.run(
        [str(REPO / "native/memcheck/run.sh")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "memcheck: clean" in proc.stdout
    counts = dict(re.findall(r"^(\w+): (\d+) inputs", proc.stdout, re.MULTILINE))
    assert all(int(counts[kind]) > 0 for kind in KINDS), counts


def regression_inputs() -> list[Path]:
    return sorted(p for kind in KINDS for p in (REGRESSIONS / kind).glob("*") if p.is_file())


@pytest.fixture(scope="module")
def asan_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """native/memcheck/driver.c built with gcc's -fsanitize=address,undefined."""
    cc = require("gcc", "cc", hint="Debian: apt-get install gcc")
    out = tmp_path_factory.mktemp("driver") / "driver"
    sources = sorted(str(p) for p in (REPO / "native/src").glob("*.c"))
    cmd = [cc, "-std=c11", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
           "-fno-sanitize-recover=all", f"-I{REPO / 'native/include'}", str(REPO / "native/memcheck/driver.c"),
           *sources, "-o", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("path", regression_inputs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression_replays_clean(asan_driver: Path, path: Path) -> None:
    proc = subprocess.run(
        [str(asan_driver), path.parent.name, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]


def test_replay_driver_runs_each_kind(asan_driver: Path, tmp_path: Path) -> None:
    """The replay path works (so an empty regressions folder is not a silent pass): a minimal
    input of each kind runs through its harness, and an unknown kind or empty corpus fails."""
    for kind in KINDS:
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "zero").write_bytes(b"\x00" * 64)
    proc = subprocess.run([str(asan_driver), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"total: {len(KINDS)} inputs" in proc.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    assert subprocess.run([str(asan_driver), str(empty)], capture_output=True, timeout=60).returncode == 1
    assert subprocess.run([str(asan_driver), "nope", str(empty)], capture_output=True, timeout=60).returncode == 2
