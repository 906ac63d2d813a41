"""Gas of each challenge kind (chains/contracts/Challenges.sol), part of ``make bench-gas``.

On the bench's anvil node (Prague): a CollateralVault with ``STORAGE_ENTRIES`` collateral entries
and ``STATE_ACCOUNTS`` more funded accounts (tries as deep as a busy vault's), a MarginSettlement
whose source chain is this node itself (so an EIP-2935 anchor, bench/contracts/HistoryAnchor.sol,
knows its blocks), and one epoch signed by a 2-of-3 committee holding three lies about the latest
block: a wrong stateRoot, wrong claims (one present slot, one absent slot) and a wrong block hash.
Each challenge is sent from a snapshot (a proven lie voids the chain) with the real RLP header
(``eth_getBlockByNumber``) and the real ``eth_getProof`` answer, built by ``chains.challenges``;
the figure is the receipt's ``gasUsed`` (21,000 base and calldata included). Target: <= 700,000.

``python -m bench.gas_challenges`` measures these rows alone on a node of its own.
"""

from __future__ import annotations

import random
import sys
from typing import Any

from web3 import Web3

from bench.gas_stacks import (
    CHAIN_ID,
    ETH,
    MAX_AGE,
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
    deploy_destination,
    mapping_storage_key,
    register_vault,
    send_transaction,
)
from chains.challenges import ChallengeBuilder, ChallengeCall
from chains.headers import verify_header
from chains.proofs import parse_proof
from relayer.attestation.eip712 import order_signatures, sign_epoch

STORAGE_ENTRIES = 3_000
STATE_ACCOUNTS = 3_000
TARGET = 700_000


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
    calls = {
        "header (stateRoot)": builder.header(1, leaves[0], epoch.proofs[0], header),
        "claim (present slot)": builder.claim(
            1,
            leaves[1],
            epoch.proofs[1],
            claims[0],
            claim_tree.proofs[0],
            proof,
            0,
        ),
        "claim (absent slot)": builder.claim(
            1,
            leaves[1],
            epoch.proofs[1],
            claims[1],
            claim_tree.proofs[1],
            proof,
            0,
        ),
        "anchor (EIP-2935)": builder.anchor(1, leaves[2], epoch.proofs[2]),
    }
    gas = {kind: _gas_of(ctx, call) for kind, call in calls.items()}
    return {
        "rows": [{"kind": kind, "gas": used} for kind, used in gas.items()],
        "max": max(gas.values()),
        "account_proof_nodes": len(proof.account_proof),
        "storage_proof_nodes": [len(s.proof) for s in proof.storage],
        "header_bytes": len(header),
        "storage_entries": STORAGE_ENTRIES,
        "extra_state_accounts": STATE_ACCOUNTS,
    }


def print_challenges(result: dict[str, Any]) -> None:
    print(
        f"challenges (receipt gasUsed; vault of {result['storage_entries']:,} entries, "
        f"{result['account_proof_nodes']} account proof nodes, header {result['header_bytes']} bytes):"
    )
    for r in result["rows"]:
        print(f"  {r['kind']:<22} {r['gas']:>9,}")
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
