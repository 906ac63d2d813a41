"""Which claims the destination needs settled, decided against its settled positions (DESIGN
section 7: what the destination holds is read from the destination): `wanted` for a claim of a
snapshot, `needs_settlement` for a claim of a full snapshot outside its refresh slice."""

from __future__ import annotations

from relayer.epoch import Position


def needs_settlement(
    claim_value: int,
    claim_block: int,
    position: Position,
    *,
    now: int,
    max_age: int,
    min_change_wei: int,
    refresh_before_expiry_seconds: int,
) -> bool:
    """Whether the destination needs a claim of `claim_value` wei proven at `claim_block`
    given the account's settled `position` there (DESIGN section 7: decided against on-chain
    positions). True for a change of at least `min_change_wei` (at least 1) in either direction,
    or for a non-zero position that expires within `refresh_before_expiry_seconds` of `now`
    (Unix seconds; a position counts while `timestamp + max_age >= now`): the refresh carries
    any smaller change along. False when the position is already at or past the block.

    A smaller decrease waits for that refresh (or for the account to change by the threshold)
    and this is safe: the vault pays a withdrawal out `withdrawDelay` after its request, and
    that delay exceeds `max_age` (plus the destination's future tolerance), so the larger
    position the destination still counts expires before the withdrawn wei can leave the
    vault; meanwhile the destination counts at most `min_change_wei` per account that the
    vault still holds (as a pending withdrawal). A decrease of at least the threshold settles
    at once, as an increase does."""
    if position.block_number >= claim_block:
        return False
    if abs(claim_value - position.value) >= max(1, min_change_wei):
        return True
    expiring = position.timestamp + max_age - refresh_before_expiry_seconds <= now
    return expiring and position.value > 0  # (a zero position counts zero, expired or not)


def wanted(
    claim_value: int,
    claim_block: int,
    position: Position,
    *,
    delta: bool,
    refreshed: bool,
    now: int,
    max_age: int,
    min_change_wei: int,
    refresh_before_expiry_seconds: int,
) -> bool:
    """Whether the destination needs a claim of `claim_value` wei proven at `claim_block` of a
    snapshot (`delta`: a delta snapshot; `refreshed`: the claim is in a full snapshot's refresh
    slice) given the account's settled `position`: never when the position is already at or
    past the block; for a delta snapshot every claim (the proven-accounts set counts it proven,
    so a refresh left unsettled would expire) except where the destination counts nothing for
    the account and the claim is below `min_change_wei` (a zero position may lapse: it counts
    zero either way; 1-wei sybils cost no settlement); for a full snapshot every claim of its
    refresh slice and any other that `needs_settlement` asks for."""
    if position.block_number >= claim_block:
        return False
    if delta:
        return position.value != 0 or claim_value >= max(1, min_change_wei)
    if refreshed:
        return True
    return needs_settlement(
        claim_value, claim_block, position, now=now, max_age=max_age, min_change_wei=min_change_wei,
        refresh_before_expiry_seconds=refresh_before_expiry_seconds,
    )  # fmt: skip
