"""Chain access: JSON-RPC, block headers, EIP-1186 proofs, contract bindings, local anvil nodes."""

import sys

# py_ecc (imported by eth-account and py-evm) and py-evm itself raise the interpreter's recursion
# limit when imported (to 100,000 and 12,288). The C stack of a thread cannot hold that many
# frames: any recursion driven by outside data (the standard json parser, repr of a nested value)
# then ends the process with SIGSEGV instead of raising RecursionError. Nothing here runs the EVM
# or pairings that would need the deep limit. So both are imported here, first, and the default
# limit is put back, in this one place (every user of chains imports this package first). Outside
# JSON is parsed without recursion anyway (chains.jsonparse).
import eth  # noqa: F401  (py-evm)
import py_ecc  # noqa: F401

RECURSION_LIMIT = 1000
"""The interpreter's default recursion limit, restored after the imports above raised it."""
sys.setrecursionlimit(RECURSION_LIMIT)
