"""Aggregation: claims trees, block leaves and the epoch root (OpenZeppelin StandardMerkleTree
format)."""
