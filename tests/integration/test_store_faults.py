"""The store's disk full or read-only: the daemon stops with a clear error, loses nothing, and
carries on from the same store once the disk is usable again. The store lives on a small tmpfs
mounted for the test (root only: CI runs as root; elsewhere the test says why it cannot run)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayer import devnet
from tests.integration.test_devnet_relay import wait_for
from tests.integration.test_relay_faults import Harness

pytestmark = pytest.mark.integration


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs for the store test (needs root): {done.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    directory = tmp_path_factory.mktemp("storefault")
    net = devnet.provision(directory, accounts=6, detach=False, progress=False, every_blocks=2)
    store_dir = directory / "state"
    mount_tmpfs(store_dir, "8m")
    text = net.config_path.read_text().replace('store = "relayer.sqlite"', f'store = "{store_dir}/relayer.sqlite"')
    net.config_path.write_text(text)
    h = Harness(net)
    h.store_dir = store_dir  # type: ignore[attr-defined]
    try:
        yield h
    finally:
        try:
            if h.process and h.process.poll() is None:
                h.process.kill()
                h.process.wait()
        finally:
            h.source_proxy.stop()
            h.dest_proxy.stop()
            devnet.stop(directory)
            subprocess.run(["umount", str(store_dir)], check=False)


def expect_clean_stop(harness: Harness, words: str) -> None:
    assert harness.process is not None
    code = harness.process.wait(timeout=60)
    text = harness.log.read_text()
    assert code == 1, f"exit code {code}; log tail:\n{text[-2000:]}"
    assert words in text, text[-2000:]
    assert "Traceback" not in text


def test_disk_full_stops_cleanly_and_loses_nothing(harness: Harness) -> None:
    store_dir: Path = harness.store_dir  # type: ignore[attr-defined]
    harness.start()
    wait_for("the daemon started", lambda: '"daemon.started"' in harness.log.read_text(), 30)
    wait_for("every account settled", harness.all_settled_as_source_says, 60)
    filler = store_dir / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    try:
        for i, account in enumerate(harness.accounts):
            harness.change(account, deposit=i % 2 == 0)
        expect_clean_stop(harness, "disk is full")
    finally:
        filler.unlink()
    harness.start()
    wait_for("every account settled after the disk has room again", harness.all_settled_as_source_says, 90)
    harness.stop()


def test_read_only_store_stops_cleanly_and_loses_nothing(harness: Harness) -> None:
    """The filesystem of the store turns read-only (as the kernel does after I/O errors) and the
    service is restarted: it refuses to run, saying why, and resumes once the store is writable."""
    store_dir: Path = harness.store_dir  # type: ignore[attr-defined]
    harness.start()
    wait_for("the daemon started", lambda: '"daemon.started"' in harness.log.read_text(), 30)
    for i, account in enumerate(harness.accounts):
        harness.change(account, deposit=i % 2 == 1)
    harness.stop()
    subprocess.run(["mount", "-o", "remount,ro", str(store_dir)], check=True)
    try:
        harness.start()
        expect_clean_stop(harness, "read-only")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(store_dir)], check=True)
    harness.start()
    wait_for("every account settled once the store is writable", harness.all_settled_as_source_says, 90)
    harness.stop()
