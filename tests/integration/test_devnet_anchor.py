"""`relayer devnet --anchor op-l1block|eip2935` (issue 20 item 4): the devnet in each anchor mode
settles an honest deposit under `require-anchor`, and a colluding 2-of-3 majority behind a fake
chain (tests/integration/demo_lie.py) gets nothing counted under `require-anchor` and is voided by
one watchtower under `committee` within 3 destination blocks (the destination mining a block a
second)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from web3.types import Wei

from chains.anchors import L1_BLOCK_ADDRESS, POLICIES
from relayer import devnet
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.demo_lie import run_demo
from tests.integration.test_devnet_relay import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.process]  # the relayer's daemons as processes

REPO = Path(__file__).resolve().parents[2]


def _relayer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayer.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def _settles_a_deposit(runs: DaemonRuns, adapter: str) -> None:
    """Every account settled as the source says, then a new deposit of account 0 settles too."""
    with runs.running():
        account = runs.accounts[0]
        tx = runs.vault.functions.deposit().transact({"from": account, "value": Wei(3 * 10**17)})
        assert runs.src.eth.wait_for_transaction_receipt(tx)["status"] == 1
        target = int(runs.vault.functions.collateral(account).call())
        wait_for("the new deposit settled", lambda: runs.settled(account) == target, timeout=60)
        block = runs.last_block(account)
        f = runs.settlement.functions
        assert f.anchorPolicyOf(runs.chain_id).call() == [POLICIES["require-anchor"], adapter]
        hash_of = f.anchoredHash(runs.chain_id, block).call()  # as the block check asked it
        assert bytes(hash_of) == bytes(runs.src.eth.get_block(block)["hash"]), "settled an unanchored block"


def test_the_anchor_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    done = _relayer("devnet", "--dir", str(tmp_path), "--anchor-policy", "require-anchor", "--no-run")
    assert done.returncode == 2 and "--anchor-policy require-anchor needs an anchor" in done.stderr, done.stderr
    done = _relayer("devnet", "--dir", str(tmp_path), "--anchor", "op-l1block", "--anchor-lag-blocks", "65")
    assert done.returncode == 2 and "--anchor-lag-blocks must be 0..64, got 65" in done.stderr, done.stderr
    assert not (tmp_path / "devnet.json").exists()
    assert "--anchor {none,op-l1block,eip2935}" in _relayer("devnet", "--help").stdout


def test_an_op_l1block_devnet_settles_an_honest_deposit_under_require_anchor(tmp_path: Path) -> None:
    """The L1Block stand-in at the predeploy address on the destination, fed from the source by the
    feeder process two blocks behind, recording what the epochs prove in the settlement
    (`recordL1Origin`, the built-in OP Stack path: the predeploy's address is the chain's anchor)."""
    net = devnet.provision(tmp_path / "net", accounts=2, detach=False, progress=False, anchor="op-l1block")
    info = json.loads((net.directory / "devnet.json").read_text())["anchor"]
    assert info["mode"] == "op-l1block" and info["policy"] == "require-anchor" and info["lag_blocks"] == 2
    assert info["l1block"] == "0x4200000000000000000000000000000000000015"
    runs = DaemonRuns(net)
    assert info["adapter"] == L1_BLOCK_ADDRESS
    _settles_a_deposit(runs, L1_BLOCK_ADDRESS)
    assert (
        not Path(f"/proc/{info['feeder_pid']}/cmdline").exists()
        or b"devnetanchor" not in Path(f"/proc/{info['feeder_pid']}/cmdline").read_bytes()
    ), "devnet.stop left the feeder running"


def test_an_eip2935_devnet_relays_a_vault_on_the_destinations_own_chain(tmp_path: Path) -> None:
    """The source is the destination's own chain (anvil --hardfork prague): its vault is registered
    as a source, and Eip2935Anchor confirms every settled block."""
    net = devnet.provision(tmp_path / "net", accounts=2, detach=False, progress=False, anchor="eip2935")
    chains = net.info["chains"]
    assert isinstance(chains, dict) and chains["source"] == chains["destination"]
    runs = DaemonRuns(net)
    assert runs.chain_id == devnet.DESTINATION_CHAIN_ID
    _settles_a_deposit(runs, json.loads((net.directory / "devnet.json").read_text())["anchor"]["adapter"])


def test_a_colluding_majority_behind_a_fake_chain_is_refused_under_require_anchor(tmp_path: Path) -> None:
    """Two of three members sign the fake chain's blocks: the anchor knows the real hash, every
    submission of theirs reverts, and the destination counts 0 wei (the honest member alone is
    below the threshold: nothing settles, and the colluders' logs say why)."""
    outcome = run_demo(tmp_path, "require-anchor", say=lambda _: None)
    assert outcome.fake_counted_wei == 0
    assert set(outcome.refusals) <= {"AnchorMismatch", "BlockNotAnchored"} and outcome.refusals


def test_a_colluding_majority_is_voided_by_one_watchtower_under_committee(tmp_path: Path) -> None:
    """Under `committee` the fake epoch is accepted and counted; `relayer watch` against the real
    source proves its block hash false with the chain's anchor, within 3 destination blocks."""
    outcome = run_demo(tmp_path, "committee", say=lambda _: None)
    assert outcome.settled_accounts > 0, "the fake positions were never settled: nothing to void"
    assert outcome.counted_after_void_wei == 0
    assert outcome.blocks_to_void is not None and 0 < outcome.blocks_to_void <= 3, outcome
