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
3,000-account tree. Writes bench/results/gas.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from chains.anvil import DEV_MNEMONIC, AnvilNode, rpc, start_anvil
from chains.bindings import (
    BLOCK_LEAF_TYPES,
    CLAIM_TYPES,
    ContractReverted,
    contract,
    deploy,
    mapping_storage_key,
    transact,
)
from relayer.attestation.eip712 import order_signatures, sign_epoch

ROOT = Path(__file__).resolve().parent.parent
BENCH_CONTRACTS = ROOT / "bench" / "contracts"
OZ_MERKLE = ROOT / "tests" / "js" / "oz_merkle.mjs"  # the OpenZeppelin StandardMerkleTree oracle
RESULTS = ROOT / "bench" / "results" / "gas.json"

BLOCK_GAS_LIMIT = 30_000_000
TX_GAS = 29_900_000  # gas given to each settlement transaction (all of it fits one block)
CHUNK_BUDGET = 27_000_000  # planned gas per chunk when a batch must be split
SIZES = (10, 100, 1_000, 3_000)
SUBSET = (1_000, 3_000)  # headline: 1,000 changed accounts of a 3,000-account claims tree
COMMITTEES = ((1, 1), (2, 3), (3, 5), (5, 7), (7, 10))  # (threshold, members)
# DESIGN section 2's estimate of submitEpoch: about 24k + 6.75k gas per signature (it does not say
# whether the 21k base and the calldata are in it: the report sets it beside both figures).
DESIGN_SUBMIT_BASE = 24_000
DESIGN_SUBMIT_PER_SIGNATURE = 6_750
CHAIN_ID = 31337
SOURCE_CHAIN = 1001
OTHER_CHAIN = 1002
MAX_AGE = 3_600
MPT_ACCOUNTS = 10
MPT_STORAGE_ENTRIES = 3_000
MPT_STATE_ACCOUNTS = 3_000
FLOOR_ACCOUNTS = 1_000
SEED = 9
ETH = 10**18

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


# ------------------------------------------------------------------------------ node helpers

_COMPILE = r"""
const solc = require("solc");
const fs = require("fs");
const path = require("path");
const dir = process.argv[1];
const files = fs.readdirSync(dir).filter((f) => f.endsWith(".sol")).sort();
const sources = {};
for (const f of files) sources[f] = { content: fs.readFileSync(path.join(dir, f), "utf8") };
function findImports(p) {
  for (const base of [dir, path.join(process.cwd(), "node_modules")]) {
    const file = path.join(base, p);
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `import not found: ${p}` };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) { console.error(errors.map((e) => e.formattedMessage).join("\n")); process.exit(1); }
const result = {};
for (const f of files) {
  for (const [name, c] of Object.entries(out.contracts[f] || {})) {
    if (c.evm.bytecode.object) result[name] = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
  }
}
process.stdout.write(JSON.stringify(result));
"""


def compile_bench_contracts() -> dict[str, dict[str, Any]]:
    """Compile bench/contracts/*.sol with solc-js (same settings as chains/contracts/compile.js)."""
    result = subprocess.run(
        ["node", "-e", _COMPILE, str(BENCH_CONTRACTS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"bench: solc failed on bench/contracts:\n{result.stderr}")
    compiled: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return compiled


@dataclass(frozen=True)
class Tree:
    root: bytes
    proofs: list[list[bytes]]
    multiproofs: list[tuple[list[int], list[bytes], list[bool]]]
    tree_index: list[int]  # tree_index[i]: position of values[i] in the tree (leaves are sorted)


def oz_tree(
    encoding: Sequence[str],
    values: Sequence[Sequence[Any]],
    multiproofs: Sequence[Sequence[int]] = (),
    *,
    proofs: bool = False,
) -> Tree:
    """OpenZeppelin StandardMerkleTree root, single proofs and multiproofs (@openzeppelin/merkle-tree)."""

    def js(v: Any) -> str:
        return "0x" + bytes(v).hex() if isinstance(v, bytes | bytearray) else str(v)

    payload = json.dumps(
        {
            "encoding": list(encoding),
            "values": [[js(v) for v in row] for row in values],
            "proofs": proofs,
            "multiproofs": [list(m) for m in multiproofs],
        }
    )
    result = subprocess.run(
        ["node", str(OZ_MERKLE)], input=payload, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"bench: oz_merkle.mjs failed: {result.stderr}")
    out = json.loads(result.stdout)

    def b(h: str) -> bytes:
        return bytes.fromhex(h[2:])

    return Tree(
        b(out["root"]),
        [[b(h) for h in p] for p in out["proofs"]],
        [(list(m["order"]), [b(h) for h in m["proof"]], list(m["proofFlags"])) for m in out["multiproofs"]],
        [int(i) for i in out["treeIndex"]],
    )


def batch_rpc(url: str, calls: list[tuple[str, list[Any]]], chunk: int = 500) -> None:
    import urllib.request

    for start in range(0, len(calls), chunk):
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(calls[start : start + chunk])
            ]
        ).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            replies = json.loads(response.read())
        errors = [r["error"] for r in replies if "error" in r]
        if errors:
            raise SystemExit(f"bench: batch RPC failed: {errors[0]}")


