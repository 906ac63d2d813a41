"""Gas of each challenge kind (chains/contracts/Challenges.sol), part of ``make bench-gas``.

On the bench's anvil node (Prague): a CollateralVault with ``STORAGE_ENTRIES`` collateral entries
and ``STATE_ACCOUNTS`` more funded accounts (tries as deep as a busy vault's), a MarginSettlement
whose source chain is this node itself (so an EIP-2935 anchor, bench/contracts/HistoryAnchor.sol,
knows its blocks), and one epoch signed by a 2-of-3 committee holding three lies about the latest
block: a wrong stateRoot, wrong claims (one present slot, one absent slot) and a wrong block hash.
Each challenge is sent from a snapshot (a proven lie voids the chain) with the real RLP header
(``eth_getBlockByNumber``) and the real ``eth_getProof`` answer, built by ``chains.challenges``;
the figure is the receipt's ``gasUsed`` (21,000 base and calldata included). Target: <= 700,000.

In the same run, the claim challenge at mainnet's trie depth (``measure_mainnet_depth``): the real
``eth_getProof`` answer of WETH9 at mainnet block 23,223,655 (tests/vectors/proofs: 9 account and 7
storage nodes) against a chain registered on the bench's settlement with WETH9 as its vault and
``balanceOf`` (slot 3) as the collateral mapping; a present slot (the vector's holder) and an absent
one (an exclusion proof made of the same real nodes: an account whose slot's path leaves the trie
at an empty slot of the vector's sixth node). Side by side, the storage-value check alone as it was
before MptProofs (OpenZeppelin ``TrieProof`` + ``RLP``, bench/contracts/TrieProofBaseline.sol) and
as it is, each a transaction on the same proofs.

``python -m bench.gas_challenges`` measures these rows alone on a node of its own.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import replace
from typing import Any

from web3 import Web3
from web3.exceptions import ContractCustomError

from bench.gas_stacks import (
    CHAIN_ID,
    ETH,
    MAX_AGE,
    ROOT,
    Ctx,
    committee_keys,
    compile_bench_contracts,
    dev_account,
    oz_tree,
    random_accounts,
    seed_vault,
)
from chains.anvil import rpc, start_anvil
from chains.bindings import (
    BLOCK_LEAF_TYPES,
    CLAIM_TYPES,
    contract,
    decode_revert,
    deploy_destination,
    mapping_storage_key,
    register_vault,
    send_transaction,
)
from chains.challenges import ChallengeBuilder, ChallengeCall
from chains.headers import verify_header
from chains.proofs import parse_proof
from chains.types import StorageProof
from relayer.attestation.eip712 import order_signatures, sign_epoch

STORAGE_ENTRIES = 3_000
STATE_ACCOUNTS = 3_000
TARGET = 700_000
VECTORS = ROOT / "tests" / "vectors"
MAINNET_PROOF = VECTORS / "proofs" / "mainnet_weth_storage_23223655.json"
MAINNET_HEADER = VECTORS / "headers" / "mainnet" / "23223655_Prague_proofblock.json"
MAINNET_CHAIN_ID = 1
WETH_BALANCE_SLOT = 3  # WETH9's balanceOf mapping
WETH_HOLDER = "0xDe5ae63A348C4d63343C8E20Fb6286909418c8A4"  # the vector's slot: keccak256(abi.encode(holder, 3))
ABSENT_HOLDER = "0x0000000000000000000000000000000000252d1d"
"""The first address (counting up from 1) whose balanceOf slot leaves the vector's storage trie at an
empty slot of its sixth node (path fdef24...; the vector's key is fdef2e...)."""
ABSENT_NODES = 6


def _submit(ctx: Ctx, settlement: str, root: bytes) -> None:
    members = committee_keys(3)
    ms = contract(ctx.w3, "MarginSettlement", settlement)
    generation = int(ms.functions.generation().call())
    signatures = order_signatures(
        (m.address, sign_epoch(m, CHAIN_ID, settlement, 1, root, bytes(32), generation=generation)) for m in members[:2]
    )
    ctx.send(ms.functions.submitEpoch(1, root, bytes(32), signatures), "submitEpoch", gas=None)


def _gas_of(ctx: Ctx, call: ChallengeCall) -> int:
    """gasUsed of `call` sent from a snapshot that is reverted afterwards."""
    snapshot = rpc(ctx.node.url, "evm_snapshot")
    try:
        tx: dict[str, Any] = {**call.tx(), "gas": 3_000_000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 1}
        receipt = send_transaction(ctx.w3, ctx.sender, tx, what=f"challenge {call.kind}")  # type: ignore[arg-type]
        return int(receipt["gasUsed"])
    finally:
        rpc(ctx.node.url, "evm_revert", [snapshot])


def measure_challenges(ctx: Ctx) -> dict[str, Any]:
    """Gas of challengeHeader, challengeClaim (present slot, absent slot) and challengeAnchor."""
    w3 = ctx.w3
    vault, depositors = seed_vault(ctx, STORAGE_ENTRIES, STATE_ACCOUNTS)
    settlement = deploy_destination(w3, ctx.sender, [m.address for m in committee_keys(3)], 2)
    register_vault(w3, ctx.sender, settlement, CHAIN_ID, vault, 0, 10_000, MAX_AGE)
    anchor = ctx.deploy_ref("HistoryAnchor")
    ms = contract(w3, "MarginSettlement", settlement)
    ctx.send(ms.functions.setAnchorPolicy(CHAIN_ID, 0, anchor.address), "setAnchorPolicy", gas=None)

    block = w3.eth.get_block("latest")  # the seeded state; EIP-2935 knows it once the epoch is mined
    number, block_hash, state_root = int(block["number"]), bytes(block["hash"]), bytes(block["stateRoot"])
    present, absent = depositors[0], random_accounts(ctx.rng, 1)[0]
    claims = [(present, 7 * ETH), (absent, 5 * ETH)]  # the truth: 1 wei and 0
    claim_tree = oz_tree(CLAIM_TYPES, claims, proofs=True)

    def leaf(h: bytes, s: bytes) -> tuple[Any, ...]:
        return (CHAIN_ID, number, h, s, int(block["timestamp"]), vault, claim_tree.root, len(claims))

    leaves = [leaf(block_hash, b"\x01" * 32), leaf(block_hash, state_root), leaf(b"\x02" * 32, state_root)]
    epoch = oz_tree(BLOCK_LEAF_TYPES, leaves, proofs=True)
    _submit(ctx, settlement, epoch.root)

    builder = ChallengeBuilder(settlement)
    raw_block: Any = rpc(ctx.node.url, "eth_getBlockByNumber", [hex(number), False])
    header = verify_header(raw_block).rlp
    keys = ["0x" + mapping_storage_key(a, 0).hex() for a, _ in claims]
    proof = parse_proof(rpc(ctx.node.url, "eth_getProof", [vault, keys, hex(number)]), number)

    def claim(i: int) -> ChallengeCall:
        return builder.claim(1, leaves[1], epoch.proofs[1], claims[i], claim_tree.proofs[i], proof, 0)

    calls = {
        "header (stateRoot)": builder.header(1, leaves[0], epoch.proofs[0], header),
        "claim (present slot)": claim(0),
        "claim (absent slot)": claim(1),
        "anchor (EIP-2935)": builder.anchor(1, leaves[2], epoch.proofs[2]),
    }
    gas = {kind: _gas_of(ctx, call) for kind, call in calls.items()}
    mainnet = measure_mainnet_depth(ctx)
    gas.update(mainnet["rows"])
    return {
        "rows": [{"kind": kind, "gas": used} for kind, used in gas.items()],
        "max": max(gas.values()),
        "mainnet_truth_refused_with": mainnet["truth"],
        "mainnet_storage_check": mainnet["storage_check"],
        "mainnet_intrinsic": mainnet["intrinsic"],
        "account_proof_nodes": len(proof.account_proof),
        "storage_proof_nodes": [len(s.proof) for s in proof.storage],
        "header_bytes": len(header),
        "storage_entries": STORAGE_ENTRIES,
        "extra_state_accounts": STATE_ACCOUNTS,
    }


def mainnet_vector() -> tuple[dict[str, Any], Any]:
    """The WETH9 proof (parsed, with a second storage entry: the absent slot) and its block header."""
    header: dict[str, Any] = json.loads(MAINNET_HEADER.read_text())
    proof = parse_proof(json.loads(MAINNET_PROOF.read_text()), int(header["number"], 16))
    present = proof.storage[0]
    assert bytes(present.slot) == mapping_storage_key(WETH_HOLDER, WETH_BALANCE_SLOT), "the vector's slot"
    absent = StorageProof(mapping_storage_key(ABSENT_HOLDER, WETH_BALANCE_SLOT), 0, present.proof[:ABSENT_NODES])  # type: ignore[arg-type]
    return header, replace(proof, storage=(present, absent))


def measure_mainnet_depth(ctx: Ctx) -> dict[str, Any]:
    """challengeClaim gasUsed on the mainnet WETH9 proof (present and absent slot), the truth refused
    (NotALie), and the storage check alone via OpenZeppelin TrieProof vs MptProofs (receipts)."""
    w3 = ctx.w3
    header, proof = mainnet_vector()
    weth = Web3.to_checksum_address(proof.address)
    settlement = deploy_destination(w3, ctx.sender, [m.address for m in committee_keys(3)], 2)
    register_vault(w3, ctx.sender, settlement, MAINNET_CHAIN_ID, weth, WETH_BALANCE_SLOT, 10_000, MAX_AGE)
    held = proof.storage[0].value
    claim_sets = [[(WETH_HOLDER, held + 1), (ABSENT_HOLDER, 5 * ETH)], [(WETH_HOLDER, held), (ABSENT_HOLDER, 0)]]
    trees = [oz_tree(CLAIM_TYPES, claims, proofs=True) for claims in claim_sets]  # lies, then the truth
    block_hash, state_root = bytes.fromhex(header["hash"][2:]), bytes.fromhex(header["stateRoot"][2:])
    number, timestamp = int(header["number"], 16), int(header["timestamp"], 16)
    leaves = [(MAINNET_CHAIN_ID, number, block_hash, state_root, timestamp, weth, t.root, 2) for t in trees]
    epoch = oz_tree(BLOCK_LEAF_TYPES, leaves, proofs=True)
    _submit(ctx, settlement, epoch.root)
    builder = ChallengeBuilder(settlement)

    def call(leaf: int, i: int) -> ChallengeCall:
        claim, claim_proof = claim_sets[leaf][i], trees[leaf].proofs[i]
        return builder.claim(1, leaves[leaf], epoch.proofs[leaf], claim, claim_proof, proof, WETH_BALANCE_SLOT)

    calls = {"claim, mainnet (present slot)": call(0, 0), "claim, mainnet (absent slot)": call(0, 1)}
    gas = {kind: _gas_of(ctx, c) for kind, c in calls.items()}
    meter = ctx.deploy_ref("ExecutionMeter")
    intrinsic = {kind: _intrinsic(ctx, meter, c) for kind, c in calls.items()}
    refused = [_revert_of(ctx, call(1, i)) for i in (0, 1)]
    storage_check = _storage_check(ctx, ctx.deploy_ref("TrieProofBaseline"), meter, state_root, proof)
    return {"rows": gas, "intrinsic": intrinsic, "truth": refused, "storage_check": storage_check}


def _intrinsic(ctx: Ctx, meter: Any, call: ChallengeCall) -> dict[str, int]:
    """Where a challenge's gas goes: 21,000 + calldata (EIP-2028: 4 per zero byte, 16 per other), the
    execution (bench/contracts/GasProbes.sol ExecutionMeter, an eth_call) and the Prague floor
    (EIP-7623: 21,000 + 10 per token, a zero byte 1 token, another 4): gasUsed is the larger of
    base + calldata + execution and the floor."""
    tx = call.tx()
    data = bytes.fromhex(str(tx["data"])[2:])
    zeros = data.count(0)
    used, ok = meter.functions.meter(tx["to"], data).call({"from": ctx.sender.address, "gas": 29_000_000})
    assert ok, "the metered challenge reverted"
    return {
        "base_and_calldata": 21_000 + 4 * zeros + 16 * (len(data) - zeros),
        "execution": int(used),
        "floor": 21_000 + 10 * (zeros + 4 * (len(data) - zeros)),
    }


def _revert_of(ctx: Ctx, call: ChallengeCall) -> str:
    try:
        ctx.w3.eth.call({**call.tx(), "from": ctx.sender.address})  # type: ignore[typeddict-item]
    except ContractCustomError as e:
        return decode_revert(e.data if isinstance(e.data, str) else None)[0]
    return "accepted"


def _storage_check(ctx: Ctx, baseline: Any, meter: Any, state_root: bytes, proof: Any) -> dict[str, dict[str, int]]:
    """The storage-value check alone on the mainnet proof (present slot), OpenZeppelin TrieProof vs
    MptProofs: each a transaction's gasUsed, and its execution (ExecutionMeter)."""
    present = proof.storage[0]
    address = Web3.to_checksum_address(proof.address)
    args = [state_root, address, bytes(present.slot), list(proof.account_proof), list(present.proof)]
    result = {}
    for how, function in (("OpenZeppelin TrieProof", "viaTrieProof"), ("MptProofs", "viaMptProofs")):
        receipt = ctx.send(getattr(baseline.functions, function)(*args), function, gas=None)
        data = baseline.encode_abi(function, args=args)
        used, ok = meter.functions.meter(baseline.address, data).call({"from": ctx.sender.address, "gas": 29_000_000})
        assert ok, f"{function} reverted"
        result[how] = {"gas_used": int(receipt["gasUsed"]), "execution": int(used)}
    return result


def print_challenges(result: dict[str, Any]) -> None:
    print(
        f"challenges (receipt gasUsed; vault of {result['storage_entries']:,} entries, "
        f"{result['account_proof_nodes']} account proof nodes, header {result['header_bytes']} bytes):"
    )
    for r in result["rows"]:
        print(f"  {r['kind']:<30} {r['gas']:>9,}")
    truth = result["mainnet_truth_refused_with"]
    print(f"  mainnet rows: WETH9 at block 23,223,655, 9 account + 7 storage nodes; the truth: {truth}")
    for kind, i in result["mainnet_intrinsic"].items():
        print(
            f"  {kind}: 21,000 + calldata {i['base_and_calldata']:,}, execution {i['execution']:,}, "
            f"EIP-7623 floor {i['floor']:,}"
        )
    for how, used in result["mainnet_storage_check"].items():
        print(
            f"  storage check alone (mainnet proof) via {how:<23} gasUsed {used['gas_used']:>9,}, "
            f"execution {used['execution']:>9,}"
        )
    print(f"  target <= {TARGET:,}: {'met' if result['max'] <= TARGET else 'MISSED'} (max {result['max']:,})")


def main() -> int:
    node = start_anvil(CHAIN_ID, extra_args=("--hardfork", "prague", "--gas-limit", "30000000"))
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 300}))
        ctx = Ctx(node, w3, dev_account(0), compile_bench_contracts(), random.Random(9))
        result = measure_challenges(ctx)
    finally:
        node.stop()
    print_challenges(result)
    return 0 if result["max"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
