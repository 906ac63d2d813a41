"""Contract bindings: compiled artifacts, leaf encodings, revert decoding and sync deploy helpers.

Artifacts are `chains/contracts/build/<Name>.json` = {"abi", "bytecode", "storageLayout"}, written
by `node chains/contracts/compile.js` (`make setup`). The contracts (DESIGN sections 3 and 4):

- `CollateralVault` (source chain): `collateral[account]` at storage slot `collateralSlot()`.
- `EpochVerifier` (destination): committee, threshold, generations, revocation, EIP-712
  `Epoch(uint256 epoch,bytes32 root,bytes32 previous)` (version "2", salt = committee generation).
- `MarginSettlement` (destination): settles the claims of a proven block (one multiproof) against
  accepted epoch roots; one packed slot per account and chain.

The deploy helpers are synchronous (CLI `relayer deploy`, devnet, tests): they sign locally with an
eth_account `LocalAccount`, send the raw transaction and wait for its receipt. A revert raises
`ContractReverted` carrying the decoded custom error name and arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_typing import ChecksumAddress
from eth_utils import (
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
    keccak,
    to_checksum_address,
)

from chains.errors import ChainError, TransactionError

if TYPE_CHECKING:  # web3 (about 8 MB of modules) is imported by the sync helpers that use it
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.contract import Contract
    from web3.exceptions import ContractLogicError
    from web3.types import TxParams, TxReceipt

BUILD_DIR = Path(__file__).resolve().parent / "contracts" / "build"
CONTRACT_NAMES = (
    "CollateralVault",
    "EpochVerifier",
    "MarginSettlement",
    "Eip2935Anchor",
    "OpL1BlockAnchor",
    "L1BlockStandIn",
)

# ABI types of the Merkle leaves (DESIGN section 3); one source of truth for the aggregator.
# A claim binds only what its block leaf does not: the vault is in the block leaf, the slot is
# derived from the account and the registered collateral slot.
CLAIM_FIELDS = ("account", "value")
CLAIM_TYPES = ("address", "uint256")
BLOCK_LEAF_FIELDS = (
    "chainId",
    "blockNumber",
    "blockHash",
    "stateRoot",
    "timestamp",
    "vault",
    "claimsRoot",
    "claimCount",
)
BLOCK_LEAF_TYPES = (
    "uint256",
    "uint256",
    "bytes32",
    "bytes32",
    "uint256",
    "address",
    "bytes32",
    "uint256",
)
# Bounds enforced by the contracts (CollateralVault / MarginSettlement), in seconds.
MIN_WITHDRAW_DELAY = 1
MAX_WITHDRAW_DELAY = 365 * 24 * 3600
MAX_MAX_AGE = 30 * 24 * 3600
FUTURE_TOLERANCE = 300

DEFAULT_RECEIPT_TIMEOUT = 120.0


class BindingsError(ChainError):
    """A contract artifact or contract interaction problem."""

    reason = "bindings"


class ArtifactMissing(BindingsError):
    """A compiled artifact is absent or unreadable; `make setup` (node chains/contracts/compile.js) builds it."""

    reason = "artifact_missing"

    def __init__(self, name: str, path: Path, detail: str) -> None:
        super().__init__(
            f"contract artifact {name} not usable at {path} ({detail}): run `make setup` "
            "(or `node chains/contracts/compile.js`)"
        )
        self.name = name
        self.path = path


class ContractReverted(TransactionError):
    """A transaction (or its gas estimate) reverted.

    `error_name` is the decoded custom error ("WrongSlot", "ECDSAInvalidSignature", "Error" for
    `Error(string)`, "Panic"), or "" when the revert data is empty or unknown; `error_args` its
    decoded arguments; `revert_data` the raw revert bytes.
    """

    reason = "contract_reverted"

    def __init__(
        self,
        what: str,
        error_name: str,
        error_args: tuple[Any, ...],
        revert_data: bytes,
        tx_hash: str | None = None,
    ) -> None:
        shown = error_name or (("0x" + revert_data.hex()) if revert_data else "no revert data")
        super().__init__(what, f"reverted: {shown}{error_args if error_args else ''}", tx_hash)
        self.error_name = error_name
        self.error_args = error_args
        self.revert_data = revert_data


# ------------------------------------------------------------------------------ artifacts


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract: ABI (list of JSON entries), creation bytecode, solc storage layout."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    storage_layout: dict[str, Any]

    def storage_slot(self, label: str) -> int:
        """Slot of the state variable `label` per the compiler's storage layout. KeyError if absent."""
        for entry in self.storage_layout.get("storage", []):
            if entry["label"] == label:
                return int(entry["slot"])
        raise KeyError(f"{self.name} has no state variable {label!r}")


