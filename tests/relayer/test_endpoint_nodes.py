"""Endpoints compared as nodes, not strings (issue 16, attack 8): `chains.nodes` resolution and
`relayer check-config`, which warns naming both endpoints when two are one node and refuses a
source chain whose configured confirmation has only one node left. Resolution goes through the
machine's own resolver for loopback names only (no network)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chains import nodes
from relayer import cli
from relayer.config import load_config, node_checks
from tests.relayer.config_files import ENV, MINIMAL, _replace, _write

SOURCE_RPC = 'rpc = ["http://127.0.0.1:8545"]'


def test_loopback_names_resolve_to_one_node() -> None:
    ipv4 = nodes.resolve_blocking("127.0.0.1:8545")
    assert ipv4 == {("127.0.0.1", 8545)}
    assert nodes.resolve_blocking("localhost:8545") & ipv4  # localhost is 127.0.0.1 (and maybe ::1)
    assert nodes.resolve_blocking("[::1]:8545") == nodes.resolve_blocking("[0:0:0:0:0:0:0:1]:8545") == {("::1", 8545)}
    assert nodes.resolve_blocking("[::ffff:127.0.0.1]:8545") == ipv4  # IPv4-mapped: the same address
    assert not nodes.resolve_blocking("127.0.0.2:8545") & ipv4  # another address: another node
    assert not nodes.resolve_blocking("127.0.0.1:8546") & ipv4  # another port: another node
    with pytest.raises(ValueError):
        nodes.split_host("127.0.0.1")


async def test_resolve_runs_off_the_loop_and_agrees() -> None:
    assert await nodes.resolve("localhost:8545") == nodes.resolve_blocking("localhost:8545")


def check_config(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[str]]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    code = cli.main(["check-config", "--config", str(_write(tmp_path, text))])
    return code, capsys.readouterr().out.splitlines()


def test_check_config_refuses_a_confirmation_by_one_node_under_two_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.1:8545 and localhost:8545 would have been "two hosts": they are one node, named
    both in a warning, and a source chain left with one node fails closed (exit 2)."""
    text = _replace(MINIMAL, SOURCE_RPC, 'rpc = ["http://127.0.0.1:8545/k1", "http://localhost:8545/k2"]')
    code, lines = check_config(tmp_path, text, capsys, monkeypatch)
    assert code == cli.EXIT_USAGE
    assert lines[0] == (
        "warning: chains.source.rpc: rpc[0] (127.0.0.1:8545) and rpc[1] (localhost:8545) are one node (both resolve "
        "to 127.0.0.1 port 8545): they do not confirm each other"
    )
    assert lines[1].startswith("chains.source.rpc: a block-hash confirmation is configured (2 endpoint hosts) but")
    assert not [line for line in lines if "k1" in line or "k2" in line]  # never a URL (API keys)


def test_check_config_warns_when_a_third_endpoint_is_the_same_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two nodes remain (127.0.0.1 and 127.0.0.2): valid, with a warning naming the pair that is one."""
    rpc = 'rpc = ["http://127.0.0.1:8545", "http://127.0.0.2:8545", "http://localhost:8545"]'
    code, lines = check_config(tmp_path, _replace(MINIMAL, SOURCE_RPC, rpc), capsys, monkeypatch)
    assert code == cli.EXIT_OK
    assert lines[0].startswith(
        "warning: chains.source.rpc: rpc[0] (127.0.0.1:8545) and rpc[2] (localhost:8545) are one node"
    )
    assert lines[1].endswith("ok (2 chains, 1 pairs)")
    assert lines[2:] == [f"store: sqlite {tmp_path / 'relayer.sqlite'}"]  # and no other warning


def test_check_config_two_nodes_and_unresolvable_hosts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    two = _replace(MINIMAL, SOURCE_RPC, 'rpc = ["http://127.0.0.1:8545", "http://127.0.0.2:8545"]')
    code, lines = check_config(tmp_path, two, capsys, monkeypatch)
    assert code == cli.EXIT_OK and not [line for line in lines if line.startswith("warning:")]

    def resolve(host: str) -> frozenset[nodes.NodeAddress]:
        if host.startswith("rpc.internal"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return nodes.resolve_blocking(host)

    elsewhere = _replace(MINIMAL, SOURCE_RPC, 'rpc = ["http://127.0.0.1:8545", "https://rpc.internal/k"]')
    problems, warnings = node_checks(load_config(_write(tmp_path, elsewhere), environ=ENV), resolve)
    assert problems == []  # it may resolve where the daemon runs; the daemon holds if it does not
    assert warnings == [
        "chains.source.rpc[1]: rpc.internal:443 does not resolve here ([Errno -2] Name or service not known): "
        "not compared with the others"
    ]
