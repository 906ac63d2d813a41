"""Hostile committee peers, as an attacker would play them (issue 16, attacks 1, 2 and 9), against the
attestation exchange (relayer.attestation.committee) with real aiohttp servers on 127.0.0.1: honest
members' APIs served through `relayer.observability.api.make_app`, the hostile peer of
bench/hostile_peer.py in front of them.

- a peer (or anyone on the path of a plain http:// peer URL) serving the high-s twin of a member's
  signature first: the twin never stands in for the real signature, in the store or on resume;
- a peer answering 1,024 junk attestations: no signature recovery for non-members (counted by
  wrapping eth-keys' recovery, which the old code and the new both end in), recovery off the event
  loop, the honest signatures still collected, claims of a member bounded per source;
- a member signing many roots for one epoch: bounded conflict rows, one per epoch, signer and root;
- a conflict: /readyz stays 200, `relayer conflicts list` shows both roots, `ack` clears the alarm;
- a signature the destination refuses is dropped and collected again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import ClientSession
from eth_account import Account
from eth_keys import datatypes

from bench.hostile_peer import HostilePeer, junk, twin
from relayer.attestation.committee import MAX_CONFLICTS_PER_SIGNER, MAX_PER_SIGNER, SELF, AttestationExchange
from relayer.attestation.eip712 import (
    SECP256K1_N,
    check_attestation,
    check_canonical,
    recover_attestation,
    recover_signer,
)
from relayer.attestation.view import Committee
from relayer.epoch import Attestation
from relayer.errors import AttestationError
from relayer.observability.api import make_app
from relayer.storage.store import Store
from tests.relayer.committee_peers import (
    CHAIN,
    DEST,
    EPOCH,
    OTHER_ROOT,
    PREVIOUS,
    ROOT,
    VERIFIER,
    Servers,
    _exchange,
    _sample,
    _sign,
    servers,
)
from tests.relayer.config_files import ENV, MINIMAL

__all__ = ["servers"]  # the fixture, imported for these tests

ROOT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def hostile_peers() -> Iterator[list[HostilePeer]]:
    started: list[HostilePeer] = []
    try:
        yield started
    finally:
        for peer in started:
            peer.stop()


def _hostile(started: list[HostilePeer], upstreams: list[str], **options: Any) -> HostilePeer:
    peer = HostilePeer(upstreams, **options).start()
    started.append(peer)
    return peer


@pytest.fixture
def recoveries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every secp256k1 public-key recovery in this process, by thread name: eth-keys' Signature
    method, where eth-account's recover_message and relayer.attestation.eip712 both end."""
    calls: list[str] = []
    real = datatypes.Signature.recover_public_key_from_msg_hash

    def counted(self: datatypes.Signature, message_hash: bytes) -> datatypes.PublicKey:
        calls.append(threading.current_thread().name)
        return real(self, message_hash)

    monkeypatch.setattr(datatypes.Signature, "recover_public_key_from_msg_hash", counted)
    return calls


async def _collect(exchange: AttestationExchange, committee: Committee) -> Any:
    return await exchange.collect(
        chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT, previous=PREVIOUS, committee=committee
    )


# --- attack 1: the high-s twin ---------------------------------------------------------------


def test_only_canonical_signatures_recover() -> None:
    account = Account.create()
    att = _sign(account)
    check_canonical(att.signature)
    high_s = twin(att.signature)
    assert int.from_bytes(high_s[32:64], "big") > SECP256K1_N // 2
    v01 = att.signature[:64] + bytes([att.signature[64] - 27])
    for bad, why in ((high_s, "s is high"), (v01, "v must be 27 or 28"), (att.signature[:64], "65 bytes")):
        with pytest.raises(AttestationError, match=why):
            check_canonical(bad)
        with pytest.raises(AttestationError, match=why):
            recover_signer(CHAIN, VERIFIER, EPOCH, ROOT, PREVIOUS, bad, generation=1)
    with pytest.raises(AttestationError, match="s is high"):
        check_attestation(Attestation(CHAIN, VERIFIER, EPOCH, ROOT, PREVIOUS, account.address, high_s), 1)


