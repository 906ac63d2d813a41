"""The relay pipeline's state machine in process (relayer/relay/ `DestinationRelay`), without
anvil: every state and transition of an epoch, including the failure paths.

The chains are fakes, the rest is the real code path:

- `SourceChain` is a JSON-RPC endpoint (`chains.rpc.RpcMethods`) over an in-process state: the
  vault's storage and the account trie are real Merkle-Patricia tries (py-trie) and every block
  header is a real legacy header whose stateRoot is that trie's root and whose hash is
  keccak(rlp(header)). The real prover fetches it (`eth_getBlockByNumber`, EIP-1186
  `eth_getProof`, `eth_getLogs`) and the native library verifies it.
- `Destination` is the real `Submitter` (calldata, gas headroom, idempotency keys) whose contract
  reads are answered from a model of EpochVerifier + MarginSettlement, and whose transaction
  manager (`FakeTxm`) executes the calldata against that model: `submitEpoch` /
  `submitAndSettle` check the epoch number, `previous`, the threshold and the EIP-712 signers
  (recovered, members, strictly ascending), settlements check the block leaf's proof in the
  epoch root and skip accounts already at or past the block, as the contracts do. Like the real
  transaction manager, a key already sent returns its first receipt and is never sent again.
- A process killed at a pipeline stage (`relayer.faults.checkpoint`, kill -9 in the crash
  tests) is an exception raised at that checkpoint; a restart is a new `DestinationRelay` on
  the same store. The clock of the submitter's turn (`_my_turn`) is a fake.

Anvil integration tests (tests/integration) keep covering the end-to-end behaviour.

The happy path, proving and the committee; the failures (recorded roots, the source, staleness,
errors and restarts) are in test_pipeline_failures.py, the fakes in pipeline_source.py,
pipeline_destination.py and pipeline_harness.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import to_canonical_address
from structlog.testing import capture_logs

from relayer.attestation.view import Committee
from relayer.epoch import Position
from relayer.settlement.settler import Settlement
from tests.relayer.pipeline_destination import Destination, Record
from tests.relayer.pipeline_harness import Clock, Crash, Stages, clock, events, key_of, member, solo, source, stages
from tests.relayer.pipeline_source import (
    ALICE,
    BOB,
    CAROL,
    DEPOSITS,
    DEST_ID,
    EPOCH1_BLOCK,
    SOURCE_ID,
    T0,
    VERIFIER,
    A,
    B,
    SourceChain,
)

__all__ = ["clock", "source", "stages"]  # the fixtures, imported for these tests


# --- the happy path -----------------------------------------------------------------------


async def test_first_epoch_is_proven_signed_submitted_with_settlements_and_settled_once_final(
    tmp_path: Path, source: SourceChain
) -> None:
    destination = Destination(solo())
    final = {"height": 0}
    me = member(tmp_path, source, destination, finalized=lambda: final["height"])
    with capture_logs() as logs:
        await me.relay.refresh_committee()
        assert await me.relay.round() is True
    record = me.store.epoch(1)
    assert record is not None
    # submitted with its settlements in one transaction, mined, not final yet: `confirmed`
    assert me.status() == ("confirmed", None)
    assert destination.txm.mined == [(key_of(1, record.root), "epoch")]
    assert destination.records[1].root == record.root and destination.signers[1] == [A.address]
    assert destination.state == {
        (ALICE, SOURCE_ID): Position(10**18, EPOCH1_BLOCK, T0 + 2 * EPOCH1_BLOCK),
        (BOB, SOURCE_ID): Position(2 * 10**18, EPOCH1_BLOCK, T0 + 2 * EPOCH1_BLOCK),
    }  # CAROL's claim is 0 (an exclusion proof): nothing to settle
    assert record.content["plan"]["heights"] == {str(SOURCE_ID): EPOCH1_BLOCK}
    assert [s["claim_count"] for s in record.content["snapshots"]] == [3]  # the claims are rows of their own
    assert list(me.store.epoch_claims(1, record.root, 0)) == [(ALICE, 10**18), (BOB, 2 * 10**18), (CAROL, 0)]
    assert me.store.snapshot_counts() == {"proven": 1}
    assert me.store.settlement_counts() == {"submitted": 2}
    assert me.settled == []
    names = [e["event"] for e in logs]
    for name in ("committee.read", "accounts.discovered", "snapshot.proven", "epoch.created", "batches.planned",
                 "epoch.confirmed", "batch.settled"):  # fmt: skip
        assert name in names
    assert names.index("snapshot.proven") < names.index("epoch.created") < names.index("epoch.confirmed")
    assert events(logs, "snapshot.proven")[0]["claims"] == 3

    # a loop later, still not final: nothing is sent again
    await me.relay.resume()
    assert me.status() == ("confirmed", None) and len(destination.txm.mined) == 1
    # final: settled, settlements confirmed and reported
    final["height"] = destination.block
    with capture_logs() as logs:
        await me.relay.resume()
    assert me.status() == ("settled", None)
    assert me.store.open_epochs() == []
    assert me.store.settlement_counts() == {"confirmed": 2}
    assert sorted((s.account, s.value, s.block_number, s.epoch) for s in me.settled) == [
        (ALICE, 10**18, EPOCH1_BLOCK, 1), (BOB, 2 * 10**18, EPOCH1_BLOCK, 1),
    ]  # fmt: skip
    # driven with the aggregate its round built (this process created it): not `epoch.resumed`
    assert [e["event"] for e in logs if e["log_level"] != "debug"] == ["settlement.final"]
    assert len(destination.txm.mined) == 1

    assert me.sample("relayer_epochs_signed_total") == 1
    assert me.sample("relayer_epochs_submitted_total") == 1
    assert me.sample("relayer_epochs_confirmed_total") == 1
    assert me.sample("relayer_settlements_confirmed_total") == 2
    assert me.sample("relayer_snapshots_proven_total", chain="source") == 1
    assert me.sample("relayer_proofs_verified_total", chain="source") == 4  # the account proof + 3 storage proofs
    assert me.sample("relayer_block_hash_confirmations_total", chain="source", outcome="single_endpoint") == 1
    assert me.sample("relayer_backlog_snapshots") == 1
    assert me.sample("relayer_committee_generation", destination="destination") == 1

    # nothing changed since block 8: no epoch 2 is due, nothing is proven or sent
    proofs = source.calls.count("eth_getProof")
    assert await me.relay.round() is False
    assert me.store.epoch(2) is None and source.calls.count("eth_getProof") == proofs
    assert me.sample("relayer_backlog_snapshots") == 0
    assert len(destination.txm.mined) == 1


async def test_the_daemon_loop_runs_the_next_epoch_after_a_change(tmp_path: Path) -> None:
    """`run`: epoch 1, then (a deposit at block 13) epoch 2 at block 16, planned after epoch 1's
    acceptance on the destination, chained to epoch 1's root."""
    source = SourceChain({**DEPOSITS, 13: {ALICE: 5 * 10**17}})
    destination = Destination(solo())
    me = member(tmp_path, source, destination)
    stop = asyncio.Event()

    def settled(s: Settlement) -> None:
        me.settled.append(s)
        if s.epoch == 2:
            stop.set()

    me.relay.settler.on_settled = settled
    me.relay.idle_seconds = 0.01
    await asyncio.wait_for(me.relay.run(stop), 10)
    assert me.status(1) == ("settled", None) and me.status(2) == ("settled", None)
    first, second = me.store.epoch(1), me.store.epoch(2)
    assert first is not None and second is not None
    assert second.content["plan"]["heights"] == {str(SOURCE_ID): 16}
    assert second.content["previous"] == "0x" + first.root.hex()
    assert destination.state[(ALICE, SOURCE_ID)] == Position(5 * 10**17, 16, T0 + 32)  # a decrease settles
    assert destination.state[(BOB, SOURCE_ID)].block_number == EPOCH1_BLOCK  # unchanged: not sent again
    assert destination.txm.mined == [(key_of(1, first.root), "epoch"), (key_of(2, second.root), "epoch")]


