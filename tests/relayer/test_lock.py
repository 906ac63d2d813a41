"""One process per data directory (relayer/storage/lock.py): the lock beside the store, with the
holder's pid; a second holder is refused naming it; released, the lock can be taken again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relayer.errors import StoreError
from relayer.storage.lock import DataDirLock, DataDirLocked, lock_path_of


def test_a_second_holder_is_refused_naming_the_pid_and_release_frees_it(tmp_path: Path) -> None:
    store = tmp_path / "data" / "relayer.sqlite"
    held = DataDirLock.acquire(store)
    assert lock_path_of(store) == tmp_path / "data" / "relayer.sqlite.lock"
    assert lock_path_of(store).read_text() == f"{os.getpid()}\n"
    with pytest.raises(DataDirLocked) as caught:  # a second open file: flock refuses it as another process
        DataDirLock.acquire(store)
    assert caught.value.pid == os.getpid() and f"pid {os.getpid()}" in str(caught.value)
    held.release()
    held.release()  # idempotent
    DataDirLock.acquire(store).release()


def test_a_lock_left_by_a_killed_process_is_free(tmp_path: Path) -> None:
    store = tmp_path / "relayer.sqlite"
    code = (
        "import os, sys; from pathlib import Path; from relayer.storage.lock import DataDirLock; "
        f"DataDirLock.acquire(Path({str(store)!r})); os.kill(os.getpid(), 9)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], check=False)
    assert done.returncode == -9 and lock_path_of(store).read_text().strip().isdigit()
    DataDirLock.acquire(store).release()  # the kernel freed it with the process


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only directory")
def test_an_unwritable_directory_is_a_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="lock file"):
            DataDirLock.acquire(folder / "relayer.sqlite")
    finally:
        folder.chmod(0o700)
