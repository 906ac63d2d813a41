"""MarginSettlement's assembly multiproof against OpenZeppelin's (differential, on anvil).

`settle` verifies the claims of a block with its own assembly version of OpenZeppelin's
`MerkleProof.processMultiProofCalldata` (for gas). Here every multiproof `@openzeppelin/merkle-tree`
produces for trees of 1 to 23 claims must settle, and every mutated one (flag flipped, dropped or
added, proof node dropped, added or replaced, claims swapped, duplicated, dropped or changed) must
settle exactly when OpenZeppelin's Solidity `multiProofVerifyCalldata` accepts it
(tests/contracts/solidity/OzMultiproof.sol). Calls are `eth_call`s: nothing is written.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from chains.bindings import (
    BLOCK_LEAF_TYPES,
    CLAIM_TYPES,
    contract,
    decode_revert,
    deploy_destination,
    register_vault,
    transact,
)
from relayer.attestation.eip712 import sign_epoch
from tests.contracts.conftest import Chain, compile_test_contract, dev_account, oz_merkle

pytestmark = pytest.mark.integration

CHAIN = 1001
VAULT = to_checksum_address("0x" + "42" * 20)
SIZES = (1, 2, 3, 7, 23)
SUBSETS_PER_TREE = 8
FLAG_FLIPS = 6  # flipped flag positions per multiproof (random)


@dataclass
class Tree:
    claims: list[tuple[str, int]]
    leaf: tuple[Any, ...]
    block_proof: list[bytes]
    root: bytes
    multiproofs: list[tuple[list[int], list[bytes], list[bool]]]


@dataclass
class Env:
    chain: Chain
    settlement: Contract
    oz: Contract
    trees: list[Tree]
    epoch: int


@pytest.fixture(scope="module")
def env(chain_factory: Callable[[int], Chain]) -> Env:
    chain = chain_factory(31337)
    owner, member = dev_account(0), dev_account(5)
    settlement = deploy_destination(chain.w3, owner, [member.address], 1)
    register_vault(chain.w3, owner, settlement, CHAIN, VAULT, 0, 10_000, 3_600)
    abi, bytecode = compile_test_contract(Path(__file__).parent / "solidity" / "OzMultiproof.sol", "OzMultiproof")
    factory = chain.w3.eth.contract(abi=abi, bytecode=bytecode)
    oz = chain.w3.eth.contract(
        address=transact(chain.w3, owner, factory.constructor(), what="deploy")["contractAddress"], abi=abi
    )

    rng = random.Random(2026)
    now = chain.latest_timestamp()
    trees_in: list[tuple[list[tuple[str, int]], list[list[int]]]] = []
    for n in SIZES:
        claims = [(to_checksum_address(rng.randbytes(20)), rng.randrange(0, 10**24)) for _ in range(n)]
        subsets = [[i] for i in rng.sample(range(n), min(n, 3))] + [list(range(n))]
        subsets += [rng.sample(range(n), rng.randint(1, n)) for _ in range(SUBSETS_PER_TREE)]
        trees_in.append((claims, subsets))
    built = [oz_merkle(CLAIM_TYPES, claims, subsets, proofs=False) for claims, subsets in trees_in]
    leaves = [
        (CHAIN, 100 + k, keccak(b"h%d" % k), keccak(b"s%d" % k), now, VAULT, t.root, len(c))
        for k, (t, (c, _)) in enumerate(zip(built, trees_in, strict=True))
    ]
    epoch_tree = oz_merkle(BLOCK_LEAF_TYPES, leaves)
    signature = sign_epoch(member, chain.chain_id, settlement, 1, epoch_tree.root, bytes(32), generation=1)
    target = contract(chain.w3, "EpochVerifier", settlement)
    transact(chain.w3, owner, target.functions.submitEpoch(1, epoch_tree.root, bytes(32), [signature]), what="submit")
    trees = [
        Tree(c, leaves[k], epoch_tree.proofs[k], t.root, [(m.order, m.proof, m.flags) for m in t.multiproofs])
        for k, (t, (c, _)) in enumerate(zip(built, trees_in, strict=True))
    ]
    return Env(chain, contract(chain.w3, "MarginSettlement", settlement), oz, trees, 1)


Case = tuple[Tree, list[tuple[str, int]], list[bytes], list[Any]]


def batch_call(env: Env, calls: list[tuple[str, str]], chunk: int = 100) -> list[tuple[bool, bytes]]:
    """eth_call (to, data) pairs in JSON-RPC batches: (succeeded, return or revert data) each."""
    out = []
    for start in range(0, len(calls), chunk):
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": "eth_call", "params": [{"to": to, "data": data}, "latest"]}
                for i, (to, data) in enumerate(calls[start : start + chunk])
            ]
        ).encode()
        request = urllib.request.Request(env.chain.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            replies = json.loads(response.read())
        if not isinstance(replies, list):
            raise RuntimeError(f"batch eth_call refused: {replies}")
        for reply in sorted(replies, key=lambda r: r["id"]):
            if "error" in reply:
                data = reply["error"].get("data") or "0x"
                out.append((False, bytes.fromhex(str(data)[2:])))
            else:
                out.append((True, bytes.fromhex(reply["result"][2:])))
    return out


def verdicts(env: Env, cases: list[Case]) -> list[tuple[bool, bool]]:
    """(settle accepts, OpenZeppelin accepts) per case. settle may only reject with ClaimsNotInBlock
    (every block is valid); OpenZeppelin rejects by returning false or reverting."""
    calls = []
    for tree, claims, proof, flags in cases:
        settle = env.settlement.functions.settle((env.epoch, tree.leaf, tree.block_proof, claims, proof, flags))
        oz = env.oz.functions.verify(claims, proof, flags, tree.root)
        calls.append((env.settlement.address, settle._encode_transaction_data()))
        calls.append((env.oz.address, oz._encode_transaction_data()))
    results = batch_call(env, calls)
    out = []
    for k in range(len(cases)):
        (ok, data), (oz_ok, oz_data) = results[2 * k], results[2 * k + 1]
        if not ok and decode_revert(data)[0] != "ClaimsNotInBlock":
            raise AssertionError(f"settle reverted with {decode_revert(data)} on case {k}")
        out.append((ok, oz_ok and int.from_bytes(oz_data, "big") == 1))
    return out


Mutation = tuple[str, list[tuple[str, int]], list[bytes], list[bool]]


def mutations(
    rng: random.Random, claims: list[tuple[str, int]], proof: list[bytes], flags: list[bool]
) -> Iterator[Mutation]:
    yield "value+1", [(claims[0][0], claims[0][1] + 1), *claims[1:]], proof, flags
    if len(claims) > 1:
        i, j = rng.sample(range(len(claims)), 2)
        swapped = list(claims)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        yield "swap", swapped, proof, flags
        yield "drop claim", claims[:-1], proof, flags
        yield "drop claim+flag", claims[:-1], proof, flags[:-1]
    yield "duplicate claim", [*claims, claims[0]], proof, [*flags, True]
    yield "duplicate claim, proof node", [*claims, claims[-1]], [*proof, keccak(b"x")], [*flags, True, False]
    for k in rng.sample(range(len(flags)), min(len(flags), FLAG_FLIPS)):
        yield f"flip flag {k}", claims, proof, [not f if i == k else f for i, f in enumerate(flags)]
    if flags:
        yield "drop flag", claims, proof, flags[:-1]
    yield "extra flag", claims, proof, [*flags, False]
    yield "extra proof node", claims, [*proof, keccak(b"y")], flags
    yield "extra proof node+flag", claims, [*proof, keccak(b"y")], [*flags, False]
    if proof:
        yield "drop proof node", claims, proof[:-1], flags
        yield "replace proof node", claims, [keccak(b"z"), *proof[1:]], flags
        yield "proof node as claim", claims, proof[1:], flags
    yield "empty proof and flags", claims, [], []


def test_every_oz_multiproof_settles(env: Env) -> None:
    cases: list[Case] = [
        (tree, [tree.claims[i] for i in order], proof, flags)
        for tree in env.trees
        for order, proof, flags in tree.multiproofs
    ]
    assert len(cases) == sum(min(len(t.claims), 3) + 1 + SUBSETS_PER_TREE for t in env.trees)
    assert verdicts(env, cases) == [(True, True)] * len(cases)


def test_mutated_multiproofs_agree_with_openzeppelin(env: Env) -> None:
    rng = random.Random(7)
    cases: list[Case] = []
    names = []
    for tree in env.trees:
        for order, proof, flags in tree.multiproofs:
            claims = [tree.claims[i] for i in order]
            for what, c, p, f in mutations(rng, claims, proof, flags):
                if c:
                    cases.append((tree, c, p, f))
                    names.append((what, len(tree.claims), order))
    results = verdicts(env, cases)
    disagreements = [(n, r) for n, r in zip(names, results, strict=True) if r[0] != r[1]]
    assert disagreements == []
    accepted = sum(ours for ours, _ in results)
    # most mutations break the proof; a few are equivalent proofs (siblings swapped: pairs are sorted)
    assert len(results) - accepted > 300 and accepted < len(results) // 4


def test_flag_words_other_than_bool_are_rejected(env: Env) -> None:
    """A flag word of 2 is not an ABI bool: refused (OpenZeppelin's Solidity reverts on decoding it)."""
    tree = env.trees[-1]
    order, proof, flags = tree.multiproofs[-1]
    claims = [tree.claims[i] for i in order]
    assert True in flags
    call = env.settlement.functions.settle((env.epoch, tree.leaf, tree.block_proof, claims, proof, flags))
    good = bytes.fromhex(call._encode_transaction_data()[2:])
    leaf_type = "(uint256,uint256,bytes32,bytes32,uint256,address,bytes32,uint256)"
    settlement_type = f"(uint256,{leaf_type},bytes32[],(address,uint256)[],bytes32[],uint256[])"
    head = (env.epoch, tree.leaf, tree.block_proof, claims, proof)
    args = encode([settlement_type], [(*head, [2 if f else 0 for f in flags])])
    as_ints = encode([settlement_type], [(*head, [int(f) for f in flags])])
    assert good[4:] == as_ints  # the same encoding as bools 0/1
    w3 = env.chain.w3
    assert w3.eth.call({"to": env.settlement.address, "data": good})
    with pytest.raises(ContractLogicError) as info:
        w3.eth.call({"to": env.settlement.address, "data": good[:4] + args})
    assert decode_revert(info.value.data)[0] == "ClaimsNotInBlock"