# ------------------------------------------------------------------------------ chain context


@dataclass
class Ctx:
    node: AnvilNode
    w3: Web3
    sender: LocalAccount
    compiled: dict[str, dict[str, Any]]
    rng: random.Random
    tx_count: int = 0

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def deploy_ref(self, name: str, *args: Any) -> Contract:
        c = self.compiled[name]
        factory = self.w3.eth.contract(abi=c["abi"], bytecode=c["bytecode"])
        receipt = transact(self.w3, self.sender, factory.constructor(*args), what=f"deploy {name}")
        return self.w3.eth.contract(address=to_checksum_address(str(receipt["contractAddress"])), abi=c["abi"])

    def send(self, call: Any, what: str, gas: int | None = TX_GAS) -> TxReceipt:
        self.tx_count += 1
        return transact(self.w3, self.sender, call, what=what, gas=gas)


def random_accounts(rng: random.Random, n: int) -> list[str]:
    return [to_checksum_address(rng.randbytes(20)) for _ in range(n)]


def random_values(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(ETH // 100, 1_000 * ETH) for _ in range(n)]


def committee_keys(n: int) -> list[LocalAccount]:
    return [dev_account(100 + i) for i in range(n)]


def v1_signature(member: LocalAccount, verifier: str, epoch: int, root: bytes) -> bytes:
    """main's v1 EIP-712 attestation: Epoch(uint256 epoch,bytes32 root), version "1"."""
    message = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Epoch": [{"name": "epoch", "type": "uint256"}, {"name": "root", "type": "bytes32"}],
            },
            "primaryType": "Epoch",
            "domain": {"name": "StateProofRelayer", "version": "1", "chainId": CHAIN_ID, "verifyingContract": verifier},
            "message": {"epoch": epoch, "root": root},
        }
    )
    return bytes(member.sign_message(message).signature)


# ------------------------------------------------------------------------------ the three stacks


@dataclass
class Block:
    number: int
    timestamp: int
    accounts: list[str]
    values: list[int]


def intrinsic_gas(data: bytes) -> int:
    """Intrinsic gas of a call with `data` under Prague: max(EIP-2028 cost, EIP-7623 floor)."""
    zeros = data.count(0)
    nonzero = len(data) - zeros
    return 21_000 + max(4 * zeros + 16 * nonzero, 10 * (zeros + 4 * nonzero))


def standard_calldata_gas(data: bytes) -> int:
    """21,000 + EIP-2028 calldata cost (4 per zero byte, 16 per other byte): what a transaction pays
    besides its execution when, as for every submitEpoch here, the EIP-7623 floor is not binding."""
    zeros = data.count(0)
    return 21_000 + 4 * zeros + 16 * (len(data) - zeros)


def split(seq: Sequence[int], parts: int) -> list[list[int]]:
    size = math.ceil(len(seq) / parts)
    return [list(seq[i : i + size]) for i in range(0, len(seq), size)]


