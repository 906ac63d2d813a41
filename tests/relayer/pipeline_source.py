"""The fake source chain of the pipeline tests (tests/relayer/test_pipeline*.py): `SourceChain`, a
JSON-RPC endpoint over real Merkle-Patricia tries and real headers, and the accounts and deposits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from eth_account import Account
from eth_utils import keccak, to_canonical_address, to_checksum_address
from trie import HexaryTrie

from chains.headers import build_header, encode_header
from chains.rpc import RpcMethods, hex_to_int
from relayer.proving.prover import collateral_storage_key
from tests.native._util import pytrie_proof

T0 = 1_700_000_000
SOURCE_ID = 1001
DEST_ID = 2002
VAULT = to_checksum_address("0x" + "5a" * 20)
VERIFIER = to_checksum_address("0x" + "e1" * 20)
SETTLEMENT = to_checksum_address("0x" + "e2" * 20)
SENDER = to_checksum_address("0x" + "e3" * 20)
SLOT = 3
MAX_AGE = 3600
ALICE = to_checksum_address("0x" + "a1" * 20)
BOB = to_checksum_address("0x" + "b0" * 20)
CAROL = to_checksum_address("0x" + "c4" * 20)  # configured, never deposited: an exclusion proof
# deposits at block 5 (the vault's deployment): epoch 1 is at block 8 (a snapshot every 4 blocks)
DEPOSITS: dict[int, dict[str, int]] = {5: {ALICE: 10**18, BOB: 2 * 10**18}}
EPOCH1_BLOCK = 8

BLANK_ROOT = keccak(rlp.encode(b""))
EMPTY_CODE = keccak(b"")
VAULT_CODE = keccak(b"vault code")

A, B, C = (Account.from_key(keccak(text=f"pipeline member {name}")) for name in "abc")


# --- the source chain ---------------------------------------------------------------------


@dataclass
class State:
    root: bytes
    accounts: HexaryTrie
    storage: HexaryTrie


class SourceChain(RpcMethods):
    """Blocks 0..`head` (block n at T0 + 2n, all final unless `finalized` says otherwise) of a
    chain whose vault's collateral changes at the blocks of `deposits` (block -> account ->
    new value), each change with a `Deposited` log. `reorged` blocks (and their descendants)
    have another hash; `corrupt_proofs` answers that many `eth_getProof` with a damaged account
    proof node; the storage proof of `corrupt_storage_of` (an account) is always damaged."""

    def __init__(self, deposits: Mapping[int, Mapping[str, int]], head: int = 60) -> None:
        self.deposits = {b: dict(d) for b, d in deposits.items()}
        self.head = head
        self.finalized = head  # the pair's watcher too
        self.reorged: set[int] = set()
        self.corrupt_proofs = 0
        self.corrupt_storage_of: str | None = None
        self.calls: list[str] = []
        self._states: dict[tuple[tuple[str, int], ...], State] = {}
        self._blocks: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}

    @property
    def host(self) -> str:
        return "source.test:8545"

    async def wait_finalized_above(self, height: int) -> int:
        """The watcher's wake-up (relayer.scheduling.watcher.ChainWatcher): the tests set the fake's
        `finalized` directly, so this only answers at once when it is already above; else the
        relay's idle wait runs its course (`idle_seconds`)."""
        if self.finalized > height:
            return self.finalized
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def collateral(self, number: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for block in sorted(self.deposits):
            if block <= number:
                out.update(self.deposits[block])
        return out

    def state(self, number: int) -> State:
        key = tuple(sorted(self.collateral(number).items()))
        if key not in self._states:
            storage = HexaryTrie({})
            for account, value in key:
                if value:
                    storage.set(keccak(collateral_storage_key(account, SLOT)), rlp.encode(value))
            accounts = HexaryTrie({})
            accounts.set(keccak(to_canonical_address(VAULT)), rlp.encode([1, 0, storage.root_hash, VAULT_CODE]))
            accounts.set(keccak(b"\x11" * 20), rlp.encode([7, 10**18, BLANK_ROOT, EMPTY_CODE]))
            self._states[key] = State(accounts.root_hash, accounts, storage)
        return self._states[key]

    def block(self, number: int) -> dict[str, Any]:
        key = (number, tuple(sorted(r for r in self.reorged if r <= number)))
        if key not in self._blocks:
            parent = self.block(number - 1)["hash"] if number > 0 else "0x" + "00" * 32
            fields = {
                "parentHash": parent,
                "sha3Uncles": "0x" + keccak(rlp.encode([])).hex(),
                "miner": "0x" + "00" * 20,
                "stateRoot": "0x" + self.state(number).root.hex(),
                "transactionsRoot": "0x" + BLANK_ROOT.hex(),
                "receiptsRoot": "0x" + BLANK_ROOT.hex(),
                "logsBloom": "0x" + "00" * 256,
                "difficulty": "0x0",
                "number": hex(number),
                "gasLimit": hex(30_000_000),
                "gasUsed": "0x0",
                "timestamp": hex(T0 + 2 * number),
                "extraData": "0x" + (b"other branch" if number in self.reorged else b"").hex(),
                "mixHash": "0x" + "00" * 32,
                "nonce": "0x" + "00" * 8,
            }
            fields["hash"] = "0x" + keccak(encode_header(build_header(fields))).hex()
            self._blocks[key] = fields
        return dict(self._blocks[key])

    def proof(self, address: str, keys: Sequence[str], number: int) -> dict[str, Any]:
        state = self.state(number)
        entries = []
        for key in keys:
            path = keccak(bytes.fromhex(key[2:]))
            raw = state.storage.get(path)
            nodes = pytrie_proof(state.storage, path)
            if self.corrupt_storage_of and key[2:] == collateral_storage_key(self.corrupt_storage_of, SLOT).hex():
                nodes[-1] = nodes[-1][:-1] + bytes([nodes[-1][-1] ^ 1])
            entries.append({
                "key": key,
                "value": hex(rlp.decode(raw, sedes=rlp.sedes.big_endian_int) if raw else 0),
                "proof": ["0x" + node.hex() for node in nodes],
            })  # fmt: skip
        account_proof = pytrie_proof(state.accounts, keccak(to_canonical_address(VAULT)))
        if self.corrupt_proofs:
            self.corrupt_proofs -= 1
            last = bytearray(account_proof[-1])
            last[-1] ^= 1
            account_proof[-1] = bytes(last)
        return {
            "address": address, "nonce": "0x1", "balance": "0x0", "codeHash": "0x" + VAULT_CODE.hex(),
            "storageHash": "0x" + state.storage.root_hash.hex(),
            "accountProof": ["0x" + node.hex() for node in account_proof], "storageProof": entries,
        }  # fmt: skip

    def logs(self, log_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        low, high = hex_to_int(log_filter["fromBlock"]), hex_to_int(log_filter["toBlock"])
        topics = log_filter.get("topics")
        wanted = topics[0] if topics and isinstance(topics[0], list) else topics[:1] if topics else [DEPOSITED]
        if DEPOSITED not in wanted:
            return []
        return [
            {"address": VAULT, "blockNumber": hex(block), "topics": [DEPOSITED, "0x" + "00" * 12 + account[2:].lower()],
             "data": "0x" + value.to_bytes(32, "big").hex() * 2}  # (amount, collateral): the value as both
            for block, changes in sorted(self.deposits.items())
            if low <= block <= high
            for account, value in changes.items()
        ]  # fmt: skip

    async def call(self, method: str, params: Sequence[Any] = (), *, decode: Any = None) -> Any:
        self.calls.append(method)
        if method == "eth_getBlockByNumber":
            number = hex_to_int(params[0])
            result: Any = self.block(number) if number <= self.head else None
        elif method == "eth_getProof":
            result = self.proof(params[0], params[1], hex_to_int(params[2]))
        elif method == "eth_getLogs":
            result = self.logs(params[0])
        elif method == "eth_blockNumber":
            result = hex(self.head)
        else:
            raise AssertionError(f"unexpected source call {method}")
        return decode(result) if decode is not None else result

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        return [await self.call(method, params) for method, params in calls]


# event topics from the contracts' event signatures (chains/contracts/*.sol)
DEPOSITED = "0x" + keccak(text="Deposited(address,uint256,uint256)").hex()
ACCEPTED = "0x" + keccak(text="EpochAccepted(uint256,bytes32,bytes32,uint64,address)").hex()
