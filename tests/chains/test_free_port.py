"""chains.anvil.free_port under parallel test workers: a port it hands out lies below the kernel's
ephemeral range and is handed out to no other caller, in this process or another, while held."""

from __future__ import annotations

import multiprocessing
import socket
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from chains import anvil


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def _take(count: int) -> list[int]:
    return [anvil.free_port() for _ in range(count)]


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A port book of this test's own (the machine's stays untouched)."""
    path = tmp_path / "ports.json"
    monkeypatch.setattr(anvil, "PORT_BOOK", path)
    return path


def test_a_port_is_below_the_ephemeral_range_and_free(book: Path) -> None:
    port = anvil.free_port()
    assert anvil._port_range().start <= port < _ephemeral_low()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free: nothing was left listening on it
    assert str(port) in book.read_text()


def test_a_held_port_is_not_handed_out_again_until_none_is_left(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    low = anvil._port_range().start
    monkeypatch.setattr(anvil, "_port_range", lambda: range(low, low + 5))
    monkeypatch.setattr(anvil, "_bindable", lambda port: True)  # the book alone decides
    assert sorted(_take(5)) == list(range(low, low + 5))
    with pytest.raises(RuntimeError, match=f"no free TCP port in {low}-{low + 4}"):
        anvil.free_port()


def test_a_port_held_past_the_hold_is_handed_out_again(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    low = anvil._port_range().start
    monkeypatch.setattr(anvil, "_port_range", lambda: range(low, low + 1))
    monkeypatch.setattr(anvil, "_bindable", lambda port: True)  # the book alone decides
    assert anvil.free_port() == low
    monkeypatch.setattr(anvil, "PORT_HOLD_SECONDS", 0.0)
    assert anvil.free_port() == low


def test_processes_picking_at_once_never_get_the_same_port(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four processes (as pytest-xdist workers) take 20 ports each from a range of 100 at once."""
    low = anvil._port_range().start
    monkeypatch.setattr(anvil, "_port_range", lambda: range(low, low + 100))
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("fork")) as pool:
        taken = [port for ports in pool.map(_take, [20] * 4) for port in ports]
    assert len(set(taken)) == 80 and all(low <= port < low + 100 for port in taken)
