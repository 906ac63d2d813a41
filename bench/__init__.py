"""Benchmarks that print ratios against named baselines measured in the same run.

``python -m bench`` (``make bench``): the native batch verifier (``native.verify_snapshot``)
against py-trie's ``HexaryTrie.get_from_proof`` on real EIP-1186 proofs, its hashing efficiency
against the library's raw keccak-256 throughput, and the cost of building the claims Merkle tree
against verifying the same number of claims. Writes bench/results/native.json.

``python -m bench.gas`` (``make bench-gas``): gas per settled account of the v2 settlement contracts
against main's v1 contracts, single Merkle proofs, on-chain MPT verification (OpenZeppelin TrieProof)
and the storage floor, all measured on one fresh anvil. Writes bench/results/gas.json.
"""
