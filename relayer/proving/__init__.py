"""Proving: EIP-1186 and Verkle snapshots, fetched and verified by the native library, and the
one-shot proofs of `relayer prove` and `relayer verify`."""