@cache
def load_artifact(name: str) -> Artifact:
    """Read `chains/contracts/build/<name>.json`. Raises ArtifactMissing (run `make setup`)."""
    path = BUILD_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
        return Artifact(
            name=name,
            abi=list(data["abi"]),
            bytecode=bytes.fromhex(str(data["bytecode"]).removeprefix("0x")),
            storage_layout=dict(data["storageLayout"]),
        )
    except FileNotFoundError:
        raise ArtifactMissing(name, path, "file not found") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactMissing(name, path, f"unreadable: {exc}") from exc


def contract(w3: Web3, name: str, address: str | bytes) -> Contract:
    """A web3 contract object of artifact `name` at `address` (0x-hex or 20 bytes)."""
    return w3.eth.contract(address=to_checksum_address(address), abi=load_artifact(name).abi)


class ContractAbi:
    """Calldata and return values of artifact `name`'s functions at `address`, with eth-abi alone
    (what the daemon needs of a contract; web3's contract objects for the sync helpers). The
    contracts overload no function name."""

    def __init__(self, name: str, address: str | bytes) -> None:
        self.name = name
        self.address = to_checksum_address(address)
        self.abi = load_artifact(name).abi
        self._functions = {str(e["name"]): e for e in self.abi if e.get("type") == "function"}
        self._encoders: dict[str, tuple[bytes, list[str]]] = {}  # name -> (selector, input types)

    def function(self, name: str) -> dict[str, Any]:
        """The ABI entry of function `name`. Raises KeyError."""
        try:
            return self._functions[name]
        except KeyError:
            raise KeyError(f"{self.name} has no function {name!r}") from None

    def encode_abi(self, name: str, args: Sequence[Any]) -> str:
        """0x-hex calldata of `name(args)`: the 4-byte selector and the ABI-encoded arguments
        (addresses as 0x-hex or 20 bytes, bytesN as bytes, tuples as sequences)."""
        known = self._encoders.get(name)
        if known is None:  # the selector and types once per function: they cost as much as the encoding
            entry = self.function(name)
            known = self._encoders[name] = (
                function_abi_to_4byte_selector(entry),  # type: ignore[arg-type]
                list(get_abi_input_types(entry)),  # type: ignore[arg-type]
            )
        selector, types = known
        return "0x" + (selector + abi_encode(types, list(args))).hex()

    def output_types(self, name: str) -> list[str]:
        """The ABI types `name` returns."""
        return list(get_abi_output_types(self.function(name)))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ encodings


