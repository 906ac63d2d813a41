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
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from relayer.attestation.eip712 import check_attestation, check_canonical
from relayer.attestation.screen import MAX_CONFLICTS_PER_SIGNER, MAX_PER_SIGNER, Screen, recover_all, screened
from relayer.attestation.transport import (
    MAX_ATTESTATIONS_PER_SOURCE,
    MAX_FILE_BYTES,
    MAX_RESPONSE_BYTES,
    PeerFetcher,
    SharedDirectory,
)
from relayer.attestation.view import Committee
from relayer.epoch import Attestation
from relayer.errors import AttestationError, StoreError
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.storage.store import ON_CHAIN, AttestationConflict, Store

__all__ = [
    "MAX_ATTESTATIONS_PER_SOURCE",
    "MAX_CONFLICTS_PER_SIGNER",
    "MAX_FILE_BYTES",
    "MAX_PER_SIGNER",
    "MAX_RESPONSE_BYTES",
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


SIGNATURE_REFUSED = frozenset({"ECDSAInvalidSignature", "ECDSAInvalidSignatureLength", "ECDSAInvalidSignatureS"})
"""The destination's errors (OpenZeppelin ECDSA) that name a signature it refuses (`drop_refused`)."""

CHECKED_EPOCHS_KEPT = 64
"""Epochs behind the one collected for which the generation of the last check is remembered."""


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
        self._fetcher = PeerFetcher(metrics=metrics, destination=destination, timeout_seconds=timeout_seconds)
        self._shared = None if directory is None else SharedDirectory(directory, destination)
        self._noted: set[tuple[object, ...]] = set()
        # (chain id, verifier, epoch) -> the committee generation its kept signatures were checked under
        self._checked_under: dict[tuple[int, str, int], int] = {}
        metrics.attestation_conflicts.labels(destination)  # exported as 0 from the start
        # read from the store at each scrape: `relayer conflicts ack` (another process) clears it
        metrics.attestation_conflicts_unacknowledged.labels(destination).set_function(self._unacknowledged_sample)

    def publish(self, att: Attestation, generation: int) -> None:
        """Keep this member's own attestation durably (before it is served) and write it to the
        shared directory, if any. Raises AttestationError when its signature does not recover
        to its signer under committee generation `generation`, StoreError when the store cannot
        be written. A directory that cannot be written is logged (`attestation.publish_failed`);
        `collect` writes the file again."""
        check_attestation(att, generation)
        self.store.add_attestation(replace(att, source=SELF))
        if self._shared is not None:
            self._shared.write(att)

    def republish(self, att: Attestation, generation: int) -> None:
        """Replace this member's own attestation of `att`'s epoch and root with `att`, signed
        again under committee generation `generation` after a committee change (the old one
        recovers to another address in the new signing domain), so that peers collect it.
        Raises as `publish`."""
        check_attestation(att, generation)
        self.store.drop_attestations(att.chain_id, att.verifier, att.epoch, [(att.signer, att.root)])
        self.publish(att, generation)

    def served(self, chain_id: int, epoch: int) -> list[dict[str, Any]]:
        """The attestations this member serves for `epoch` of destination `chain_id`, as JSON
        objects (`Attestation.to_json`): its own and every member's it checked and accepted
        (relaying them helps: they are self-authenticating). Conflicting ones are evidence,
        not served, nor is a non-canonical signature kept by an older version."""
        return [r.to_json() for r in self._kept(chain_id, None, epoch)]

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
        screen = Screen(
            chain_id, verifier, epoch, root, previous, members, committee.generation,
            seen={(r.signer, r.root, r.previous, r.signature) for r in kept},
            held={r.signer for r in kept if r.root == root and r.previous == previous},
            conflicts={(c.signer, c.theirs) for c in evidence},
        )  # fmt: skip
        for budget, items in await self._answers(chain_id, verifier, epoch):
            candidates = screened(screen, budget, items, self._refuse)
            if not candidates:
                continue
            self.metrics.attestation_recoveries.labels(self.destination).inc(len(candidates))
            recovered = await asyncio.to_thread(recover_all, [att for _, att in candidates], screen.generation)
            for (source, att), signer in zip(candidates, recovered, strict=True):
                self._admit(screen, source, att, signer)
        signatures: dict[str, bytes] = {}
        for r in self.store.attestations(chain_id, verifier, epoch):
            if r.root == root and r.previous == previous and r.signer in members:
                signatures.setdefault(r.signer, r.signature)
        ordered = sorted(signatures.items(), key=lambda pair: bytes.fromhex(pair[0][2:]))
        return Collected(ordered, self.store.conflicts(self.destination, epoch=epoch))

    async def _answers(self, chain_id: int, verifier: str, epoch: int) -> list[tuple[str, list[tuple[str, object]]]]:
        """(budget, [(source, raw item)]) of each source: every peer, and the shared directory as
        one (this member's own files missing from it are written again first)."""
        answers: list[tuple[str, list[tuple[str, object]]]] = []
        if self._shared is not None:
            self._republish(chain_id, verifier, epoch)
        if self.peers:
            fetched = await self._fetcher.fetch_all(self.peers, chain_id, epoch)
            answers += [(source, [(source, item) for item in items]) for source, items in fetched]
        files = [] if self._shared is None else self._shared.read(chain_id, epoch, self._refuse, self._note)
        if files:
            answers.append(("shared directory", [(source, item) for source, items in files for item in items]))
        return answers

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
            recovered = await asyncio.to_thread(recover_all, peers, committee.generation)
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

    def _admit(self, screen: Screen, source: str, att: Attestation, recovered: str | AttestationError) -> None:
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

    def _republish(self, chain_id: int, verifier: str, epoch: int) -> None:
        """Write this member's own attestations of the epoch that are missing from the directory."""
        shared = self._shared
        if shared is None:
            return
        for record in self.store.attestations(chain_id, verifier, epoch):
            if record.source == SELF and not shared.has(record):
                shared.write(record)
