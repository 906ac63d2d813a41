"""A 2-of-3 committee of real member daemons on real anvil nodes (DESIGN section 2, issue 10):
members sign only roots they computed, exchange signatures, one member per epoch submits (the
others take over after `takeover_seconds`), conflicting roots raise an alarm.

- any one member killed with kill -9: the other two still settle; it restarts and catches up
  (its signature is needed by the next epoch); no epoch and no settlement is doubled;
- two of three down: nothing settles, and /readyz and the metrics say why;
- a committee rotation (the owner calls setCommittee) while the daemons run: the new
  generation settles, a member rotated out says so;
- a member behind a hostile source endpoint (tampered account proofs): it signs nothing, the
  other two settle;
- a member behind a self-consistent fake source chain: no quorum forms for its root, the honest
  members count and log the conflict, the destination never shows the fake values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.committee_runs import CommitteeRuns, FakeSourceChain, settles_within, wait_until
from tests.integration.proxy import TamperProxy
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration

MEMBERS, THRESHOLD, ACCOUNTS = 3, 2, 3
TAKEOVER_SECONDS = 3.0
FIRST_SETTLEMENT = 90.0
"""Seconds from the members' start to every seeded account settled."""
SETTLE = 45.0
"""Seconds a source change may take to settle: two confirmations, the next multiple of
every_blocks (1 block/s), the signatures, a takeover (3 s) and the destination's receipt."""
QUIET = 10.0
"""Seconds in which a change would have settled had the committee been able to."""


def conflicts(runs: CommitteeRuns, i: int) -> float:
    """Member i's conflict alarms: relayer_attestation_conflicts_total, or its attestation.conflict log events."""
    counted = runs.metric(i, "relayer_attestation_conflicts_total") or 0.0
    return max(counted, float(len(runs.events(i, "attestation.conflict"))))


def start(runs: CommitteeRuns) -> CommitteeRuns:
    runs.start_all()
    wait_until("first settlement of every account", runs.all_settled_as_source_says, FIRST_SETTLEMENT)
    return runs


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CommitteeRuns]:
    runs = CommitteeRuns.provision(
        tmp_path_factory.mktemp("committee-honest"), members=MEMBERS, threshold=THRESHOLD, accounts=ACCOUNTS,
        takeover_seconds=TAKEOVER_SECONDS,
    )  # fmt: skip
    try:
        yield start(runs)
    finally:
        runs.close()


def test_any_one_member_killed_the_others_settle_and_it_catches_up(honest: CommitteeRuns) -> None:
    runs = honest
    first = runs.accepted()
    assert first, "nothing accepted"
    attesters = {m.attester for m in runs.members}
    for epoch in first:
        assert len(set(epoch.signers)) >= THRESHOLD and set(epoch.signers) <= attesters, epoch
    for victim in range(MEMBERS):
        name = runs.members[victim].name
        runs.kill(victim)
        # with the previous victim back and this one down, the epoch needs the previous one's
        # signature: settling here shows it caught up after its restart
        settles_within(runs, runs.accounts[victim % ACCOUNTS], 10**15 + victim, SETTLE)
        latest = runs.accepted()[-1]
        assert runs.members[victim].attester not in latest.signers, f"{name} is down, yet signed"
        runs.start(victim)
        wait_until(f"{name} ready after its restart", lambda v=victim: runs.readyz(v)[0] == 200, 30)
    settles_within(runs, runs.accounts[0], 10**15, SETTLE)
    for i, member in enumerate(runs.members):
        wait_until(f"{member.name} holding the destination's latest epoch", lambda i=i: runs.caught_up(i), 30)
    accepted = runs.check_end_state()
    senders = runs.names(tuple(a.sender for a in accepted))
    assert len(set(senders)) >= 2, f"one member submitted every epoch, no rotation: {senders}"
    for a in accepted:
        assert len(set(a.signers)) >= THRESHOLD and set(a.signers) <= attesters, a


