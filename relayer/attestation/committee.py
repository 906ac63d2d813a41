"""The attestation exchange between committee members (DESIGN section 2, trust model).

Each member computes an epoch from the chains itself and signs the EIP-712 struct
`Epoch(uint256 epoch,bytes32 root,bytes32 previous)` in the domain of the destination's
EpochVerifier (relayer.attestation.eip712). Members exchange only these signatures, over a transport
that needs no trust:

- HTTP: every daemon serves `GET /v1/attestations/{chain_id}/{epoch}` ->
  `{"attestations": [<Attestation JSON>, ...]}` (relayer.observability.api); `collect` asks each peer;
- a shared directory: each attestation one JSON file `att-{chain_id}-{epoch}-{verifier}-
  {signer}-{root}.json`, written atomically (temp file + rename).

An attestation is self-authenticating, so each one is checked before use, cheapest check first
(DESIGN section 7: membership before any expensive work, only canonical signatures): it must be
for the destination chain id, verifier and epoch asked for; its signature must be canonical
(65 bytes, low s, v 27/28: the high-s twin of a valid signature recovers to the same signer but
the destination refuses it); the signer it claims must be in the destination's current
committee; and only then is the signature recovered (EIP-712, in a worker thread, off the event
loop), which must give that signer. Work per source is bounded: at most MAX_ATTESTATIONS_PER_SOURCE
items of one answer (of at most MAX_RESPONSE_BYTES, within the per-peer timeout), at most
MAX_PER_SIGNER signatures over this member's root claimed by one signer from one source (the
shared directory counts as one source) and MAX_CONFLICTS_PER_SIGNER over other roots, no
recovery for an item already checked or for a member whose signature over this member's root
is held. One source's junk never displaces what another source gave. One over the
root and previous this member computed is accepted: kept in the store, served to the other
members and counted towards the threshold. A member's valid signature over another root (or
previous) for the same epoch is a conflict: evidence is kept (store table
`attestation_conflicts`: one row per epoch, signer and root, at most MAX_CONFLICTS_PER_SIGNER
roots per epoch and signer; it survives a restart), `relayer_attestation_conflicts_total`
counted, `attestation.conflict` logged at error level with both roots, and
`relayer_attestation_conflicts_unacknowledged` stays above 0 until an operator acknowledges it
(`relayer conflicts list|ack`). A conflict is an alarm, not a lock-out: this member goes on
settling its own root. Everything else is refused (`relayer_attestations_refused_total{reason}`)
and never used. A peer that is down, slow or serving garbage is logged and skipped; it never
fails a collection. A kept signature the destination refuses is dropped (`drop_refused`) and
collected again.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from eth_utils import to_checksum_address

from chains.errors import MalformedJson
from chains.jsonparse import parse_json
from relayer.attestation.eip712 import check_attestation, check_canonical, epoch_digest, recover_digest
from relayer.attestation.view import Committee
from relayer.config import endpoint_host
from relayer.epoch import Attestation
from relayer.errors import AttestationError, StoreError
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.storage.store import ON_CHAIN, AttestationConflict, Store

__all__ = [
    "ON_CHAIN",
    "SELF",
    "AttestationExchange",
    "Collected",
    "Conflict",
]

log = get_logger("relayer.attestation.committee")

Conflict = AttestationConflict
"""Evidence of another root for an epoch this member computed (see relayer.storage.store.AttestationConflict)."""

SELF = "self"
"""The `source` of this member's own attestations in the store."""

