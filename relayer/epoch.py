"""The epoch's stored states and failure reasons, as the store keeps them (the strings are the
stored format: `epochs.status` and `epochs.reason` in relayer.storage.store)."""

from __future__ import annotations

from enum import StrEnum


class EpochState(StrEnum):
    """Where an epoch is, as stored: signed by this member (its content and signature stored),
    submitted (the destination holds its root), confirmed (settled at the destination's head, not
    final yet), settled (final; also an epoch another member settled, or a stale one), failed."""

    SIGNED = "signed"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    SETTLED = "settled"
    FAILED = "failed"


class FailureReason(StrEnum):
    """Why the relay failed an epoch (`epochs.reason`). A reverted transaction stores the
    contract's error name instead (chains.bindings.ContractReverted), "reverted" when it has none."""

    REORG = "reorg"
    """A proven block is not canonical any more: the source reorganised below finality."""
    SUPERSEDED = "superseded"
    """The destination holds another root for the number, or can no longer take this one."""
    LOST_ON_DESTINATION = "lost_on_destination"
    """The destination no longer holds an epoch this member settled (a reorg there)."""
    REVOKED = "revoked"
    """The destination revoked the root it had accepted (a challenge)."""
    OLD_FORMAT = "old_format"
    """Stored in a format this version cannot rebuild."""
    CORRUPT = "corrupt"
    """The stored content does not rebuild the stored root."""
    RETRIED = "retried"
    """Left for a later attempt of the epoch rule (the committee could not sign this one)."""
    RETRIES_EXHAUSTED = "retries_exhausted"
    """Chain or submission errors `max_epoch_attempts` times."""
    SETTLE_ROUNDS_EXHAUSTED = "settle_rounds_exhausted"
    """The settler's rounds for the epoch ran out (relayer.settlement.settler MAX_SETTLE_ROUNDS)."""
    REVERTED = "reverted"
    """A transaction reverted without a decodable error name."""
