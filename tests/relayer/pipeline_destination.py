"""The fake destination of the pipeline tests (tests/relayer/test_pipeline*.py): `Destination`, the
real `Submitter` over a model of EpochVerifier + MarginSettlement that `FakeTxm` executes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from eth_utils import keccak, to_canonical_address, to_checksum_address
from web3 import Web3

from chains.bindings import BLOCK_LEAF_FIELDS, BLOCK_LEAF_TYPES, ContractReverted, leaf_hash
from chains.errors import RpcTransportError
from relayer.attestation.eip712 import recover_signer
from relayer.attestation.view import Committee
from relayer.epoch import Position
from relayer.errors import AttestationError, SubmissionError
from relayer.storage.txstore import Receipt
from relayer.submission.submitter import Submitter
from tests.relayer.pipeline_source import ACCEPTED, DEST_ID, MAX_AGE, SENDER, SETTLEMENT, T0, VERIFIER

# --- the destination ----------------------------------------------------------------------


@dataclass
class Record:
    root: bytes
    generation: int
    revoked: bool = False


class DestinationClient:
    """What is read from the destination over JSON-RPC outside the contract calls: its head and
    block timestamps (Submitter.head, the schedule) and EpochAccepted logs (the schedule)."""

    host = "destination.test:8545"

    def __init__(self, chain: Destination) -> None:
        self.chain = chain

    async def block_number(self) -> int:
        return self.chain.block

    async def get_block(self, number: int | str, full: bool = False) -> dict[str, Any] | None:
        n = self.chain.block if number == "latest" else int(number)
        if n > self.chain.block:
            return None
        return {"number": hex(n), "timestamp": hex(self.chain.timestamp(n)), "gasLimit": hex(30_000_000),
                "hash": self.chain.block_hash(n)}  # fmt: skip

    async def get_logs(self, log_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        assert log_filter["address"] == VERIFIER and log_filter["topics"] == [ACCEPTED]
        low, high = int(log_filter["fromBlock"]), int(log_filter["toBlock"])
        return [
            {
                "blockNumber": hex(block),
                "blockHash": self.chain.block_hash(block),
                "topics": [ACCEPTED, "0x" + epoch.to_bytes(32, "big").hex()],
            }
            for epoch, block in self.chain.accepted.items()
            if low <= block <= high
        ]


def _reverted(name: str, *args: Any) -> ContractReverted:
    return ContractReverted("transaction", name, args, b"")


class FakeTxm:
    """The transaction manager's surface: an intent per key (write-ahead), the calldata executed
    against the destination model when mined. A key sent before returns its first receipt
    (never a second transaction); `failures` sends fail with a SubmissionError first."""

    def __init__(self, chain: Destination) -> None:
        self.chain = chain
        self.intents: dict[str, SimpleNamespace] = {}
        self.receipts: dict[str, Receipt] = {}
        self.mined: list[tuple[str, str]] = []  # (key, kind) of every transaction executed
        self.failures = 0

    def intent(self, key: str) -> SimpleNamespace | None:
        return self.intents.get(key)

    async def reconcile(self, *, force: bool = False) -> list[str]:
        return []  # (a reorg in this model drops acceptances and positions, not transactions)

    def in_flight(self) -> bool:
        return False

    async def send(self, key: str, to: str, data: str, *, gas: int, kind: str, fee_group: str | None = None) -> Receipt:
        if key in self.receipts:
            return self.receipts[key]
        self.intents.setdefault(key, SimpleNamespace(gas=gas, final=True))
        if self.failures:
            self.failures -= 1
            raise SubmissionError(key, "no receipt within the timeout")
        receipt = self.chain.execute(to, data, commit=True)
        self.receipts[key] = receipt
        self.mined.append((key, kind))
        return receipt


class Destination(Submitter):
    """The real Submitter over a model of the destination's contracts (see the module doc).
    Block n's timestamp is T0 + n + `skew`; every transaction mines one block."""

    def __init__(self, committee: Committee) -> None:
        self.block = 1
        self.skew = 0
        self.members = committee
        self.records: dict[int, Record] = {}
        self.latest = 0
        self.accepted: dict[int, int] = {}  # epoch -> block of its EpochAccepted
        self.signers: dict[int, list[str]] = {}  # epoch -> the signers it was accepted with
        self.state: dict[tuple[str, int], Position] = {}
        self.rpc_failures = 0  # eth_estimateGas calls that fail with a transport error first
        self.ignore_settlements = False  # settlements are mined but change nothing (never final)
        self.refuse_s: set[bytes] = set()  # signatures (by their s) refused once, as OpenZeppelin's ECDSA would
        self.reorgs: dict[int, int] = {}  # block -> how often a reorg replaced it (its hash changes)
        self.anchor_policies: dict[int, int] = {}  # chain -> AnchorPolicies' policy (default 0: committee)
        self.anchored: set[tuple[int, int]] = set()  # (chain, block number) the chain's anchor knows
        super().__init__(
            DestinationClient(self), FakeTxm(self), chain_id=DEST_ID, sender=SENDER, verifier=VERIFIER,  # type: ignore[arg-type]
            settlement=SETTLEMENT,
        )  # fmt: skip
        self.txm: FakeTxm = self.txm  # type: ignore[assignment]

    def block_hash(self, number: int) -> str:
        """Block `number`'s hash: changes when a reorg (`reorgs`) replaced the block."""
        return "0x" + number.to_bytes(16, "big").hex() + self.reorgs.get(number, 0).to_bytes(16, "big").hex()

    def timestamp(self, number: int) -> int:
        return T0 + number + self.skew

    # what another member (or an admin) does on chain
    def record(self, epoch: int, root: bytes, signers: Sequence[str] = ()) -> None:
        self.block += 1
        self.records[epoch] = Record(root, self.members.generation)
        self.latest = epoch
        self.accepted[epoch] = self.block
        self.signers[epoch] = list(signers)

    # --- contract reads ------------------------------------------------------------------

    async def committee_fields(self) -> tuple[int, int, tuple[str, ...]]:
        return self.members.generation, self.members.threshold, self.members.members

    async def latest_epoch(self) -> int:
        return self.latest

    async def root_of(self, epoch: int) -> bytes:
        record = self.records.get(epoch)
        if record is None or record.revoked or record.generation != self.members.generation:
            return bytes(32)
        return record.root

    async def recorded_root(self, epoch: int) -> bytes:
        record = self.records.get(epoch)
        return record.root if record is not None else bytes(32)

    async def positions(self, chain_id: int, accounts: Sequence[str], chunk: int = 2_000) -> list[Position]:
        return [self.state.get((a, chain_id), Position(0, 0, 0)) for a in accounts]

    async def anchor_of(self, chain_id: int) -> tuple[int, str]:
        return self.anchor_policies.get(chain_id, 0), "0x" + "00" * 20  # an adapter, not the built-in OP path

    async def anchored_hash(self, chain_id: int, number: int) -> bytes:
        return keccak(b"anchored %d" % number) if (chain_id, number) in self.anchored else bytes(32)

    async def max_age(self, chain_id: int) -> int:
        return MAX_AGE

    async def chain_voided(self, chain_id: int) -> bool:
        return False

    async def balance(self) -> int:
        return 10**18

    async def estimate(self, to: str, data: str) -> int:
        if self.rpc_failures:
            self.rpc_failures -= 1
            raise RpcTransportError("connection refused", method="eth_estimateGas", host=DestinationClient.host)
        receipt = self.execute(to, data, commit=False)
        return receipt.gas_used

    # --- the contracts -------------------------------------------------------------------

    def _accept(self, epoch: int, root: bytes, previous: bytes, signatures: Sequence[bytes]) -> list[str]:
        if epoch != self.latest + 1:
            raise _reverted("UnexpectedEpoch", epoch, self.latest + 1)
        expected = self.records[self.latest].root if self.latest else bytes(32)
        if previous != expected:
            raise _reverted("PreviousMismatch", expected, previous)
        if len(signatures) < self.members.threshold:
            raise _reverted("BelowThreshold", len(signatures), self.members.threshold)
        signers: list[str] = []
        for signature in signatures:
            if signature[32:64] in self.refuse_s:
                self.refuse_s.discard(signature[32:64])
                raise _reverted("ECDSAInvalidSignatureS", signature[32:64])
            try:
                signer = recover_signer(
                    DEST_ID, VERIFIER, epoch, root, previous, signature, generation=self.members.generation
                )
            except AttestationError:
                raise _reverted("ECDSAInvalidSignature") from None
            if not self.members.is_member(signer):
                raise _reverted("UnknownSigner", signer)
            if signers and to_canonical_address(signer) <= to_canonical_address(signers[-1]):
                raise _reverted("DuplicateOrUnsortedSigner", signer, signers[-1])
            signers.append(signer)
        return signers

    def _settle(self, items: Sequence[dict[str, Any]], usable: Mapping[int, bytes], commit: bool) -> int:
        settled = 0
        for item in items:
            leaf = item["blockLeaf"]
            root = usable.get(item["epoch"])
            if root is None or not any(root):
                raise _reverted("EpochNotAccepted", item["epoch"])
            node = leaf_hash(BLOCK_LEAF_TYPES, [leaf[name] for name in BLOCK_LEAF_FIELDS])
            for sibling in item["blockProof"]:
                node = keccak(b"".join(sorted((node, bytes(sibling)))))
            if node != root:
                raise _reverted("BlockNotInEpoch", leaf["chainId"], leaf["blockNumber"], item["epoch"])
            if leaf["timestamp"] + MAX_AGE < self.timestamp(self.block + 1):
                raise _reverted("StaleBlock", leaf["chainId"], leaf["timestamp"], MAX_AGE)
            known = (leaf["chainId"], leaf["blockNumber"]) in self.anchored
            if self.anchor_policies.get(leaf["chainId"]) == 2 and not known:  # require-anchor
                raise _reverted("BlockNotAnchored", leaf["chainId"], leaf["blockNumber"])
            for claim in item["claims"]:
                key = (to_checksum_address(claim["account"]), leaf["chainId"])
                if self.state.get(key, Position(0, 0, 0)).block_number >= leaf["blockNumber"]:
                    continue  # SettlementSkipped, never a revert
                settled += 1
                if commit and not self.ignore_settlements:
                    self.state[key] = Position(claim["value"], leaf["blockNumber"], leaf["timestamp"])
        return settled

    def execute(self, to: str, data: str, *, commit: bool) -> Receipt:
        """Run calldata of submitEpoch / submitAndSettle / settleMany. Raises ContractReverted."""
        reader = self.verifier if to == VERIFIER else self.settlement
        function, args = Web3().eth.contract(abi=reader.contract.abi).decode_function_input(data)
        name = function.fn_name
        usable = {e: r.root for e, r in self.records.items() if not r.revoked}
        signers: list[str] = []
        settled = 0
        recorded = self.records.get(args.get("epoch", 0))
        if name == "submitEpoch" or (name == "submitAndSettle" and (recorded is None or recorded.root != args["root"])):
            # (submitAndSettle submits the epoch only while another root, or none, is recorded)
            signers = self._accept(args["epoch"], args["root"], args["previous"], args["signatures"])
            usable[args["epoch"]] = args["root"]
        if name in ("submitAndSettle", "settleMany"):
            settled = self._settle(args["batch"], usable, commit)
        elif name != "submitEpoch":
            raise AssertionError(f"unexpected transaction {name}")
        gas = 60_000 + 25_000 * settled
        if not commit:
            return Receipt("", 0, gas, 0, 0)
        if signers:
            self.record(args["epoch"], args["root"], signers)
        else:
            self.block += 1
        return Receipt("0x" + keccak(data.encode() + bytes([self.block])).hex(), self.block, gas,
                       self.timestamp(self.block), 1)  # fmt: skip