MAX_RESPONSE_BYTES = 1 << 20
"""A peer's answer larger than this (bytes) is garbage: a committee is far smaller."""
MAX_ATTESTATIONS_PER_SOURCE = 1024
"""At most this many items of one answer (or files of the shared directory) are looked at."""
MAX_PER_SIGNER = 4
"""At most this many signatures over this member's root claimed by one signer are recovered from
one source for one epoch (an honest source has one per member)."""
MAX_CONFLICTS_PER_SIGNER = 4
"""Conflict evidence kept per epoch and signer: one other root proves the equivocation; a
member signing many roots adds no more rows than this, and no more than this many signatures
over other roots claimed by one signer are recovered per collection."""
SIGNATURE_REFUSED = frozenset({"ECDSAInvalidSignature", "ECDSAInvalidSignatureLength", "ECDSAInvalidSignatureS"})
"""The destination's errors (OpenZeppelin ECDSA) that name a signature it refuses (`drop_refused`)."""
CHECKED_EPOCHS_KEPT = 64
"""Epochs behind the one collected for which the generation of the last check is remembered."""
MAX_FILE_BYTES = 4096
"""A file in the shared directory larger than this (bytes) is refused unread."""

_NOTED_LIMIT = 10_000


@dataclass(frozen=True)
class Collected:
    """What `collect` found for an epoch: `signatures`, the distinct committee members'
    (signer, 65-byte signature) pairs over this member's root and previous, ascending by
    signer address (the order `EpochVerifier.submitEpoch` takes; this member's own included
    once published); `conflicts`, the evidence of other roots for the epoch (an alarm for the
    operator, `relayer conflicts list|ack`; this member goes on settling its own root, never
    the other one)."""

    signatures: list[tuple[str, bytes]]
    conflicts: list[Conflict]

    @property
    def signers(self) -> list[str]:
        return [signer for signer, _ in self.signatures]


