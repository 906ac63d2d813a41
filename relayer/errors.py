"""The relayer's exception tree: every error the daemon raises on purpose derives from RelayerError.

Chain access (`chains`) has its own root, `chains.errors.ChainError` (RPC, headers, proofs,
contract bindings: `ContractReverted` is one), and knows nothing of the daemon. The daemon maps
chain errors where it meets them (a bad proof rejects a snapshot, a wrong chain id stops the
start); what is left of both trees is an expected failure, reported as a message, not a crash:
`except EXPECTED_ERRORS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from chains.errors import ChainError, TransactionError


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


class SubmissionError(RelayerError, TransactionError):
    """A destination transaction of the daemon's could not be sent or submitted, or timed out
    waiting for its receipt: `what`, `detail`, `tx_hash` as in chains.errors.TransactionError,
    of which it is the daemon's kind (a revert is chains.bindings.ContractReverted)."""


class AttestationError(RelayerError):
    """An epoch attestation is malformed: bad root, bad signature, duplicate signer."""


class StoreError(RelayerError):
    """The durable store cannot be opened or written."""


EXPECTED_ERRORS: tuple[type[Exception], ...] = (RelayerError, ChainError)
"""The daemon's own errors and those of chain access: what the daemon and the CLI report as
a message (and an exit status), never as a traceback."""
