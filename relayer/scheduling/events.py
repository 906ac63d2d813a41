"""The on-chain events the epoch rule reads (relayer.scheduling.schedule): the vault's collateral
changes (`Deposited`, `WithdrawRequested`: topic0 and amount), the destination's acceptances
(`EpochAccepted`) and settlements (`BlockSettled`), from the compiled contracts' ABIs."""

from __future__ import annotations

from eth_utils import event_abi_to_log_topic

from chains.bindings import load_artifact
from chains.errors import RpcGarbageError


def collateral_topics() -> list[str]:
    """topic0 of the vault's `Deposited` and `WithdrawRequested` events, whose first data word
    is the amount (wei)."""
    topics = [
        "0x" + event_abi_to_log_topic(item).hex()  # type: ignore[arg-type]
        for item in load_artifact("CollateralVault").abi
        if item.get("type") == "event" and item.get("name") in ("Deposited", "WithdrawRequested")
    ]
    if len(topics) != 2:
        raise RuntimeError("CollateralVault ABI lacks its Deposited or WithdrawRequested event")
    return topics


def event_amount(entry: dict[str, object], host: str) -> int:
    """The amount (wei) of a `Deposited` or `WithdrawRequested` log: its first data word.
    Raises RpcGarbageError for data that is not at least one 0x-hex word."""
    data = entry.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 66:
        raise RpcGarbageError("vault log without its amount word", method="eth_getLogs", host=host)
    try:
        return int(data[2:66], 16)
    except ValueError:
        raise RpcGarbageError("vault log data is not hex", method="eth_getLogs", host=host) from None


def accepted_topic() -> str:
    """topic0 of the EpochVerifier's `EpochAccepted` event."""
    for item in load_artifact("EpochVerifier").abi:
        if item.get("type") == "event" and item.get("name") == "EpochAccepted":
            return "0x" + event_abi_to_log_topic(item).hex()  # type: ignore[arg-type]
    raise RuntimeError("EpochVerifier ABI has no EpochAccepted event")


def settled_topic() -> str:
    """topic0 of the MarginSettlement's `BlockSettled` event."""
    for item in load_artifact("MarginSettlement").abi:
        if item.get("type") == "event" and item.get("name") == "BlockSettled":
            return "0x" + event_abi_to_log_topic(item).hex()  # type: ignore[arg-type]
    raise RuntimeError("MarginSettlement ABI has no BlockSettled event")
