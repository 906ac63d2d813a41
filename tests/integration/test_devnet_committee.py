"""`relayer devnet --committee N --threshold M`: what it provisions (the EpochVerifier's committee,
one directory, key pair, store and port per member, peers, funded senders, devnet.json), its
argument checks, and the settlement line naming the members that signed."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from web3 import Web3

from chains.bindings import contract
from relayer import devnet
from relayer.cli.devnet import settlement_line
from relayer.config import load_config
from relayer.settlement.settler import Settlement

REPO = Path(__file__).resolve().parents[2]


def relayer(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayer.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout
    )


@pytest.mark.parametrize(
    ("committee", "threshold", "expected"),
    [("3", "0", "--threshold must be 1..3"), ("3", "4", "--threshold must be 1..3"),
     ("0", "1", "--committee must be 1..16"), ("1", "2", "--threshold must be 1..1")],
)  # fmt: skip
def test_a_threshold_outside_the_committee_is_refused(
    tmp_path: Path, committee: str, threshold: str, expected: str
) -> None:
    done = relayer("devnet", "--dir", str(tmp_path), "--committee", committee, "--threshold", threshold, "--no-run")
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert not (tmp_path / "devnet.json").exists(), "provisioned despite a bad threshold"


def test_the_settlement_line_names_the_signing_members() -> None:
    members = [{"name": f"member-{i}", "attester": a} for i, a in enumerate(["0x" + "aa" * 20, "0x" + "Bb" * 20])]
    settled = Settlement("0x" + "11" * 20, 31337, 42, 10**17, 7, "0x" + "cd" * 32, 3.25, 90_000, 3,
                         signers=("0x" + "BB" * 20, "0x" + "aa" * 20, "0x" + "ee" * 20))  # fmt: skip
    line = settlement_line(settled, members)
    assert f"(epoch 7, signed by member-1, member-0, 0x{'ee' * 20}, tx 0xcdcdcdcdcd" in line
    unsigned = dataclasses.replace(settled, signers=())
    assert "signed by" not in settlement_line(unsigned, members)


@pytest.mark.integration
def test_a_committee_devnet_gives_each_member_its_own_keys_store_port_and_peers(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    done = relayer("devnet", "--dir", str(directory), "--committee", "3", "--accounts", "2", "--no-run")
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        info = json.loads((directory / "devnet.json").read_text())
        committee = info["committee"]
        assert committee["threshold"] == 2  # the default: the majority of 3
        members = committee["members"]
        assert [m["name"] for m in members] == ["member-0", "member-1", "member-2"]
        assert members[0]["attester"] == devnet.dev_account(1).address
        assert members[0]["sender"] == devnet.dev_account(2).address
        keys = [m["attester"] for m in members] + [m["sender"] for m in members]
        assert len(set(keys)) == 6, "members share a key"
        depositors = {devnet.dev_account(devnet.FIRST_SEEDED + i).address for i in range(2)}
        assert not depositors & set(keys)
        assert info["metrics"] == members[0]["metrics"]

        dst = Web3(Web3.HTTPProvider(info["chains"]["destination"]["rpc"]))
        verifier = contract(dst, "EpochVerifier", info["contracts"]["settlement"])
        assert verifier.functions.members().call() == [m["attester"] for m in members]
        assert verifier.functions.threshold().call() == 2
        for member in members:
            assert dst.eth.get_balance(member["sender"]) >= 10**21, f"{member['name']}'s sender is not funded"

        ports = set()
        for i, member in enumerate(members):
            home = directory / f"member-{i}"
            assert member["config"] == str(home / "relayer.toml")
            document = tomllib.loads((home / "relayer.toml").read_text())
            assert document["relayer"]["store"] == "relayer.sqlite"
            listen = document["metrics"]["listen"]
            assert member["api"] == f"http://{listen}"
            ports.add(listen)
            assert document["committee"]["peers"] == [m["api"] for m in members if m is not member]
            config = load_config(home / "relayer.toml")
            assert config.committee.peers == tuple(m["api"] for m in members if m is not member)
            assert config.store_path == home / "relayer.sqlite"
            assert (home / "keys" / "attester.key").read_text().strip() == (
                "0x" + bytes(devnet.member_keys(i)[0].key).hex()
            )
            assert (home / "keys" / "sender.key").stat().st_mode & 0o077 == 0
        assert len(ports) == 3
        assert not (directory / "relayer.toml").exists()
    finally:
        stopped = relayer("devnet", "--stop", "--dir", str(directory))
        assert stopped.returncode == 0 and "stopped 2 node(s)" in stopped.stdout


def test_the_foreground_devnet_prints_settlements_and_stop_ends_it_all(tmp_path: Path) -> None:
    """`relayer devnet --committee 2` in the foreground: member-1 runs as a process, member-0
    here; a settlement line naming both signers is printed (read from the destination whichever
    member sent it), and `relayer devnet --stop` from another shell ends the foreground process,
    the member daemon and both chains, with exit status 0."""
    directory = tmp_path / "net"
    foreground = subprocess.Popen(
        [sys.executable, "-m", "relayer.cli", "devnet", "--dir", str(directory), "--committee", "2",
         "--accounts", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert foreground.stdout is not None
        for line in foreground.stdout:
            lines.append(line)
            if line.startswith("settled "):
                break
        assert lines and lines[-1].startswith("settled "), "".join(lines)
        assert "signed by member-0, member-1" in lines[-1], lines[-1]
        assert any("committee of 2, threshold 2: member-0 runs here" in line for line in lines)
        pids = json.loads((directory / "devnet.json").read_text())["pids"]
        stopped = relayer("devnet", "--stop", "--dir", str(directory))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "stopped the `relayer devnet` in the foreground" in stopped.stdout
        rest, _ = foreground.communicate(timeout=60)
        assert foreground.returncode == 0, "".join(lines) + rest
        assert "devnet: stopped 1 member daemon(s)" in rest and "devnet: chains stopped" in rest
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        if foreground.poll() is None:
            relayer("devnet", "--stop", "--dir", str(directory))
            foreground.kill()
            foreground.wait(10)
