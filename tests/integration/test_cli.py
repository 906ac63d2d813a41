"""The command line as an operator uses it: prove and verify on a real anvil node, check-config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chains.anvil import AnvilNode, rpc

REPO = Path(__file__).resolve().parents[2]


def relayer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayer.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


@pytest.mark.integration
def test_prove_then_verify_offline_and_reject_a_tampered_file(anvil: AnvilNode, tmp_path: Path) -> None:
    target = "0x00000000000000000000000000000000000000aa"
    rpc(anvil.url, "anvil_setStorageAt", [target, "0x" + "00" * 31 + "05", "0x" + "00" * 31 + "2a"])
    rpc(anvil.url, "evm_mine")  # anvil_set* rewrites the latest block's state: prove a later block
    block = int(str(rpc(anvil.url, "eth_blockNumber")), 16)
    out = tmp_path / "proof.json"
    done = relayer("prove", "--rpc", anvil.url, "--contract", target, "--slot", "0x5", "0x6",
                   "--block", str(block), "--out", str(out))
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["verified"]["storage"] == {"0x" + "00" * 31 + "05": "0x2a", "0x" + "00" * 31 + "06": "0x0"}

    checked = relayer("verify", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["storage"]["0x" + "00" * 31 + "05"] == "0x2a"

    document["proof"]["storageProof"][0]["value"] = "0x2b"
    out.write_text(json.dumps(document))
    forged = relayer("verify", str(out))
    assert forged.returncode == 1 and forged.stdout.startswith("INVALID")

    document["proof"]["storageProof"][0]["value"] = "0x2a"
    document["block"]["stateRoot"] = "0x" + "11" * 32
    out.write_text(json.dumps(document))
    forged = relayer("verify", str(out))
    assert forged.returncode == 1 and "mismatch" in forged.stdout


def test_check_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[chains.a]\nchain_id = 1\nrpc = ["ftp://x"]\n'
        '[chains.b]\nchain_id = 1\nrpc = ["http://127.0.0.1:1"]\nbogus = 3\n'
        '[[pairs]]\nsource = "a"\ndestination = "nowhere"\nvault = "0x123"\n'
    )
    done = relayer("check-config", "--config", str(config))
    assert done.returncode == 2
    problems = done.stdout.strip().splitlines()
    assert len(problems) >= 5
    text = done.stdout
    for expected in ("chains.a.rpc", "chains.b.bogus", "chain_id", "pairs[0].vault", "pairs[0].destination"):
        assert expected in text, text


def test_help_answers() -> None:
    done = relayer("--help")
    assert done.returncode == 0
    for command in ("run", "check-config", "devnet", "deploy", "prove", "verify", "status"):
        assert command in done.stdout
