"""``python -m bench.gas`` (``make bench-gas``): gas per settled account of the v2 contracts.

Everything below is measured in one run on one fresh anvil node (Prague, 30M block gas limit);
nothing is hard-coded. Figures are receipts' ``gasUsed`` (so they include the 21,000 base and the
calldata of every transaction), divided by the accounts settled:

- **v2**: ``MarginSettlement.settle`` (chains/contracts/build, as shipped): one block leaf, one
  OpenZeppelin multiproof over the claims being settled, one packed slot per account;
- **v2 single proofs**: bench/contracts/SingleProofSettlement.sol, the v2 leaves and storage with
  one single Merkle proof per claim (what the multiproof saves);
- **v1**: main's ``MarginSettlement`` + ``EpochVerifier`` (bench/contracts/*V1.sol): per account a
  full ChainProof (block leaf, block proof, 5-field claim, claim proof), two slots per position;
- **on-chain MPT**: bench/contracts/MptSettlement.sol, OpenZeppelin ``TrieProof`` verifying a real
  ``eth_getProof`` account + storage proof of a CollateralVault on this anvil (3,000 storage
  entries, 3,000 extra funded accounts), then one SSTORE; one transaction per account;
- **storage floor**: one plain SSTORE per account (bench/contracts/GasProbes.sol StorageFloor),
  fresh (zero to nonzero) and update (nonzero to nonzero), 1,000 accounts per transaction.

Cases: N = 10 / 100 / 1,000 / 3,000 accounts, each of a claims tree of N accounts, first
settlement (fresh slots) and update (a newer block, every value changed); plus 1,000 of a
3,000-account tree (a random subset), first settlement and update (the update is the headline).
Batches above one block's gas limit are split into several transactions (each its own multiproof
against the same claims root). The epoch cost (``submitEpoch`` gasUsed, with ``threshold``
signatures, measured per committee size for v2 and v1 on a steady-state epoch) is amortised over
the accounts of the case. ``provenCollateral`` (the pull check) is measured as a margin engine
would pay it: the gas of one static call from a contract (cold target, cold storage), proofs of a
3,000-account tree. Each challenge kind (``bench/gas_challenges.py``) against a real header and
``eth_getProof`` answer of this node. Writes bench/results/gas.json.

The contracts and their stacks: ``bench/gas_stacks.py``; the committee fit and the printed tables:
``bench/gas_report.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3

from bench.gas_anchors import BUILT_IN_ANCHORS, measure_anchors, print_anchors
from bench.gas_challenges import measure_challenges, print_challenges
from bench.gas_report import (
    committee_gas,
    print_committee_gas,
    print_report,
)
from bench.gas_stacks import (
    CHAIN_ID,
    ROOT,
    V2,
    Block,
    Ctx,
    Stack,
    build_stacks,
    committee_keys,
    compile_bench_contracts,
    dev_account,
    intrinsic_gas,
    oz_tree,
    random_accounts,
    random_values,
    seed_vault,
    standard_calldata_gas,
    v1_signature,
)
from chains.anvil import rpc, start_anvil
from chains.bindings import (
    BLOCK_LEAF_TYPES,
    CLAIM_TYPES,
    contract,
    deploy,
    mapping_storage_key,
)
from relayer.attestation.eip712 import order_signatures, sign_epoch

RESULTS = ROOT / "bench" / "results" / "gas.json"

BLOCK_GAS_LIMIT = 30_000_000
SIZES = (10, 100, 1_000, 3_000)
SUBSET = (1_000, 3_000)  # headline: 1,000 changed accounts of a 3,000-account claims tree
COMMITTEES = ((1, 1), (2, 3), (3, 5), (5, 7), (7, 10))  # (threshold, members)
MPT_ACCOUNTS = 10
MPT_STORAGE_ENTRIES = 3_000
MPT_STATE_ACCOUNTS = 3_000
FLOOR_ACCOUNTS = 1_000
SEED = 9


# ------------------------------------------------------------------------------ scenarios


def cases(ctx: Ctx) -> list[tuple[str, Callable[[], tuple[Block, list[int], Block, list[int]]]]]:
    """(case name, factory of (first block, first indices, update block, update indices))."""
    out: list[tuple[str, Callable[[], tuple[Block, list[int], Block, list[int]]]]] = []
    for n in SIZES:

        def make(n: int = n) -> tuple[Block, list[int], Block, list[int]]:
            accounts = random_accounts(ctx.rng, n)
            values = random_values(ctx.rng, n)
            now = ctx.now()
            first = Block(1_000_000 + ctx.rng.randrange(10**6), now, accounts, values)
            update = Block(first.number + 1, now, accounts, [v + 1 for v in values])
            return first, list(range(n)), update, list(range(n))

        out.append((f"{n}/{n}", make))

    def subset() -> tuple[Block, list[int], Block, list[int]]:
        k, n = SUBSET
        accounts = random_accounts(ctx.rng, n)
        values = random_values(ctx.rng, n)
        now = ctx.now()
        chosen = sorted(ctx.rng.sample(range(n), k))
        # first: the chosen accounts settle fresh; update: all n were settled, the chosen k changed
        first = Block(3_000_000 + ctx.rng.randrange(10**6), now, accounts, values)
        changed = list(values)
        for i in chosen:
            changed[i] += 1
        update = Block(first.number + 1, now, accounts, changed)
        return first, chosen, update, chosen

    out.append((f"{SUBSET[0]}/{SUBSET[1]}", subset))
    return out


def measure_settlements(ctx: Ctx, stacks: list[Stack]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, make in cases(ctx):
        first, first_idx, update, update_idx = make()
        subset_case = len(first_idx) < len(first.accounts)
        for stack in stacks:
            t0 = time.monotonic()
            fresh = stack.run("first", first, first_idx)
            if subset_case:  # settle the rest too, so that the update finds every account settled
                rest = sorted(set(range(len(first.accounts))) - set(first_idx))
                stack.run("first-rest", first, rest)
            upd = stack.run("update", update, update_idx)
            rows.append(
                {
                    "case": name,
                    "design": stack.name,
                    "first": fresh,
                    "update": upd,
                    "seconds": round(time.monotonic() - t0, 1),
                }
            )
            print(
                f"  {name:>10} {stack.name:<17} first {fresh['per_account']:>9,.0f} ({fresh['txs']} tx)"
                f"   update {upd['per_account']:>9,.0f} ({upd['txs']} tx)",
                flush=True,
            )
    return rows


def measure_committees(ctx: Ctx) -> list[dict[str, Any]]:
    """submitEpoch gasUsed with `threshold` signatures, epoch 2 (steady state) and epoch 1, v2 and v1.

    The v2 signatures are ECDSA (eth-account) over the EIP-712 digest, made with
    ``relayer.attestation.eip712.sign_epoch`` and ordered with ``order_signatures`` as the daemon does.
    For the steady-state v2 epoch the receipt's gasUsed is also split into the intrinsic part
    (21,000 base + EIP-2028 calldata, computed from the transaction's input) and the rest, the
    contract's execution (checked: the EIP-7623 calldata floor is below gasUsed, so not binding).
    """
    rows = []
    owner = ctx.sender
    for threshold, n in COMMITTEES:
        members = sorted(committee_keys(n), key=lambda a: int(a.address, 16))
        signers = members[:threshold]
        v2 = contract(
            ctx.w3,
            "EpochVerifier",
            deploy(ctx.w3, owner, "EpochVerifier", owner.address, [m.address for m in members], threshold),
        )
        v1 = ctx.deploy_ref("EpochVerifierV1", owner.address, [m.address for m in members], threshold)
        gas2, gas1, previous = [], [], bytes(32)
        calldata = b""
        for epoch in (1, 2):
            root = keccak(b"root%d" % epoch)
            sigs = order_signatures(
                (m.address, sign_epoch(m, CHAIN_ID, v2.address, epoch, root, previous, generation=1))
                for m in signers  # a fresh verifier: generation 1
            )
            call = v2.functions.submitEpoch(epoch, root, previous, sigs)
            calldata = bytes.fromhex(call._encode_transaction_data()[2:])
            gas2.append(int(ctx.send(call, "submit", None)["gasUsed"]))
            previous = root
            sigs1 = order_signatures((m.address, v1_signature(m, v1.address, epoch, root)) for m in signers)
            gas1.append(int(ctx.send(v1.functions.submitEpoch(epoch, root, sigs1), "submit v1", None)["gasUsed"]))
        intrinsic = standard_calldata_gas(calldata)
        if intrinsic_gas(calldata) >= gas2[1]:
            raise SystemExit("bench: submitEpoch paid the EIP-7623 calldata floor; the split would be wrong")
        rows.append(
            {
                "committee": f"{threshold}-of-{n}",
                "threshold": threshold,
                "members": n,
                "v2": gas2[1],
                "v2_first_epoch": gas2[0],
                "v1": gas1[1],
                "v1_first_epoch": gas1[0],
                "v2_calldata_bytes": len(calldata),
                "v2_intrinsic": intrinsic,
                "v2_execution": gas2[1] - intrinsic,
            }
        )
    return rows


def measure_mpt(ctx: Ctx) -> dict[str, Any]:
    """OpenZeppelin TrieProof on a real eth_getProof of a CollateralVault on this node."""
    url = ctx.node.url
    vault, depositors = seed_vault(ctx, MPT_STORAGE_ENTRIES, MPT_STATE_ACCOUNTS)
    block = ctx.w3.eth.get_block("latest")
    chosen = depositors[:MPT_ACCOUNTS]
    proof: Any = rpc(
        url, "eth_getProof", [vault, ["0x" + mapping_storage_key(a, 0).hex() for a in chosen], hex(block["number"])]
    )
    mpt = ctx.deploy_ref("MptSettlement")
    gas, nodes = [], []
    account_proof = [bytes(HexBytes(n)) for n in proof["accountProof"]]
    for k, account in enumerate(chosen):
        storage_proof = [bytes(HexBytes(n)) for n in proof["storageProof"][k]["proof"]]
        call = mpt.functions.settle(bytes(block["stateRoot"]), vault, account_proof, account, 0, storage_proof)
        receipt = ctx.send(call, "mpt settle", gas=None)
        if mpt.functions.positions(account).call() & ((1 << 128) - 1) != k + 1:
            raise SystemExit("bench: MptSettlement stored a wrong value")
        gas.append(int(receipt["gasUsed"]))
        nodes.append(len(storage_proof))
    return {
        "accounts": len(chosen),
        "per_account_mean": sum(gas) / len(gas),
        "min": min(gas),
        "max": max(gas),
        "account_proof_nodes": len(account_proof),
        "storage_proof_nodes_mean": sum(nodes) / len(nodes),
        "storage_entries": MPT_STORAGE_ENTRIES,
        "extra_state_accounts": MPT_STATE_ACCOUNTS,
    }


def measure_floor(ctx: Ctx) -> dict[str, Any]:
    floor = ctx.deploy_ref("StorageFloor")
    accounts = random_accounts(ctx.rng, FLOOR_ACCOUNTS)
    fresh = int(ctx.send(floor.functions.write(accounts, (1 << 200) | 12345), "floor fresh")["gasUsed"])
    update = int(ctx.send(floor.functions.write(accounts, (1 << 200) | 54321), "floor update")["gasUsed"])
    return {
        "accounts": FLOOR_ACCOUNTS,
        "fresh_per_account": fresh / FLOOR_ACCOUNTS,
        "update_per_account": update / FLOOR_ACCOUNTS,
    }


def measure_pull(ctx: Ctx, v2: Stack) -> dict[str, Any]:
    """provenCollateral from a contract: one static call's gas (cold settlement, cold verifier)."""
    n = SUBSET[1]
    accounts, values = random_accounts(ctx.rng, n), random_values(ctx.rng, n)
    block = Block(5_000_000, ctx.now(), accounts, values)
    tree = oz_tree(CLAIM_TYPES, list(zip(accounts, values, strict=True)), proofs=True)
    leaf = v2.block_leaf(block, tree.root)
    epoch_tree = oz_tree(BLOCK_LEAF_TYPES, [leaf, v2.other_leaf(block)], proofs=True)
    v2.submit(epoch_tree.root)
    v2.previous = epoch_tree.root
    probe = ctx.deploy_ref("PullProbe")
    first, second = [], []
    for i in range(0, n, n // 10):
        j = (i + 1) % n
        calls = [
            v2.settlement.encode_abi(
                "provenCollateral", [v2.epoch, leaf, epoch_tree.proofs[0], accounts[k], values[k], tree.proofs[k]]
            )
            for k in (i, j)
        ]
        used_first, used_second, out_first, out_second = probe.functions.probe(v2.settlement.address, *calls).call()
        if int.from_bytes(out_first, "big") != values[i] or int.from_bytes(out_second, "big") != values[j]:
            raise SystemExit("bench: provenCollateral returned a wrong value")
        first.append(int(used_first))
        second.append(int(used_second))
    return {
        "tree": n,
        "samples": len(first),
        "mean": sum(first) / len(first),
        "max": max(first),
        "second_in_tx_mean": sum(second) / len(second),
        "claim_proof_nodes": len(tree.proofs[0]),
        "block_proof_nodes": len(epoch_tree.proofs[0]),
    }


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gas", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--committees-only",
        action="store_true",
        help="measure and print submitEpoch by committee size only; gas.json is not written",
    )
    parser.add_argument(
        "--anchors-only",
        action="store_true",
        help="measure and print the anchor check per block leaf only (bench/gas_anchors.py); gas.json is not written",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    print("bench gas: compiling bench/contracts (v1 reference, single proofs, TrieProof, probes)", flush=True)
    compiled = compile_bench_contracts()
    node = start_anvil(CHAIN_ID, extra_args=("--hardfork", "prague", "--gas-limit", str(BLOCK_GAS_LIMIT)))
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 300}))
        ctx = Ctx(node, w3, dev_account(0), compiled, random.Random(SEED))
        if args.committees_only:
            print_committee_gas(committee_gas(measure_committees(ctx)))
            return 0
        if args.anchors_only:
            print_anchors(measure_anchors(ctx))
            return 0
        stacks = build_stacks(ctx)
        print("settlements (per account, receipts incl. base and calldata):", flush=True)
        settlements = measure_settlements(ctx, stacks)
        committees = measure_committees(ctx)
        mpt = measure_mpt(ctx)
        floor = measure_floor(ctx)
        pull = measure_pull(ctx, next(s for s in stacks if type(s) is V2))
        anchors = measure_anchors(ctx)
        challenges = measure_challenges(ctx)
        client = str(w3.client_version)
    finally:
        node.stop()

    result = gas_result(client, settlements, committees, mpt, floor, pull)
    return write_results(result, anchors, challenges, started)