def test_two_of_three_down_nothing_settles_and_readiness_says_why(honest: CommitteeRuns) -> None:
    runs = honest
    account = runs.accounts[1]
    epochs_before = runs.latest_epoch()
    settled_before = runs.settled(account)
    runs.kill(1)
    runs.stop(2)
    try:
        runs.deposit(account, 3 * 10**15)
        deadline = time.monotonic() + QUIET
        while time.monotonic() < deadline:
            assert runs.latest_epoch() == epochs_before, "an epoch was accepted with one member of three"
            assert runs.settled(account) == settled_before
            time.sleep(1)

        seen: list[tuple[int, dict[str, object]]] = []

        def says_why() -> bool:
            seen.append(runs.readyz(0))
            code, body = seen[-1]
            problems = " ".join(str(p) for p in body["problems"]).lower()  # type: ignore[attr-defined]
            return code == 503 and ("signature" in problems or "peer" in problems)

        try:
            wait_until("member-0's readiness to name the missing signatures", says_why, 30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last /readyz: {seen[-1] if seen else 'no answer'}") from None
        for peer in (1, 2):  # the metrics name the members that do not answer
            host = runs.members[peer].api.removeprefix("http://")
            failed = sum(
                runs.metric(0, "relayer_attestation_fetches_total", f'host="{host}",outcome="{outcome}"') or 0
                for outcome in ("error", "timeout")
            )
            assert failed > 0, f"no failed attestation fetch from {runs.members[peer].name} counted"
        missing = runs.metric(0, "relayer_committee_signatures_missing", 'destination="destination"')
        assert missing is not None and missing >= 1, f"relayer_committee_signatures_missing = {missing}"
        assert runs.metric(0, "relayer_committee_threshold", 'destination="destination"') == THRESHOLD
    finally:
        runs.start(1)
        runs.start(2)
    target = int(runs.vault.functions.collateral(account).call())
    wait_for("the change settled once two members are back", lambda: runs.settled(account) == target, SETTLE)
    wait_until("member-0 ready again", lambda: runs.readyz(0)[0] == 200, 30)
    runs.check_end_state()


def test_a_rotation_while_running_is_settled_by_the_new_generation(honest: CommitteeRuns) -> None:
    runs = honest
    generation = runs.rotate([0, 1, 2], 3)  # every member's signature needed now
    for i in range(MEMBERS):
        wait_until(
            f"{runs.members[i].name} following generation {generation}",
            lambda i=i: (
                runs.metric(i, "relayer_committee_generation", 'destination="destination"') == generation
                and runs.metric(i, "relayer_committee_threshold", 'destination="destination"') == 3
            ),
            30,
        )
    settles_within(runs, runs.accounts[2], 4 * 10**15, SETTLE)
    new = [a for a in runs.accepted() if a.generation == generation]
    assert new, f"no epoch accepted under generation {generation}"
    assert all(len(set(a.signers)) == 3 for a in new), [runs.names(a.signers) for a in new]

    generation = runs.rotate([0, 1], 2)  # member-2 rotated out
    out = runs.members[2].attester

    def rotated_out() -> bool:
        code, body = runs.readyz(2)
        return code == 503 and any(f"attester {out} is not in the committee" in p for p in body["problems"])

    wait_until("member-2's readiness to say it is out", rotated_out, 30)
    settles_within(runs, runs.accounts[0], 5 * 10**15, SETTLE)
    new = [a for a in runs.accepted() if a.generation == generation]
    assert new, f"no epoch accepted under generation {generation}"
    assert all(set(runs.names(a.signers)) == {"member-0", "member-1"} for a in new), [
        runs.names(a.signers) for a in new
    ]
    assert (runs.metric(2, "relayer_committee_member", f'attester="{out}"') or 0) == 0
    runs.check_end_state()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CommitteeRuns, TamperProxy]]:
    """member-2 reads the source through a proxy that corrupts every account proof."""
    runs = CommitteeRuns.provision(
        tmp_path_factory.mktemp("committee-hostile"), members=MEMBERS, threshold=THRESHOLD, accounts=ACCOUNTS,
        takeover_seconds=TAKEOVER_SECONDS,
    )  # fmt: skip
    try:
        proxy = runs.behind_proxy(2, tamper="account_proof")
        yield start(runs), proxy
    finally:
        runs.close()


