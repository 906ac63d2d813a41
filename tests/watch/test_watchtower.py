"""The watchtower (relayer.watch) on real anvil nodes: a 2-of-3 committee of test keys signs honest
epochs and lies about real source blocks (wrong stateRoot, timestamp, number, claim value, a block
hash the source never had), they are settled on a real MarginSettlement by `settle`, `settleMany`,
`submitAndSettle` or through a settler's own contract; the watchtower reads the settlements from the
destination's calldata (or a callTracer trace), re-proves each against the source's own endpoints
(real headers, real EIP-1186 proofs) and challenges each lie with the contract's challenge functions:
the fake positions are void. An honest epoch costs no transaction.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from chains.anchors import HISTORY_STORAGE_ADDRESS
from chains.anvil import free_port
from chains.bindings import (
    contract,
    deploy_destination,
    deploy_vault,
    mapping_storage_key,
    register_vault,
    send_transaction,
    transact,
)
from chains.challenges import ChallengeBuilder
from relayer.config import KeySource
from relayer.config.render import ChainTable, render_watch_config
from tests.contracts.conftest import REPO_ROOT, Chain, compile_test_contract, dev_account
from tests.contracts.settlement_env import Block, deposit
from tests.watch.scenario import CHAIN_A, DEST, ETH, Env, NoTraceNode, snapshot, watch_once

pytestmark = pytest.mark.integration

MAX_AGE = 3_600
HISTORY_ANCHOR = REPO_ROOT / "bench" / "contracts" / "HistoryAnchor.sol"  # an EIP-2935 anchor
WRAPPER = Path(__file__).parent / "solidity" / "SettleWrapper.sol"


def _deploy_test_contract(chain: Chain, owner: LocalAccount, path: Path, name: str) -> str:
    abi, bytecode = compile_test_contract(path, name)
    factory = chain.w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = transact(chain.w3, owner, factory.constructor(), what=f"deploy {name}")
    return str(receipt["contractAddress"])


@pytest.fixture(scope="module")
def env_module(chain_factory: Callable[[int], Chain]) -> Env:
    dest, source = chain_factory(DEST), chain_factory(CHAIN_A)
    owner, relayer, watcher = dev_account(0), dev_account(8), dev_account(9)
    committee = [dev_account(i) for i in (5, 6, 7)]
    users = [dev_account(i) for i in (1, 2, 3)]
    vault_a = deploy_vault(source.w3, owner, 2 * MAX_AGE)
    vault_d = deploy_vault(dest.w3, owner, 2 * MAX_AGE)
    for k, u in enumerate(users):
        deposit(source, vault_a, u, (5 - k) * ETH)
        deposit(dest, vault_d, u, 2 * ETH)
    settlement = deploy_destination(dest.w3, owner, [m.address for m in committee], 2)
    for chain_id, vault in ((CHAIN_A, vault_a), (DEST, vault_d)):
        register_vault(dest.w3, owner, settlement, chain_id, vault, 0, 10_000, MAX_AGE)
    anchor = _deploy_test_contract(dest, owner, HISTORY_ANCHOR, "HistoryAnchor")
    ms = contract(dest.w3, "MarginSettlement", settlement)
    transact(dest.w3, owner, ms.functions.setAnchorPolicy(DEST, 0, anchor), what="setAnchorPolicy")
    wrapper_address = _deploy_test_contract(dest, owner, WRAPPER, "SettleWrapper")
    abi, _ = compile_test_contract(WRAPPER, "SettleWrapper")
    wrapper = dest.w3.eth.contract(address=wrapper_address, abi=abi)  # type: ignore[call-overload]
    accounts = [str(u.address) for u in users] + [str(dev_account(12).address)]
    return Env(dest, source, owner, committee, relayer, watcher, accounts, ms, vault_a, vault_d, wrapper)


@pytest.fixture
def env(env_module: Env) -> Iterator[Env]:
    dest, source = env_module.dest.snapshot(), env_module.source.snapshot()
    try:
        yield env_module
    finally:
        env_module.dest.revert(dest)
        env_module.source.revert(source)


def lie(env: Env, kind: str) -> Block:
    """A block leaf of chain A that lies in one way, about real source blocks."""
    honest = snapshot(env.source, env.vault_a, env.accounts)
    n = honest.leaf.block_number
    if kind == "state_root":
        older = env.source.w3.eth.get_block(n - 1)
        return snapshot(env.source, env.vault_a, env.accounts, state_root=bytes(older["stateRoot"]))
    if kind == "timestamp":
        return snapshot(env.source, env.vault_a, env.accounts, timestamp=honest.leaf.timestamp - 1)
    if kind == "number":  # block n - 1's hash, root and time, signed as block n
        return snapshot(env.source, env.vault_a, env.accounts, n - 1, block_number=n)
    if kind == "claim":
        return snapshot(env.source, env.vault_a, env.accounts, claims=[(env.accounts[0], 50 * ETH)])
    if kind == "absent_slot":  # an account that never deposited, said to hold 7 ETH
        return snapshot(env.source, env.vault_a, env.accounts, claims=[(env.accounts[3], 7 * ETH)])
    raise AssertionError(kind)


def test_an_honest_epoch_costs_no_transaction(env: Env, tmp_path: Path) -> None:
    epoch = env.next_epoch([snapshot(env.source, env.vault_a, env.accounts)])
    env.settle(epoch, epoch.blocks[0])
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert run.verdicts() == [("honest", None)]
    assert env.sent_by_watcher() == 0
    assert not env.voided(CHAIN_A) and env.collateral(env.accounts[0]) == 5 * ETH
    assert run.tower.ready and run.tower.lag == 0


@pytest.mark.parametrize(
    ("kind", "verdict", "challenge"),
    [
        ("state_root", "header", "header"),
        ("timestamp", "header", "header"),
        ("number", "header", "header"),
        ("claim", "claim", "claim"),
        ("absent_slot", "claim", "claim"),
    ],
)
def test_a_lie_is_challenged_and_the_fake_positions_void(
    env: Env, tmp_path: Path, kind: str, verdict: str, challenge: str
) -> None:
    block = lie(env, kind)
    epoch = env.next_epoch([block])
    env.settle(epoch, block)
    counted = [a for a, _ in block.claims]
    assert sum(env.collateral(a) for a in counted) > 0
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert run.verdicts() == [(verdict, "won")]
    assert run.counted(challenge, "won") == 1
    assert env.voided(CHAIN_A) and env.sent_by_watcher() == 1
    assert [env.collateral(a) for a in counted] == [0] * len(counted)


def test_a_lie_someone_else_proved_first_costs_nothing(env: Env, tmp_path: Path) -> None:
    block = lie(env, "claim")
    epoch = env.next_epoch([block])
    env.settle(epoch, block)
    alert = asyncio.run(watch_once(env, tmp_path / "alert.sqlite"))  # an alert-only watchtower's evidence
    assert alert.verdicts() == [("claim", "alert_only")]
    other = dev_account(4)  # another challenger sends the same challenge first
    n, key = block.leaf.block_number, "0x" + mapping_storage_key(env.accounts[0], 0).hex()
    proof = env.source.rpc("eth_getProof", [env.vault_a, [key], hex(n)])
    leaf, claim, claim_proof = block.leaf.abi(), block.claims[0], block.proofs[0]
    call = ChallengeBuilder(env.settlement.address).claim(
        epoch.number, leaf, epoch.block_proofs[0], claim, claim_proof, proof, 0
    )
    tx: dict[str, Any] = {**call.tx(), "gas": 2_000_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}
    send_transaction(env.dest.w3, other, tx, what="challenge")  # type: ignore[arg-type]
    assert env.voided(CHAIN_A)
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert run.verdicts() == [("claim", "already_voided")] and env.sent_by_watcher() == 0


def test_without_a_sender_key_a_lie_is_an_alert_only(env: Env, tmp_path: Path) -> None:
    block = lie(env, "claim")
    epoch = env.next_epoch([block])
    env.settle(epoch, block)
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite"))
    assert run.verdicts() == [("claim", "alert_only")]
    assert run.counted("claim", "alert_only") == 1 and not env.voided(CHAIN_A)


def test_a_block_the_source_never_had_is_unrefutable_without_an_anchor(env: Env, tmp_path: Path) -> None:
    fake = snapshot(env.source, env.vault_a, env.accounts, block_hash=b"\x42" * 32, claims=[(env.accounts[0], 9 * ETH)])
    epoch = env.next_epoch([fake])
    env.settle(epoch, fake)
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert run.verdicts() == [("block_hash", "unrefutable")]
    assert run.counted("block_hash", "unrefutable") == 1
    assert env.sent_by_watcher() == 0 and not env.voided(CHAIN_A)


def test_a_block_beyond_the_sources_head_but_not_newer_is_a_lie_not_a_wait(env: Env, tmp_path: Path) -> None:
    """A leaf numbered far above the source's head with a timestamp of now: no such block can come
    (timestamps grow with the number), so it is not "pending" for ever but a lie, with no anchor
    to refute it on-chain: an alert."""
    head = env.source.w3.eth.block_number
    fake = snapshot(env.source, env.vault_a, env.accounts, block_number=head + 1_000, block_hash=b"\x43" * 32)
    epoch = env.next_epoch([fake])
    env.settle(epoch, fake)
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert run.verdicts() == [("block_hash", "unrefutable")] and run.store.held() == []


def test_a_block_hash_the_anchor_contradicts_is_challenged(env: Env, tmp_path: Path) -> None:
    honest_d = snapshot(env.dest, env.vault_d, env.accounts)
    fake = replace(honest_d, leaf=replace(honest_d.leaf, block_hash=b"\x42" * 32))
    epoch = env.next_epoch([fake])
    env.settle(epoch, fake)
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert run.verdicts() == [("block_hash", "won")]
    assert run.counted("anchor", "won") == 1 and env.voided(DEST)


def test_the_built_in_history_path_contradicts_a_block_hash(env: Env, tmp_path: Path) -> None:
    """With the history contract itself as the chain's anchor (AnchorPolicies' built-in EIP-2935
    path), the watchtower asks it as the contract does (`get`, not `blockHash(chainId, number)`)."""
    call = env.settlement.functions.setAnchorPolicy(DEST, 0, HISTORY_STORAGE_ADDRESS)
    transact(env.dest.w3, env.owner, call, what="setAnchorPolicy")
    honest_d = snapshot(env.dest, env.vault_d, env.accounts)
    fake = replace(honest_d, leaf=replace(honest_d.leaf, block_hash=b"\x42" * 32))
    epoch = env.next_epoch([fake])
    env.settle(epoch, fake)
    env.dest.rpc("anvil_mine", [300])  # 257+ blocks back: the history contract, not BLOCKHASH
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert run.verdicts() == [("block_hash", "won")]
    assert run.counted("anchor", "won") == 1 and env.voided(DEST)


@pytest.mark.parametrize("how", ["settleMany", "submitAndSettle"])
def test_every_block_of_a_batch_is_read_from_calldata(env: Env, tmp_path: Path, how: str) -> None:
    honest = snapshot(env.source, env.vault_a, env.accounts)
    honest_d = snapshot(env.dest, env.vault_d, env.accounts)
    bad = lie(env, "claim")
    epoch = env.next_epoch([honest_d, honest, bad])
    env.settle(epoch, honest_d, bad, how=how)
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert sorted(run.verdicts(), key=str) == [("claim", "won"), ("honest", None)]
    assert env.voided(CHAIN_A) and not env.voided(DEST)


def test_a_settlement_wrapped_in_a_contract_is_traced(env: Env, tmp_path: Path) -> None:
    """The settler's own contract calls settle twice: once with a lie that reverts (not in the epoch:
    it counted nothing and is not judged) and once with a lie that counts."""
    bad = lie(env, "claim")
    epoch = env.next_epoch([bad])
    env.submit(epoch)
    counted = env.settlement_of(epoch, bad)
    not_in_epoch = (epoch.number, replace(bad.leaf, claim_count=99).abi(), *counted[2:])
    receipt = env.settle_wrapped([not_in_epoch, counted])
    assert receipt["to"] == env.wrapper.address, receipt
    assert len(receipt["logs"]) == 1, receipt["logs"]
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert run.store.held() == [] and run.verdicts() == [("claim", "won")] and env.voided(CHAIN_A)


def test_a_wrapped_settlement_that_cannot_be_traced_is_held(env: Env, tmp_path: Path) -> None:
    block = lie(env, "claim")
    epoch = env.next_epoch([block])
    env.submit(epoch)
    env.settle_wrapped([env.settlement_of(epoch, block)])
    run = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher, dest_client=NoTraceNode))
    assert run.verdicts() == []
    assert [reason for _tx, _block, reason in run.store.held()] == ["trace_unavailable"]
    assert not run.tower.ready
    assert run.metrics.watch_held.labels(reason="trace_unavailable")._value.get() == 1
    again = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))  # a node that traces
    assert again.verdicts() == [("claim", "won")] and again.store.held() == [] and again.tower.ready


def test_a_block_not_final_on_the_source_waits_and_an_unknown_chain_is_held(env: Env, tmp_path: Path) -> None:
    block = lie(env, "claim")
    epoch = env.next_epoch([block])
    env.settle(epoch, block)
    store = tmp_path / "w.sqlite"
    waiting = asyncio.run(watch_once(env, store, sender=env.watcher, source_confirmations=100))
    assert waiting.verdicts() == [] and [r for _t, _b, r in waiting.store.held()] == ["pending"]
    assert waiting.tower.ready  # a block not final yet is normal, not a failure
    unknown = asyncio.run(watch_once(env, store, sender=env.watcher, known=[DEST]))
    assert [r for _t, _b, r in unknown.store.held()] == ["unknown_chain"] and not unknown.tower.ready
    final = asyncio.run(watch_once(env, store, sender=env.watcher))
    assert final.verdicts() == [("claim", "won")] and final.store.held() == [] and final.tower.ready


def test_a_restart_resumes_the_challenge_without_sending_it_twice(env: Env, tmp_path: Path) -> None:
    block = lie(env, "claim")
    epoch = env.next_epoch([block])
    env.settle(epoch, block)
    env.dest.rpc("evm_setAutomine", [False])
    try:  # the challenge is sent, but not mined before the receipt timeout: held, intent kept
        first = asyncio.run(
            watch_once(env, tmp_path / "w.sqlite", sender=env.watcher, txm_options={"receipt_timeout_seconds": 1.0})
        )
    finally:
        env.dest.rpc("evm_setAutomine", [True])
    assert first.verdicts() == [] and [r for _t, _b, r in first.store.held()] == ["unavailable"]
    env.dest.rpc("evm_mine")
    second = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert second.verdicts() == [("claim", "won")]  # its own transaction, resumed
    assert env.voided(CHAIN_A) and env.sent_by_watcher() == 1
    third = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))  # nothing new to read
    assert third.verdicts() == [("claim", "won")] and env.sent_by_watcher() == 1


def test_a_destination_reorg_is_followed(env: Env, tmp_path: Path) -> None:
    """The destination drops the blocks of an honest settlement the watchtower read, and a lie is
    settled at the same heights instead: the watchtower reads them again and challenges the lie."""
    before = env.dest.snapshot()
    honest = snapshot(env.source, env.vault_a, env.accounts)
    epoch = env.next_epoch([honest])
    env.settle(epoch, honest)
    first = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert first.verdicts() == [("honest", None)]
    env.dest.revert(before)  # the reorg: the same heights, other blocks
    bad = lie(env, "claim")
    epoch = env.next_epoch([bad])
    env.settle(epoch, bad)
    second = asyncio.run(watch_once(env, tmp_path / "w.sqlite", sender=env.watcher))
    assert second.verdicts() == [("honest", None), ("claim", "won")] and env.voided(CHAIN_A)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _wait(what: str, check: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.process
def test_relayer_watch_voids_a_colluding_majoritys_fake_positions(env: Env, tmp_path: Path) -> None:
    """`relayer watch` as a process (the CLI, its config, its HTTP endpoints): two of three members
    sign a claim of 50 ETH that the source never held; the watchtower's challenge voids it within
    3 destination blocks of the epoch's acceptance; `relayer status` shows it; SIGTERM exits 0."""
    port = free_port()
    config = tmp_path / "watch.toml"
    config.write_text(
        render_watch_config(
            destination="dest",
            settlement=env.settlement.address,
            chains=[
                ChainTable("dest", DEST, [env.dest.url], finality="head"),
                ChainTable("source", CHAIN_A, [env.source.url], finality="head"),
            ],
            sender=KeySource(key_env="WATCH_KEY"),
            metrics_listen=f"127.0.0.1:{port}",
            options={"confirmations": 0, "poll_interval_seconds": 0.2, "start_block": env.dest.w3.eth.block_number},
        )
    )
    relayer = Path(sys.executable).parent / "relayer"
    environ = {**os.environ, "WATCH_KEY": "0x" + bytes(env.watcher.key).hex()}
    process = subprocess.Popen([str(relayer), "watch", "--config", str(config)], env=environ)
    try:
        _wait("/readyz", lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 200)
        block = lie(env, "claim")
        epoch = env.next_epoch([block])
        env.settle(epoch, block)
        accepted = int(env.settlement.events.EpochAccepted().get_logs(from_block=0)[-1]["blockNumber"])
        _wait("the chain voided", lambda: env.voided(CHAIN_A))
        voided = int(env.settlement.events.LieProven().get_logs(from_block=0)[-1]["blockNumber"])
        assert voided - accepted <= 3 and env.collateral(env.accounts[0]) == 0
        _wait("the challenge counted", lambda: 'outcome="won"' in _get(f"http://127.0.0.1:{port}/metrics")[1])
        status = subprocess.run(
            [str(relayer), "status", "--config", str(config)], env=environ, capture_output=True, text=True, timeout=30
        )
        assert status.returncode == 0 and "lies 1" in status.stdout and "ready" in status.stdout, status.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0