@dataclass
class Stack:
    """One settlement design on the bench chain: verifier + settlement, 1-of-1 committee."""

    name: str
    ctx: Ctx
    member: LocalAccount
    verifier: Contract
    settlement: Contract
    vault: str
    epoch: int = 0
    previous: bytes = bytes(32)
    per_account_guess: dict[str, float] = field(default_factory=dict)

    # -- overridden per design
    def block_leaf(self, block: Block, claims_root: bytes) -> tuple[Any, ...]:
        raise NotImplementedError

    def claims_tree(self, block: Block, subsets: Sequence[Sequence[int]]) -> Tree:
        raise NotImplementedError

    def settle_call(
        self, block: Block, leaf: tuple[Any, ...], block_proof: list[bytes], tree: Tree, part: int, indices: list[int]
    ) -> Any:
        raise NotImplementedError

    def submit(self, root: bytes) -> TxReceipt:
        raise NotImplementedError

    # -- shared flow
    def run(self, case: str, block: Block, indices: list[int]) -> dict[str, Any]:
        """Settle `indices` of `block` (claims tree over all of `block.accounts`): epoch, then chunks."""
        guess = self.per_account_guess.get(case.split("-")[0])
        parts = max(1, math.ceil(len(indices) * guess / CHUNK_BUDGET)) if guess else 1
        order = list(indices)
        if parts > 1:  # split along the tree (contiguous leaf ranges): small multiproofs per chunk
            position = self.claims_tree(block, []).tree_index
            order.sort(key=lambda i: position[i])
        while True:
            chunks = split(order, parts)
            tree = self.claims_tree(block, chunks if self.uses_multiproofs else [])
            leaf = self.block_leaf(block, tree.root)
            other = self.other_leaf(block)
            epoch_tree = oz_tree(self.leaf_types, [leaf, other], proofs=True)
            snapshot = rpc(self.ctx.node.url, "evm_snapshot")
            submit = self.submit(epoch_tree.root)
            receipts: list[TxReceipt] = []
            try:
                for k, chunk in enumerate(chunks):
                    call = self.settle_call(block, leaf, epoch_tree.proofs[0], tree, k, chunk)
                    intrinsic = intrinsic_gas(bytes.fromhex(call._encode_transaction_data()[2:]))
                    if intrinsic > CHUNK_BUDGET:  # calldata alone would not fit: split before sending
                        raise ContractReverted(f"{self.name} {case}", "IntrinsicGas", (intrinsic,), b"")
                    receipts.append(self.ctx.send(call, f"{self.name} {case} settle"))
            except ContractReverted as exc:  # out of gas in one block: split further and redo
                rpc(self.ctx.node.url, "evm_revert", [snapshot])
                self.epoch -= 1
                if parts >= len(indices):
                    raise SystemExit(f"bench: {self.name} {case} fails even one account per tx: {exc}") from exc
                if parts == 1:
                    position = self.claims_tree(block, []).tree_index
                    order.sort(key=lambda i: position[i])
                parts = min(len(indices), parts * 2)
                continue
            self.previous = epoch_tree.root
            gas = [int(r["gasUsed"]) for r in receipts]
            self.per_account_guess[case.split("-")[0]] = max(g / len(c) for g, c in zip(gas, chunks, strict=True)) * 1.1
            return {
                "accounts": len(indices),
                "tree": len(block.accounts),
                "txs": len(receipts),
                "gas": sum(gas),
                "per_account": sum(gas) / len(indices),
                "tx_gas": gas,
                "submit_gas": int(submit["gasUsed"]),
            }

    uses_multiproofs: ClassVar[bool] = True
    leaf_types: ClassVar[tuple[str, ...]] = BLOCK_LEAF_TYPES

    def other_leaf(self, block: Block) -> tuple[Any, ...]:
        """A second block leaf (another chain) so the epoch tree is not a single leaf."""
        return (OTHER_CHAIN, *self.block_leaf(block, keccak(b"other chain claims"))[1:])


V1_CLAIM_TYPES = ("uint256", "uint256", "address", "bytes32", "uint256")
V1_BLOCK_LEAF_TYPES = ("uint256", "uint256", "bytes32", "bytes32", "uint256", "bytes32", "uint256")


class V2(Stack):
    def block_leaf(self, block: Block, claims_root: bytes) -> tuple[Any, ...]:
        return (
            SOURCE_CHAIN,
            block.number,
            keccak(b"hash%d" % block.number),
            keccak(b"state%d" % block.number),
            block.timestamp,
            self.vault,
            claims_root,
            len(block.accounts),
        )

    def claims_tree(self, block: Block, subsets: Sequence[Sequence[int]]) -> Tree:
        return oz_tree(CLAIM_TYPES, list(zip(block.accounts, block.values, strict=True)), subsets)

    def settle_call(
        self, block: Block, leaf: tuple[Any, ...], block_proof: list[bytes], tree: Tree, part: int, indices: list[int]
    ) -> Any:
        order, proof, flags = tree.multiproofs[part]
        claims = [(block.accounts[i], block.values[i]) for i in order]
        return self.settlement.functions.settle((self.epoch, leaf, block_proof, claims, proof, flags))

    def submit(self, root: bytes) -> TxReceipt:
        self.epoch += 1
        generation = int(self.verifier.functions.generation().call())
        signature = sign_epoch(
            self.member, CHAIN_ID, self.verifier.address, self.epoch, root, self.previous, generation=generation
        )
        call = self.verifier.functions.submitEpoch(self.epoch, root, self.previous, [signature])
        return self.ctx.send(call, "submitEpoch", gas=None)


