"""chains.challenges: the calldata of each challenge decodes back to its arguments (no node)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode
from eth_utils import function_abi_to_4byte_selector, get_abi_input_types

from chains.bindings import load_artifact, mapping_storage_key
from chains.challenges import ChallengeBuilder, ChallengeInputError
from chains.errors import MalformedProof
from chains.headers import verify_header
from chains.proofs import parse_proof

SETTLEMENT = "0x" + "ab" * 20
ACCOUNT = "0x" + "12" * 20
LEAF = (1, 23223655, b"\x01" * 32, b"\x02" * 32, 1_700_000_000, "0x" + "cd" * 20, b"\x03" * 32, 2)
BLOCK_PROOF = [b"\x04" * 32, b"\x05" * 32]


def decoded(name: str, data: str) -> tuple[Any, ...]:
    entry = next(e for e in load_artifact("MarginSettlement").abi if e.get("name") == name)
    raw = bytes.fromhex(data[2:])
    assert raw[:4] == function_abi_to_4byte_selector(entry)
    return tuple(decode(list(get_abi_input_types(entry)), raw[4:]))


def proof_answer(vectors: Path) -> dict[str, Any]:
    """A real eth_getProof answer (hive test chain) whose storage entry is the account's slot 0."""
    answer: dict[str, Any] = json.loads((vectors / "proofs" / "hive_testchain_account_with_storage.json").read_text())
    answer["storageProof"][0]["key"] = "0x" + mapping_storage_key(ACCOUNT, 0).hex()
    return answer


def test_header_call(vectors: Path) -> None:
    block = json.loads((vectors / "headers" / "mainnet" / "23223655_Prague_proofblock.json").read_text())
    header = verify_header(block)
    builder = ChallengeBuilder(SETTLEMENT)
    call = builder.header(7, LEAF, BLOCK_PROOF, header)
    assert call.kind == "header" and call.tx() == {"to": builder.settlement, "data": call.data}
    epoch, leaf, proof, rlp_header = decoded("challengeHeader", call.data)
    assert (epoch, leaf[0], leaf[2], list(proof), rlp_header) == (7, 1, LEAF[2], BLOCK_PROOF, header.rlp)
    assert builder.header(7, LEAF, BLOCK_PROOF, header.rlp) == call  # raw RLP bytes alike


def test_claim_call_from_a_parsed_or_raw_answer(vectors: Path) -> None:
    answer = proof_answer(vectors)
    builder = ChallengeBuilder(SETTLEMENT)
    call = builder.claim(3, LEAF, BLOCK_PROOF, (ACCOUNT, 5), [b"\x06" * 32], answer, 0)
    assert builder.claim(3, LEAF, BLOCK_PROOF, (ACCOUNT, 5), [b"\x06" * 32], parse_proof(answer, LEAF[1]), 0) == call
    epoch, _, _, claim, claim_proof, account_proof, storage_proof = decoded("challengeClaim", call.data)
    assert (epoch, claim[0].lower(), claim[1], list(claim_proof)) == (3, ACCOUNT, 5, [b"\x06" * 32])
    assert list(account_proof) == [bytes.fromhex(n[2:]) for n in answer["accountProof"]]
    assert list(storage_proof) == [bytes.fromhex(n[2:]) for n in answer["storageProof"][0]["proof"]]


def test_anchor_call() -> None:
    call = ChallengeBuilder(SETTLEMENT).anchor(2, LEAF, BLOCK_PROOF)
    assert decoded("challengeAnchor", call.data)[0] == 2 and call.kind == "anchor"


def test_bad_inputs(vectors: Path) -> None:
    builder = ChallengeBuilder(SETTLEMENT)
    with pytest.raises(ChallengeInputError, match="no storage proof"):  # slot 1, not the registered 0
        builder.claim(3, LEAF, BLOCK_PROOF, (ACCOUNT, 5), [], proof_answer(vectors), 1)
    with pytest.raises(ChallengeInputError, match="8 fields"):
        builder.anchor(2, LEAF[:7], BLOCK_PROOF)  # type: ignore[arg-type]
    with pytest.raises(MalformedProof):
        builder.claim(3, LEAF, BLOCK_PROOF, (ACCOUNT, 5), [], {"address": "0x12"}, 0)
