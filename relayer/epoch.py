"""The domain model every stage shares (DESIGN sections 3 and 5): what an epoch is made of, and
how it is stored.

- `Claim`: one proven collateral value `(account, value)`; `Snapshot`: the claims of one vault
  at one block, with the block's verified header;
- block leaves (`BlockLeafArgs`: the ABI value of MarginSettlement.BlockLeaf) and the
  aggregate of an epoch (`BlockAggregate`, `EpochAggregate`: the claims trees and the epoch
  tree, OpenZeppelin StandardMerkleTree format, built by relayer.aggregation);
- `Position`: a settled position as the destination holds it;
- `Attestation`: a committee member's signature over an epoch, as exchanged and as stored;
- `EpochState` and `FailureReason`: an epoch's life in the store (the strings stored are the
  enum values: `EpochState.SIGNED == "signed"`);
- the stored epoch format (`EPOCH_FORMAT`) and the JSON of its snapshots.

Nothing here talks to a chain or to the store: stages import this module, not each other
(tests/relayer/test_imports.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from eth_abi import encode
from eth_utils import to_canonical_address, to_checksum_address

import native
from chains.bindings import BLOCK_LEAF_TYPES
from chains.headers import VerifiedHeader
from chains.types import Hash32
from relayer.errors import AttestationError

# --- claims and snapshots -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """One proven collateral value (DESIGN section 3): `Claim = (address account, uint256 value)`,
    the value of storage slot keccak256(abi.encode(account, p)) of the vault in the block its
    block leaf names (chain, block and vault are bound by the block leaf, not repeated here)."""

    account: str
    value: int

    def leaf_values(self) -> tuple[str, int]:
        return (self.account, self.value)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Verified collateral of one vault at one block: the header and one claim per account
    whose storage proof verified, in the order the accounts were asked for.

    `excluded`: (account, reason) of accounts whose own storage proof was rejected (DESIGN
    section 7: one account's bad claim never blocks the others of its vault); they are left
    out of the claims tree and proven again at the next height. `value_words`: the claims'
    values as 32-byte words back to back as the native verifier returned them, or None
    (computed from `claims` when needed)."""

    chain_id: int
    vault: str
    header: VerifiedHeader
    claims: tuple[Claim, ...]
    verify_seconds: float
    value_words: bytes | None = None
    excluded: tuple[tuple[str, str], ...] = ()
    header_host: str = ""
    """The endpoint ("host:port") that served the header: another one confirms it."""
    delta: bool = False
    """The claims are only the accounts that changed or are due for a refresh
    (relayer.scheduling.delta): every one of them is settled. False: a full snapshot."""
    refresh: tuple[int, ...] = ()
    """Indices of the claims of a full snapshot's refresh slice: settled whatever changed."""


_U256_LIMIT = 1 << 256


def claim_words(claims: Sequence[Claim]) -> tuple[bytes, bytes]:
    """(accounts, value words) of claims: 20-byte accounts and 32-byte big-endian values back
    to back, what `native.merkle_claim_tree` takes. Raises ValueError for a value outside
    uint256 or an account that is not an address."""
    try:
        accounts = b"".join([to_canonical_address(c.account) for c in claims])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"claim account is not an address: {exc}") from exc
    try:
        values = b"".join([c.value.to_bytes(32, "big") for c in claims])
    except OverflowError as exc:  # int.to_bytes: negative or >= 2**256
        bad = next(c for c in claims if not 0 <= c.value < _U256_LIMIT)
        raise ValueError(f"value out of uint256 range in {bad}") from exc
    return accounts, values


# --- block leaves and the aggregate of an epoch ---------------------------------------------

BlockLeafArgs = tuple[int, int, bytes, bytes, int, str, bytes, int]
"""ABI value of MarginSettlement.BlockLeaf: (chainId, blockNumber, blockHash, stateRoot,
timestamp, vault, claimsRoot, claimCount)."""

BlockSettlementArgs = tuple[int, BlockLeafArgs, list[bytes], list[tuple[str, int]], list[bytes], list[bool]]
"""ABI value of one MarginSettlement.BlockSettlement:
(epoch, blockLeaf, blockProof, claims in multiproof order, claimProof, claimProofFlags)."""


