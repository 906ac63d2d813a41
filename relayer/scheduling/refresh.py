"""The refresh rule (DESIGN sections 1.2 and 2): when an account's position must be proven again,
judged from the position's own block, so that no settled position ever expires while its
collateral is still in the vault.

A position proven at a source block with timestamp `t` counts on the destination until
`t + maxAge`. With the refresh period `P = maxAge - refresh_before_expiry_seconds`, the account
is due at

    due = t + P - (W * phase) // 65536,    W = P // SPREAD_DIVISOR,

where `phase` (0..65535) is the first two bytes of keccak256(account): accounts proven at one
timestamp (a vault's first epoch, a busy block) fall due spread over `W` seconds instead of all
at once, so their refreshes are spread over the epochs of that window ahead of time, and none
is later than `t + P`. An epoch at time `T` refreshes every account due by `T + lookahead(P)`,
so refresh-only epochs come at most about every `lookahead(P)` seconds.

Every input is chain data (timestamps, addresses, the destination's `maxAge`) or configuration
every committee member shares (the margin), so all members derive the same accounts.
"""

from __future__ import annotations

from eth_utils import keccak

SPREAD_DIVISOR = 4
"""The spread window `W` is this fraction of the refresh period: an account is refreshed between
0.75 P and P after its last proof."""

LOOKAHEAD_DIVISOR = 8
"""An epoch also refreshes the accounts due within `W // LOOKAHEAD_DIVISOR` seconds after it."""

PHASES = 65536


def phase(account: str) -> int:
    """The account's refresh phase, 0..65535: keccak256 of its 20 address bytes, first two bytes.
    Raises ValueError for a string that is not a 0x-hex address."""
    raw = bytes.fromhex(account[2:] if account[:2] in ("0x", "0X") else account)
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {account!r}")
    return int.from_bytes(keccak(raw)[:2], "big")


def period(max_age: int, refresh_before_expiry_seconds: int) -> int:
    """The refresh period P (seconds, at least 1): `maxAge` minus the refresh margin."""
    return max(1, max_age - refresh_before_expiry_seconds)


def spread(refresh_period: int) -> int:
    """The spread window W (seconds) of a refresh period."""
    return refresh_period // SPREAD_DIVISOR


def lookahead(refresh_period: int) -> int:
    """How far past its own time an epoch refreshes (seconds)."""
    return spread(refresh_period) // LOOKAHEAD_DIVISOR


def due(proven_time: int, account_phase: int, refresh_period: int) -> int:
    """When a position proven at `proven_time` (Unix seconds) must be proven again."""
    return proven_time + refresh_period - spread(refresh_period) * account_phase // PHASES
