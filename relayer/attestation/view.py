"""The committee view: the destination's committee as this member last read it from the
EpochVerifier (`generation()`, `threshold()`, `members()`)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address


@dataclass(frozen=True, slots=True)
class Committee:
    """The EpochVerifier's current committee: `generation` (1 at deployment, +1 per
    `setCommittee`), `threshold` (member signatures an epoch needs) and `members` (checksummed
    addresses, in the order they were set)."""

    generation: int
    threshold: int
    members: tuple[str, ...]

    def is_member(self, address: str) -> bool:
        """Whether `address` (0x-hex, any case) is a member. Raises ValueError for a malformed address."""
        return to_checksum_address(address) in self.members