def block_leaf(values: BlockLeafArgs) -> bytes:
    """The leaf hash of a block leaf in the epoch tree (double-hashed abi.encode, OpenZeppelin
    StandardMerkleTree)."""
    return native.merkle_leaf(encode(list(BLOCK_LEAF_TYPES), list(values)))


def stored_leaf_values(snapshot: dict[str, Any], claims_root: bytes) -> BlockLeafArgs:
    """The block leaf of a stored snapshot (`snapshot_to_json`) whose claims tree has root
    `claims_root`. Raises KeyError / ValueError for a malformed one."""
    return (
        int(snapshot["chain_id"]),
        int(snapshot["number"]),
        bytes.fromhex(snapshot["hash"][2:]),
        bytes.fromhex(snapshot["state_root"][2:]),
        int(snapshot["timestamp"]),
        to_checksum_address(snapshot["vault"]),
        claims_root,
        int(snapshot["claim_count"]) if "claim_count" in snapshot else len(snapshot["claims"]),
    )


@dataclass(frozen=True, slots=True)
class BlockAggregate:
    """One snapshot with its claims tree (`tree.proofs[i]` proves `snapshot.claims[i]`)."""

    snapshot: Snapshot
    tree: native.MerkleTree

    @property
    def claims_root(self) -> bytes:
        return self.tree.root

    def leaf_values(self) -> BlockLeafArgs:
        """The BlockLeaf (chainId, blockNumber, blockHash, stateRoot, timestamp, vault, claimsRoot, claimCount)."""
        header = self.snapshot.header
        return (
            self.snapshot.chain_id,
            header.number,
            bytes(header.hash),
            bytes(header.state_root),
            header.timestamp,
            to_checksum_address(self.snapshot.vault),
            self.claims_root,
            len(self.snapshot.claims),
        )

    def leaf(self) -> bytes:
        return block_leaf(self.leaf_values())

    def tree_order(self, claims: Sequence[int]) -> list[int]:
        """`claims` (indices into `snapshot.claims`) sorted as their leaves lie in the tree
        (by leaf hash: the multiproof's leaf order). Claims cut into batches in this order share
        most of their multiproof nodes, so each batch's multiproof is short."""
        accounts, values = claim_words(self.snapshot.claims)
        encoded = b"".join(bytes(12) + accounts[20 * i : 20 * i + 20] + values[32 * i : 32 * i + 32] for i in claims)
        leaves = native.merkle_leaves(encoded, 64) if claims else b""
        order = sorted(range(len(claims)), key=lambda k: leaves[32 * k : 32 * k + 32])
        return [claims[k] for k in order]


@dataclass(frozen=True, slots=True)
class EpochAggregate:
    """Every block of one round under one root: `block_proofs[i]` proves `blocks[i]`'s leaf."""

    root: bytes
    blocks: tuple[BlockAggregate, ...]
    block_proofs: Sequence[tuple[bytes, ...]]

    @property
    def claim_count(self) -> int:
        return sum(len(b.snapshot.claims) for b in self.blocks)

    def block_index(self, chain_id: int) -> int:
        """Index in `blocks` of the block of `chain_id`. Raises KeyError when absent."""
        for index, block in enumerate(self.blocks):
            if block.snapshot.chain_id == chain_id:
                return index
        raise KeyError(f"no block of chain {chain_id} in this epoch")

    def block_settlement(self, epoch: int, block: int, claims: Sequence[int]) -> BlockSettlementArgs:
        """The `BlockSettlement` of claims `claims` (indices into `blocks[block].snapshot.claims`,
        distinct) of block `block`: its leaf with its proof in the epoch root, the claims in the
        multiproof's leaf order, and the OpenZeppelin multiproof. Raises ValueError for an
        empty, repeated or out-of-range claim index."""
        if not claims:
            raise ValueError("a block settlement needs at least one claim")
        aggregate = self.blocks[block]
        multi = aggregate.tree.multiproof(list(claims))
        snapshot_claims = aggregate.snapshot.claims
        return (
            epoch,
            aggregate.leaf_values(),
            list(self.block_proofs[block]),
            [snapshot_claims[i].leaf_values() for i in multi.order],
            list(multi.proof),
            list(multi.flags),
        )

    def accounts_settlement(self, epoch: int, chain_id: int, accounts: Sequence[str]) -> BlockSettlementArgs:
        """`block_settlement` of the claims of `accounts` (addresses as the snapshot holds them,
        distinct) in the block of `chain_id`. Raises KeyError for a chain or an account that
        the epoch does not hold, ValueError for none."""
        block = self.block_index(chain_id)
        index = {c.account: i for i, c in enumerate(self.blocks[block].snapshot.claims)}
        return self.block_settlement(epoch, block, [index[a] for a in accounts])

    def claim_proof(self, block: int, claim: int) -> tuple[bytes, ...]:
        """Single proof of claim `claim` of block `block` in its claimsRoot (the pull path)."""
        return tuple(self.blocks[block].tree.proofs[claim])


