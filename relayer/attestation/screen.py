"""The checks of a collected attestation that need no signature recovery, cheapest first
(DESIGN section 7: membership before any expensive work, bounded per source), and the recovery
itself, off the event loop (relayer.attestation.committee `AttestationExchange.collect`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from relayer.attestation.eip712 import check_canonical, epoch_digest, recover_digest
from relayer.epoch import Attestation
from relayer.errors import AttestationError

MAX_PER_SIGNER = 4
"""At most this many signatures over this member's root claimed by one signer are recovered from
one source for one epoch (an honest source has one per member)."""

MAX_CONFLICTS_PER_SIGNER = 4
"""Conflict evidence kept per epoch and signer: one other root proves the equivocation; a
member signing many roots adds no more rows than this, and no more than this many signatures
over other roots claimed by one signer are recovered per collection."""

Refuse = Callable[..., None]
"""`AttestationExchange._refuse(reason, source, epoch, detail, signer=None)`: counted and logged."""


@dataclass
class Screen:
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


def screened(
    screen: Screen, budget: str, items: list[tuple[str, object]], refuse: Refuse
) -> list[tuple[str, Attestation]]:
    """The items of one source (`budget`: a peer, or the shared directory) worth a signature
    recovery, after every check that needs none; the others are refused (or skipped when
    already checked). No curve arithmetic here: it runs on the event loop."""
    claimed: dict[str, int] = {}
    out: list[tuple[str, Attestation]] = []
    for source, item in items:
        att = _well_formed(screen, source, item, refuse)
        if att is None:
            continue
        ours = att.root == screen.root and att.previous == screen.previous
        if (att.signer, att.root, att.previous, att.signature) in screen.seen or (
            (att.signer in screen.held) if ours else ((att.signer, att.root) in screen.conflicts)
        ):
            continue  # checked before, or this member's signature over our root (or that root) is kept
        if ours:
            claimed[att.signer] = claimed.get(att.signer, 0) + 1
            if claimed[att.signer] > MAX_PER_SIGNER:
                refuse("too_many", source, screen.epoch,
                       f"more than {MAX_PER_SIGNER} signatures claimed by {att.signer} from {budget}",
                       signer=att.signer)  # fmt: skip
                continue
        else:
            kept = sum(1 for signer, _ in screen.conflicts if signer == att.signer)
            if kept + screen.pending.get(att.signer, 0) >= MAX_CONFLICTS_PER_SIGNER:
                refuse("too_many", source, screen.epoch,
                       f"{att.signer} already has {MAX_CONFLICTS_PER_SIGNER} other roots kept or checked",
                       signer=att.signer)  # fmt: skip
                continue
            screen.pending[att.signer] = screen.pending.get(att.signer, 0) + 1
        screen.seen.add((att.signer, att.root, att.previous, att.signature))
        out.append((source, att))
    return out


def _well_formed(screen: Screen, source: str, item: object, refuse: Refuse) -> Attestation | None:
    """`item` parsed, for the destination and epoch asked for, canonical, by a member; None
    (refused) otherwise. A claimed signer outside the committee is refused before any parse."""
    claimed_signer = item.get("signer") if isinstance(item, dict) else None
    if isinstance(claimed_signer, str) and claimed_signer.lower() not in screen.members_lower:
        # a flood of outsiders costs a string comparison each, not a parse and its keccaks
        refuse("not_member", source, screen.epoch, f"{claimed_signer[:42]} is not in the committee")
        return None
    try:
        att = Attestation.from_json(item)
    except AttestationError as exc:
        refuse("malformed", source, screen.epoch, str(exc))
        return None
    if att.chain_id != screen.chain_id or att.verifier != screen.verifier:
        refuse(
            "wrong_domain", source, screen.epoch,
            f"for chain {att.chain_id} verifier {att.verifier}, not chain {screen.chain_id} verifier "
            f"{screen.verifier}",
        )  # fmt: skip
        return None
    if att.epoch != screen.epoch:
        refuse("wrong_epoch", source, screen.epoch, f"for epoch {att.epoch}")
        return None
    try:
        check_canonical(att.signature)
    except AttestationError as exc:
        refuse("non_canonical", source, screen.epoch, str(exc), signer=att.signer)
        return None
    if att.signer not in screen.members:
        refuse("not_member", source, screen.epoch, f"{att.signer} is not in the committee", signer=att.signer)
        return None
    return att


def recover_all(candidates: list[Attestation], generation: int) -> list[str | AttestationError]:
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