def write_results(result: dict[str, Any], anchors: dict[str, Any], challenges: dict[str, Any], started: float) -> int:
    """Add the anchor and challenge rows to `result`, write bench/results/gas.json, print the report."""
    result["anchors"] = anchors
    built_in = [r["settle"] for r in anchors["rows"] if r["case"] in BUILT_IN_ANCHORS]
    others = [r["settle"] for r in anchors["rows"] if r["case"] not in BUILT_IN_ANCHORS]
    result["targets"]["anchor check per block leaf, cold, built-in paths (worst)"] = (max(built_in), anchors["target"])
    result["targets"]["anchor check per block leaf, cold, adapters and live OP origin (worst)"] = (
        max(others),
        anchors["target"],
    )
    result["challenges"] = challenges
    result["targets"]["challenge, any kind (max of rows)"] = (challenges["max"], 700_000)
    result["seconds"] = round(time.monotonic() - started, 1)
    headline = f"{SUBSET[0]}/{SUBSET[1]}"
    rows = result["settlements"]
    update_txs = next(r for r in rows if r["case"] == headline and r["design"] == "v2")["update"]["txs"]
    if update_txs != 1:
        print(f"note: the {headline} v2 update needed {update_txs} transactions")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(RESULTS)
    print_anchors(anchors)
    print_report(result)
    print_challenges(challenges)
    print(f"\nwrote {RESULTS.relative_to(ROOT)} in {result['seconds']} s")
    return 0