async def test_a_twin_served_first_never_stands_in_for_the_real_signature(
    tmp_path: Path, servers: Servers, hostile_peers: list[HostilePeer]
) -> None:
    """On the path to member b, the hostile peer answers [twin of b's signature, b's signature]:
    the twin is refused before any recovery; b's real signature is kept, served and collected."""
    a, b, c = Account.create(), Account.create(), Account.create()
    committee = Committee(1, 2, (a.address, b.address, c.address))
    peer_b = _exchange(tmp_path, "b")
    real = _sign(b)
    peer_b.publish(real, 1)
    on_path = _hostile(hostile_peers, [await servers.member(peer_b)], flood=0)
    mine = _exchange(tmp_path, "a", peers=(on_path.via(0),))
    mine.publish(_sign(a), 1)
    collected = await _collect(mine, committee)
    assert dict(collected.signatures)[b.address] == real.signature, "the high-s twin stands in for b's signature"
    assert on_path.answers == 1 and on_path.items == 2
    assert _sample(mine, "relayer_attestations_refused_total", reason="non_canonical") == 1
    assert {o["signature"] for o in mine.served(CHAIN, EPOCH)} == {"0x" + _sign(a).signature.hex(),
                                                                  "0x" + real.signature.hex()}  # fmt: skip


async def test_a_twin_kept_by_an_older_version_is_dropped_on_resume(tmp_path: Path, servers: Servers) -> None:
    """A store written before canonical-only acceptance holds b's twin ("first seen wins"): the
    member neither submits nor serves it, drops it and collects b's real signature again."""
    a, b = Account.create(), Account.create()
    committee = Committee(1, 2, (a.address, b.address))
    peer_b = _exchange(tmp_path, "b")
    real = _sign(b)
    peer_b.publish(real, 1)
    mine = _exchange(tmp_path, "a", peers=(await servers.member(peer_b),))
    mine.publish(_sign(a), 1)
    twin_of_b = Attestation(CHAIN, VERIFIER, EPOCH, ROOT, PREVIOUS, b.address, twin(real.signature))
    assert mine.store.add_attestation(replace(twin_of_b, source="peer 10.0.0.9:9464"))
    mine.store.close()
    resumed = _exchange(tmp_path, "a", peers=mine.peers)
    assert [o["signer"] for o in resumed.served(CHAIN, EPOCH)] == [a.address], "the twin is served on"
    collected = await _collect(resumed, committee)
    assert dict(collected.signatures)[b.address] == real.signature
    assert [r.signature for r in resumed.store.attestations(CHAIN, VERIFIER, EPOCH) if r.signer == b.address] == [
        real.signature
    ]


async def test_a_signature_the_destination_refuses_is_dropped_and_collected_again(
    tmp_path: Path, servers: Servers
) -> None:
    a, b, c = Account.create(), Account.create(), Account.create()
    committee = Committee(1, 3, (a.address, b.address, c.address))
    peers = []
    for member, name in ((b, "b"), (c, "c")):
        peer = _exchange(tmp_path, name)
        peer.publish(_sign(member), 1)
        peers.append(await servers.member(peer))
    mine = _exchange(tmp_path, "a", peers=tuple(peers))
    mine.publish(_sign(a), 1)
    await _collect(mine, committee)
    refused_s = _sign(b).signature[32:64]
    dropped = mine.drop_refused(chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT,
                                error_name="ECDSAInvalidSignatureS", error_args=(refused_s,))  # fmt: skip
    assert dropped == 1
    assert {r.signer for r in mine.store.attestations(CHAIN, VERIFIER, EPOCH)} == {a.address, c.address}
    # a refusal that names no held signature: every peer signature goes, this member's own stays
    assert mine.drop_refused(chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT,
                             error_name="ECDSAInvalidSignature", error_args=()) == 1  # fmt: skip
    [own] = mine.store.attestations(CHAIN, VERIFIER, EPOCH)
    assert (own.signer, own.source) == (a.address, SELF)
    assert _sample(mine, "relayer_attestations_refused_total", reason="refused_on_chain") == 2
    collected = await _collect(mine, committee)  # collected again from the peers
    assert sorted(collected.signers) == sorted([a.address, b.address, c.address])


