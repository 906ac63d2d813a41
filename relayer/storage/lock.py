"""One process per data directory (DESIGN section 6): an exclusive `flock` on a lock file beside
the store (`<store>.lock`, e.g. `/var/lib/relayer/relayer.sqlite.lock`), held for the life of
the process that writes the store, with that process's pid written in it.

Two processes on one store would share one sender key and fight over its nonces, and could sign
from diverging views. The lock is the kernel's: it is released when the process ends, however it
ends (kill -9 included), so a stale lock file never blocks a restart; the file itself is left in
place (removing it would let two processes lock two different files of one name).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from relayer.errors import StoreError


class DataDirLocked(StoreError):
    """Another process holds the lock of this store. `pid`: the pid it wrote (None if unreadable)."""

    def __init__(self, lock_path: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "a process whose pid is not recorded"
        super().__init__(
            f"the data directory {lock_path.parent} is in use by another relayer process ({who}, "
            f"holding {lock_path}); stop it first, or give this one its own data directory"
        )
        self.lock_path = lock_path
        self.pid = pid


def lock_path_of(store_path: Path) -> Path:
    """The lock file of the store at `store_path`: `<store_path>.lock` in the same directory."""
    return store_path.with_name(store_path.name + ".lock")


class DataDirLock:
    """The held lock of one store; `release()` (or the end of the process) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, store_path: Path) -> DataDirLock:
        """Lock the data directory of the store at `store_path` for this process, without waiting,
        and write this process's pid into the lock file. Raises DataDirLocked when another process
        holds it, StoreError when the lock file cannot be created or written (a read-only or full
        file system, a missing permission)."""
        path = lock_path_of(store_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _store_error(store_path, path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise DataDirLocked(path, pid) from None
            raise _store_error(store_path, path, exc) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            raise _store_error(store_path, path, exc) from None
        return cls(path, fd)

    def release(self) -> None:
        """Free the lock (idempotent). The file stays; its pid is stale until the next holder."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _store_error(store_path: Path, lock_path: Path, exc: OSError) -> StoreError:
    if exc.errno == errno.EROFS:
        return StoreError(f"cannot open store {store_path}: it is read-only (the store must be writable; "
                          f"its lock file is {lock_path})")  # fmt: skip
    if exc.errno == errno.ENOSPC:
        return StoreError(f"cannot open store {store_path}: the disk is full (writing its lock file {lock_path})")
    return StoreError(f"cannot open store {store_path}: its lock file {lock_path}: {exc.strerror or exc}")