def test_a_member_behind_a_hostile_endpoint_signs_nothing(hostile: tuple[CommitteeRuns, TamperProxy]) -> None:
    runs, proxy = hostile
    settles_within(runs, runs.accounts[0], 10**15, SETTLE)
    assert proxy.tampered > 0
    assert runs.events(2, "proof.rejected"), "the tampered proofs were not rejected"
    assert (runs.metric(2, "relayer_proofs_rejected_total") or 0) > 0
    assert (runs.metric(2, "relayer_epochs_signed_total") or 0) == 0, "member-2 signed a root it could not prove"
    accepted = runs.check_end_state()
    tampered = runs.members[2].attester
    for a in accepted:
        assert tampered not in a.signers, f"epoch {a.epoch} carries member-2's signature"
        assert len(set(a.signers)) >= THRESHOLD


@pytest.fixture(scope="module")
def faked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CommitteeRuns, FakeSourceChain]]:
    """member-2's only source endpoint serves a self-consistent fake chain."""
    runs = CommitteeRuns.provision(
        tmp_path_factory.mktemp("committee-fake"), members=MEMBERS, threshold=THRESHOLD, accounts=ACCOUNTS,
        takeover_seconds=TAKEOVER_SECONDS,
    )  # fmt: skip
    try:
        fake = runs.behind_fake_chain(2)
        yield start(runs), fake
    finally:
        runs.close()


def test_a_member_on_a_fake_chain_gets_no_quorum_and_the_honest_raise_the_alarm(
    faked: tuple[CommitteeRuns, FakeSourceChain],
) -> None:
    runs, fake = faked
    honest = [0, 1]
    step = 0
    deadline = time.monotonic() + 60
    while not all(conflicts(runs, i) > 0 for i in honest):  # changes, so every member has epochs to sign
        seen = [conflicts(runs, i) for i in honest]
        assert time.monotonic() < deadline, f"no conflict alarm on every honest member: {seen}"
        runs.deposit(runs.accounts[step % ACCOUNTS], 10**15 + step)
        step += 1
        time.sleep(3)
    for i in honest:
        for event in runs.events(i, "attestation.conflict"):
            assert event.get("signer", runs.members[2].attester) == runs.members[2].attester, event
    accepted = runs.check_end_state()
    liar = runs.members[2].attester
    fake_roots = {str(e.get("root")) for e in runs.events(2, "epoch.created")}
    for a in accepted:
        assert liar not in a.signers, f"epoch {a.epoch} carries the fake member's signature"
        assert a.root not in fake_roots, f"epoch {a.epoch}: the fake chain's root was accepted"
    for account in runs.accounts:
        value, block, _timestamp, _fresh = runs.settlement.functions.positionOf(account, runs.chain_id).call()
        assert value != fake.values[account], f"{account}: the destination shows the fake value"
        assert block > 0


def test_members_reading_different_endpoints_compute_the_same_root(hostile: tuple[CommitteeRuns, TamperProxy]) -> None:
    """The deterministic epoch rule: member-2 reads the source through its own endpoint (the
    proxy, honest now), member-0 and member-1 directly; every epoch member-2 creates from now on
    has the root the destination accepted from the others' signatures."""
    runs, proxy = hostile
    proxy.tamper = None
    before = runs.latest_epoch()
    settles_within(runs, runs.accounts[1], 2 * 10**15, SETTLE)
    settles_within(runs, runs.accounts[2], 3 * 10**15, SETTLE)
    accepted = {a.epoch: a.root for a in runs.accepted() if a.epoch > before}
    assert accepted
    wait_until(
        "member-2 creating the accepted epochs too",
        lambda: {int(e["epoch"]) for e in runs.events(2, "epoch.created")} >= set(accepted),
        30,
    )
    mine = {int(e["epoch"]): str(e["root"]) for e in runs.events(2, "epoch.created") if int(e["epoch"]) in accepted}
    assert mine == accepted, "member-2 computed another root from another endpoint"
