"""Attestation: EIP-712 epoch signatures, their exchange between committee members, and the
committee view (relayer.attestation.view)."""