async def test_nothing_due_makes_no_epoch_until_the_change_is_final(tmp_path: Path, source: SourceChain) -> None:
    source.finalized = EPOCH1_BLOCK - 1  # the deposit at block 5 is final, block 8 is not yet
    destination = Destination(solo())
    me = member(tmp_path, source, destination)
    assert await me.relay.round() is False
    assert me.store.epoch(1) is None
    assert "eth_getProof" not in source.calls
    assert destination.txm.mined == []
    assert me.sample("relayer_backlog_snapshots") == 0 and me.sample("relayer_epochs_signed_total") == 0
    source.finalized = EPOCH1_BLOCK
    assert await me.relay.round() is True
    assert me.status() == ("settled", None)


# --- proving ------------------------------------------------------------------------------


async def test_a_rejected_snapshot_signs_nothing_and_the_same_heights_are_proven_next_round(
    tmp_path: Path, source: SourceChain
) -> None:
    destination = Destination(solo())
    me = member(tmp_path, source, destination)
    source.corrupt_proofs = 1
    with capture_logs() as logs:
        assert await me.relay.round() is False
    assert me.store.epoch(1) is None and destination.txm.mined == []
    assert me.store.snapshot_counts() == {"rejected": 1}
    (rejected,) = events(logs, "proof.rejected")
    assert rejected["block"] == EPOCH1_BLOCK and str(rejected["reason"]).startswith("proof:")
    (deferred,) = events(logs, "epoch.deferred")
    assert deferred["epoch"] == 1 and deferred["block"] == EPOCH1_BLOCK
    assert me.sample("relayer_proofs_rejected_total", chain="source", reason=str(rejected["reason"])) == 1
    assert me.sample("relayer_epochs_signed_total") == 0

    assert await me.relay.round() is True  # the same height, proven again: signed and submitted
    record = me.store.epoch(1)
    assert record is not None and record.content["plan"]["heights"] == {str(SOURCE_ID): EPOCH1_BLOCK}
    assert me.status() == ("settled", None)
    assert me.store.snapshot_counts() == {"proven": 1}  # the rejected row replaced
    assert destination.txm.mined == [(key_of(1, record.root), "epoch")]
    assert me.sample("relayer_epochs_signed_total") == 1


