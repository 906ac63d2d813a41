"""Gas of the anchor check per block leaf (issue 20 item 1; target <= 6,000), part of ``bench.gas``.

On the bench's Prague anvil, one MarginSettlement (1-of-1 committee) with two source chains: the
bench chain itself (``Eip2935Anchor`` over the real EIP-2935 history, or the built-in path; leaves
of real blocks)
and an L1 (``OpL1BlockAnchor`` over the ``L1BlockStandIn`` at the L1Block predeploy's address, fed
as the depositor would). One epoch holds a block leaf per case; every measurement runs between an
``evm_snapshot`` and an ``evm_revert``, so each case settles the same leaf with the same calldata
under ``committee`` and under an anchor policy, and the difference is the anchor check alone:

- ``settle``: gasUsed of ``settle`` (one block leaf, SETTLE_CLAIMS fresh accounts), policy minus
  committee: the check with everything cold, as the first leaf of a transaction pays it;
- ``pull_cold`` / ``pull_warm``: ``provenCollateral`` from bench/contracts/GasProbes.sol PullProbe
  (same leaf): the first static call of a transaction (cold) and a second claim of the same leaf
  right after it (adapter and its slots warm), policy minus committee.

Cases: ``eip2935`` (the ``Eip2935Anchor`` adapter, the hash from the history contract),
``builtin`` (the history contract's address as the adapter: MarginSettlement's built-in path, no
adapter slot or call; a recent block, BLOCKHASH), ``builtin 257+`` (the same, a block FAR back: one
call to the history contract), ``op-l1block live`` (the leaf is the current L1 origin) and
``op-l1block recorded`` (recorded with ``record()``, then the origin moved on), and the same two
leaves through MarginSettlement's built-in OP Stack path (the predeploy's address as the L1's
adapter: no adapter contract): ``op builtin recorded`` (recorded in the settlement with
``recordL1Origin()``: one cold slot of its own) and ``op builtin live`` (nothing recorded: that slot,
then the predeploy's ``number()`` and ``hash()``).
"""

from __future__ import annotations

from typing import Any

from eth_utils import keccak, to_checksum_address
from web3.types import TxReceipt

from bench.gas_stacks import CHAIN_ID, MAX_AGE, Ctx, committee_keys, oz_tree, random_accounts, random_values
from chains.anchors import (
    deploy_anchor,
    feed_l1block,
    install_l1block_standin,
    record_l1_origin,
    set_anchor_policy,
)
from chains.anvil import rpc
from chains.bindings import BLOCK_LEAF_TYPES, CLAIM_TYPES, contract, deploy_destination, register_vault, transact
from relayer.attestation.eip712 import sign_epoch

L1_CHAIN = 1
SETTLE_CLAIMS = 10
BUILT_IN_ANCHORS = ("builtin", "builtin 257+", "op builtin recorded")
"""The rows of MarginSettlement's built-in paths a deployment uses: EIP-2935 history (recent or far
back) and recorded OP Stack L1 origins (the live origin is the fallback before anyone records it)."""
FAR = 300  # blocks back of the "builtin 257+" leaf (the history contract, not BLOCKHASH)
TARGET = 6_000