# --- attack 2: floods -----------------------------------------------------------------------


async def test_a_flood_of_1024_junk_attestations_costs_no_recovery_for_non_members(
    tmp_path: Path, servers: Servers, hostile_peers: list[HostilePeer], recoveries: list[str]
) -> None:
    """A peer, listed first, claims b 87 times with canonical signatures that are not b's; the
    hostile peer, next, answers 1,024 attestations: twins of b's and c's signatures,
    non-members' (random signers, well-formed canonical signatures), malformed objects, and b's
    and c's real ones last. Only MAX_PER_SIGNER of the false claims and the real signatures are
    recovered, in a worker thread; the honest signatures are collected."""
    a, b, c = Account.create(), Account.create(), Account.create()
    committee = Committee(1, 3, (a.address, b.address, c.address))
    honest = []
    for member, name in ((b, "b"), (c, "c")):
        peer = _exchange(tmp_path, name)
        peer.publish(_sign(member), 1)
        honest.append(await servers.member(peer))
    flood = _hostile(hostile_peers, honest, flood=1024)
    false_claims = [
        dict(item, signer=b.address, root="0x" + ROOT.hex())  # type: ignore[arg-type]
        for item in junk(_sign(b).to_json(), 100)
        if isinstance(item, dict) and "signature" in item and item["signature"] != "0x" + twin(_sign(b).signature).hex()
    ]
    claimer = await servers.static({"attestations": false_claims})
    mine = _exchange(tmp_path, "a", peers=(claimer, flood.url, *honest))
    mine.publish(_sign(a), 1)
    recoveries.clear()  # publishing checks the members' own signatures
    collected = await _collect(mine, committee)
    assert flood.items == 1024
    assert sorted(collected.signers) == sorted([a.address, b.address, c.address])
    # b and c once each (the real ones, from the flood's tail), MAX_PER_SIGNER false claims of b
    assert len(recoveries) == 2 + MAX_PER_SIGNER, f"{len(recoveries)} recoveries for 1,024 + 87 junk items"
    non_members = _sample(mine, "relayer_attestations_refused_total", reason="not_member")
    assert non_members > 800
    assert _sample(mine, "relayer_attestations_refused_total", reason="non_canonical") > 60
    assert _sample(mine, "relayer_attestations_refused_total", reason="malformed") == 64
    assert _sample(mine, "relayer_attestations_refused_total", reason="too_many") == len(false_claims) - MAX_PER_SIGNER
    assert _sample(mine, "relayer_attestation_recoveries_total") == len(recoveries)
    assert threading.main_thread().name not in recoveries, "a recovery ran on the event loop's thread"
    # asked again: everything checked before costs nothing
    recoveries.clear()
    again = await _collect(mine, committee)
    assert sorted(again.signers) == sorted(collected.signers)
    assert len(recoveries) == 0


# --- attack 2: a member signing many roots --------------------------------------------------


