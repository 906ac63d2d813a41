"""Fixtures for the contract tests: compiled artifacts, module-scoped anvil chains, Merkle oracle.

Each test module starts its own anvil node(s) once, deploys once, and every test runs between an
`evm_snapshot` and an `evm_revert`, so tests stay independent and the module stays fast.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chains.anvil import DEV_MNEMONIC, AnvilNode, rpc, start_anvil
from chains.bindings import BUILD_DIR, CONTRACT_NAMES, ContractReverted

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "chains" / "contracts"
OZ_MERKLE = REPO_ROOT / "tests" / "js" / "oz_merkle.mjs"

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    """Anvil's dev account `index` (public test keys from the standard mnemonic)."""
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def _build_is_current() -> bool:
    sources = [*CONTRACTS_DIR.rglob("*.sol"), CONTRACTS_DIR / "compile.js"]
    artifacts = [BUILD_DIR / f"{name}.json" for name in CONTRACT_NAMES]
    if not all(a.is_file() for a in artifacts):
        return False
    newest_source = max(s.stat().st_mtime for s in sources)
    return min(a.stat().st_mtime for a in artifacts) >= newest_source


@pytest.fixture(scope="session", autouse=True)
def contract_build() -> Path:
    """Compile the contracts once per session when the build is missing or older than a source.

    Fails (never skips) when node or solc cannot compile them. pytest-xdist workers take turns
    (a lock on compile.js): one compiles, the others then find the build current.
    """
    with open(CONTRACTS_DIR / "compile.js", "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _compile_if_stale()
    return BUILD_DIR


def _compile_if_stale() -> None:
    if not _build_is_current():
        result = subprocess.run(
            ["node", str(CONTRACTS_DIR / "compile.js")],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail("node chains/contracts/compile.js failed (run `make setup`):\n" + result.stdout + result.stderr)


@dataclass
class Chain:
    """A running anvil node with a web3 client."""

    node: AnvilNode
    w3: Web3

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def chain_id(self) -> int:
        return self.node.chain_id

    def rpc(self, method: str, params: list[object] | None = None) -> Any:
        return rpc(self.url, method, params)

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if self.rpc("evm_revert", [snapshot_id]) is not True:
            raise RuntimeError(f"evm_revert({snapshot_id}) failed")

    def increase_time(self, seconds: int) -> None:
        self.rpc("evm_increaseTime", [seconds])
        self.rpc("evm_mine")

    def latest_timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def start_chain(chain_id: int) -> Chain:
    node = start_anvil(chain_id)
    return Chain(node=node, w3=Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30})))


@pytest.fixture(scope="module")
def chain_factory() -> Iterator[Callable[[int], Chain]]:
    """Start anvil chains for one module; all are stopped at module end."""
    started: list[Chain] = []

    def make(chain_id: int) -> Chain:
        chain = start_chain(chain_id)
        started.append(chain)
        return chain

    try:
        yield make
    finally:
        for chain in started:
            chain.node.stop()


def reverts(name: str, call: Callable[[], object]) -> ContractReverted:
    """Run `call` and require a ContractReverted whose decoded custom error is `name`."""
    with pytest.raises(ContractReverted) as info:
        call()
    assert info.value.error_name == name, f"expected {name}, got {info.value}"
    return info.value


@dataclass(frozen=True)
class MultiProof:
    """An OpenZeppelin multiproof: `order` = the value indices in the multiproof's leaf order."""

    order: list[int]
    proof: list[bytes]
    flags: list[bool]


@dataclass(frozen=True)
class OzTree:
    """Root, single proofs (`proofs[i]` of values[i]) and requested multiproofs of a StandardMerkleTree."""

    root: bytes
    proofs: list[list[bytes]]
    multiproofs: list[MultiProof]


def _jsonable(v: Any) -> str:
    if isinstance(v, bool):
        raise TypeError("bool leaves are not used")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, bytes | bytearray):
        return "0x" + bytes(v).hex()
    return str(v)


def oz_merkle(
    encoding: Sequence[str],
    values: Sequence[Sequence[Any]],
    multiproofs: Sequence[Sequence[int]] = (),
    *,
    proofs: bool = True,
) -> OzTree:
    """Build an OpenZeppelin StandardMerkleTree with `@openzeppelin/merkle-tree` (tests/js/oz_merkle.mjs).

    Values: ints, 0x-hex strings or bytes. `multiproofs`: lists of value indices, each answered with
    `getMultiProof`. `proofs=False` skips the single proofs (large trees).
    """
    payload = json.dumps(
        {
            "encoding": list(encoding),
            "values": [[_jsonable(v) for v in row] for row in values],
            "proofs": proofs,
            "multiproofs": [list(m) for m in multiproofs],
        }
    )
    result = subprocess.run(
        ["node", str(OZ_MERKLE)],
        input=payload,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"oz_merkle.mjs failed: {result.stderr}")
    out = json.loads(result.stdout)

    def b32(h: str) -> bytes:
        return bytes.fromhex(h[2:])

    return OzTree(
        root=b32(out["root"]),
        proofs=[[b32(h) for h in proof] for proof in out["proofs"]],
        multiproofs=[
            MultiProof(list(m["order"]), [b32(h) for h in m["proof"]], [bool(f) for f in m["proofFlags"]])
            for m in out["multiproofs"]
        ],
    )


def oz_tree(encoding: Sequence[str], values: Sequence[Sequence[Any]]) -> tuple[bytes, list[list[bytes]]]:
    """Root and proofs of an OpenZeppelin StandardMerkleTree (tests/js/oz_merkle.mjs oracle)."""
    tree = oz_merkle(encoding, values)
    return tree.root, tree.proofs


_COMPILE_ONE = r"""
const solc = require("solc");
const fs = require("fs");
const path = require("path");
const [file, name] = process.argv.slice(1);
const input = {
  language: "Solidity",
  sources: { [file]: { content: fs.readFileSync(file, "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
function findImports(p) {  // @openzeppelin/... from the repository's node_modules, chains/... from its root
  for (const full of [path.join(process.cwd(), "node_modules", p), path.join(process.cwd(), p)]) {
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: `not found: ${p}` };
}
const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) { console.error(errors.map((e) => e.formattedMessage).join("\n")); process.exit(1); }
const c = out.contracts[file][name];
process.stdout.write(JSON.stringify({ abi: c.abi, bytecode: "0x" + c.evm.bytecode.object }));
"""


def compile_test_contract(path: Path, name: str) -> tuple[list[dict[str, Any]], str]:
    """Compile a test-only contract (imports from node_modules, or from the repository root such as
    `chains/contracts/X.sol`) with solc-js; returns (abi, 0x-bytecode)."""
    result = subprocess.run(
        ["node", "-e", _COMPILE_ONE, str(path), name],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"solc failed on {path}: {result.stderr}")
    out = json.loads(result.stdout)
    return out["abi"], out["bytecode"]
