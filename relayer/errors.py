"""The relayer's exception tree: every error the daemon raises on purpose derives from RelayerError."""

from __future__ import annotations

from collections.abc import Mapping


class RelayerError(Exception):
    """Root of the relayer's own errors."""


class SnapshotRejected(RelayerError):
    """A snapshot failed verification and is dropped whole; nothing of it is relayed.

    `reason` is a short stable label used in metrics and logs (e.g. "hash_mismatch",
    "header_mismatch", "malformed_proof", "block_hash_unconfirmed"); `chain_id` and
    `block_number` say which. `evidence`: extra log fields that show the mismatch (e.g. both
    block hashes as 0x-hex and the hosts that served them); empty when the detail says it all.
    """

    def __init__(
        self,
        reason: str,
        chain_id: int,
        block_number: int,
        detail: str,
        evidence: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(f"snapshot of chain {chain_id} at block {block_number} rejected ({reason}): {detail}")
        self.reason = reason
        self.chain_id = chain_id
        self.block_number = block_number
        self.detail = detail
        self.evidence = dict(evidence or {})


class SubmissionError(RelayerError):
    """A destination transaction could not be built, was reverted, or timed out waiting for its receipt."""

    def __init__(self, what: str, detail: str, tx_hash: str | None = None) -> None:
        super().__init__(f"{what}: {detail}" + (f" (tx {tx_hash})" if tx_hash else ""))
        self.what = what
        self.detail = detail
        self.tx_hash = tx_hash


class StoreError(RelayerError):
    """The durable store cannot be opened or written."""
