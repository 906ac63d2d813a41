"""relayer.observability.sdnotify against real AF_UNIX datagram sockets (filesystem and abstract namespace)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayer.observability import sdnotify


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket playing systemd's notify socket, and its path."""
    path = tmp_path / "notify.sock"
    if len(str(path).encode()) >= 108:  # sun_path limit
        pytest.fail(f"tmp_path too long for an AF_UNIX socket: {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def test_notify_sends_state_to_filesystem_socket(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    env = {"NOTIFY_SOCKET": path}
    assert sdnotify.notify("READY=1\nSTATUS=relaying", env) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=relaying"


def test_helpers_send_their_assignments(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    env = {"NOTIFY_SOCKET": path}
    assert sdnotify.ready(env)
    assert sdnotify.watchdog(env)
    assert sdnotify.status("2 chains\nbacklog 0", env)
    assert sdnotify.stopping(env)
    received = [sock.recv(4096) for _ in range(4)]
    assert received == [b"READY=1", b"WATCHDOG=1", b"STATUS=2 chains backlog 0", b"STOPPING=1"]


def test_default_environ_is_os_environ(receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert sdnotify.ready() is True
    assert sock.recv(4096) == b"READY=1"


def test_abstract_namespace_socket() -> None:
    name = f"relayer-sdnotify-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        assert sdnotify.watchdog({"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_no_socket_is_a_no_op() -> None:
    assert sdnotify.notify("READY=1", {}) is False
    assert sdnotify.ready({"NOTIFY_SOCKET": ""}) is False


def test_unusable_or_absent_socket_returns_false(tmp_path: Path) -> None:
    assert sdnotify.ready({"NOTIFY_SOCKET": "relative/path"}) is False
    assert sdnotify.ready({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}) is False
    # bound then closed: the path exists but nothing receives (ECONNREFUSED), still no raise
    path = tmp_path / "closed.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.close()
    assert sdnotify.stopping({"NOTIFY_SOCKET": str(path)}) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval_seconds(env: dict[str, str], expected: float | None) -> None:
    assert sdnotify.watchdog_interval_seconds(env) == expected