class SingleProofs(V2):
    uses_multiproofs = False

    def claims_tree(self, block: Block, subsets: Sequence[Sequence[int]]) -> Tree:
        return oz_tree(CLAIM_TYPES, list(zip(block.accounts, block.values, strict=True)), proofs=True)

    def settle_call(
        self, block: Block, leaf: tuple[Any, ...], block_proof: list[bytes], tree: Tree, part: int, indices: list[int]
    ) -> Any:
        claims = [(block.accounts[i], block.values[i]) for i in indices]
        proofs = [tree.proofs[i] for i in indices]
        return self.settlement.functions.settle(self.epoch, leaf, block_proof, claims, proofs)


class V1(Stack):
    uses_multiproofs = False
    leaf_types = V1_BLOCK_LEAF_TYPES

    def block_leaf(self, block: Block, claims_root: bytes) -> tuple[Any, ...]:
        return (
            SOURCE_CHAIN,
            block.number,
            keccak(b"hash%d" % block.number),
            keccak(b"state%d" % block.number),
            block.timestamp,
            claims_root,
            len(block.accounts),
        )

    def claim(self, block: Block, i: int) -> tuple[Any, ...]:
        return (SOURCE_CHAIN, block.number, self.vault, mapping_storage_key(block.accounts[i], 0), block.values[i])

    def claims_tree(self, block: Block, subsets: Sequence[Sequence[int]]) -> Tree:
        return oz_tree(V1_CLAIM_TYPES, [self.claim(block, i) for i in range(len(block.accounts))], proofs=True)

    def settle_call(
        self, block: Block, leaf: tuple[Any, ...], block_proof: list[bytes], tree: Tree, part: int, indices: list[int]
    ) -> Any:
        accounts = [block.accounts[i] for i in indices]
        proofs = [[(self.epoch, leaf, block_proof, self.claim(block, i), tree.proofs[i])] for i in indices]
        return self.settlement.functions.settleBatch(accounts, proofs)

    def submit(self, root: bytes) -> TxReceipt:
        self.epoch += 1
        signature = v1_signature(self.member, self.verifier.address, self.epoch, root)
        call = self.verifier.functions.submitEpoch(self.epoch, root, [signature])
        return self.ctx.send(call, "submitEpoch", gas=None)


