"""Attestation: EIP-712 epoch signatures and their exchange between committee members."""
