"""The proof schemes by the name of a chain's `proof_scheme` setting (relayer.config.PROOF_SCHEMES):
one per trie kind, each a relayer.proving.scheme.ProofScheme."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relayer.config import PROOF_SCHEMES
from relayer.proving.mpt import MptScheme
from relayer.proving.scheme import ProofScheme, VerificationFailed
from relayer.proving.verkle import VerkleScheme

SCHEMES: Mapping[str, ProofScheme] = {s.name: s for s in (MptScheme(), VerkleScheme())}
"""Every scheme by its name; the names are exactly the values PROOF_SCHEMES allows."""

if tuple(SCHEMES) != PROOF_SCHEMES:  # pragma: no cover - a scheme added on one side only
    raise RuntimeError(f"proof schemes {tuple(SCHEMES)} differ from the proof_scheme setting's {PROOF_SCHEMES}")


def scheme_for(document: Any) -> ProofScheme:
    """The scheme whose shape ``document`` has. Raises VerificationFailed when none."""
    if isinstance(document, Mapping):
        for scheme in SCHEMES.values():
            if scheme.matches(document):
                return scheme
    raise VerificationFailed("neither an EIP-1186 proof document nor a Verkle execution witness")
