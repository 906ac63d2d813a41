"""The contracts ``python -m bench.gas`` measures, deployed on one anvil node: the bench contracts' compilation,
the OpenZeppelin Merkle oracle, the chain context (node, sender, compiled artifacts, seeded random) and the
three stacks (v2 multiproof, v2 single proofs, v1) with one ``settle`` and ``submit_epoch`` each.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from chains.anvil import DEV_MNEMONIC, AnvilNode, rpc
from chains.bindings import (
    BLOCK_LEAF_TYPES,
    CLAIM_TYPES,
    ContractReverted,
    contract,
    deploy,
    mapping_storage_key,
    transact,
)
from relayer.attestation.eip712 import sign_epoch

ROOT = Path(__file__).resolve().parent.parent
BENCH_CONTRACTS = ROOT / "bench" / "contracts"
OZ_MERKLE = ROOT / "tests" / "js" / "oz_merkle.mjs"  # the OpenZeppelin StandardMerkleTree oracle
TX_GAS = 29_900_000  # gas given to each settlement transaction (all of it fits one block)
CHUNK_BUDGET = 27_000_000  # planned gas per chunk when a batch must be split
CHAIN_ID = 31337
SOURCE_CHAIN = 1001
OTHER_CHAIN = 1002
MAX_AGE = 3_600
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
  for (const base of [dir, path.join(process.cwd(), "node_modules"), process.cwd()]) {
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


def seed_vault(ctx: Ctx, entries: int, funded: int) -> tuple[str, list[str]]:
    """A CollateralVault on the bench node whose `collateral[depositors[i]]` is i + 1 wei for
    `entries` random depositors, among `funded` more accounts holding 1 ETH (tries as deep as a
    busy vault's), written with anvil cheat calls and mined in one block. Returns (vault, depositors)."""
    vault = deploy(ctx.w3, ctx.sender, "CollateralVault", 7_200)
    depositors = random_accounts(ctx.rng, entries)
    calls: list[tuple[str, list[Any]]] = [
        ("anvil_setStorageAt", [vault, "0x" + mapping_storage_key(a, 0).hex(), "0x%064x" % (i + 1)])
        for i, a in enumerate(depositors)
    ]
    calls += [("anvil_setBalance", [a, hex(ETH)]) for a in random_accounts(ctx.rng, funded)]
    batch_rpc(ctx.node.url, calls)
    rpc(ctx.node.url, "evm_mine")
    return vault, depositors


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