def build_stacks(ctx: Ctx) -> list[Stack]:
    member = committee_keys(1)[0]
    owner = ctx.sender
    vault = to_checksum_address(keccak(b"bench vault")[:20])

    settlement2 = contract(
        ctx.w3, "MarginSettlement", deploy(ctx.w3, owner, "MarginSettlement", owner.address, [member.address], 1)
    )
    verifier2 = contract(ctx.w3, "EpochVerifier", settlement2.address)  # its own verifier
    transact(ctx.w3, owner, settlement2.functions.registerVault(SOURCE_CHAIN, vault, 0, 10_000, MAX_AGE), what="reg")
    v2 = V2("v2", ctx, member, verifier2, settlement2, vault)

    verifier_s = contract(
        ctx.w3, "EpochVerifier", deploy(ctx.w3, owner, "EpochVerifier", owner.address, [member.address], 1)
    )
    single = ctx.deploy_ref("SingleProofSettlement", verifier_s.address, SOURCE_CHAIN, vault, MAX_AGE)
    s = SingleProofs("v2 single proofs", ctx, member, verifier_s, single, vault)

    verifier1 = ctx.deploy_ref("EpochVerifierV1", owner.address, [member.address], 1)
    settlement1 = ctx.deploy_ref("MarginSettlementV1", owner.address, verifier1.address)
    transact(ctx.w3, owner, settlement1.functions.registerVault(SOURCE_CHAIN, vault, 0, 10_000, MAX_AGE), what="reg")
    v1 = V1("v1", ctx, member, verifier1, settlement1, vault)
    return [v2, s, v1]


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


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of ys over xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def committee_gas(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """submitEpoch (v2, steady state) by signature count: marginal gas per extra signature, fitted
    lines for gasUsed and for execution only, against DESIGN's 24k + 6.75k per signature."""
    sigs = [float(r["threshold"]) for r in rows]
    marginal = [None] + [(b["v2"] - a["v2"]) / (b["threshold"] - a["threshold"]) for a, b in pairwise(rows)]
    total_base, total_slope = linear_fit(sigs, [float(r["v2"]) for r in rows])
    exec_base, exec_slope = linear_fit(sigs, [float(r["v2_execution"]) for r in rows])
    intr_base, intr_slope = linear_fit(sigs, [float(r["v2_intrinsic"]) for r in rows])
    return {
        "rows": [
            {
                "committee": r["committee"],
                "signatures": r["threshold"],
                "gas_used": r["v2"],
                "intrinsic": r["v2_intrinsic"],
                "execution": r["v2_execution"],
                "marginal_per_signature": m,
                "design_estimate": DESIGN_SUBMIT_BASE + DESIGN_SUBMIT_PER_SIGNATURE * r["threshold"],
            }
            for r, m in zip(rows, marginal, strict=True)
        ],
        "fit_gas_used": {"base": round(total_base), "per_signature": round(total_slope)},
        "fit_execution": {"base": round(exec_base), "per_signature": round(exec_slope)},
        "fit_intrinsic": {"base": round(intr_base), "per_signature": round(intr_slope)},
        "design": {"base": DESIGN_SUBMIT_BASE, "per_signature": DESIGN_SUBMIT_PER_SIGNATURE},
    }


def print_committee_gas(summary: dict[str, Any]) -> None:
    design = summary["design"]
    print(
        f"\nsubmitEpoch gas by committee size (v2 EpochVerifier, steady-state epoch, ECDSA signatures from "
        f"relayer.attestation.eip712.sign_epoch,\n  ordered with order_signatures; baseline: DESIGN section 2, "
        f"about {design['base']:,} + {design['per_signature']:,} per signature)"
    )
    print(
        f"  {'committee':<10} {'sigs':>4} {'gasUsed':>8} {'base+data':>10} {'execution':>10} "
        f"{'marginal/sig':>13} {'DESIGN est.':>12} {'gasUsed/est':>12} {'exec/est':>9}"
    )
    for r in summary["rows"]:
        m = "-" if r["marginal_per_signature"] is None else f"{r['marginal_per_signature']:,.0f}"
        print(
            f"  {r['committee']:<10} {r['signatures']:>4} {r['gas_used']:>8,} {r['intrinsic']:>10,} "
            f"{r['execution']:>10,} {m:>13} {r['design_estimate']:>12,} "
            f"{r['gas_used'] / r['design_estimate']:>11.2f}x {r['execution'] / r['design_estimate']:>8.2f}x"
        )
    for key, label in (
        ("fit_gas_used", "gasUsed"),
        ("fit_intrinsic", "21k base + calldata"),
        ("fit_execution", "execution"),
    ):
        f = summary[key]
        versus = (
            ""
            if key == "fit_intrinsic"
            else (
                f"   (DESIGN: {design['base']:,} + {design['per_signature']:,}; per signature"
                f" {f['per_signature'] / design['per_signature']:.2f}x, base {f['base'] / design['base']:.2f}x)"
            )
        )
        print(f"  least squares, {label + ':':<21} {f['base']:>7,} + {f['per_signature']:>6,} per signature{versus}")
    print(
        "  (the gas depends on the signatures sent, threshold of them, not on the committee's size: "
        "membership is one mapping read per signer)"
    )


def measure_mpt(ctx: Ctx) -> dict[str, Any]:
    """OpenZeppelin TrieProof on a real eth_getProof of a CollateralVault on this node."""
    url = ctx.node.url
    vault = deploy(ctx.w3, ctx.sender, "CollateralVault", 7_200)
    depositors = random_accounts(ctx.rng, MPT_STORAGE_ENTRIES)
    calls: list[tuple[str, list[Any]]] = [
        ("anvil_setStorageAt", [vault, "0x" + mapping_storage_key(a, 0).hex(), "0x%064x" % (i + 1)])
        for i, a in enumerate(depositors)
    ]
    calls += [("anvil_setBalance", [a, hex(ETH)]) for a in random_accounts(ctx.rng, MPT_STATE_ACCOUNTS)]
    batch_rpc(url, calls)
    rpc(url, "evm_mine")
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


# ------------------------------------------------------------------------------ report


def amortised(row: dict[str, Any], submit_gas: int) -> float:
    return float(row["gas"] + submit_gas) / row["accounts"]


def print_report(result: dict[str, Any]) -> None:
    committees = result["committees"]
    print_committee_gas(result["submit_epoch_by_committee"])
    print("\nsubmitEpoch gasUsed (threshold signatures, steady-state epoch; first epoch in brackets)")
    print(f"  {'committee':<10} {'v2':>16} {'v1':>16}")
    for c in committees:
        print(f"  {c['committee']:<10} {c['v2']:>7,} ({c['v2_first_epoch']:,}) {c['v1']:>7,} ({c['v1_first_epoch']:,})")

    rows = result["settlements"]
    by = {(r["case"], r["design"]): r for r in rows}
    case_names = list(dict.fromkeys(r["case"] for r in rows))
    print("\ngas per settled account, settlement transactions only (receipts: 21k base + calldata incl.)")
    print(
        f"  {'case':<6} {'accounts/tree':>13}  {'v2 multiproof':>15} {'v2 single proofs':>17} {'v1':>15}  {'v1/v2':>6}"
    )
    for kind in ("first", "update"):
        for name in case_names:
            v2, s, v1 = by[(name, "v2")][kind], by[(name, "v2 single proofs")][kind], by[(name, "v1")][kind]
            print(
                f"  {kind:<6} {name:>13}  {v2['per_account']:>9,.0f} ({v2['txs']}tx) "
                f"{s['per_account']:>10,.0f} ({s['txs']}tx) {v1['per_account']:>9,.0f} ({v1['txs']}tx)"
                f"  {v1['per_account'] / v2['per_account']:>5.1f}x"
            )

    print("\ngas per settled account with submitEpoch amortised (per committee)")
    head = " ".join(f"{c['committee']:>8}" for c in committees)
    print(f"  {'case':<6} {'accounts/tree':>13}  v2: {head}   v1: {head}")
    for kind in ("first", "update"):
        for name in case_names:
            v2r, v1r = by[(name, "v2")][kind], by[(name, "v1")][kind]
            a2 = " ".join(f"{amortised(v2r, c['v2']):>8,.0f}" for c in committees)
            a1 = " ".join(f"{amortised(v1r, c['v1']):>8,.0f}" for c in committees)
            print(f"  {kind:<6} {name:>13}  v2: {a2}   v1: {a1}")

    mpt, floor, pull = result["mpt"], result["storage_floor"], result["proven_collateral"]
    print("\nbaselines (same run)")
    print(
        f"  on-chain MPT (OZ TrieProof, account {mpt['account_proof_nodes']} nodes + storage "
        f"{mpt['storage_proof_nodes_mean']:.1f} nodes, + 1 SSTORE): {mpt['per_account_mean']:,.0f} gas per account "
        f"(min {mpt['min']:,}, max {mpt['max']:,}; one tx each)"
    )
    print(
        f"  storage floor, one plain SSTORE per account ({floor['accounts']:,} per tx): fresh "
        f"{floor['fresh_per_account']:,.0f}, update {floor['update_per_account']:,.0f}"
    )
    print(
        f"  provenCollateral (pull check, static call from a contract, {pull['tree']:,}-account tree, "
        f"{pull['claim_proof_nodes']}-node proof): first in a tx mean {pull['mean']:,.0f} (max {pull['max']:,}; "
        f"cold contracts and slots), a second claim in the same tx {pull['second_in_tx_mean']:,.0f}"
    )

    t = result["targets"]
    print("\nissue 9 targets (measured above)")
    for key, (value, limit) in t.items():
        print(f"  {key:<52} {value:>9,.0f} <= {limit:>6,}  {'met' if value <= limit else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gas", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--committees-only",
        action="store_true",
        help="measure and print submitEpoch by committee size only; gas.json is not written",
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
        stacks = build_stacks(ctx)
        print("settlements (per account, receipts incl. base and calldata):", flush=True)
        settlements = measure_settlements(ctx, stacks)
        committees = measure_committees(ctx)
        mpt = measure_mpt(ctx)
        floor = measure_floor(ctx)
        pull = measure_pull(ctx, next(s for s in stacks if type(s) is V2))
        client = str(w3.client_version)
    finally:
        node.stop()

    result = gas_result(client, settlements, committees, mpt, floor, pull)
    result["seconds"] = round(time.monotonic() - started, 1)
    headline = f"{SUBSET[0]}/{SUBSET[1]}"
    update_txs = next(r for r in settlements if r["case"] == headline and r["design"] == "v2")["update"]["txs"]
    if update_txs != 1:
        print(f"note: the {headline} v2 update needed {update_txs} transactions")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(RESULTS)
    print_report(result)
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
