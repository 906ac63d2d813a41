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
    done = relayer(
        "prove",
        "--rpc",
        anvil.url,
        "--contract",
        target,
        "--slot",
        "0x5",
        "0x6",
        "--block",
        str(block),
        "--out",
        str(out),
    )
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


@pytest.mark.integration
def test_verify_prints_what_it_checked_and_confirms_it_with_a_node(anvil: AnvilNode, tmp_path: Path) -> None:
    """`relayer verify FILE --rpc URL`: the offline check cannot tell a self-consistent fake chain
    from the real one; a node of the real chain confirms the chain id and the block hash."""
    from chains.anvil import start_anvil

    target = "0x00000000000000000000000000000000000000aa"
    rpc(anvil.url, "anvil_setStorageAt", [target, "0x" + "00" * 31 + "05", "0x" + "00" * 31 + "2a"])
    rpc(anvil.url, "anvil_mine", ["0x3"])
    block = int(str(rpc(anvil.url, "eth_blockNumber")), 16)
    block_hash = str(rpc(anvil.url, "eth_getBlockByNumber", [hex(block), False])["hash"])  # type: ignore[index]
    out = tmp_path / "proof.json"
    done = relayer("prove", "--rpc", anvil.url, "--contract", target, "--slot", "0x5", "--block", str(block),
                   "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr

    offline = relayer("verify", str(out))
    assert offline.returncode == 0, offline.stdout + offline.stderr
    result = json.loads(offline.stdout)
    assert (result["chainId"], result["block"], result["blockHash"]) == (31337, block, block_hash)
    assert f"chain 31337 block {block} hash {block_hash}" in offline.stderr
    assert "not confirmed" in offline.stderr

    confirmed = relayer("verify", str(out), "--rpc", anvil.url)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    host = anvil.url.removeprefix("http://")
    assert json.loads(confirmed.stdout)["confirmed"] == {
        "host": host,
        "chainId": 31337,
        "blockNumber": block,
        "blockHash": block_hash,
    }
    assert f"confirmed by {host}" in confirmed.stderr

    same_id = start_anvil(31337)  # the same chain id, another chain: another hash at that height
    other_id = start_anvil(5)
    try:
        rpc(same_id.url, "anvil_mine", [hex(block + 2)])
        other = relayer("verify", str(out), "--rpc", same_id.url)
        assert other.returncode == 1
        assert other.stdout.startswith("UNCONFIRMED:") and block_hash in other.stdout, other.stdout
        assert f"block {block} hash 0x" in other.stdout
        wrong_chain = relayer("verify", str(out), "--rpc", other_id.url)
        assert wrong_chain.returncode == 1
        assert "is chain 5, the file is for chain 31337" in wrong_chain.stdout, wrong_chain.stdout
    finally:
        same_id.stop()
        other_id.stop()
    dead = relayer("verify", str(out), "--rpc", "http://127.0.0.1:1")
    assert dead.returncode == 1 and "cannot confirm" in dead.stderr


@pytest.mark.integration
def test_deploy_destination_prints_its_one_contract(anvil: AnvilNode) -> None:
    """`relayer deploy --role destination`: the destination is one contract, MarginSettlement,
    which is its own EpochVerifier; the JSON names it once, as `settlement` (no `verifier`)."""
    import os

    from web3 import Web3

    from chains.bindings import contract
    from relayer import devnet

    env = {**os.environ, "RELAYER_DEPLOYER_KEY": "0x" + bytes(devnet.dev_account(0).key).hex()}
    members = [devnet.dev_account(1).address, devnet.dev_account(2).address]
    done = subprocess.run(
        [sys.executable, "-m", "relayer.cli", "deploy", "--rpc", anvil.url, "--role", "destination",
         "--committee", ",".join(members), "--threshold", "2"],
        capture_output=True, text=True, cwd=REPO, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert set(printed) == {"chain_id", "settlement"}
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    verifier = contract(w3, "EpochVerifier", printed["settlement"])  # the same address answers as the verifier
    assert (verifier.functions.threshold().call(), verifier.functions.members().call()) == (2, members)