def gas_result(
    client: str,
    settlements: list[dict[str, Any]],
    committees: list[dict[str, Any]],
    mpt: dict[str, Any],
    floor: dict[str, Any],
    pull: dict[str, Any],
) -> dict[str, Any]:
    """The content of gas.json but its "seconds": the node, every measurement and the issue 9
    targets as (measured gas, limit) pairs."""

    def row(case: str, design: str) -> dict[str, Any]:
        return next(r for r in settlements if r["case"] == case and r["design"] == design)

    headline = f"{SUBSET[0]}/{SUBSET[1]}"
    largest_first = max(row(f"{n}/{n}", "v2")["first"]["per_account"] for n in SIZES if n >= 100)
    return {
        "node": {"client": client, "hardfork": "prague", "block_gas_limit": BLOCK_GAS_LIMIT},
        "settlements": settlements,
        "committees": committees,
        "submit_epoch_by_committee": committee_gas(committees),
        "mpt": mpt,
        "storage_floor": floor,
        "proven_collateral": pull,
        "targets": {
            f"v2 update, {headline} changed, one call, per account": (
                row(headline, "v2")["update"]["per_account"],
                8_000,
            ),
            "v2 first settlement, per account (worst of N >= 100)": (largest_first, 26_000),
            f"v2 first settlement, {headline}, per account": (row(headline, "v2")["first"]["per_account"], 26_000),
            "provenCollateral pull check (max of samples)": (pull["max"], 12_000),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