async def test_a_member_signing_many_roots_keeps_bounded_conflict_rows(
    tmp_path: Path, servers: Servers, recoveries: list[str]
) -> None:
    a, b, d = Account.create(), Account.create(), Account.create()
    committee = Committee(1, 2, (a.address, b.address, d.address))
    lies = [_sign(d, root=os.urandom(32)).to_json() for _ in range(40)]
    two_previous = [_sign(d, root=OTHER_ROOT).to_json(), _sign(d, root=OTHER_ROOT, previous=bytes(32)).to_json()]
    peers = (
        await servers.static({"attestations": two_previous + lies}),
        await servers.static({"attestations": list(reversed(lies))}),
    )
    mine = _exchange(tmp_path, "a", peers=peers)
    mine.publish(_sign(a), 1)
    recoveries.clear()
    per_collection = []
    for _ in range(3):
        collected = await _collect(mine, committee)
        per_collection.append(len(recoveries))
        recoveries.clear()
    rows = [c for c in mine.conflicts() if c.epoch == EPOCH]
    assert len(rows) == MAX_CONFLICTS_PER_SIGNER, f"{len(rows)} conflict rows for one member and one epoch"
    assert len({r.theirs for r in rows}) == len(rows)  # one row per (epoch, signer, root)
    assert [r.theirs for r in rows].count(OTHER_ROOT) == 1  # the same root under two previous roots: one row
    for r in rows:
        assert (r.signer, r.ours, r.our_previous, r.epoch) == (d.address, ROOT, PREVIOUS, EPOCH)
        assert r.signature is not None and r.id is not None and r.acknowledged_at is None
        theirs = Attestation(CHAIN, VERIFIER, EPOCH, r.theirs, r.their_previous or PREVIOUS, d.address, r.signature)
        assert recover_attestation(theirs, 1) == d.address
    assert collected.conflicts == rows
    assert _sample(mine, "relayer_attestation_conflicts_total") == MAX_CONFLICTS_PER_SIGNER
    # the other 38 roots are refused before any recovery; once the evidence is full, none at all
    assert per_collection[0] <= MAX_CONFLICTS_PER_SIGNER and per_collection[2] == 0, per_collection


