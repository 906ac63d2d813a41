"""Chain access: JSON-RPC, block headers, EIP-1186 proofs, contract bindings, local anvil nodes."""
