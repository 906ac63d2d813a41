"""Proving: one ProofScheme per trie kind (relayer.proving.mpt: EIP-1186 Merkle-Patricia;
relayer.proving.verkle: EIP-6800 witnesses; relayer.proving.schemes.SCHEMES by a chain's
`proof_scheme` setting), each fetching and verifying snapshots with the native library and the
one-shot proofs of `relayer prove` and `relayer verify`; relayer.proving.prover holds what every
scheme shares (storage keys, header rejection, block-hash confirmation)."""
