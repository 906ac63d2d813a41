"""Submission: destination contract reads and calldata, and the transaction manager (nonces,
fees, receipts; its tables live in relayer.storage.txstore)."""