# --- positions and attestations --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """A settled position on the destination: value in wei, source block number, block
    timestamp (Unix seconds); all zero when never settled (or of an older registration)."""

    value: int
    block_number: int
    timestamp: int


SIGNATURE_LENGTH: Final = 65
"""Bytes of a committee member's signature: r || s || v (relayer.attestation.eip712)."""

MAX_UINT256 = 2**256 - 1
_FIELDS = ("chain_id", "verifier", "epoch", "root", "previous", "signer", "signature")
_ADDRESS = re.compile(r"0x([0-9a-fA-F]{40})")
_HEX = re.compile(r"0x([0-9a-fA-F]*)")


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def _address(value: object, what: str) -> str:
    """A checksum address from 0x-hex (a mixed-case one must be a valid EIP-55 checksum)."""
    if not isinstance(value, str):
        raise AttestationError(f"{what}: expected a 0x-hex address string, got {_kind(value)}")
    match = _ADDRESS.fullmatch(value)
    if match is None:
        raise AttestationError(f"{what}: not a 20-byte hex address (0x followed by 40 hex digits)")
    digits = match.group(1)
    checksummed = _checksum(digits.lower())
    if digits not in (digits.lower(), digits.upper()) and checksummed[2:] != digits:
        raise AttestationError(f"{what}: bad EIP-55 checksum")
    if int(digits, 16) == 0:
        raise AttestationError(f"{what}: the zero address")
    return checksummed


@functools.lru_cache(maxsize=1024)
def _checksum(digits: str) -> str:
    """The EIP-55 spelling of 40 lower-case hex digits (a keccak each: the verifier and the
    members recur in every answer, so they are cached)."""
    return str(to_checksum_address("0x" + digits))


def _hex_bytes(value: object, what: str, length: int) -> bytes:
    if not isinstance(value, str):
        raise AttestationError(f"{what}: expected a 0x-hex string of {length} bytes, got {_kind(value)}")
    match = _HEX.fullmatch(value)
    if match is None or len(match.group(1)) != 2 * length:
        raise AttestationError(f"{what}: expected 0x followed by {2 * length} hex digits ({length} bytes)")
    return bytes.fromhex(match.group(1))


