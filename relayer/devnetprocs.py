"""The processes of a devnet (relayer.devnet): its committee members' `relayer run` daemons, a
`relayer devnet` in the foreground, and the anvil nodes recorded in its devnet.json; started and
stopped by pid files, each pid checked against /proc before it is signalled (a pid may have
been reused since)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from relayer.devnetanchor import stop_feeder


class _WithMembers(Protocol):
    """A provisioned devnet as `wait_members_up` reads it (relayer.devnet.Devnet)."""

    @property
    def members(self) -> list[dict[str, str]]: ...


def member_name(index: int) -> str:
    return f"member-{index}"


def _is_anvil(pid: int) -> bool:
    """True while `pid` is a live anvil process (a recorded pid may have been reused since)."""
    try:
        return b"anvil" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _is_member_daemon(pid: int, config: Path) -> bool:
    """True while `pid` is a live `relayer run` of the member config `config`."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"run" in argv and str(config).encode() in argv


def _wait_gone(pids: list[int], alive: Callable[[int], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)


def start_member(directory: Path, index: int, *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Run committee member `index` of the devnet in `directory` as `relayer run` with JSON
    logs appended to `member-<i>/daemon.log`; its pid goes to `member-<i>/daemon.pid` (for
    `stop`). The caller waits for (or stops) the process."""
    home = directory / member_name(index)
    config = home / "relayer.toml"
    log = open(home / "daemon.log", "ab")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(config), "--log-format", "json"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    finally:
        log.close()
    (home / "daemon.pid").write_text(f"{process.pid}\n")
    return process


def wait_members_up(net: _WithMembers, *, timeout: float = 20.0, first: int = 1) -> bool:
    """Wait until members `first`.. answer `/healthz` (at most `timeout` seconds, so members
    that never come up are reported by their logs, not waited for); True when all answer."""
    pending = [m["api"] for m in net.members[first:]]
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for api in list(pending):
            try:
                with urllib.request.urlopen(api + "/healthz", timeout=1):
                    pending.remove(api)
            except OSError:
                pass
        if pending:
            time.sleep(0.2)
    return not pending


def stop_members(directory: Path, timeout: float = 15.0) -> list[int]:
    """SIGTERM the member daemons recorded in `directory/member-*/daemon.pid` (SIGKILL after
    `timeout` seconds); returns the pids signalled."""
    running: list[tuple[int, Path]] = []
    for pid_file in sorted(directory.glob("member-*/daemon.pid")):
        config = pid_file.parent / "relayer.toml"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if _is_member_daemon(pid, config):
            os.kill(pid, signal.SIGTERM)
            running.append((pid, config))
        pid_file.unlink(missing_ok=True)
    configs = dict(running)
    _wait_gone(list(configs), lambda p: _is_member_daemon(p, configs[p]), timeout)
    for pid, config in running:
        if _is_member_daemon(pid, config):
            os.kill(pid, signal.SIGKILL)
    return [pid for pid, _ in running]


FOREGROUND_PID = "devnet.pid"
"""Written by `relayer devnet` while it runs a devnet in the foreground (member 0 in-process)."""


def _is_foreground(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return pid != os.getpid() and b"devnet" in argv


def stop_foreground(directory: Path, timeout: float = 15.0) -> int | None:
    """SIGTERM a `relayer devnet` running this devnet in another process (its in-process
    daemon parks its work and it stops its member daemons and chains); SIGKILL after `timeout`
    seconds. Returns the pid signalled, None when none runs."""
    path = directory / FOREGROUND_PID
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    path.unlink(missing_ok=True)
    if not _is_foreground(pid):
        return None
    os.kill(pid, signal.SIGTERM)
    _wait_gone([pid], _is_foreground, timeout)
    if _is_foreground(pid):
        os.kill(pid, signal.SIGKILL)
    return pid


def stop(directory: Path) -> list[int]:
    """Stop a `relayer devnet` running in the foreground (`stop_foreground`), the member
    daemons (`stop_members`), the anchor feeder (relayer.devnetanchor), then the anvil nodes
    recorded in `directory/devnet.json`; returns the anvil pids signalled."""
    stop_foreground(directory)
    stop_members(directory)
    stop_feeder(directory)
    path = directory / "devnet.json"
    if not path.exists():
        return []
    pids = [int(p) for p in json.loads(path.read_text()).get("pids", [])]
    stopped = []
    for pid in pids:
        if _is_anvil(pid):
            os.kill(pid, signal.SIGTERM)
            stopped.append(pid)
    _wait_gone(stopped, _is_anvil, 5)
    for pid in stopped:
        if _is_anvil(pid):
            os.kill(pid, signal.SIGKILL)
    return stopped