async def test_an_excluded_claim_is_left_out_alone_but_rejects_the_snapshot_in_a_committee(
    tmp_path: Path, source: SourceChain
) -> None:
    source.corrupt_storage_of = BOB  # BOB's storage proof never verifies
    destination = Destination(solo())
    me = member(tmp_path, source, destination)
    with capture_logs() as logs:
        assert await me.relay.round() is True
    record = me.store.epoch(1)
    assert record is not None and me.status() == ("settled", None)
    assert [account for account, _value in me.store.epoch_claims(1, record.root, 0)] == [ALICE, CAROL]
    (excluded,) = events(logs, "claim.rejected")
    assert excluded["account"] == BOB and str(excluded["reason"]).startswith("proof:")
    assert (BOB, SOURCE_ID) not in destination.state

    # a member of a larger committee signs all claims or none: the other members' root has BOB
    peer_destination = Destination(Committee(1, 1, (A.address, B.address)))
    other = member(tmp_path, source, peer_destination, name="committee")
    with capture_logs() as logs:
        assert await other.relay.round() is False
    assert other.store.epoch(1) is None and other.store.snapshot_counts() == {"rejected": 1}
    assert [e["reason"] for e in events(logs, "proof.rejected")] == ["claims_excluded"]
    assert other.sample("relayer_epochs_signed_total") == 0


# --- the committee ------------------------------------------------------------------------


async def test_an_unsatisfiable_committee_proves_nothing_and_a_held_epoch_goes_out_after_a_rotation(
    tmp_path: Path, source: SourceChain, stages: Stages
) -> None:
    destination = Destination(Committee(2, 2, (A.address, B.address)))
    me = member(tmp_path, source, destination)
    with capture_logs() as logs:
        assert await me.relay.round() is False
    assert "eth_getProof" not in source.calls and me.store.epoch(1) is None
    (unable,) = events(logs, "committee.unable")
    assert "threshold 2 needs 1 more member's signature" in str(unable["problems"])
    assert me.sample("relayer_committee_signatures_missing", destination="destination") == 1
    assert me.relay.committee_problems()

    # an epoch signed under a committee this member could satisfy, then the process died
    destination.members = solo()
    stages.crash_at("epoch.created")
    me = member(tmp_path, source, destination)
    with pytest.raises(Crash):
        await me.relay.round()
    assert me.status() == ("signed", None)
    # restarted after a rotation it cannot satisfy: held, nothing sent, nothing new signed
    destination.members = Committee(3, 2, (A.address, B.address))
    me = member(tmp_path, source, destination)
    with capture_logs() as logs:
        await me.relay.refresh_committee()
        await me.relay.resume()
        assert await me.relay.round() is False
        await me.relay.resume()
    assert len(events(logs, "epoch.held")) == 1  # logged once
    assert me.status() == ("signed", None) and destination.txm.mined == []
    # rotated again (this member alone, threshold 1): submitted, its stored content signed again for
    # generation 4 (the stored signature, made for generation 1, would be refused)
    destination.members = Committee(4, 1, (A.address,))
    await me.relay.refresh_committee(force=True)
    await me.relay.resume()
    record = me.store.epoch(1)
    assert record is not None and me.status() == ("settled", None)
    assert destination.records[1] == Record(record.root, 4) and destination.signers[1] == [A.address]
    assert destination.txm.mined == [(key_of(1, record.root), "epoch")]
    assert me.sample("relayer_committee_generation", destination="destination") == 4
    assert me.sample("relayer_epochs_signed_total") == 0


