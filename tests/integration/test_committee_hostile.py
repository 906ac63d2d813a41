"""A 2-of-3 committee of real member daemons on real anvil nodes, every peer URL going through a
hostile peer (bench/hostile_peer.py: anyone on the path of a plain http:// peer URL), issue 16
attacks 1, 2 and 9. Each answer a member gets from another member is rewritten as:

- the high-s twin of every real signature first (the old "first seen wins" store kept the twin,
  and `submitEpoch` reverted with `ECDSAInvalidSignatureS` for good);
- member-2's signatures over 20 other roots for the epoch (its key in the attacker's hands:
  a member signing many roots);
- junk up to 1,024 items (non-members with well-formed canonical signatures, malformed
  objects, more twins);
- the real signatures last.

The committee still settles every change, no recovery is spent on non-members, the conflict
evidence stays bounded, readiness stays 200, and `relayer conflicts list|ack` shows and
acknowledges the evidence (the alert metric back to 0).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from bench.hostile_peer import HostilePeer
from tests.integration.committee_runs import CommitteeRuns, settles_within, wait_until

pytestmark = pytest.mark.integration

MEMBERS, THRESHOLD, ACCOUNTS = 3, 2, 3
FIRST_SETTLEMENT = 120.0
SETTLE = 45.0
LIES = 20
MAX_CONFLICTS_PER_SIGNER = 4
"""relayer.attestation.committee.MAX_CONFLICTS_PER_SIGNER (written out: the bound is the claim)."""
ROOT_DIR = Path(__file__).resolve().parents[2]


def _peers_through(runs: CommitteeRuns, hostile: HostilePeer) -> None:
    """Rewrite each member's `[committee] peers` so every other member is reached through `hostile`."""
    for j, member in enumerate(runs.members):
        text = member.config.read_text()
        start = text.index("peers = [", text.index("[committee]"))
        end = text.index("\n", start)
        listed = ", ".join(f'"{hostile.via(k)}"' for k in range(MEMBERS) if k != j)
        member.config.write_text(text[:start] + f"peers = [{listed}]" + text[end:])


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CommitteeRuns, HostilePeer]]:
    runs = CommitteeRuns.provision(
        tmp_path_factory.mktemp("committee-hostile-peer"), members=MEMBERS, threshold=THRESHOLD, accounts=ACCOUNTS,
        takeover_seconds=3.0,
    )  # fmt: skip
    liar = Account.from_key((runs.members[2].home / "keys" / "attester.key").read_text().strip())
    assert liar.address == runs.members[2].attester
    hostile = HostilePeer([m.api for m in runs.members], flood=1024, equivocator=liar, equivocations=LIES).start()
    try:
        _peers_through(runs, hostile)
        runs.start_all()
        wait_until("first settlement of every account", runs.all_settled_as_source_says, FIRST_SETTLEMENT)
        yield runs, hostile
    finally:
        try:
            runs.close()
        finally:
            hostile.stop()


def _metric(runs: CommitteeRuns, i: int, name: str, labels: str | None = None) -> float:
    return runs.metric(i, name, labels) or 0.0


def _conflicts_cli(runs: CommitteeRuns, i: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayer.cli", "conflicts", *args, "--config", str(runs.members[i].config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT_DIR, check=False,
    )  # fmt: skip


def test_twins_served_first_do_not_stall_the_committee(attacked: tuple[CommitteeRuns, HostilePeer]) -> None:
    runs, hostile = attacked
    for step in range(2):
        settles_within(runs, runs.accounts[step], 10**15 + step, SETTLE)
    assert hostile.answers > 0
    accepted = runs.check_end_state()
    attesters = {m.attester for m in runs.members}
    for a in accepted:
        assert len(set(a.signers)) >= THRESHOLD and set(a.signers) <= attesters, a
    for i in range(MEMBERS):
        failed = [e for e in runs.events(i, "epoch.failed") if str(e.get("reason", "")).startswith("ECDSA")]
        assert not failed, f"{runs.members[i].name}: epochs failed on a refused signature: {failed}"
        assert _metric(runs, i, "relayer_attestations_refused_total", 'reason="non_canonical"') > 0


def test_a_flood_costs_no_recovery_for_non_members(attacked: tuple[CommitteeRuns, HostilePeer]) -> None:
    runs, _hostile = attacked
    for i in range(MEMBERS):
        answers = _metric(runs, i, "relayer_attestation_fetches_total", 'outcome="ok"')
        non_members = _metric(runs, i, "relayer_attestations_refused_total", 'reason="not_member"')
        recoveries = _metric(runs, i, "relayer_attestation_recoveries_total")
        assert answers > 0 and non_members >= 1000, (answers, non_members)
        # per epoch at most the other two members' real signatures and the liar's roots up to
        # the evidence bound; nothing for the 800+ non-members of each answer
        assert 0 < recoveries < non_members / 100, (answers, non_members, recoveries)


def test_a_lying_member_is_an_alarm_not_a_lockout(attacked: tuple[CommitteeRuns, HostilePeer]) -> None:
    runs, hostile = attacked
    honest = (0, 1)
    liar = runs.members[2].attester
    for i in honest:
        wait_until(
            f"{runs.members[i].name} recording member-2's other roots",
            lambda i=i: _metric(runs, i, "relayer_attestation_conflicts_unacknowledged") > 0,
            SETTLE,
        )
    settles_within(runs, runs.accounts[2], 3 * 10**15, SETTLE)  # settling goes on meanwhile
    for i in honest:
        code, body = runs.readyz(i)
        assert code == 200, f"{runs.members[i].name} unready with a conflict: {body}"
        assert _metric(runs, i, "relayer_attestation_conflicts_unacknowledged") > 0

    hostile.equivocations = 0  # the liar stops; what it signed stays evidence
    time.sleep(3)  # collections already under way finish
    listed = _conflicts_cli(runs, 0, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    assert rows and {r["signer"] for r in rows} == {liar}
    per_epoch = Counter(r["epoch"] for r in rows)
    assert max(per_epoch.values()) <= MAX_CONFLICTS_PER_SIGNER, per_epoch
    assert len({(r["epoch"], r["theirs"]) for r in rows}) == len(rows)
    accepted = {int(a.epoch): a.root for a in runs.accepted()}
    for r in rows:
        assert r["ours"] != r["theirs"] and r["signature"] and r["acknowledged_at"] is None
        if r["epoch"] in accepted:
            assert r["ours"] == accepted[r["epoch"]], "the honest member's root is not the accepted one"
    text = _conflicts_cli(runs, 0, "list").stdout
    assert f"theirs: root {rows[0]['theirs']}" in text and f"ours:   root {rows[0]['ours']}" in text

    acked = _conflicts_cli(runs, 0, "ack", "--all")
    assert acked.returncode == 0 and f"acknowledged {len(rows)} conflict(s)" in acked.stdout, acked.stderr
    assert _metric(runs, 0, "relayer_attestation_conflicts_unacknowledged") == 0
    assert runs.readyz(0)[0] == 200
    assert "0 open" in _conflicts_cli(runs, 0, "list").stdout
    settles_within(runs, runs.accounts[0], 4 * 10**15, SETTLE)
    runs.check_end_state()
