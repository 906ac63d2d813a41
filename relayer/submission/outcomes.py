"""What sending a transaction comes to (relayer.submission.txmanager): a `Receipt`, or an error
(`TxTimeout`, `TxRejected`, `FeeCapReached`; a reverted one raises chains.bindings.ContractReverted),
and how a node's eth_sendRawTransaction refusal is read (`classify`)."""

from __future__ import annotations

from relayer.errors import SubmissionError
from relayer.storage.txstore import Receipt

__all__ = ["FeeCapReached", "Receipt", "TxRejected", "TxTimeout", "classify"]


class TxTimeout(SubmissionError):
    """No receipt within `receipt_timeout_seconds`. The key stays live: sending it again (or
    `resume()`) keeps watching the same nonce."""


class TxRejected(SubmissionError):
    """The node refused a key's first transaction for a reason a fee or nonce change cannot fix
    (insufficient funds, intrinsic gas, ...). Nothing was ever accepted: the key is forgotten and
    its nonce freed. `code` and `message` are the node's JSON-RPC error."""

    def __init__(self, what: str, message: str, code: int, tx_hash: str | None = None) -> None:
        super().__init__(what, f"rejected by the node: {message}", tx_hash)
        self.code = code
        self.message = message


class FeeCapReached(SubmissionError):
    """The transaction is stuck and a replacement would need fees above `max_fee_cap_wei`.
    `required_wei` is the smallest acceptable replacement max fee, `cap_wei` the cap."""

    def __init__(self, what: str, required_wei: int, cap_wei: int, tx_hash: str | None) -> None:
        super().__init__(
            what, f"replacement needs maxFeePerGas >= {required_wei} wei, above the cap {cap_wei} wei", tx_hash
        )
        self.required_wei = required_wei
        self.cap_wei = cap_wei


_ALREADY_KNOWN = ("already known", "already imported", "known transaction", "alreadyknown")

_NONCE_LOW = ("nonce too low", "nonce is too low", "old nonce", "oldnonce")

_UNDERPRICED = (
    "underpriced",
    "fee too low",
    "less than block base fee",
    "fee cap less than",
    "max fee per gas less than",
    "feecap",
    "gas price too low",
)


def classify(message: str) -> str:
    """A node's eth_sendRawTransaction error: "known", "nonce_low", "underpriced" or "other"
    (geth, erigon, nethermind, reth and anvil wordings)."""
    text = message.lower()
    if any(s in text for s in _ALREADY_KNOWN):
        return "known"
    if any(s in text for s in _NONCE_LOW):
        return "nonce_low"
    if any(s in text for s in _UNDERPRICED):
        return "underpriced"
    return "other"