def test_conflicts_kept_before_ids_are_migrated_one_row_per_root(tmp_path: Path) -> None:
    """A store of before this change (key: destination, epoch, signer, root and previous) opens
    with its evidence kept, one row per root, numbered and open."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE attestation_conflicts (destination TEXT NOT NULL, epoch INTEGER NOT NULL, ours TEXT "
            "NOT NULL, theirs TEXT NOT NULL, our_previous TEXT, their_previous TEXT, signer TEXT NOT NULL, "
            "signature TEXT, source TEXT NOT NULL, created_at REAL NOT NULL, "
            "PRIMARY KEY (destination, epoch, signer, theirs, their_previous))"
        )
        rows = [
            (
                DEST,
                EPOCH,
                "0x" + ROOT.hex(),
                "0x" + OTHER_ROOT.hex(),
                "0x" + PREVIOUS.hex(),
                previous,
                "0xD",
                "0x" + "aa" * 65,
                "peer p",
                float(i),
            )
            for i, previous in enumerate(("0x" + "00" * 32, "0x" + "01" * 32))
        ]
        rows.append((DEST, EPOCH, "0x" + ROOT.hex(), "0x" + "44" * 32, None, "", "on-chain", None, "on-chain", 3.0))
        db.executemany("INSERT INTO attestation_conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)  # fmt: skip
    store = Store(path)
    kept = store.conflicts()
    assert [(c.id, c.theirs, c.their_previous, c.seen_at) for c in kept] == [
        (1, OTHER_ROOT, bytes(32), 0.0),
        (2, bytes.fromhex("44" * 32), None, 3.0),
    ]
    assert store.unacknowledged_conflicts(DEST) == 2


# --- attack 9: a conflict is an alarm, not a lock-out ----------------------------------------


def _config(tmp_path: Path, store: Path) -> Path:
    path = tmp_path / "relayer.toml"
    path.write_text(f'[relayer]\nstore = "{store}"\n' + MINIMAL)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayer.cli", "conflicts", *args], capture_output=True, text=True, timeout=60,
        cwd=ROOT_DIR, env={**os.environ, **ENV}, check=False,
    )  # fmt: skip


@pytest.mark.process
async def test_a_conflict_alerts_readiness_stays_200_and_the_cli_lists_and_acknowledges_it(
    tmp_path: Path, servers: Servers
) -> None:
    a, b, d = Account.create(), Account.create(), Account.create()
    committee = Committee(1, 2, (a.address, b.address, d.address))
    liar = _sign(d, root=OTHER_ROOT)
    mine = _exchange(tmp_path, "a", peers=(await servers.static({"attestations": [liar.to_json()]}),))
    mine.publish(_sign(a), 1)
    await _collect(mine, committee)
    mine.note_onchain_conflict(EPOCH + 1, ROOT, OTHER_ROOT)
    view = SimpleNamespace(watchers={}, clients={}, relays=[], exchanges={CHAIN: mine}, store=mine.store,
                           metrics=mine.metrics, leadership=None)  # fmt: skip
    base = await servers.app(make_app(view))  # type: ignore[arg-type]
    async with ClientSession() as session:
        async with session.get(f"{base}/readyz") as answer:
            assert (answer.status, await answer.json()) == (200, {"ready": True, "problems": [], "role": "single"})
        async with session.get(f"{base}/metrics") as answer:
            assert f'relayer_attestation_conflicts_unacknowledged{{destination="{DEST}"}} 2.0' in await answer.text()

    config = _config(tmp_path, tmp_path / "a.sqlite")
    listed = _cli("list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert f"#1  destination {DEST}  epoch {EPOCH}" in listed.stdout
    assert f"ours:   root 0x{ROOT.hex()}  previous 0x{PREVIOUS.hex()}" in listed.stdout
    assert (
        f"theirs: root 0x{OTHER_ROOT.hex()}  previous 0x{PREVIOUS.hex()}  (member {d.address} signed" in listed.stdout
    )
    assert f"signature 0x{liar.signature.hex()}" in listed.stdout
    assert "the destination accepted" in listed.stdout and "2 conflict(s), 2 open" in listed.stdout
    as_json = json.loads(_cli("list", "--config", str(config), "--json").stdout)
    assert [(c["id"], c["signer"], c["theirs"]) for c in as_json] == [
        (1, d.address, "0x" + OTHER_ROOT.hex()), (2, "on-chain", "0x" + OTHER_ROOT.hex()),
    ]  # fmt: skip

    unknown = _cli("ack", "--config", str(config), "7")
    assert unknown.returncode == 1 and "no conflict numbered 7; nothing acknowledged" in unknown.stderr
    assert _cli("ack", "--config", str(config)).returncode == 2  # neither numbers nor --all
    acked = _cli("ack", "--config", str(config), "1")
    assert (acked.returncode, acked.stdout.strip()) == (0, "acknowledged 1 conflict(s): #1"), acked.stderr
    assert _sample(mine, "relayer_attestation_conflicts_unacknowledged") == 1  # read from the store at a scrape
    assert _cli("ack", "--config", str(config), "--all").stdout.strip() == "acknowledged 1 conflict(s): #2"
    assert _sample(mine, "relayer_attestation_conflicts_unacknowledged") == 0
    after = _cli("list", "--config", str(config))
    assert "2 conflict(s), 0 open" in after.stdout and after.stdout.count("acknowledged 20") == 2  # evidence kept
    assert _cli("list", "--config", str(config), "--open").stdout.strip() == "no open conflicts"
    # seen again: not a new alarm
    await _collect(mine, committee)
    assert _sample(mine, "relayer_attestation_conflicts_unacknowledged") == 0


@pytest.mark.process
def test_conflicts_cli_without_a_store_says_so(tmp_path: Path) -> None:
    shown = _cli("list", "--config", str(_config(tmp_path, tmp_path / "none.sqlite")))
    assert shown.returncode == 1 and "no store at" in shown.stderr
    assert not (tmp_path / "none.sqlite").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[relayer]\nnope = 1\n")
    assert _cli("list", "--config", str(bad)).returncode == 2
