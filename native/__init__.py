"""Native core: keccak-256, strict RLP, Merkle-Patricia proof verification, Merkle aggregation,
Verkle (EIP-6800) witness verification, over one C library.

One module per concern, all over ``native._lib``, the only importer of the compiled cffi
library (``native._native``, built from ``native/src/*.c`` by ``native/build_ffi.py``):

    _lib        loads the library and checks its ``spr_version()`` (``NativeVersionError``)
    errors      status codes and the exception tree
    _inputs     argument checks and C-shaped buffers
    keccak      keccak256, keccak256_many
    rlp         rlp_decode
    mpt         verify_proof, verify_account, verify_storage
    snapshot    verify_snapshot (one ``eth_getProof`` result in one call)
    merkle      OpenZeppelin StandardMerkleTree: trees, proofs, multiproofs
    verkle      Banderwagon, IPA, EIP-6800 execution witnesses

Every function validates its Python inputs (types and lengths) before calling C, and turns the
C status code into an exception of one tree right at the call site:

    NativeError                 status code + message from ``spr_strerror``
    +-- RLPError                input is not canonical RLP (Yellow Paper, appendix B)
    +-- ProofError              Merkle-Patricia proof rejected; ``reason`` says why
        +-- StorageProofError   one storage proof of a snapshot rejected (``index``, ``slot``)
    +-- VerkleError             a Verkle witness, point or scalar rejected; ``reason`` says why

Bad argument types raise ``TypeError`` and bad lengths ``ValueError`` before any C runs.
Importing it checks the library's ``spr_version()`` against ``EXPECTED_VERSION`` and raises
``NativeVersionError`` (an ``ImportError``) for a stale build.

Sources: Yellow Paper appendices B (RLP), C (hex-prefix) and D (Merkle-Patricia trie);
EIP-1186 (``eth_getProof``); OpenZeppelin ``@openzeppelin/merkle-tree`` StandardMerkleTree and
``MerkleProof.sol`` (sorted-pair keccak, double-hashed leaves); EIP-6800 (Verkle).
"""

from __future__ import annotations

from native._lib import EXPECTED_VERSION, NativeVersionError, check_version
from native.errors import PROOF_REJECT_REASONS, NativeError, ProofError, RLPError, Status, StorageProofError
from native.keccak import keccak256, keccak256_many
from native.merkle import (
    MAX_MERKLE_LEAVES,
    MerkleProofs,
    MerkleTree,
    MultiProof,
    merkle_claim_tree,
    merkle_hash_pair,
    merkle_leaf,
    merkle_leaves,
    merkle_multiproof_verify,
    merkle_process_proof,
    merkle_tree,
    merkle_tree_encoded,
    merkle_verify,
)
from native.mpt import (
    EMPTY_TRIE_ROOT,
    KECCAK_EMPTY,
    MAX_DEPTH,
    MAX_KEY_LEN,
    Account,
    verify_account,
    verify_proof,
    verify_storage,
)
from native.rlp import RLPItem, rlp_decode
from native.snapshot import SnapshotResult, verify_snapshot
from native.verkle import VERKLE_REJECT_REASONS, VerkleError, VerkleResult, tree_key, verify_execution_witness

__all__ = [
    "EMPTY_TRIE_ROOT",
    "EXPECTED_VERSION",
    "KECCAK_EMPTY",
    "MAX_DEPTH",
    "MAX_KEY_LEN",
    "MAX_MERKLE_LEAVES",
    "PROOF_REJECT_REASONS",
    "VERKLE_REJECT_REASONS",
    "Account",
    "MerkleProofs",
    "MerkleTree",
    "MultiProof",
    "NativeError",
    "NativeVersionError",
    "ProofError",
    "RLPError",
    "RLPItem",
    "SnapshotResult",
    "Status",
    "StorageProofError",
    "VerkleError",
    "VerkleResult",
    "check_version",
    "keccak256",
    "keccak256_many",
    "merkle_claim_tree",
    "merkle_hash_pair",
    "merkle_leaf",
    "merkle_leaves",
    "merkle_multiproof_verify",
    "merkle_process_proof",
    "merkle_tree",
    "merkle_tree_encoded",
    "merkle_verify",
    "rlp_decode",
    "tree_key",
    "verify_account",
    "verify_execution_witness",
    "verify_proof",
    "verify_snapshot",
    "verify_storage",
]