def _uint(value: object, what: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AttestationError(f"{what}: expected an integer, got {_kind(value)}")
    if not lo <= value <= MAX_UINT256:
        raise AttestationError(f"{what}: out of range {lo}..2**256-1")
    return value


@dataclass(frozen=True)
class Attestation:
    """One committee member's signature over `Epoch(epoch, root, previous)` (EIP-712) in the
    domain of the EpochVerifier `verifier` on destination chain `chain_id`.

    `chain_id` and `epoch` >= 1 (uint256), `verifier` and `signer` checksum addresses (any
    valid spelling is normalised), `root` / `previous` 32 bytes, `signature` 65 bytes
    r || s || v. Construction checks shapes only (raises AttestationError);
    relayer.attestation.eip712.check_attestation checks that the signature recovers to `signer`.
    The same type is exchanged between members (`to_json` / `from_json`) and kept in the store."""

    chain_id: int
    verifier: str
    epoch: int
    root: bytes
    previous: bytes
    signer: str
    signature: bytes
    source: str = field(default="", compare=False)
    """Where it was kept from, as stored (relayer.attestation.committee: "self" for this member's
    own, a peer's host:port, the shared directory); not part of what was signed, nor of equality."""

    def __post_init__(self) -> None:
        _uint(self.chain_id, "chain_id", 1)
        _uint(self.epoch, "epoch", 1)
        object.__setattr__(self, "verifier", _address(self.verifier, "verifier"))
        object.__setattr__(self, "signer", _address(self.signer, "signer"))
        for name, length in (("root", 32), ("previous", 32), ("signature", SIGNATURE_LENGTH)):
            value = getattr(self, name)
            if not isinstance(value, bytes | bytearray) or len(value) != length:
                raise AttestationError(f"{name}: must be {length} bytes")
            object.__setattr__(self, name, bytes(value))

    def to_json(self) -> dict[str, Any]:
        """`{"chain_id": int, "verifier": "0x..", "epoch": int, "root": "0x..", "previous":
        "0x..", "signer": "0x..", "signature": "0x.."}` (bytes as lower-case 0x-hex)."""
        return {
            "chain_id": self.chain_id,
            "verifier": self.verifier,
            "epoch": self.epoch,
            "root": "0x" + self.root.hex(),
            "previous": "0x" + self.previous.hex(),
            "signer": self.signer,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, obj: object) -> Attestation:
        """Parse `to_json`'s shape strictly: an object with exactly those keys; integers (not
        booleans, not strings) in range; addresses 0x + 40 hex digits (EIP-55 when mixed case,
        not zero); roots 0x + 64 and the signature 0x + 130 hex digits. Raises
        AttestationError naming the field. The signature is not checked here."""
        if not isinstance(obj, dict):
            raise AttestationError(f"attestation: expected an object, got {_kind(obj)}")
        missing = [k for k in _FIELDS if k not in obj]
        if missing:
            raise AttestationError(f"attestation: missing {', '.join(missing)}")
        unknown = sorted(str(k)[:40] for k in obj if k not in _FIELDS)
        if unknown:
            raise AttestationError(f"attestation: unknown key(s) {', '.join(map(repr, unknown[:5]))}")
        return cls(
            chain_id=_uint(obj["chain_id"], "chain_id", 1),
            verifier=_address(obj["verifier"], "verifier"),
            epoch=_uint(obj["epoch"], "epoch", 1),
            root=_hex_bytes(obj["root"], "root", 32),
            previous=_hex_bytes(obj["previous"], "previous", 32),
            signer=_address(obj["signer"], "signer"),
            signature=_hex_bytes(obj["signature"], "signature", SIGNATURE_LENGTH),
        )

    def file_name(self) -> str:
        """Its file name in the shared directory: `att-{chain_id}-{epoch}-{verifier}-{signer}-{root}.json`."""
        return f"att-{self.chain_id}-{self.epoch}-{self.verifier}-{self.signer}-{self.root.hex()}.json"


# --- an epoch's life in the store -------------------------------------------------------------


class EpochState(StrEnum):
    """The state of a stored epoch (the `epochs.status` column holds the value):
    `signed` (created: its content and this member's signature stored) -> `submitted` (its root
    recorded on the destination) -> `confirmed` (settled at the destination's head, not final
    yet) -> `settled`; or `failed` (with a `FailureReason`, or the name of the contract error
    its transaction reverted with)."""

    SIGNED = "signed"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    SETTLED = "settled"
    FAILED = "failed"


OPEN_EPOCH_STATES: Final = (EpochState.SIGNED, EpochState.SUBMITTED, EpochState.CONFIRMED)
"""States of an epoch still being driven (what a restart resumes)."""

SERVED_EPOCH_STATES: Final = (EpochState.SETTLED, EpochState.CONFIRMED, EpochState.SIGNED)
"""States of an epoch whose claims the pull path serves (a `signed` one only once the
destination accepted its root)."""


class FailureReason(StrEnum):
    """Why an epoch failed (the `epochs.reason` column and the `reason` label of
    `relayer_epochs_failed_total` hold the value). A reverted transaction's epoch fails with the
    contract error's name instead (`REVERTED` when the revert names none)."""

    OLD_FORMAT = "old_format"
    """Stored in a format it is not resumed from (`EPOCH_FORMATS`): its accounts are proven again."""
    CORRUPT = "corrupt"
    """Its stored content does not rebuild its stored root (or cannot be read)."""
    REORG = "reorg"
    """A proven block is no longer canonical (a reorg beyond finality)."""
    SUPERSEDED = "superseded"
    """The destination holds another root for its number, or moved on past it."""
    REVOKED = "revoked"
    """Its root was revoked on the destination, or is of an older committee generation."""
    LOST_ON_DESTINATION = "lost_on_destination"
    """The destination no longer holds it (a reorg there): built again."""
    RETRIED = "retried"
    """The epoch rule moved on to a later attempt of its number while it was short of signatures."""
    RETRIES_EXHAUSTED = "retries_exhausted"
    """Its processing failed `max_epoch_attempts` times (chain or submission errors)."""
    SETTLE_ROUNDS_EXHAUSTED = "settle_rounds_exhausted"
    """Its settlement did not complete within the settler's rounds."""
    REVERTED = "reverted"
    """A transaction of it reverted without a named contract error."""


SETTLED_STALE: Final = "stale"
"""The `reason` of an epoch settled without settling its positions (its blocks were too old for
the destination: it was submitted alone, so that the sequence goes on)."""


# --- the stored format -------------------------------------------------------------------------

EPOCH_FORMAT: Final = 4
"""Format of a stored epoch's content (DESIGN section 3, formats v2: claims are (account, value);
3: with the plan of the deterministic epoch rule, relayer/scheduling/schedule.py; 4: the claims
kept in the store's `epoch_claims` rows instead of inside the content). Epochs stored in a format
not in EPOCH_FORMATS are failed at resume, their accounts are proven again."""

EPOCH_FORMATS: Final = (3, 4)
"""Stored formats an epoch is resumed from (3: its snapshots' claims inside the content)."""


def snapshot_to_json(snapshot: Snapshot, *, with_claims: bool = False) -> dict[str, Any]:
    """A JSON-able form of a verified snapshot's header (what an epoch is rebuilt from after a
    restart, with its claims: stored beside it, or inside it with `with_claims`)."""
    header = snapshot.header
    data: dict[str, Any] = {
        "chain_id": snapshot.chain_id,
        "vault": snapshot.vault,
        "number": header.number,
        "hash": "0x" + header.hash.hex(),
        "parent_hash": "0x" + header.parent_hash.hex(),
        "state_root": "0x" + header.state_root.hex(),
        "timestamp": header.timestamp,
        "claim_count": len(snapshot.claims),
    }
    if snapshot.delta:
        data["delta"] = True
    if snapshot.refresh:
        data["refresh"] = list(snapshot.refresh)
    if snapshot.excluded:  # (not claimed: proven again at once, relayer.scheduling.delta)
        data["excluded"] = [account for account, _reason in snapshot.excluded]
    if with_claims:
        data["claims"] = [[c.account, str(c.value)] for c in snapshot.claims]
    return data


def snapshot_from_json(data: dict[str, Any], claims: Iterable[tuple[str, int]] | None = None) -> Snapshot:
    """Inverse of snapshot_to_json (the header's RLP is not kept: it was checked when proven):
    the claims are `claims` (account, value), or those inside `data` when None. Raises
    KeyError, TypeError or ValueError for a malformed one."""
    number = int(data["number"])
    header = VerifiedHeader(
        number=number,
        hash=Hash32(bytes.fromhex(data["hash"][2:])),
        parent_hash=Hash32(bytes.fromhex(data["parent_hash"][2:])),
        state_root=Hash32(bytes.fromhex(data["state_root"][2:])),
        timestamp=int(data["timestamp"]),
        rlp=b"",
    )
    rows = data["claims"] if claims is None else claims
    return Snapshot(
        int(data["chain_id"]),
        str(data["vault"]),
        header,
        tuple(Claim(str(a), int(v)) for a, v in rows),
        0.0,
        delta=data.get("delta") is True,
        refresh=tuple(int(i) for i in data.get("refresh", ())),
    )


def snapshots_from_json(
    snapshots: Sequence[dict[str, Any]], claims_of: Callable[[int], Iterable[tuple[str, int]]]
) -> list[Snapshot]:
    """The snapshots of a stored epoch's content: each with the claims inside it (format 3), or
    `claims_of(i)` for the i-th (format 4: the store's `epoch_claims`)."""
    return [snapshot_from_json(data, None if "claims" in data else claims_of(i)) for i, data in enumerate(snapshots)]