def ascending(*accounts: LocalAccount) -> list[str]:
    return sorted((a.address for a in accounts), key=lambda address: to_canonical_address(address))


async def test_threshold_two_submits_with_the_peer_signature_from_the_shared_directory(
    tmp_path: Path, source: SourceChain
) -> None:
    # epoch 1 is A's turn: the submitter of epoch e is member e mod N
    destination = Destination(Committee(1, 2, (B.address, A.address)))
    shared = tmp_path / "attestations"
    shared.mkdir()
    me = member(tmp_path, source, destination, A, name="a", directory=shared, peers=1)
    peer = member(tmp_path, source, destination, B, name="b", directory=shared, peers=1)
    with capture_logs() as logs:
        assert await me.relay.round() is True  # signed and published; the peer has not signed yet
    assert me.status() == ("signed", None) and destination.txm.mined == []
    (awaiting,) = events(logs, "epoch.awaiting_signatures")
    assert awaiting["have"] == 1 and awaiting["threshold"] == 2

    assert await peer.relay.round() is True  # the peer computes the same epoch, signs; not its turn
    assert peer.status() == ("signed", None) and destination.txm.mined == []
    ours, theirs = me.store.epoch(1), peer.store.epoch(1)
    assert ours is not None and theirs is not None and ours.root == theirs.root

    await me.relay.resume()  # both signatures at hand, its turn: submitted and settled
    assert me.status() == ("settled", None)
    assert destination.signers[1] == ascending(A, B)
    assert destination.txm.mined == [(key_of(1, ours.root), "epoch")]
    await peer.relay.resume()  # accepted by the other member: settled here without sending
    assert peer.status() == ("settled", None)
    assert len(destination.txm.mined) == 1
    assert me.sample("relayer_epochs_submitted_total") == 1 and peer.sample("relayer_epochs_submitted_total") == 0


async def test_a_peer_signature_the_destination_refuses_is_dropped_and_collected_again(
    tmp_path: Path, source: SourceChain
) -> None:
    """submitEpoch reverts naming B's signature (ECDSAInvalidSignatureS): the epoch is not given
    up; B's signature is dropped from the store, collected again, and the epoch lands."""
    destination = Destination(Committee(1, 2, (B.address, A.address)))
    shared = tmp_path / "attestations"
    shared.mkdir()
    me = member(tmp_path, source, destination, A, name="a", directory=shared, peers=1)
    peer = member(tmp_path, source, destination, B, name="b", directory=shared, peers=1)
    assert await me.relay.round() is True
    assert await peer.relay.round() is True
    ours = me.store.epoch(1)
    assert ours is not None
    [theirs] = [r for r in peer.store.attestations(DEST_ID, VERIFIER, 1) if r.signer == B.address]
    destination.refuse_s.add(theirs.signature[32:64])
    with capture_logs() as logs:
        await me.relay.resume()
    assert me.status() == ("signed", None), "the epoch was given up for one refused signature"
    assert destination.txm.mined == []
    assert [e["dropped"] for e in events(logs, "epoch.signature_refused")] == [1]
    assert B.address not in {r.signer for r in me.store.attestations(DEST_ID, VERIFIER, 1)}
    assert me.sample("relayer_attestations_refused_total", destination="destination", reason="refused_on_chain") == 1
    await me.relay.resume()  # collected again from the shared directory: submitted and settled
    assert me.status() == ("settled", None)
    assert destination.signers[1] == ascending(A, B)