class AttestationExchange:
    """Publishes this member's attestations and collects and checks the other members', for
    one destination (`destination`: its chain name, used in metric labels and logs).

    `peers`: base URLs of other members' HTTP listeners (e.g. "http://10.0.0.2:9464"), each
    asked with a timeout of `timeout_seconds`; `directory`: a shared directory (or None).
    Checked attestations and conflict evidence are kept in `store`."""

    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics,
        peers: Sequence[str],
        directory: Path | None,
        timeout_seconds: float,
        destination: str,
    ) -> None:
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        self.store = store
        self.metrics = metrics
        self.peers = tuple(peer.rstrip("/") for peer in peers)
        self.directory = directory
        self.timeout_seconds = timeout_seconds
        self.destination = destination
        self._peer_failing: dict[str, str] = {}
        self._noted: set[tuple[object, ...]] = set()
        # (chain id, verifier, epoch) -> the committee generation its kept signatures were checked under
        self._checked_under: dict[tuple[int, str, int], int] = {}
        metrics.attestation_conflicts.labels(destination)  # exported as 0 from the start
        # read from the store at each scrape: `relayer conflicts ack` (another process) clears it
        metrics.attestation_conflicts_unacknowledged.labels(destination).set_function(self._unacknowledged_sample)

    # --- this member's own ---------------------------------------------------------------

    def publish(self, att: Attestation, generation: int) -> None:
        """Keep this member's own attestation durably (before it is served) and write it to the
        shared directory, if any. Raises AttestationError when its signature does not recover
        to its signer under committee generation `generation`, StoreError when the store cannot
        be written. A directory that cannot be written is logged (`attestation.publish_failed`);
        `collect` writes the file again."""
        check_attestation(att, generation)
        self.store.add_attestation(replace(att, source=SELF))
        if self.directory is not None:
            self._write_file(att)

    def republish(self, att: Attestation, generation: int) -> None:
        """Replace this member's own attestation of `att`'s epoch and root with `att`, signed
        again under committee generation `generation` after a committee change (the old one
        recovers to another address in the new signing domain), so that peers collect it.
        Raises as `publish`."""
        check_attestation(att, generation)
        self.store.drop_attestations(att.chain_id, att.verifier, att.epoch, [(att.signer, att.root)])
        self.publish(att, generation)

    def _write_file(self, att: Attestation) -> None:
        directory = self.directory
        if directory is None:
            return
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".att-", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(att.to_json(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # other members may run as other users
            os.replace(tmp, directory / att.file_name())
            tmp = None
        except OSError as exc:
            log.warning(
                "attestation.publish_failed", destination=self.destination, epoch=att.epoch,
                directory=str(directory), error=str(exc),
            )  # fmt: skip
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def served(self, chain_id: int, epoch: int) -> list[dict[str, Any]]:
        """The attestations this member serves for `epoch` of destination `chain_id`, as JSON
        objects (`Attestation.to_json`): its own and every member's it checked and accepted
        (relaying them helps: they are self-authenticating). Conflicting ones are evidence,
        not served, nor is a non-canonical signature kept by an older version."""
        return [r.to_json() for r in self._kept(chain_id, None, epoch)]

    # --- the others' ---------------------------------------------------------------------

    async def collect(
        self,
        *,
        chain_id: int,
        verifier: str,
        epoch: int,
        root: bytes,
        previous: bytes,
        committee: Committee,
    ) -> Collected:
        """Fetch the peers' attestations for `epoch` (concurrently, each within the timeout) and
        read the shared directory's, check each (see the module docstring: cheap checks and
        membership first, recovery off the event loop, bounded per source), keep the accepted
        ones and record conflicts; return the distinct member signatures over (`root`,
        `previous`) and the epoch's conflict evidence. Never raises for what a peer or file
        holds; raises StoreError when the store cannot be written."""
        verifier = str(to_checksum_address(verifier))
        members = {str(to_checksum_address(m)) for m in committee.members}
        kept = await self._checked(self._kept(chain_id, verifier, epoch), chain_id, verifier, epoch, committee)
        evidence = self.store.conflicts(self.destination, epoch=epoch)
        screen = _Screen(
            chain_id, verifier, epoch, root, previous, members, committee.generation,
            seen={(r.signer, r.root, r.previous, r.signature) for r in kept},
            held={r.signer for r in kept if r.root == root and r.previous == previous},
            conflicts={(c.signer, c.theirs) for c in evidence},
        )  # fmt: skip
        if self.directory is not None:
            self._republish(chain_id, verifier, epoch)
        answers: list[tuple[str, list[tuple[str, object]]]] = []
        if self.peers:
            timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                fetched = await asyncio.gather(*(self._fetch(session, peer, chain_id, epoch) for peer in self.peers))
            answers += [(source, [(source, item) for item in items]) for source, items in fetched]
        files = self._read_directory(chain_id, epoch)
        if files:
            answers.append(("shared directory", [(source, item) for source, items in files for item in items]))
        for budget, items in answers:
            candidates = self._screen(screen, budget, items)
            if not candidates:
                continue
            self.metrics.attestation_recoveries.labels(self.destination).inc(len(candidates))
            recovered = await asyncio.to_thread(_recover_all, [att for _, att in candidates], screen.generation)
            for (source, att), signer in zip(candidates, recovered, strict=True):
                self._admit(screen, source, att, signer)
        signatures: dict[str, bytes] = {}
        for r in self.store.attestations(chain_id, verifier, epoch):
            if r.root == root and r.previous == previous and r.signer in members:
                signatures.setdefault(r.signer, r.signature)
        ordered = sorted(signatures.items(), key=lambda pair: bytes.fromhex(pair[0][2:]))
        return Collected(ordered, self.store.conflicts(self.destination, epoch=epoch))

    def _kept(self, chain_id: int, verifier: str | None, epoch: int) -> list[Attestation]:
        """The store's attestations of the epoch, after dropping any that is not canonical (kept
        by a version that accepted high-s twins: never submitted nor served again)."""
        kept, twins = [], []
        for record in self.store.attestations(chain_id, verifier, epoch):
            try:
                check_canonical(record.signature)
            except AttestationError as exc:
                twins.append(record)
                self._refuse("non_canonical", f"store ({record.source})", epoch, str(exc), signer=record.signer)
                continue
            kept.append(record)
        for record in twins:
            self.store.drop_attestations(record.chain_id, record.verifier, epoch, [(record.signer, record.root)])
        return kept

    async def _checked(
        self, kept: list[Attestation], chain_id: int, verifier: str, epoch: int, committee: Committee
    ) -> list[Attestation]:
        """`kept` after dropping the peers' signatures that do not recover to their signer under
        the committee's current generation: each was checked under the generation of its
        collection, and a committee change (a new EIP-712 domain) voids it. Checked again once
        per epoch and generation (recovery in a worker thread); the member's new signature is
        collected like any other once it signs again (`republish`)."""
        key = (chain_id, verifier, epoch)
        if self._checked_under.get(key) == committee.generation:
            return kept
        peers = [r for r in kept if r.source != SELF]
        if peers:
            self.metrics.attestation_recoveries.labels(self.destination).inc(len(peers))
            recovered = await asyncio.to_thread(
                _recover_all, peers, committee.generation
            )
            void = [r for r, signer in zip(peers, recovered, strict=True) if signer != r.signer]
            if void:
                self.store.drop_attestations(chain_id, verifier, epoch, [(r.signer, r.root) for r in void])
                for r in void:
                    self._refuse("old_generation", f"store ({r.source})", epoch,
                                 f"not signed under committee generation {committee.generation}",
                                 signer=r.signer)  # fmt: skip
                kept = [r for r in kept if r not in void]
        for old in [k for k in self._checked_under if k[2] < epoch - CHECKED_EPOCHS_KEPT]:
            del self._checked_under[old]
        self._checked_under[key] = committee.generation
        return kept

    def _screen(self, screen: _Screen, budget: str, items: list[tuple[str, object]]) -> list[tuple[str, Attestation]]:
        """The items of one source (`budget`: a peer, or the shared directory) worth a signature
        recovery, after every check that needs none; the others are refused (or skipped when
        already checked). No curve arithmetic here: it runs on the event loop."""
        claimed: dict[str, int] = {}
        out: list[tuple[str, Attestation]] = []
        for source, item in items:
            claimed_signer = item.get("signer") if isinstance(item, dict) else None
            if isinstance(claimed_signer, str) and claimed_signer.lower() not in screen.members_lower:
                # a flood of outsiders costs a string comparison each, not a parse and its keccaks
                self._refuse("not_member", source, screen.epoch, f"{claimed_signer[:42]} is not in the committee")
                continue
            try:
                att = Attestation.from_json(item)
            except AttestationError as exc:
                self._refuse("malformed", source, screen.epoch, str(exc))
                continue
            if att.chain_id != screen.chain_id or att.verifier != screen.verifier:
                self._refuse(
                    "wrong_domain", source, screen.epoch,
                    f"for chain {att.chain_id} verifier {att.verifier}, not chain {screen.chain_id} verifier "
                    f"{screen.verifier}",
                )  # fmt: skip
                continue
            if att.epoch != screen.epoch:
                self._refuse("wrong_epoch", source, screen.epoch, f"for epoch {att.epoch}")
                continue
            try:
                check_canonical(att.signature)
            except AttestationError as exc:
                self._refuse("non_canonical", source, screen.epoch, str(exc), signer=att.signer)
                continue
            if att.signer not in screen.members:
                self._refuse("not_member", source, screen.epoch, f"{att.signer} is not in the committee",
                             signer=att.signer)  # fmt: skip
                continue
            ours = att.root == screen.root and att.previous == screen.previous
            if (att.signer, att.root, att.previous, att.signature) in screen.seen or (
                (att.signer in screen.held) if ours else ((att.signer, att.root) in screen.conflicts)
            ):
                continue  # checked before, or this member's signature over our root (or that root) is kept
            if ours:
                claimed[att.signer] = claimed.get(att.signer, 0) + 1
                if claimed[att.signer] > MAX_PER_SIGNER:
                    self._refuse("too_many", source, screen.epoch,
                                 f"more than {MAX_PER_SIGNER} signatures claimed by {att.signer} from {budget}",
                                 signer=att.signer)  # fmt: skip
                    continue
            else:
                kept = sum(1 for signer, _ in screen.conflicts if signer == att.signer)
                if kept + screen.pending.get(att.signer, 0) >= MAX_CONFLICTS_PER_SIGNER:
                    self._refuse("too_many", source, screen.epoch,
                                 f"{att.signer} already has {MAX_CONFLICTS_PER_SIGNER} other roots kept or checked",
                                 signer=att.signer)  # fmt: skip
                    continue
                screen.pending[att.signer] = screen.pending.get(att.signer, 0) + 1
            screen.seen.add((att.signer, att.root, att.previous, att.signature))
            out.append((source, att))
        return out

    def _admit(self, screen: _Screen, source: str, att: Attestation, recovered: str | AttestationError) -> None:
        """Act on one recovered candidate: refuse it, keep it, or record a conflict."""
        if isinstance(recovered, AttestationError) or recovered != att.signer:
            detail = str(recovered) if isinstance(recovered, AttestationError) else (
                f"signature recovers to {recovered}, not to the claimed signer {att.signer}"
            )  # fmt: skip
            self._refuse("bad_signature", source, screen.epoch, detail, signer=att.signer)
            return
        if att.root == screen.root and att.previous == screen.previous:
            screen.held.add(att.signer)
            if self.store.add_attestation(replace(att, source=source)):
                log.debug("attestation.accepted", destination=self.destination, epoch=screen.epoch,
                          signer=att.signer, source=source)  # fmt: skip
            return
        conflict = Conflict(
            self.destination, screen.epoch, screen.root, att.root, screen.previous, att.previous, att.signer,
            att.signature, source, time.time(),
        )  # fmt: skip
        if self._conflict(conflict):
            screen.conflicts.add((att.signer, att.root))

    def drop_refused(
        self, *, chain_id: int, verifier: str, epoch: int, root: bytes, error_name: str, error_args: tuple[Any, ...]
    ) -> int:
        """The destination refused a signature of the epoch (`error_name` in SIGNATURE_REFUSED,
        OpenZeppelin ECDSA; `error_args` its arguments, the refused `s` for
        ECDSAInvalidSignatureS): drop the peers' signatures over `root` that it names, or, when
        it names none that is held, every peer signature of the epoch over `root`, so they are
        collected again (this member's own is kept). Returns how many were dropped; each is
        counted as refused (`refused_on_chain`)."""
        verifier = str(to_checksum_address(verifier))
        held = [r for r in self.store.attestations(chain_id, verifier, epoch) if r.root == root and r.source != SELF]
        named = []
        if error_name == "ECDSAInvalidSignatureS" and error_args:
            s_value = bytes(error_args[0]) if isinstance(error_args[0], bytes | bytearray) else b""
            named = [r for r in held if r.signature[32:64] == s_value]
        dropped = named or held
        self.store.drop_attestations(chain_id, verifier, epoch, [(r.signer, r.root) for r in dropped])
        for r in dropped:
            self._refuse("refused_on_chain", f"store ({r.source})", epoch, f"the destination answered {error_name}",
                         signer=r.signer)  # fmt: skip
        return len(dropped)

    def _refuse(self, reason: str, source: str, epoch: int, detail: str, signer: str | None = None) -> None:
        self.metrics.attestations_refused.labels(self.destination, reason).inc()
        first = self._note(("refused", source, epoch, reason))  # a flood of distinct signers logs once
        (log.warning if first else log.debug)(
            "attestation.refused", destination=self.destination, epoch=epoch, source=source, reason=reason,
            detail=detail[:300], signer=signer,
        )  # fmt: skip

    def _note(self, key: tuple[object, ...]) -> bool:
        """True the first time `key` is seen (bounded memory: forgotten wholesale when full)."""
        if key in self._noted:
            return False
        if len(self._noted) >= _NOTED_LIMIT:
            self._noted.clear()
        self._noted.add(key)
        return True

    def _conflict(self, conflict: Conflict) -> bool:
        """Keep, count and log new conflict evidence; False when it was kept already (or the
        signer has MAX_CONFLICTS_PER_SIGNER roots kept for the epoch)."""
        if not self.store.add_conflict(conflict, per_signer=MAX_CONFLICTS_PER_SIGNER):
            return False
        self.metrics.attestation_conflicts.labels(self.destination).inc()
        log.error(
            "attestation.conflict", destination=self.destination, epoch=conflict.epoch, ours=conflict.ours,
            theirs=conflict.theirs, our_previous=conflict.our_previous, their_previous=conflict.their_previous,
            signer=conflict.signer, source=conflict.source,
        )  # fmt: skip
        return True

    def note_onchain_conflict(self, epoch: int, ours: bytes, on_chain: bytes) -> None:
        """Record that the destination accepted `on_chain` (32 bytes) as the root of `epoch`
        while this member computed `ours`: conflict evidence, counted and logged once. Equal
        roots are no conflict and are ignored."""
        if bytes(ours) == bytes(on_chain):
            return
        self._conflict(Conflict(self.destination, epoch, bytes(ours), bytes(on_chain), None, None, ON_CHAIN, None,
                                ON_CHAIN, time.time()))  # fmt: skip

    def conflicts(self) -> list[Conflict]:
        """Every conflict recorded for this destination, oldest first (kept in the store: they
        survive a restart; `relayer conflicts list` shows them, `ack` acknowledges them)."""
        return self.store.conflicts(self.destination)

    def unacknowledged(self) -> int:
        """How many of this destination's conflicts no operator acknowledged yet. Raises StoreError."""
        return self.store.unacknowledged_conflicts(self.destination)

    def _unacknowledged_sample(self) -> float:
        try:
            return float(self.unacknowledged())
        except StoreError:
            return float("nan")  # the store cannot be read: unknown, not "no conflict"

    # --- transports ----------------------------------------------------------------------

    async def _fetch(
        self, session: aiohttp.ClientSession, peer: str, chain_id: int, epoch: int
    ) -> tuple[str, list[object]]:
        """(source, raw items) of one peer; no items when it is down, slow or serves garbage."""
        host = endpoint_host(peer)
        source = f"peer {host}"
        outcome, detail = "ok", ""
        items: list[object] = []
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with session.get(f"{peer}/v1/attestations/{chain_id}/{epoch}", allow_redirects=False) as answer:
                    body = bytearray()
                    async for chunk in answer.content.iter_chunked(65536):
                        body += chunk
                        if len(body) > MAX_RESPONSE_BYTES:
                            break
            if answer.status != 200:
                outcome, detail = "error", f"HTTP {answer.status}"
            elif len(body) > MAX_RESPONSE_BYTES:
                outcome, detail = "garbage", f"answer larger than {MAX_RESPONSE_BYTES} bytes"
            else:
                items, problem = _parse_answer(bytes(body))
                if problem:
                    outcome, detail = "garbage", problem
        except TimeoutError:
            outcome, detail = "timeout", f"no answer within {self.timeout_seconds} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"[:300]
        self.metrics.attestation_fetches.labels(self.destination, host, outcome).inc()
        previous = self._peer_failing.get(host)
        if outcome == "ok":
            if previous is not None:
                self._peer_failing.pop(host)
                log.info("attestation.peer_back", destination=self.destination, peer=host)
        else:
            self._peer_failing[host] = outcome
            (log.warning if previous != outcome else log.debug)(
                "attestation.peer_failed", destination=self.destination, peer=host, epoch=epoch, outcome=outcome,
                reason=detail,
            )  # fmt: skip
        if len(items) > MAX_ATTESTATIONS_PER_SOURCE:
            log.warning("attestation.too_many", destination=self.destination, source=source, count=len(items))
            items = items[:MAX_ATTESTATIONS_PER_SOURCE]
        return source, items

    def _read_directory(self, chain_id: int, epoch: int) -> list[tuple[str, list[object]]]:
        """(source, [item]) for each attestation file of the epoch in the shared directory."""
        directory = self.directory
        if directory is None:
            return []
        try:
            paths = sorted(directory.glob(f"att-{chain_id}-{epoch}-*.json"))
        except OSError as exc:
            if self._note(("directory", str(exc))):
                log.warning("attestation.directory_unreadable", destination=self.destination,
                            directory=str(directory), error=str(exc))  # fmt: skip
            return []
        out: list[tuple[str, list[object]]] = []
        for path in paths[:MAX_ATTESTATIONS_PER_SOURCE]:
            source = f"file {path.name}"
            try:
                if path.stat().st_size > MAX_FILE_BYTES:
                    self._refuse("malformed", source, epoch, f"file larger than {MAX_FILE_BYTES} bytes")
                    continue
                data = path.read_bytes()
            except OSError as exc:
                log.debug("attestation.file_unreadable", destination=self.destination, source=source, error=str(exc))
                continue
            try:
                out.append((source, [parse_json(data, max_bytes=MAX_FILE_BYTES, what="attestation file")]))
            except MalformedJson as exc:
                self._refuse("malformed", source, epoch, exc.detail)
        return out

    def _republish(self, chain_id: int, verifier: str, epoch: int) -> None:
        """Write this member's own attestations of the epoch that are missing from the directory."""
        directory = self.directory
        if directory is None:
            return
        for record in self.store.attestations(chain_id, verifier, epoch):
            if record.source == SELF and not (directory / record.file_name()).exists():
                self._write_file(record)


def _parse_answer(body: bytes) -> tuple[list[object], str]:
    """(items, "") of a peer's `{"attestations": [...]}` answer, or ([], why it is garbage)."""
    try:
        document = parse_json(body, max_bytes=MAX_RESPONSE_BYTES, what="peer answer")
    except MalformedJson as exc:
        return [], exc.detail[:200]
    if not isinstance(document, dict) or not isinstance(document.get("attestations"), list):
        return [], 'expected {"attestations": [...]}'
    return list(document["attestations"]), ""


@dataclass
class _Screen:
    """What one `collect` checks items against: the epoch asked for, this member's root and
    previous, the committee's members and generation (the EIP-712 domain's salt); `seen`
    (signer, root, previous, signature) already checked (kept, or a candidate of this
    collection); `held` members whose signature over this member's root is kept; `conflicts`
    the (signer, other root) pairs with evidence kept; `pending` candidates over another root
    per signer in this collection."""

    chain_id: int
    verifier: str
    epoch: int
    root: bytes
    previous: bytes
    members: set[str]
    generation: int
    seen: set[tuple[str, bytes, bytes, bytes]]
    held: set[str]
    conflicts: set[tuple[str, bytes]]
    pending: dict[str, int] = field(default_factory=dict)

    @functools.cached_property
    def members_lower(self) -> frozenset[str]:
        return frozenset(m.lower() for m in self.members)


def _recover_all(candidates: list[Attestation], generation: int) -> list[str | AttestationError]:
    """The signer each candidate's signature recovers to (EIP-712, under committee generation
    `generation`), or why it does not; run in a worker thread (a few ms each). Digests are
    computed once per (root, previous)."""
    digests: dict[tuple[bytes, bytes], bytes] = {}
    out: list[str | AttestationError] = []
    for att in candidates:
        key = (att.root, att.previous)
        try:
            if key not in digests:
                digests[key] = epoch_digest(
                    att.chain_id, att.verifier, att.epoch, att.root, att.previous, generation=generation
                )
            out.append(recover_digest(digests[key], att.signature))
        except AttestationError as exc:
            out.append(exc)
    return out
