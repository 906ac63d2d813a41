"""What `relayer devnet` shows while it runs (relayer.devnet): simulated vault activity on the
source chain, and each block settled on the destination with the members that sent and signed
it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from web3 import Web3
from web3.contract import Contract
from web3.types import Wei

from chains.bindings import contract
from relayer.attestation.eip712 import recover_signer


def simulate_activity(
    info: dict[str, object], stop_event: threading.Event, *, interval: float = 8.0, say: Callable[[str], None] = print
) -> None:
    """Keep the demo alive: every `interval` seconds one seeded account deposits 0.05 ETH or asks
    to withdraw 0.05 ETH (in turn), so the relayer has changes to prove and settle. Runs until
    `stop_event` is set; RPC failures end it quietly (the chains are being stopped)."""
    chains = cast(dict[str, dict[str, object]], info["chains"])
    contracts = cast(dict[str, str], info["contracts"])
    accounts = cast(list[str], info["accounts"])
    w3 = Web3(Web3.HTTPProvider(str(chains["source"]["rpc"])))
    vault = contract(w3, "CollateralVault", contracts["vault"])
    amount = 5 * 10**16
    step = 0
    while not stop_event.wait(interval):
        who = accounts[(step * 7) % len(accounts)]
        try:
            if step % 2 == 0:
                vault.functions.deposit().transact({"from": who, "value": Wei(amount)})
                say(f"activity: {who} deposits 0.05 ETH on the source chain")
            else:
                vault.functions.requestWithdraw(amount).transact({"from": who})
                say(f"activity: {who} requests a 0.05 ETH withdrawal on the source chain")
        except Exception:  # the chains are going away: stop simulating
            return
        step += 1


def epoch_signers(w3: Web3, verifier: Contract, settlement: Contract, accepted: Mapping[str, Any]) -> tuple[str, ...]:
    """The committee members whose signatures an `EpochAccepted` event's transaction carried
    (recovered, EIP-712, from the `signatures` of submitEpoch on the verifier or submitAndSettle
    on the settlement contract); () for a transaction that called neither directly. Raises
    AttestationError for a signature that does not recover (the verifier would have reverted)."""
    args = accepted["args"]
    epoch, root, previous = int(args["epoch"]), bytes(args["root"]), bytes(args["previous"])
    generation = int(args["generation"])  # the signing domain's salt (EpochAccepted carries it)
    tx = w3.eth.get_transaction(accepted["transactionHash"])
    for target in (settlement, verifier):
        if str(tx.get("to", "")).lower() == target.address.lower():
            _, params = target.decode_function_input(tx["input"])
            return tuple(
                recover_signer(
                    w3.eth.chain_id, verifier.address, epoch, root, previous, bytes(signature), generation=generation
                )
                for signature in params.get("signatures", [])
            )
    return ()


def watch_settlements(
    info: dict[str, object],
    stop_event: threading.Event,
    *,
    skip_sender: str,
    say: Callable[[str], None] = print,
    interval: float = 1.0,
) -> None:
    """Say each block settled on the destination by a transaction not from `skip_sender` (the
    in-process member, which prints its own per account): one line per `BlockSettled` with its
    epoch, the member that sent it and the members that signed the epoch. Runs until
    `stop_event` is set; RPC failures end it quietly (the chains are being stopped)."""
    chains = cast(dict[str, dict[str, object]], info["chains"])
    contracts = cast(dict[str, str], info["contracts"])
    committee = cast(dict[str, object], info.get("committee", {}))
    members = cast(list[dict[str, str]], committee.get("members", []))
    names = {m["sender"].lower(): m["name"] for m in members} | {m["attester"].lower(): m["name"] for m in members}
    w3 = Web3(Web3.HTTPProvider(str(chains["destination"]["rpc"])))
    verifier = contract(w3, "EpochVerifier", contracts["settlement"])
    settlement = contract(w3, "MarginSettlement", contracts["settlement"])
    signed_by: dict[int, str] = {}
    next_block = 0
    while not stop_event.wait(interval):
        try:
            head = w3.eth.block_number
            if head < next_block:
                continue
            for accepted in verifier.events.EpochAccepted.get_logs(from_block=next_block, to_block=head):
                signers = epoch_signers(w3, verifier, settlement, accepted)
                signed_by[int(accepted["args"]["epoch"])] = ", ".join(names.get(s.lower(), s) for s in signers)
            for event in settlement.events.BlockSettled.get_logs(from_block=next_block, to_block=head):
                sender = str(w3.eth.get_transaction(event["transactionHash"])["from"])
                args = event["args"]
                if sender.lower() == skip_sender.lower() or int(args["settled"]) == 0:
                    continue
                epoch = int(args["epoch"])
                signed = f", signed by {signed_by[epoch]}" if signed_by.get(epoch) else ""
                say(
                    f"settled {args['settled']} account(s) of chain {args['chainId']} block {args['blockNumber']} "
                    f"(epoch {epoch}, sent by {names.get(sender.lower(), sender)}{signed}, "
                    f"tx {event['transactionHash'].to_0x_hex()[:12]}…)"
                )
            next_block = head + 1
        except Exception:  # the chains are going away: stop watching
            return