def leaf_hash(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """OpenZeppelin StandardMerkleTree leaf: keccak256(bytes.concat(keccak256(abi.encode(values)))).

    `types` is CLAIM_TYPES or BLOCK_LEAF_TYPES; `values` in the same order (ints, 20-byte or
    0x-hex addresses, 32-byte values). Returns 32 bytes.
    """
    return keccak(keccak(abi_encode(list(types), list(values))))


_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def mapping_storage_key(key: str | bytes, slot: int) -> bytes:
    """Storage key of `mapping(address => T)` at slot `slot` for `key`: keccak256(abi.encode(key, slot)).

    This is the slot the relayer proves with EIP-1186 for `collateral[key]`. Returns 32 bytes.
    """
    if isinstance(key, str) and _HEX_ADDRESS.fullmatch(key) and isinstance(slot, int) and 0 <= slot < 2**256:
        # abi.encode(address, uint256) directly: the common case, without eth_abi's per-call cost
        return keccak(b"\x00" * 12 + bytes.fromhex(key[2:]) + slot.to_bytes(32, "big"))
    return keccak(abi_encode(["address", "uint256"], [to_checksum_address(key), slot]))


# ------------------------------------------------------------------------------ revert decoding

_STANDARD_ERRORS: dict[bytes, tuple[str, tuple[str, ...]]] = {
    keccak(b"Error(string)")[:4]: ("Error", ("string",)),
    keccak(b"Panic(uint256)")[:4]: ("Panic", ("uint256",)),
}


def _abi_type(entry: Mapping[str, Any]) -> str:
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in entry["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@cache
def error_table() -> dict[bytes, tuple[str, tuple[str, ...]]]:
    """4-byte selector -> (error name, argument types) over every artifact's ABI plus Error/Panic."""
    table = dict(_STANDARD_ERRORS)
    for name in CONTRACT_NAMES:
        for entry in load_artifact(name).abi:
            if entry.get("type") != "error":
                continue
            types = tuple(_abi_type(i) for i in entry.get("inputs", []))
            selector = keccak(f"{entry['name']}({','.join(types)})".encode())[:4]
            table[selector] = (str(entry["name"]), types)
    return table


def decode_revert(data: bytes | str | None) -> tuple[str, tuple[Any, ...]]:
    """Decode revert data into (error name, args). Unknown selector or empty data: ("", ())."""
    raw = _revert_bytes(data)
    if len(raw) < 4:
        return "", ()
    known = error_table().get(raw[:4])
    if known is None:
        return "", ()
    name, types = known
    try:
        values = abi_decode(list(types), raw[4:])
    except Exception:  # malformed arguments: keep the name, drop the args
        return name, ()
    return name, tuple(_checksummed(t, v) for t, v in zip(types, values, strict=True))


def _checksummed(abi_type: str, value: Any) -> Any:
    """Addresses (also in arrays) as checksum strings, like web3 returns them from calls."""
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.startswith("address["):
        inner = abi_type[: abi_type.rindex("[")]
        return tuple(_checksummed(inner, v) for v in value)
    return value


def _revert_bytes(data: object) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, dict):
        return _revert_bytes(data.get("data"))
    text = str(data)
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            return b""
    return b""


def _reverted(what: str, exc: ContractLogicError, tx_hash: str | None = None) -> ContractReverted:
    raw = _revert_bytes(exc.data)
    name, args = decode_revert(raw)
    if not name and exc.message and not raw:
        name = "Error"
        args = (exc.message,)
    return ContractReverted(what, name, args, raw, tx_hash)


# ------------------------------------------------------------------------------ transactions


def send_transaction(
    w3: Web3,
    account: LocalAccount,
    tx: TxParams,
    *,
    what: str,
    timeout: float = DEFAULT_RECEIPT_TIMEOUT,
) -> TxReceipt:
    """Sign `tx` locally, send it raw and wait for its receipt.

    `tx` is a built transaction (to/data/value/gas/fees); `from`, `nonce` (pending count) and
    `chainId` are filled in when absent. Raises ContractReverted on a failed receipt (the revert
    data is recovered by replaying the call at that block), TransactionError on timeout.
    """
    from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError

    filled: dict[str, Any] = dict(tx)
    filled.setdefault("from", account.address)
    try:
        if "nonce" not in filled:
            filled["nonce"] = w3.eth.get_transaction_count(account.address, "pending")
        if "chainId" not in filled:
            filled["chainId"] = w3.eth.chain_id
        signed = account.sign_transaction(filled)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    except (Web3RPCError, OSError) as exc:  # rejected by the node (funds, nonce, fee) or unreachable
        raise TransactionError(what, f"send failed: {exc}") from exc
    hex_hash = "0x" + bytes(tx_hash).hex()
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    except TimeExhausted as exc:
        raise TransactionError(what, f"no receipt within {timeout} s", hex_hash) from exc
    except (Web3RPCError, OSError) as exc:
        raise TransactionError(what, f"waiting for the receipt failed: {exc}", hex_hash) from exc
    if receipt["status"] != 1:
        replay: dict[str, Any] = {k: filled[k] for k in ("from", "to", "data", "value") if k in filled}
        try:
            w3.eth.call(replay, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise _reverted(what, exc, hex_hash) from exc
        except (Web3RPCError, OSError):
            pass  # the revert reason is unavailable; the failure itself is certain
        raise ContractReverted(what, "", (), b"", hex_hash)
    return receipt


def transact(
    w3: Web3,
    account: LocalAccount,
    call: Any,
    *,
    what: str,
    value: int = 0,
    gas: int | None = None,
    timeout: float = DEFAULT_RECEIPT_TIMEOUT,
) -> TxReceipt:
    """Send a contract function call or constructor (`contract.functions.f(...)`, `C.constructor(...)`).

    Gas is estimated unless given; an estimate that reverts raises ContractReverted before anything
    is sent; a node that refuses the estimate or the transaction otherwise (funds, nonce, fee) or
    cannot be reached raises TransactionError. Returns the successful receipt.
    """
    from web3.exceptions import ContractLogicError, Web3RPCError

    params: dict[str, Any] = {"from": account.address, "value": value}
    if gas is not None:
        params["gas"] = gas
    try:
        params["nonce"] = w3.eth.get_transaction_count(account.address, "pending")
        tx = call.build_transaction(params)
    except ContractLogicError as exc:
        raise _reverted(what, exc) from exc
    except (Web3RPCError, OSError) as exc:  # gas estimate refused for another reason, or no node
        raise TransactionError(what, f"could not build the transaction: {exc}") from exc
    return send_transaction(w3, account, tx, what=what, timeout=timeout)


def deploy(w3: Web3, account: LocalAccount, name: str, *args: Any) -> ChecksumAddress:
    """Deploy artifact `name` with constructor `args`; returns the new contract's checksum address."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = transact(w3, account, factory.constructor(*args), what=f"deploy {name}")
    address = receipt["contractAddress"]
    if address is None:
        raise BindingsError(f"deploy {name}: receipt has no contractAddress")
    return to_checksum_address(address)


def deploy_vault(w3: Web3, deployer: LocalAccount, withdraw_delay: int) -> ChecksumAddress:
    """Deploy a CollateralVault (source chain) with `withdraw_delay` seconds.

    The delay must be MIN_WITHDRAW_DELAY..MAX_WITHDRAW_DELAY (the constructor reverts
    InvalidWithdrawDelay otherwise; checked here first, BindingsError) and should exceed the
    destination's `maxAge` for this chain plus FUTURE_TOLERANCE (DESIGN section 4).
    """
    if not MIN_WITHDRAW_DELAY <= withdraw_delay <= MAX_WITHDRAW_DELAY:
        raise BindingsError(
            f"withdraw_delay must be {MIN_WITHDRAW_DELAY}..{MAX_WITHDRAW_DELAY} seconds, got {withdraw_delay}"
        )
    return deploy(w3, deployer, "CollateralVault", withdraw_delay)


def deploy_destination(
    w3: Web3,
    deployer: LocalAccount,
    committee: Sequence[str | bytes],
    threshold: int,
    *,
    owner: str | None = None,
) -> ChecksumAddress:
    """Deploy MarginSettlement(owner, committee, threshold), which is its own EpochVerifier.

    Owned by `owner` (default: the deployer; two-step ownership, so a later transfer must be
    accepted by the new owner). Returns its address: the destination is one contract
    (MarginSettlement inherits EpochVerifier, so a block check calls no other contract).
    An invalid committee reverts with InvalidCommittee / InvalidMember (ContractReverted).
    """
    owner_address = to_checksum_address(owner or deployer.address)
    members = [to_checksum_address(m) for m in committee]
    settlement = deploy(w3, deployer, "MarginSettlement", owner_address, members, threshold)
    return settlement


def register_vault(
    w3: Web3,
    owner: LocalAccount,
    settlement: str,
    chain_id: int,
    vault: str,
    collateral_slot: int,
    haircut_bps: int,
    max_age: int,
) -> TxReceipt:
    """`MarginSettlement.registerVault`: register (or update) the vault of source chain `chain_id`.

    `haircut_bps` 0..10000 (weight of the collateral), `max_age` 1..MAX_MAX_AGE seconds. A new
    chain (also a removed one), vault or collateral slot, or a larger `max_age`, gets a new
    registration number: older positions count zero and only epochs accepted from now on settle
    the chain. A haircut change or a smaller `max_age` keeps the registration and its positions.
    Reverts with InvalidVaultConfig / TooManyChains / OwnableUnauthorizedAccount (ContractReverted).
    """
    target = contract(w3, "MarginSettlement", settlement)
    call = target.functions.registerVault(chain_id, to_checksum_address(vault), collateral_slot, haircut_bps, max_age)
    return transact(w3, owner, call, what=f"registerVault(chain {chain_id})")


def remove_chain(w3: Web3, owner: LocalAccount, settlement: str, chain_id: int) -> TxReceipt:
    """`MarginSettlement.removeChain`: unregister source chain `chain_id` (its positions count zero).

    Reverts with UnknownChain / OwnableUnauthorizedAccount (ContractReverted).
    """
    target = contract(w3, "MarginSettlement", settlement)
    return transact(w3, owner, target.functions.removeChain(chain_id), what=f"removeChain(chain {chain_id})")


def set_requirement(w3: Web3, owner: LocalAccount, settlement: str, account: str, amount_wei: int) -> TxReceipt:
    """`MarginSettlement.setRequirement`: margin requirement of `account`, in wei."""
    target = contract(w3, "MarginSettlement", settlement)
    call = target.functions.setRequirement(to_checksum_address(account), amount_wei)
    return transact(w3, owner, call, what="setRequirement")
