"""Destination reorgs with the relayer's transactions in flight (issue 17), on real anvil nodes
with the daemon as a process, the destination mining a block every DEST_BLOCK_TIME seconds and
taking a block as final one confirmation deep (the devnet's `finality = "confirmations"`,
`confirmations = 1`: the watcher's final height is head - 1, so a reorg of depth 2 is the
shallowest that drops a block the relayer already takes as final, `bench.reorg.FINALITY_DEPTH`).
With `max_accounts_per_batch = 1` an epoch that changes N accounts is one `submitAndSettle` and
N - 1 `settleMany`, several in flight at consecutive nonces.

What anvil (1.7) does on `anvil_reorg [depth, []]`, found by experiment (interval mining):
- the dropped blocks are replaced by as many new empty blocks: the head keeps its number;
- the dropped blocks' transactions are NOT put back in the pool: `eth_getTransactionByHash`
  and `eth_getTransactionReceipt` answer null for them, and `eth_getTransactionCount(sender,
  "latest")` falls back to the lowest dropped nonce;
- the sender's later transactions already in the pool stay there ("pending" in txpool_status,
  and the "pending" count still counts past the hole) until the next block is mined; that block
  does not include them (their nonce is not the next one) and the pool forgets them: from then
  on they are unknown too;
- the same signed bytes broadcast again are accepted: a later nonce goes to "queued" and stays
  there; once the missing nonce is sent again, the next block mines all of them in order.
So after such a reorg nothing of the relayer's comes back by itself: every dropped or waiting
transaction has to be broadcast again, the lowest nonce first.

The reorg is timed on the chain (`bench.reorg.reorg_at`): the destination is polled for the
relayer's `submitAndSettle`, and `anvil_reorg` is called right after the block holding it (or
`depth - 1` blocks later), while the relayer's next transactions wait in the pool. Each
scenario then asserts: every account on the destination is what the source says again; no epoch
failed (`relayer_epochs_failed_total`; a scenario whose reorg removed the epoch's acceptance
with nothing of the relayer's in flight may rebuild it: `lost_on_destination`); no account was
settled twice for one block by the relayer after the reorg (beyond the re-sent transactions,
which settle what the reorg removed); the fee of the recovery (`bench.reorg.fees`) is at most
twice what the dropped and waiting transactions cost; and every replacement (`tx.replacing`)
stays within twice the market max fee (2 x base fee + tip) logged with it. Recovery times are
measured by `make bench-reorg`, not asserted here.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from bench.reorg import (
    FINALITY_DEPTH,
    SCENARIOS,
    MissedWindow,
    Reorg,
    Scenario,
    deposit_each,
    doubled,
    event_time,
    fees,
    pool_of,
    relayer_txs,
    reorg_at,
    replaced_behind_a_hole,
)
from chains.anvil import rpc
from relayer import devnet
from tests.integration.committee_runs import CommitteeRuns
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration

ACCOUNTS = 6
DEST_BLOCK_TIME = 1.0
RECOVERY_TIMEOUT = 60.0
FEE_RATIO = 2.0
MARKET_RATIO = 2.0
ATTEMPTS = 3
"""Changes made until a reorg is timed as the scenario asks (a block may come first)."""
QUIET_SECONDS = 7.0
"""Longer than the transaction manager's `stuck_after_seconds` (6): a transaction the node
forgot is broadcast again within it."""


def labelled(metrics: str, name: str) -> dict[str, float]:
    """Every sample of metric `name` on a daemon's /metrics, by its label text."""
    text = urllib.request.urlopen(metrics, timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            labels = line[len(name) : line.rindex(" ")]
            out[labels] = out.get(labels, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


class Net(DaemonRuns):
    """The devnet and its daemon (one relayer, dev account 2 sending on the destination)."""

    def __init__(self, net: devnet.Devnet) -> None:
        super().__init__(net)
        self.sender = devnet.member_keys(0)[1].address
        self.step = 0

    def idle(self) -> bool:
        """Every account true and nothing of the relayer's in the destination's pool."""
        return self.all_settled_as_source_says() and not pool_of(self.dest_rpc, self.settlement, self.sender)

    def quiet(self, seconds: float = QUIET_SECONDS) -> bool:
        """`idle` for `seconds` in a row with no transaction of the relayer mined meanwhile."""
        count = self.dst.eth.get_transaction_count(self.sender)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.idle():
                return False
            time.sleep(0.25)
        return self.dst.eth.get_transaction_count(self.sender) == count

    def change(self, accounts: int) -> int:
        """The first `accounts` accounts deposit (mined on the source); returns the
        destination's head before."""
        head = self.dst.eth.block_number
        self.step += 1
        deposit_each(self.src, self.vault, self.accounts[:accounts], 10**15 + self.step)
        return head

    def final(self, epoch: int) -> bool:
        return any(int(e.get("epoch", -1)) == epoch for e in self.events("settlement.final"))

    def failures(self) -> dict[str, float]:
        return labelled(self.metrics, "relayer_epochs_failed_total")

    def counter(self, name: str) -> float:
        return sum(labelled(self.metrics, name).values())


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    directory = tmp_path_factory.mktemp("reorgs")
    provisioned = devnet.provision(
        directory, accounts=ACCOUNTS, detach=False, progress=False, every_blocks=2, dest_block_time=DEST_BLOCK_TIME
    )
    text = provisioned.config_path.read_text()
    text = text.replace("[destinations.destination]\n", "[destinations.destination]\nmax_accounts_per_batch = 1\n")
    provisioned.config_path.write_text(text)
    n = Net(provisioned)
    with n.running():
        yield n


def reorged(net: Net, scenario: Scenario) -> Reorg:
    """Make the scenario's change and reorg the destination as it asks (again with a new change
    when a block came first); asserts the reorg left the destination wrong."""
    wait_for("the relayer idle before the scenario", net.idle, RECOVERY_TIMEOUT)
    for _ in range(ATTEMPTS):
        head = net.change(scenario.accounts)
        try:
            reorg = reorg_at(
                net.dst, net.dest_rpc, net.settlement, [net.sender], after_block=head, depth=scenario.depth,
                in_flight=scenario.in_flight, ready=net.final if scenario.after_final else None,
                base_fee_times=scenario.base_fee_times,
            )  # fmt: skip
        except MissedWindow:
            wait_for("the relayer idle again", net.idle, RECOVERY_TIMEOUT)
            continue
        assert not net.all_settled_as_source_says(), "the reorg dropped nothing the destination needed"
        return reorg
    raise AssertionError(f"{scenario.name}: the reorg could not be timed in {ATTEMPTS} changes")


def assert_recovered(
    net: Net, reorg: Reorg, failures_before: dict[str, float], *, rebuild_allowed: bool, fee_ratio: float = FEE_RATIO
) -> dict[str, Any]:
    """Wait until every account is true again; then the checks every scenario shares (see the
    module doc). Returns the fee figures."""
    wait_for("every account as the source says after the reorg", net.all_settled_as_source_says, RECOVERY_TIMEOUT)
    until = net.dst.eth.block_number
    failures = net.failures()
    new = {k: v - failures_before.get(k, 0.0) for k, v in failures.items() if v != failures_before.get(k, 0.0)}
    allowed = {k for k in new if rebuild_allowed and 'reason="lost_on_destination"' in k}
    assert not set(new) - allowed, f"epochs failed after the reorg: {new}"
    figures = fees(net.dst, net.settlement, reorg, until)
    assert figures["ratio"] is not None and figures["ratio"] <= fee_ratio, (
        f"the recovery cost {figures['recovery_wei']} wei, over {fee_ratio} x the {figures['baseline_wei']} wei "
        f"of the {len(reorg.dropped)} dropped and {len(reorg.in_flight)} waiting transactions: {figures}"
    )
    # what was still in flight lands (or is given up) without settling an account twice
    wait_for("nothing of the relayer's left in flight", net.quiet, RECOVERY_TIMEOUT)
    head = net.dst.eth.block_number
    after = relayer_txs(net.dst, net.settlement, [net.sender], reorg.block, head)
    nonces = Counter(t.nonce for t in after)
    assert all(n == 1 for n in nonces.values()), f"two relayer transactions mined at one nonce: {nonces}"
    twice = doubled(net.settlement, after, reorg.block, head)
    assert not twice, f"the relayer settled accounts twice for one block after the reorg: {twice}"
    assert_replacements_bounded(net.dst, net.sender, net.events("tx.replacing"), reorg)
    return figures


def assert_replacements_bounded(w3: Any, sender: str, events: list[dict[str, Any]], reorg: Reorg) -> None:
    """Every replacement stays within MARKET_RATIO x the market max fee logged with it, and
    none after the reorg bumps a transaction behind a missing nonce (it could not be mined)."""
    for event in events:
        market = event.get("market_max_fee")
        assert market is not None, f"a replacement logged without the market max fee: {event}"
        assert int(event["max_fee"]) <= MARKET_RATIO * int(market), f"a replacement above 2 x the market: {event}"
    after = [e for e in events if event_time(e) >= reorg.at]
    behind = replaced_behind_a_hole(w3, sender, after, reorg.block)
    assert not behind, f"fees bumped for transactions behind a missing nonce: {behind}"


def assert_resent(net: Net, reorg: Reorg, reorged_before: float) -> None:
    """The transaction manager saw the hole under its pending nonces: each dropped transaction
    was logged `tx.reorged_out` (key, kind, nonce, tx, block), counted, and mined again as the
    same signed bytes (same hash)."""
    events = {
        int(e["nonce"]): e for e in net.events("tx.reorged_out") if e.get("tx") in {t.hash for t in reorg.dropped}
    }
    for tx in reorg.dropped:
        event = events.get(tx.nonce)
        assert event is not None, f"no tx.reorged_out for nonce {tx.nonce} ({tx.hash})"
        assert {"key", "kind", "nonce", "tx", "block"} <= set(event), event
        receipt: Any = rpc(net.dest_rpc, "eth_getTransactionReceipt", [tx.hash])
        assert receipt is not None, f"the dropped {tx.function} at nonce {tx.nonce} was not sent again as it was"
        assert int(receipt["status"], 16) == 1 and int(receipt["blockNumber"], 16) > reorg.block + reorg.depth - 1
    assert net.counter("relayer_tx_reorged_total") - reorged_before >= len(reorg.dropped)


def test_depth_1_with_nothing_in_flight_is_settled_again(net: Net) -> None:
    """Scenario 1: one account changes; its epoch is one submitAndSettle, dropped at depth 1
    with nothing of the relayer's in the pool. (Main recovers here too, in about 2 s: this
    guards that path.)"""
    scenario = SCENARIOS[0]
    failures = net.failures()
    reorg = reorged(net, scenario)
    assert len(reorg.dropped) == 1 and not reorg.in_flight, reorg
    assert_recovered(net, reorg, failures, rebuild_allowed=True)


def test_depth_1_with_the_next_batch_in_the_pool_resends_in_nonce_order(net: Net) -> None:
    """Scenario 2: two accounts change; the submitAndSettle (nonce n) is dropped while the
    settleMany at n + 1 waits in the pool, which can never mine it now. On main the settling
    loop waited on n + 1 for the receipt timeout (120 s), replacing it with rising fees."""
    scenario = SCENARIOS[1]
    failures, reorged_before = net.failures(), net.counter("relayer_tx_reorged_total")
    timeouts = labelled(net.metrics, "relayer_tx_failed_total")
    reorg = reorged(net, scenario)
    assert [t.function for t in reorg.dropped] == ["submitAndSettle"] and len(reorg.in_flight) >= 1, reorg
    assert reorg.nonce_after == reorg.dropped[0].nonce < reorg.in_flight[0].nonce
    assert_recovered(net, reorg, failures, rebuild_allowed=False)
    assert_resent(net, reorg, reorged_before)
    assert labelled(net.metrics, "relayer_tx_failed_total") == timeouts, "a transaction failed during the recovery"


def test_depth_1_with_several_batches_in_flight_recovers_every_account(net: Net) -> None:
    """Scenario 3: five accounts change; the submitAndSettle is dropped while at least three
    settleMany wait behind it. On main the stuck batches stayed planned and were driven again
    after every timeout, fees rising towards the cap, the accounts wrong for minutes."""
    scenario = SCENARIOS[2]
    failures, reorged_before = net.failures(), net.counter("relayer_tx_reorged_total")
    reorg = reorged(net, scenario)
    assert len(reorg.in_flight) >= 3, reorg
    assert_recovered(net, reorg, failures, rebuild_allowed=False)
    assert_resent(net, reorg, reorged_before)


def test_a_reorg_as_deep_as_finality_drops_a_final_submission_and_its_batches(net: Net) -> None:
    """Scenario 4: three accounts change; the reorg (depth FINALITY_DEPTH) comes once the block
    on top of the submission's is mined: the submission was final by the daemon's rule, the
    settleMany of the next block not yet. On main either the submission's key stayed "mined"
    and was never sent again while the two settleMany, forgotten by the node, were re-broadcast
    into the queue behind the hole and replaced every 6 s (the accounts stayed wrong), or an
    estimate reverted EpochNotAccepted, the epoch failed and waited out the 60 s pause."""
    scenario = SCENARIOS[3]
    assert scenario.depth == FINALITY_DEPTH
    failures = net.failures()
    reorg = reorged(net, scenario)
    assert reorg.dropped[0].function == "submitAndSettle" and len(reorg.dropped) + len(reorg.in_flight) >= 2, reorg
    assert_recovered(net, reorg, failures, rebuild_allowed=True)


def test_a_reorg_past_finality_after_the_epoch_was_final_is_noticed_and_restored(net: Net) -> None:
    """Scenario 5: three accounts change; once the daemon logged the epoch's settlement.final
    the destination is reorged FINALITY_DEPTH + 2 deep, back to before the submission: it shows
    the old values again and the epoch is no longer accepted. The relayer has to notice on its
    own (no new change on the source) and settle the accounts again. (Main does, within a few
    seconds: nothing of the relayer's is in flight, the next round finds the epoch lost on the
    destination and rebuilds it; this guards that path.)"""
    scenario = SCENARIOS[4]
    failures = net.failures()
    reorg = reorged(net, scenario)
    assert net.final(reorg.epoch) and reorg.depth == FINALITY_DEPTH + 2
    assert int(net.verifier.functions.latestEpoch().call()) < reorg.epoch, "the epoch is still accepted"
    assert_recovered(net, reorg, failures, rebuild_allowed=True)


def test_a_base_fee_spike_at_the_reorg_is_paid_once_within_twice_the_market(net: Net) -> None:
    """Scenario 6: as scenario 3, and at the reorg the next block's base fee jumps to 1.5 x the
    price the dropped transactions paid, above their maxFee: sent again unchanged they cannot be
    mined, so they are replaced, each bump within 2 x the market max fee (2 x base fee + tip)
    logged with it, and none behind a missing nonce. The recovery costs about the spike (at most
    twice the pre-reorg fee times the spike), not a runaway."""
    scenario = SCENARIOS[5]
    assert scenario.base_fee_times == 1.5
    failures = net.failures()
    replacing = len(net.events("tx.replacing"))
    reorg = reorged(net, scenario)
    assert_recovered(net, reorg, failures, rebuild_allowed=False, fee_ratio=FEE_RATIO * scenario.base_fee_times)
    assert len(net.events("tx.replacing")) > replacing, "nothing was replaced: the spike did not bite"


# --------------------------------------------------------------------------- a committee


@pytest.fixture(scope="module")
def committee(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CommitteeRuns]:
    directory: Path = tmp_path_factory.mktemp("reorg-committee")
    runs = CommitteeRuns.provision(directory, members=3, threshold=2, accounts=3, dest_block_time=DEST_BLOCK_TIME)
    for member in runs.members:
        text = member.config.read_text()
        member.config.write_text(
            text.replace("[destinations.destination]\n", "[destinations.destination]\nmax_accounts_per_batch = 1\n")
        )
    try:
        runs.start_all()
        runs.check_end_state(timeout=120)
        yield runs
    finally:
        runs.close()


def quiet(runs: CommitteeRuns, senders: list[str], seconds: float = QUIET_SECONDS) -> bool:
    """No transaction of `senders` in the destination's pool, and none mined, for `seconds`."""
    addresses = [Web3.to_checksum_address(s) for s in senders]
    counts = [runs.dst.eth.get_transaction_count(a) for a in addresses]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(pool_of(runs.dest_rpc, runs.settlement, s) for s in senders):
            return False
        time.sleep(0.25)
    return counts == [runs.dst.eth.get_transaction_count(a) for a in addresses]


def test_a_committee_recovers_when_the_submitters_transactions_are_reorged_out(committee: CommitteeRuns) -> None:
    """Scenario 6: a 2-of-3 committee; two accounts change and the submitting member's
    submitAndSettle is dropped (depth 1) with its settleMany waiting in the pool. Every account
    ends true, no member records an attestation conflict, and the members agree on the next
    epoch's root (none kept the acceptance the reorg removed). What the submitter had in flight
    is resolved without settling an account twice (on main another member took the epoch over
    while the submitter's stuck settleMany was re-broadcast, replaced with rising fees, and
    mined later as a duplicate)."""
    runs = committee
    senders = [m.sender for m in runs.members]
    conflicts = [runs.metric(i, "relayer_attestation_conflicts_total") or 0.0 for i in range(3)]
    reorg: Reorg | None = None
    for _ in range(ATTEMPTS):
        head = runs.dst.eth.block_number
        for account in runs.accounts[:2]:
            runs.deposit(account, 10**15 + int(time.time()) % 1000)
        try:
            reorg = reorg_at(runs.dst, runs.dest_rpc, runs.settlement, senders, after_block=head, depth=1, in_flight=1)
            break
        except MissedWindow:
            runs.check_end_state(timeout=RECOVERY_TIMEOUT)
    assert reorg is not None, f"the reorg could not be timed in {ATTEMPTS} changes"
    assert not runs.all_settled_as_source_says()
    accepted = runs.check_end_state(timeout=RECOVERY_TIMEOUT)
    figures = fees(runs.dst, runs.settlement, reorg, runs.dst.eth.block_number, senders)
    assert any(a.epoch == reorg.epoch for a in accepted), "the reorged epoch was never accepted again"
    # what the submitter still had in flight lands or is given up, and settles nothing twice
    wait_for("no member's transaction left in the pool", lambda: quiet(runs, senders), RECOVERY_TIMEOUT)
    runs.check_end_state(timeout=RECOVERY_TIMEOUT)
    assert [runs.metric(i, "relayer_attestation_conflicts_total") or 0.0 for i in range(3)] == conflicts
    # the next epoch: every member computes it alike
    runs.deposit(runs.accounts[2], 10**15)
    accepted = runs.check_end_state(timeout=RECOVERY_TIMEOUT)
    nxt = accepted[-1]
    assert nxt.epoch > reorg.epoch
    for i in range(3):
        roots = {str(e["root"]) for e in runs.events(i, "epoch.created") if int(e["epoch"]) == nxt.epoch}
        assert roots == {nxt.root}, f"{runs.members[i].name} created epoch {nxt.epoch} as {roots}, accepted {nxt.root}"
    assert [runs.metric(i, "relayer_attestation_conflicts_total") or 0.0 for i in range(3)] == conflicts
    assert figures["ratio"] is not None and figures["ratio"] <= FEE_RATIO, figures
    for i, member in enumerate(runs.members):
        assert_replacements_bounded(runs.dst, member.sender, runs.events(i, "tx.replacing"), reorg)