async def test_an_epoch_signed_before_a_committee_change_still_lands_with_its_members(
    tmp_path: Path, source: SourceChain
) -> None:
    """A and B (threshold 2) signed epoch 1 under generation 1, and B already collected A's
    signature; then `setCommittee` (generation 2, the same members) voids every signature made
    before it. Each member signs the epoch again for generation 2 and publishes it in place of
    the old one, and drops the peer signatures it had kept: the epoch lands with both
    generation-2 signatures (it used to wait for ever: each member re-signed for itself only)."""
    destination = Destination(Committee(1, 2, (B.address, A.address)))  # epoch 1 is A's turn
    shared = tmp_path / "attestations"
    shared.mkdir()
    me = member(tmp_path, source, destination, A, name="a", directory=shared, peers=1)
    peer = member(tmp_path, source, destination, B, name="b", directory=shared, peers=1)
    assert await me.relay.round() is True
    assert await peer.relay.round() is True
    await peer.relay.resume()  # B collects and keeps A's generation-1 signature; not B's turn
    assert A.address in {r.signer for r in peer.store.attestations(DEST_ID, VERIFIER, 1)}
    assert destination.txm.mined == []

    destination.members = Committee(2, 2, (B.address, A.address))
    for m in (me, peer):
        await m.relay.refresh_committee(force=True)
    with capture_logs() as logs:
        await me.relay.resume()  # A signs again for generation 2; B's signature is of generation 1
        await peer.relay.resume()  # B signs again, drops A's old one, collects A's new one
        await me.relay.resume()  # A collects B's new one: submitted
    assert len(events(logs, "epoch.signed_again")) == 2
    assert me.status() == ("settled", None)
    assert destination.records[1].generation == 2 and destination.signers[1] == ascending(A, B)
    assert peer.sample("relayer_attestations_refused_total", destination="destination", reason="old_generation") == 1
    await peer.relay.resume()
    assert peer.status() == ("settled", None) and len(destination.txm.mined) == 1


async def test_not_this_members_turn_waits_then_takes_over(tmp_path: Path, source: SourceChain, clock: Clock) -> None:
    # epoch 1's designated submitter is B (member 1 mod 2); A is next, after takeover_seconds
    destination = Destination(Committee(1, 1, (A.address, B.address)))
    me = member(tmp_path, source, destination, takeover_seconds=5)
    assert await me.relay.round() is True
    assert me.status() == ("signed", None) and destination.txm.mined == []
    clock.now += 4.9
    await me.relay.resume()
    assert me.status() == ("signed", None) and destination.txm.mined == []
    clock.now += 0.1
    with capture_logs() as logs:
        await me.relay.resume()
    (takeover,) = events(logs, "epoch.takeover")
    assert takeover["designated"] == B.address and takeover["waited_seconds"] == 5.0
    record = me.store.epoch(1)
    assert record is not None and me.status() == ("settled", None)
    assert destination.txm.mined == [(key_of(1, record.root), "epoch")]


async def test_losing_a_takeover_race_to_the_same_root_costs_nothing(
    tmp_path: Path, source: SourceChain, stages: Stages
) -> None:
    """A takes over; B's submission of the same root is mined between A's checks and A's
    transaction: submitAndSettle does not submit a recorded root again, A's batch only settles."""
    destination = Destination(Committee(1, 1, (A.address, B.address)))
    me = member(tmp_path, source, destination, A, takeover_seconds=0)

    def designated_submits_the_same_root() -> None:
        record = me.store.epoch(1)
        assert record is not None
        destination.record(1, record.root, [B.address])

    stages.actions["batch.before_send"] = designated_submits_the_same_root
    assert await me.relay.round() is True
    record = me.store.epoch(1)
    assert record is not None and me.status() == ("settled", None)
    assert destination.signers[1] == [B.address]  # accepted once, with B's signature
    assert destination.txm.mined == [(key_of(1, record.root), "epoch")]
    assert destination.state[(ALICE, SOURCE_ID)].block_number == EPOCH1_BLOCK


async def test_accepted_by_another_member_is_settled_here_without_sending(tmp_path: Path, source: SourceChain) -> None:
    destination = Destination(Committee(1, 1, (A.address, B.address)))
    me = member(tmp_path, source, destination, A, name="a")
    designated = member(tmp_path, source, destination, B, name="b")
    assert await me.relay.round() is True  # B's turn: A waits
    assert me.status() == ("signed", None)
    assert await designated.relay.round() is True  # B submits and settles
    assert designated.status() == ("settled", None)
    sent = list(destination.txm.mined)
    assert len(sent) == 1 and destination.signers[1] == [B.address]
    with capture_logs() as logs:
        await me.relay.resume()
    assert me.status() == ("settled", None)
    assert destination.txm.mined == sent
    assert events(logs, "epoch.takeover") == [] and events(logs, "batches.planned") == []
    assert me.sample("relayer_epochs_submitted_total") == 0
