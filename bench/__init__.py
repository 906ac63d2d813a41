"""Benchmarks that print ratios against named baselines measured in the same run.

``python -m bench`` (``make bench``): the native batch verifier (``native.verify_snapshot``)
against py-trie's ``HexaryTrie.get_from_proof`` on real EIP-1186 proofs, its hashing efficiency
against the library's raw keccak-256 throughput, and the cost of building the claims Merkle tree
against verifying the same number of claims. Writes bench/results/native.json.
"""