class AnchorBench:
    """The settlement, its adapters, and one accepted epoch over the measured block leaves."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx, w3, owner = ctx, ctx.w3, ctx.sender
        self.member = committee_keys(1)[0]
        self.address = deploy_destination(w3, owner, [self.member.address], 1)
        self.settlement = contract(w3, "MarginSettlement", self.address)
        self.vault = to_checksum_address(keccak(b"bench anchor vault")[:20])
        for chain in (CHAIN_ID, L1_CHAIN):
            register_vault(w3, owner, self.address, chain, self.vault, 0, 10_000, MAX_AGE)
        install_l1block_standin(w3, owner)
        eip2935, op = deploy_anchor(w3, owner, "eip2935"), deploy_anchor(w3, owner, "op-l1block", L1_CHAIN)
        builtin = deploy_anchor(w3, owner, "eip2935-builtin")  # the history contract's address itself
        self.anchors = {"eip2935": eip2935, "builtin": builtin, "builtin 257+": builtin}
        self.anchors |= {"op-l1block recorded": op, "op-l1block live": op}
        predeploy = deploy_anchor(w3, owner, "op-l1block-builtin")  # the L1Block predeploy's address itself
        self.anchors |= {"op builtin recorded": predeploy, "op builtin live": predeploy}
        # named under committee (no block check: the baseline is unchanged), so recordL1Origin records for L1_CHAIN
        set_anchor_policy(w3, owner, self.address, L1_CHAIN, "committee", predeploy)
        self.leaf_of = {name: name for name in self.anchors}
        self.leaf_of |= {"op builtin recorded": "op-l1block recorded", "op builtin live": "op-l1block live"}
        # a block FAR back: out of BLOCKHASH's 256 (anvil roots each block over the bench's whole state: slow)
        rpc(ctx.node.url, "anvil_mine", [FAR], timeout=600)
        self.probe = ctx.deploy_ref("PullProbe")
        self.accounts = random_accounts(ctx.rng, SETTLE_CLAIMS)
        self.values = random_values(ctx.rng, SETTLE_CLAIMS)
        self.claims = oz_tree(
            CLAIM_TYPES, list(zip(self.accounts, self.values, strict=True)), [list(range(SETTLE_CLAIMS))], proofs=True
        )
        now = ctx.now()
        recent = w3.eth.get_block(w3.eth.block_number - 1)
        far = w3.eth.get_block(w3.eth.block_number - FAR)
        self.leaves = {
            "eip2935": self.leaf(CHAIN_ID, int(recent["number"]), bytes(recent["hash"]), now),
            "builtin": self.leaf(CHAIN_ID, int(recent["number"]), bytes(recent["hash"]), now),
            "builtin 257+": self.leaf(CHAIN_ID, int(far["number"]), bytes(far["hash"]), now),
            "op-l1block recorded": self.leaf(L1_CHAIN, 20_000_000, keccak(b"L1 block 20000000"), now),
            "op-l1block live": self.leaf(L1_CHAIN, 20_000_001, keccak(b"L1 block 20000001"), now),
        }
        for name in ("op-l1block recorded", "op-l1block live"):  # the sequencer's feed, then a record
            leaf = self.leaves[name]
            feed_l1block(w3, leaf[1], now, 10**9, leaf[2])
            if name.endswith("recorded"):
                transact(w3, owner, contract(w3, "OpL1BlockAnchor", op).functions.record(), what="record")
                self.record_gas = int(record_l1_origin(w3, owner, self.address)["gasUsed"])
        self.epoch = oz_tree(BLOCK_LEAF_TYPES, list(self.leaves.values()), proofs=True)
        signature = sign_epoch(self.member, CHAIN_ID, self.address, 1, self.epoch.root, bytes(32), generation=1)
        transact(
            w3, owner, self.settlement.functions.submitEpoch(1, self.epoch.root, bytes(32), [signature]), what="epoch"
        )

    def leaf(self, chain: int, number: int, block_hash: bytes, now: int) -> tuple[Any, ...]:
        return (chain, number, block_hash, keccak(b"state"), now, self.vault, self.claims.root, SETTLE_CLAIMS)

    def settle(self, name: str) -> TxReceipt:
        name = self.leaf_of[name]
        index = list(self.leaves).index(name)
        order, proof, flags = self.claims.multiproofs[0]
        claims = [(self.accounts[i], self.values[i]) for i in order]
        call = self.settlement.functions.settle((1, self.leaves[name], self.epoch.proofs[index], claims, proof, flags))
        return self.ctx.send(call, f"settle {name}")

    def pull(self, name: str) -> tuple[int, int]:
        name = self.leaf_of[name]
        index = list(self.leaves).index(name)
        calls = [
            self.settlement.encode_abi(
                "provenCollateral",
                [
                    1,
                    self.leaves[name],
                    self.epoch.proofs[index],
                    self.accounts[k],
                    self.values[k],
                    self.claims.proofs[k],
                ],
            )
            for k in (0, 1)
        ]
        used_first, used_second, _, _ = self.probe.functions.probe(self.address, *calls).call()
        return int(used_first), int(used_second)

    def measure(self, name: str, policy: str) -> dict[str, Any]:
        """(gas under `policy`) - (gas under committee) of the same leaf, each on a reverted snapshot."""
        chain = self.leaves[self.leaf_of[name]][0]
        gas = {}
        for setting in ("committee", policy):
            snapshot = rpc(self.ctx.node.url, "evm_snapshot")
            try:
                if setting != "committee":
                    set_anchor_policy(self.ctx.w3, self.ctx.sender, self.address, chain, setting, self.anchors[name])
                pull = self.pull(name)
                gas[setting] = (int(self.settle(name)["gasUsed"]), *pull)
            finally:
                rpc(self.ctx.node.url, "evm_revert", [snapshot])
        base, anchored = gas["committee"], gas[policy]
        return {
            "case": name,
            "policy": policy,
            "settle": anchored[0] - base[0],
            "pull_cold": anchored[1] - base[1],
            "pull_warm": anchored[2] - base[2],
            "settle_committee_gas": base[0],
        }


def measure_anchors(ctx: Ctx) -> dict[str, Any]:
    """The anchor check's gas per block leaf, per adapter (see the module docstring)."""
    bench = AnchorBench(ctx)
    rows = [
        bench.measure("eip2935", "require-anchor"),
        bench.measure("eip2935", "prefer-anchor"),
        bench.measure("builtin", "require-anchor"),
        bench.measure("builtin", "prefer-anchor"),
        bench.measure("builtin 257+", "require-anchor"),
        bench.measure("op-l1block live", "require-anchor"),
        bench.measure("op-l1block recorded", "require-anchor"),
        bench.measure("op builtin live", "require-anchor"),
        bench.measure("op builtin recorded", "require-anchor"),
        bench.measure("op builtin recorded", "prefer-anchor"),
    ]
    return {"claims_per_leaf": SETTLE_CLAIMS, "target": TARGET, "rows": rows, "record_l1_origin_gas": bench.record_gas}


def print_anchors(result: dict[str, Any]) -> None:
    print(f"\nanchor check per block leaf (policy minus committee, same leaf; target <= {result['target']:,})")
    print(
        f"  {'adapter':<20} {'policy':<15} {'settle (cold)':>13} {'pull cold':>10} {'pull warm':>10}"
        f" {'committee settle':>17}"
    )
    for r in result["rows"]:
        print(
            f"  {r['case']:<20} {r['policy']:<15} {r['settle']:>13,} {r['pull_cold']:>10,} {r['pull_warm']:>10,}"
            f" {r['settle_committee_gas']:>17,}"
        )
    if "record_l1_origin_gas" in result:
        print(f"  recordL1Origin() of one L1 origin (once per L1 block): {result['record_l1_origin_gas']:,} gas")
