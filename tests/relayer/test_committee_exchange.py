"""The attestation exchange between committee members (relayer.attestation.committee): strict JSON, checks
before use, real aiohttp peers on 127.0.0.1 (honest ones served through `relayer.observability.api.make_app`,
and garbage, slow, down and lying ones), the shared directory, conflict evidence that survives a
restart, the HTTP route, readiness and the `[committee]` config section.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import ClientSession, web
from eth_account import Account

from relayer.attestation.committee import ON_CHAIN, SELF, Collected
from relayer.attestation.eip712 import check_attestation, order_signatures, recover_attestation
from relayer.attestation.view import Committee
from relayer.config import CommitteeConfig, ConfigError, load_config
from relayer.epoch import Attestation
from relayer.errors import AttestationError
from relayer.observability.api import ready_problems
from tests.relayer.committee_peers import (
    CHAIN,
    DEST,
    EPOCH,
    OTHER_ROOT,
    OTHER_VERIFIER,
    PREVIOUS,
    ROOT,
    VERIFIER,
    Servers,
    _closed_port,
    _exchange,
    _sample,
    _sign,
    servers,
)
from tests.relayer.config_files import ENV, MINIMAL

__all__ = ["servers"]  # the fixtures, imported for these tests


# --- the Attestation type ------------------------------------------------------------------


def test_attestation_json_round_trips_and_signature_checks() -> None:
    account = Account.create()
    att = _sign(account)
    obj = att.to_json()
    assert obj == {
        "chain_id": CHAIN,
        "verifier": VERIFIER,
        "epoch": EPOCH,
        "root": "0x" + "11" * 32,
        "previous": "0x" + "22" * 32,
        "signer": account.address,
        "signature": "0x" + att.signature.hex(),
    }
    assert Attestation.from_json(json.loads(json.dumps(obj))) == att
    check_attestation(att, 1)
    assert recover_attestation(att, 1) == account.address
    lower = dict(obj, verifier=VERIFIER.lower(), signer=account.address.lower())
    assert Attestation.from_json(lower) == att  # single-case spellings are normalised
    stranger = Attestation(CHAIN, VERIFIER, EPOCH, ROOT, PREVIOUS, Account.create().address, att.signature)
    with pytest.raises(AttestationError, match="not to the claimed signer"):
        check_attestation(stranger, 1)


def _bad(**changes: object) -> dict[str, object]:
    obj: dict[str, object] = _sign(Account.create()).to_json()
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not DROP}


DROP = object()


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "expected an object, got an array"),
        ("x", "expected an object, got a string"),
        (None, "expected an object, got null"),
        (_bad(signature=DROP), "missing signature"),
        (_bad(extra=1), "unknown key"),
        (_bad(chain_id="31337"), "chain_id: expected an integer, got a string"),
        (_bad(chain_id=True), "chain_id: expected an integer, got a boolean"),
        (_bad(chain_id=0), "chain_id: out of range"),
        (_bad(epoch=-1), "epoch: out of range"),
        (_bad(epoch=2**256), "epoch: out of range"),
        (_bad(epoch=1.0), "epoch: expected an integer"),
        (_bad(verifier="0x1234"), "verifier: not a 20-byte hex address"),
        (_bad(verifier="0xE7f1725E7734CE288F8367e1Bb143E90bb3F0512"), "verifier: bad EIP-55 checksum"),
        (_bad(verifier="0x" + "00" * 20), "verifier: the zero address"),
        (_bad(signer=12), "signer: expected a 0x-hex address string, got an integer"),
        (_bad(root="0x" + "11" * 31), "root: expected 0x followed by 64 hex digits"),
        (_bad(root="11" * 32), "root: expected 0x followed by 64 hex digits"),
        (_bad(root="0x" + "1g" * 32), "root: expected 0x followed by 64 hex digits"),
        (_bad(root="0x" + "11 " * 21 + "1"), "root: expected 0x followed by 64 hex digits"),
        (_bad(previous=None), "previous: expected a 0x-hex string of 32 bytes, got null"),
        (_bad(signature="0x" + "ab" * 64), "signature: expected 0x followed by 130 hex digits"),
    ],
)
def test_attestation_from_json_is_strict(obj: object, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        Attestation.from_json(obj)


def test_attestation_constructor_checks_shapes() -> None:
    att = _sign(Account.create())
    with pytest.raises(AttestationError, match="root: must be 32 bytes"):
        Attestation(CHAIN, VERIFIER, EPOCH, b"\x11" * 31, PREVIOUS, att.signer, att.signature)
    with pytest.raises(AttestationError, match="signature: must be 65 bytes"):
        Attestation(CHAIN, VERIFIER, EPOCH, ROOT, PREVIOUS, att.signer, att.signature[:64])
    with pytest.raises(AttestationError, match="epoch: out of range"):
        Attestation(CHAIN, VERIFIER, 0, ROOT, PREVIOUS, att.signer, att.signature)


# --- publish and serve ---------------------------------------------------------------------


def test_publish_keeps_own_attestation_durably_and_serves_it(tmp_path: Path) -> None:
    me = Account.create()
    exchange = _exchange(tmp_path, "a")
    att = _sign(me)
    exchange.publish(att, 1)
    exchange.publish(att, 1)  # idempotent
    assert exchange.served(CHAIN, EPOCH) == [att.to_json()]
    assert exchange.served(CHAIN, EPOCH + 1) == []
    assert exchange.served(CHAIN + 1, EPOCH) == []
    [record] = exchange.store.attestations(CHAIN, VERIFIER, EPOCH)
    assert record.source == SELF
    exchange.store.close()
    again = _exchange(tmp_path, "a")  # the same store file, as after a restart
    assert again.served(CHAIN, EPOCH) == [att.to_json()]
    forged = Attestation(CHAIN, VERIFIER, EPOCH, ROOT, PREVIOUS, me.address, _sign(Account.create()).signature)
    with pytest.raises(AttestationError, match="claimed signer"):
        again.publish(forged, 1)
    assert again.served(CHAIN, EPOCH) == [att.to_json()]


# --- collect over HTTP ---------------------------------------------------------------------


async def test_collect_from_honest_peers_through_their_api(tmp_path: Path, servers: Servers) -> None:
    a, b, c = Account.create(), Account.create(), Account.create()
    committee = Committee(1, 3, (a.address, b.address, c.address))
    peer_b, peer_c = _exchange(tmp_path, "b"), _exchange(tmp_path, "c")
    peer_b.publish(_sign(b), 1)
    peer_c.publish(_sign(c), 1)
    urls = (await servers.member(peer_b), await servers.member(peer_c) + "/")
    mine = _exchange(tmp_path, "a", peers=urls)
    mine.publish(_sign(a), 1)
    collected = await mine.collect(
        chain_id=CHAIN, verifier=VERIFIER.lower(), epoch=EPOCH, root=ROOT, previous=PREVIOUS, committee=committee
    )
    assert isinstance(collected, Collected)
    assert sorted(collected.signers) == sorted([a.address, b.address, c.address])
    assert collected.signers == sorted(collected.signers, key=lambda s: bytes.fromhex(s[2:]))
    assert [sig for _, sig in collected.signatures] == order_signatures(collected.signatures)
    assert len(collected.signers) >= committee.threshold and all(map(committee.is_member, collected.signers))
    assert collected.conflicts == []
    # this member now relays the others' (self-authenticating) attestations too
    assert sorted(o["signer"] for o in mine.served(CHAIN, EPOCH)) == sorted([a.address, b.address, c.address])
    for host in urls:
        assert _sample(mine, "relayer_attestation_fetches_total", host=host.split("//")[1].rstrip("/"),
                       outcome="ok") == 1  # fmt: skip
    assert _sample(mine, "relayer_attestation_conflicts_total") == 0
    # C left the committee (generation 2, a new signing domain: the members sign again)
    for exchange, account in ((mine, a), (peer_b, b), (peer_c, c)):
        exchange.republish(_sign(account, generation=2), 2)
    smaller = await mine.collect(
        chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT, previous=PREVIOUS,
        committee=Committee(2, 2, (a.address, b.address)),
    )  # fmt: skip
    assert sorted(smaller.signers) == sorted([a.address, b.address])


async def test_lying_garbage_slow_and_down_peers_are_refused_or_skipped(tmp_path: Path, servers: Servers) -> None:
    a, b, c, d = (Account.create() for _ in range(4))
    outsider = Account.create()
    committee = Committee(1, 3, (a.address, b.address, c.address, d.address))

    async def garbage(_request: web.Request) -> web.Response:
        return web.Response(body=b"\x00not json{", content_type="application/json")

    async def nested(_request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 100_000, content_type="application/json")

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({"attestations": []})

    async def error(_request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    forged = _sign(b).to_json() | {"signature": "0x" + _sign(outsider).signature.hex()}  # claims b, signed by another
    out_of_range = _sign(d).to_json()
    out_of_range["signature"] = "0x" + "ff" * 64 + "1b"  # r and s above the curve order
    conflicting = _sign(d, root=OTHER_ROOT)  # a member's valid signature over another root
    other_previous = _sign(b, previous=OTHER_ROOT)  # ... and over another previous
    valid_c = _sign(c).to_json()
    liar_items = [
        forged,
        out_of_range,
        _sign(outsider).to_json(),  # valid signature, not a member
        conflicting.to_json(),
        other_previous.to_json(),
        _sign(c, chain_id=CHAIN + 1).to_json(),  # another chain id
        _sign(c, verifier=OTHER_VERIFIER).to_json(),  # another verifier
        _sign(c, epoch=EPOCH + 1).to_json(),  # another epoch
        {"chain_id": CHAIN, "epoch": EPOCH},  # malformed
        "junk",  # malformed
        valid_c,
        valid_c,  # a duplicate
    ]
    peers = (
        await servers.handler(garbage),
        await servers.handler(slow),
        await servers.handler(error),
        _closed_port(),
        await servers.static({"not": "the shape"}),
        await servers.static({"attestations": liar_items}),
        await servers.static({"attestations": [valid_c]}),  # the same attestation relayed by another peer
        await servers.handler(nested),
    )
    mine = _exchange(tmp_path, "a", peers=peers, timeout=0.5)
    mine.publish(_sign(a), 1)
    started = time.monotonic()
    collected = await mine.collect(
        chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT, previous=PREVIOUS, committee=committee
    )
    assert time.monotonic() - started < 3  # the slow peer is cut off at the timeout, in parallel with the rest
    assert sorted(collected.signers) == sorted([a.address, c.address])  # c counted once
    assert committee.threshold - len(collected.signers) == 1 and all(map(committee.is_member, collected.signers))

    def host(url: str) -> str:
        return url.split("//")[1]

    assert _sample(mine, "relayer_attestation_fetches_total", host=host(peers[0]), outcome="garbage") == 1
    assert _sample(mine, "relayer_attestation_fetches_total", host=host(peers[1]), outcome="timeout") == 1
    assert _sample(mine, "relayer_attestation_fetches_total", host=host(peers[2]), outcome="error") == 1
    assert _sample(mine, "relayer_attestation_fetches_total", host=host(peers[3]), outcome="error") == 1
    assert _sample(mine, "relayer_attestation_fetches_total", host=host(peers[4]), outcome="garbage") == 1
    assert _sample(mine, "relayer_attestation_fetches_total", host=host(peers[7]), outcome="garbage") == 1
    refused = {
        reason: _sample(mine, "relayer_attestations_refused_total", reason=reason)
        for reason in ("malformed", "wrong_domain", "wrong_epoch", "non_canonical", "bad_signature", "not_member")
    }
    assert refused == {
        "malformed": 2, "wrong_domain": 2, "wrong_epoch": 1, "non_canonical": 1, "bad_signature": 1, "not_member": 1,
    }  # fmt: skip

    # two conflicts (another root by d, another previous by b), with evidence
    assert _sample(mine, "relayer_attestation_conflicts_total") == 2
    by_signer = {c.signer: c for c in collected.conflicts}
    assert set(by_signer) == {d.address, b.address}
    evidence = by_signer[d.address]
    assert (evidence.destination, evidence.epoch, evidence.ours, evidence.theirs) == (DEST, EPOCH, ROOT, OTHER_ROOT)
    assert (evidence.our_previous, evidence.their_previous) == (PREVIOUS, PREVIOUS)
    assert evidence.signature == conflicting.signature
    assert evidence.source == f"peer {host(peers[5])}"
    assert (by_signer[b.address].theirs, by_signer[b.address].their_previous) == (ROOT, OTHER_ROOT)
    # nothing refused or conflicting is kept or served
    assert sorted(o["signer"] for o in mine.served(CHAIN, EPOCH)) == sorted([a.address, c.address])

    # a second collection counts the refusals again but the same conflicts once only
    again = await mine.collect(
        chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT, previous=PREVIOUS, committee=committee
    )
    assert sorted(again.signers) == sorted(collected.signers)
    assert _sample(mine, "relayer_attestation_conflicts_total") == 2
    assert _sample(mine, "relayer_attestations_refused_total", reason="not_member") == 2
    assert len(mine.conflicts()) == 2

    # the evidence survives a restart; it is an alarm, not a readiness problem
    mine.store.close()
    restarted = _exchange(tmp_path, "a")
    assert {c.signer for c in restarted.conflicts()} == {d.address, b.address}
    assert _sample(restarted, "relayer_attestation_conflicts_unacknowledged") == 2
    daemon = SimpleNamespace(watchers={}, exchanges={CHAIN: restarted}, store=restarted.store, relays=[])
    assert ready_problems(daemon) == []  # type: ignore[arg-type]


async def test_conflict_on_chain_is_counted_once_and_alerts_without_unreadiness(tmp_path: Path) -> None:
    exchange = _exchange(tmp_path, "a")
    exchange.note_onchain_conflict(EPOCH, ROOT, ROOT)  # the same root: no conflict
    assert exchange.conflicts() == []
    exchange.note_onchain_conflict(EPOCH, ROOT, OTHER_ROOT)
    exchange.note_onchain_conflict(EPOCH, ROOT, OTHER_ROOT)
    [conflict] = exchange.conflicts()
    assert (conflict.epoch, conflict.ours, conflict.theirs, conflict.signer, conflict.source) == (
        EPOCH, ROOT, OTHER_ROOT, ON_CHAIN, ON_CHAIN,
    )  # fmt: skip
    assert conflict.signature is None and conflict.their_previous is None
    assert _sample(exchange, "relayer_attestation_conflicts_total") == 1
    assert _sample(exchange, "relayer_attestation_conflicts_unacknowledged") == 1
    daemon = SimpleNamespace(watchers={}, exchanges={CHAIN: exchange}, store=exchange.store, relays=[])
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
    assert exchange.store.acknowledge_conflicts() == [conflict.id]
    assert _sample(exchange, "relayer_attestation_conflicts_unacknowledged") == 0
    assert exchange.conflicts()[0].acknowledged_at is not None  # the evidence stays


def test_conflict_counter_is_exported_at_zero_from_the_start(tmp_path: Path) -> None:
    exchange = _exchange(tmp_path, "a")
    assert exchange.metrics.registry.get_sample_value("relayer_attestation_conflicts_total", {"destination": DEST}) == 0
    assert _sample(exchange, "relayer_attestation_conflicts_unacknowledged") == 0


# --- the shared directory ------------------------------------------------------------------


async def test_shared_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    a, b, c = Account.create(), Account.create(), Account.create()
    committee = Committee(1, 2, (a.address, b.address, c.address))
    mine = _exchange(tmp_path, "a", directory=shared)
    theirs = _exchange(tmp_path, "b", directory=shared)
    own = _sign(a)
    mine.publish(own, 1)
    theirs.publish(_sign(b), 1)
    files = sorted(p.name for p in shared.iterdir())
    assert files == sorted([own.file_name(), _sign(b).file_name()])  # no temporary file left behind
    assert json.loads((shared / own.file_name()).read_text()) == own.to_json()
    (shared / f"att-{CHAIN}-{EPOCH}-garbage.json").write_text("{not json")
    (shared / f"att-{CHAIN}-{EPOCH}-outsider.json").write_text(json.dumps(_sign(Account.create()).to_json()))
    (shared / f"att-{CHAIN}-{EPOCH}-conflict.json").write_text(json.dumps(_sign(c, root=OTHER_ROOT).to_json()))
    (shared / f"att-{CHAIN}-{EPOCH}-huge.json").write_text(" " * 10_000)
    (shared / f"att-{CHAIN}-{EPOCH}-nested.json").write_text("[" * 4000)
    (shared / own.file_name()).unlink()  # lost: this member writes it again
    collected = await mine.collect(
        chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT, previous=PREVIOUS, committee=committee
    )
    assert sorted(collected.signers) == sorted([a.address, b.address])
    assert (shared / own.file_name()).exists()
    assert _sample(mine, "relayer_attestations_refused_total", reason="malformed") == 3
    assert _sample(mine, "relayer_attestations_refused_total", reason="not_member") == 1
    [conflict] = collected.conflicts
    source = f"file att-{CHAIN}-{EPOCH}-conflict.json"
    assert (conflict.signer, conflict.theirs, conflict.source) == (c.address, OTHER_ROOT, source)


async def test_unwritable_directory_does_not_fail_publish(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    exchange = _exchange(tmp_path, "a", directory=missing)
    att = _sign(Account.create())
    exchange.publish(att, 1)  # logged, kept in the store, served over HTTP
    assert exchange.served(CHAIN, EPOCH) == [att.to_json()]
    assert not missing.exists()


# --- the HTTP route ------------------------------------------------------------------------


async def test_attestations_route(tmp_path: Path, servers: Servers) -> None:
    exchange = _exchange(tmp_path, "a")
    att = _sign(Account.create())
    exchange.publish(att, 1)
    base = await servers.member(exchange)
    async with ClientSession() as session:
        async with session.get(f"{base}/v1/attestations/{CHAIN}/{EPOCH}") as answer:
            assert answer.status == 200
            assert await answer.json() == {"attestations": [att.to_json()]}
        async with session.get(f"{base}/v1/attestations/{CHAIN}/{EPOCH + 1}") as answer:
            assert (answer.status, await answer.json()) == (200, {"attestations": []})
        async with session.get(f"{base}/v1/attestations/{CHAIN + 1}/{EPOCH}") as answer:
            assert answer.status == 404
            assert "no destination with chain id" in (await answer.json())["error"]
        for path in (f"x/{EPOCH}", f"{CHAIN}/7.5", f"{CHAIN}/-1", f"{CHAIN}/%2B7"):
            async with session.get(f"{base}/v1/attestations/{path}") as answer:
                assert answer.status == 400, path
                assert "decimal integers" in (await answer.json())["error"]


# --- configuration -------------------------------------------------------------------------


def _load(folder: Path, section: str) -> CommitteeConfig:
    path = folder / "relayer.toml"
    path.write_text(section + "\n" + MINIMAL)
    return load_config(path, environ=ENV).committee


def _problems(folder: Path, section: str) -> tuple[str, ...]:
    path = folder / "relayer.toml"
    path.write_text(section + "\n" + MINIMAL)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=ENV)
    return info.value.problems


def test_committee_config_defaults_and_values(tmp_path: Path) -> None:
    assert _load(tmp_path, "") == CommitteeConfig((), None, 2.0, 20.0)
    assert _load(tmp_path, "\n[committee]\n") == CommitteeConfig()
    (tmp_path / "shared").mkdir()
    config = _load(
        tmp_path,
        '\n[committee]\npeers = ["http://127.0.0.1:9465", "https://member-b.example/relayer"]\n'
        'directory = "shared"\nfetch_timeout_seconds = 0.5\ntakeover_seconds = 30\n',
    )
    assert config == CommitteeConfig(
        ("http://127.0.0.1:9465", "https://member-b.example/relayer"), tmp_path / "shared", 0.5, 30.0
    )
    assert _load(tmp_path, "\n[committee]\npeers = []\n").peers == ()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("committee = 1", ["committee: expected a table, got an integer"]),
        ('[committee]\npeers = "http://a:1"', ["committee.peers: expected an array of http(s) URLs, got a string"]),
        (
            '[committee]\npeers = ["ftp://a", 3, "http://b:1", "http://b:1"]',
            [
                "committee.peers[0]: not an http(s) URL (expected http://host[:port]/... or https://...)",
                "committee.peers[1]: expected a URL string, got an integer",
                "committee.peers[3]: duplicate of committee.peers[2]",
            ],
        ),
        ("[committee]\nfetch_timeout_seconds = 0", ["committee.fetch_timeout_seconds: must be a finite number > 0"]),
        ('[committee]\ntakeover_seconds = "20"', ["committee.takeover_seconds: expected a number of seconds"]),
        ("[committee]\nextra = 1", ["committee.extra: unknown key"]),
        ("[committee]\ndirectory = 5", ["committee.directory: expected a string, got an integer"]),
    ],
)
def test_committee_config_problems(tmp_path: Path, section: str, expected: list[str]) -> None:
    problems = _problems(tmp_path, section)
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), (problem, start)


def test_committee_directory_must_be_an_existing_directory(tmp_path: Path) -> None:
    assert _problems(tmp_path, '\n[committee]\ndirectory = "nowhere"\n') == (
        f"committee.directory: directory {tmp_path / 'nowhere'} does not exist (create it, or mount the shared "
        "directory)",
    )
    (tmp_path / "file").write_text("")
    assert _problems(tmp_path, '\n[committee]\ndirectory = "file"\n') == (
        f"committee.directory: {tmp_path / 'file'} is not a directory",
    )


async def test_a_rotated_out_members_signature_is_refused(tmp_path: Path) -> None:
    """An old generation's signature: after `setCommittee` drops member c, its signature over the
    same root (already collected or newly served) no longer counts toward the threshold."""
    shared = tmp_path / "shared"
    shared.mkdir()
    a, b, c = Account.create(), Account.create(), Account.create()
    mine = _exchange(tmp_path, "a", directory=shared)
    mine.publish(_sign(a), 1)
    _exchange(tmp_path, "c", directory=shared).publish(_sign(c), 1)
    old = Committee(1, 2, (a.address, b.address, c.address))
    collected = await mine.collect(chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT, previous=PREVIOUS,
                                   committee=old)  # fmt: skip
    assert sorted(collected.signers) == sorted([a.address, c.address])
    new = Committee(2, 2, (a.address, b.address))
    collected = await mine.collect(chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT, previous=PREVIOUS,
                                   committee=new)  # fmt: skip
    assert collected.signers == [a.address], "a rotated-out member's signature still counts"


async def test_a_signature_of_an_older_generation_is_refused(tmp_path: Path) -> None:
    """A member who stays in the committee signed under generation 1; after `setCommittee` (generation
    2) that signature would revert on the destination, so the exchange refuses it as a bad signature
    and counts the same member's signature made for generation 2."""
    shared = tmp_path / "shared"
    shared.mkdir()
    a, b = Account.create(), Account.create()
    mine = _exchange(tmp_path, "a", directory=shared)
    mine.publish(_sign(a, generation=2), 2)
    theirs = _exchange(tmp_path, "b", directory=shared)
    theirs.publish(_sign(b), 1)  # generation 1: made before the change
    committee = Committee(2, 2, (a.address, b.address))
    collected = await mine.collect(chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT, previous=PREVIOUS,
                                   committee=committee)  # fmt: skip
    assert collected.signers == [a.address]
    assert _sample(mine, "relayer_attestations_refused_total", reason="bad_signature") == 1
    (tmp_path / "shared" / _sign(b).file_name()).unlink()
    theirs.publish(_sign(b, generation=2), 2)
    collected = await mine.collect(chain_id=CHAIN, verifier=VERIFIER, epoch=EPOCH, root=ROOT, previous=PREVIOUS,
                                   committee=committee)  # fmt: skip
    assert sorted(collected.signers) == sorted([a.address, b.address])
