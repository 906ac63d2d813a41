"""``python -m bench.scale``: many depositors relayed end to end at a realistic destination pace.

A devnet (``relayer devnet``'s provisioning) with N depositors on the source chain (a block a
second) and a destination that mines a block every S seconds (an L2's pace; 30M gas blocks),
the daemon run as a real process. Measured in the same run, nothing hard-coded:

1. **first settlement**: seconds from the daemon's start until every account's position on
   the destination holds its collateral, the destination transactions that took, and gas per
   settled account (the receipts' gasUsed, base cost and calldata included, the epoch's
   submission amortised in);
2. **update**: every account deposits again; seconds from the block of the last deposit until
   every position holds the new value, and gas per updated account (every destination
   transaction of the relayer from the first deposit on, epochs included).

Writes ``bench/results/scale.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from web3 import Web3

from chains.bindings import contract
from relayer import devnet

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "scale.json"


def _positions(settlement: Any, accounts: list[str], chain_id: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start in range(0, len(accounts), 1000):
        values, blocks, _timestamps = settlement.functions.positionsOf(accounts[start : start + 1000], chain_id).call()
        out.extend(zip(values, blocks, strict=True))
    return out


def _relayer_txs(w3: Web3, sender: str, first_block: int, last_block: int) -> tuple[int, int]:
    """(transactions, gas used) sent by `sender` in destination blocks first..last."""
    count = gas = 0
    for number in range(first_block, last_block + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            entry: Any = tx
            if str(entry["from"]).lower() == sender.lower():
                count += 1
                gas += int(w3.eth.get_transaction_receipt(entry["hash"])["gasUsed"])
    return count, gas


def _wait_all(settlement: Any, accounts: list[str], chain_id: int, expected: list[int], limit: float) -> float:
    """Seconds until every account's settled value equals `expected`; raises after `limit`."""
    started = time.monotonic()
    while True:
        values = [v for v, _ in _positions(settlement, accounts, chain_id)]
        done = sum(1 for v, e in zip(values, expected, strict=True) if v == e)
        if done == len(accounts):
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            raise RuntimeError(f"only {done} of {len(accounts)} accounts settled within {limit} s")
        time.sleep(0.25)


def _update_round(
    src: Web3,
    dst: Web3,
    vault: Any,
    settlement: Any,
    holders: list[str],
    chain_id: int,
    expected: list[int],
    sender: str,
) -> tuple[float, int, int]:
    """Every holder deposits 10**15 wei more; (seconds from the last deposit's block until every
    new value is settled, the relayer's transactions and their gas) for that update."""
    print("scale: every account deposits again", flush=True)
    update_from = dst.eth.block_number + 1  # the relayer may start settling while deposits land
    data = vault.encode_abi("deposit", args=[])
    hashes = [
        src.eth.send_transaction({"from": a, "to": vault.address, "value": 10**15, "data": data, "gas": 120_000})  # type: ignore[typeddict-item]
        for a in holders
    ]
    receipts = [src.eth.wait_for_transaction_receipt(h, timeout=120) for h in hashes]
    last_deposit_block = max(int(r["blockNumber"]) for r in receipts)
    deposit_time = int(src.eth.get_block(last_deposit_block)["timestamp"])
    lag_at_measure = time.time() - deposit_time
    expected = [e + 10**15 for e in expected]
    waited = _wait_all(settlement, holders, chain_id, expected, 600)
    update_seconds = waited + max(0.0, lag_at_measure)
    update_txs, update_gas = _relayer_txs(dst, sender, update_from, dst.eth.block_number)
    print(
        f"scale: all {len(holders)} updated {update_seconds:.1f} s after the last deposit's block "
        f"({update_txs} transactions, {update_gas / len(holders):,.0f} gas per account)",
        flush=True,
    )
    return update_seconds, update_txs, update_gas


def run(accounts: int, dest_block_time: float, directory: Path) -> dict[str, Any]:
    print(
        f"scale: provisioning {accounts} depositors (source: a block a second; destination: "
        f"a block every {dest_block_time} s)",
        flush=True,
    )
    net = devnet.provision(directory, accounts=accounts, detach=False, progress=False, dest_block_time=dest_block_time)
    info: Any = net.info
    src = Web3(Web3.HTTPProvider(info["chains"]["source"]["rpc"]))
    dst = Web3(Web3.HTTPProvider(info["chains"]["destination"]["rpc"]))
    vault = contract(src, "CollateralVault", info["contracts"]["vault"])
    settlement = contract(dst, "MarginSettlement", info["contracts"]["settlement"])
    holders: list[str] = info["accounts"]
    chain_id = src.eth.chain_id
    sender = devnet.dev_account(2).address
    gas_limit = int(dst.eth.get_block("latest")["gasLimit"])
    expected = [int(vault.functions.collateral(a).call()) for a in holders]
    log = open(directory / "daemon.log", "wb")
    first_dest_block = dst.eth.block_number + 1
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k != "RELAYER_TEST_DIE_AT"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "relayer.cli", "run", "--config", str(net.config_path), "--log-format", "json"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        print("scale: daemon started; waiting for every first settlement", flush=True)
        _wait_all(settlement, holders, chain_id, expected, 600)
        first_seconds = time.monotonic() - started
        last_dest_block = dst.eth.block_number
        first_txs, first_gas = _relayer_txs(dst, sender, first_dest_block, last_dest_block)
        print(
            f"scale: all {accounts} settled {first_seconds:.1f} s after the daemon started "
            f"({first_txs} transactions, {first_gas / accounts:,.0f} gas per account)",
            flush=True,
        )

        update_seconds, update_txs, update_gas = _update_round(
            src, dst, vault, settlement, holders, chain_id, expected, sender
        )
    finally:
        daemon.terminate()
        daemon.wait(30)
        log.close()
        devnet.stop(directory)
    return {
        "accounts": accounts,
        "destination_block_time_s": dest_block_time,
        "destination_gas_limit": gas_limit,
        "first": {
            "seconds_from_daemon_start": round(first_seconds, 1),
            "transactions": first_txs,
            "gas_per_account": round(first_gas / accounts),
        },
        "update": {
            "seconds_from_last_deposit_block": round(update_seconds, 1),
            "transactions": update_txs,
            "gas_per_account": round(update_gas / accounts),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--dest-block-time", type=float, default=2.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        result = run(args.accounts, args.dest_block_time, Path(tmp))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    first, update = result["first"], result["update"]
    print(f"\n{'phase':<10}{'accounts':>10}{'seconds':>10}{'txs':>6}{'gas/account':>13}")
    print(
        f"{'first':<10}{args.accounts:>10}{first['seconds_from_daemon_start']:>10}{first['transactions']:>6}"
        f"{first['gas_per_account']:>13,}"
    )
    print(
        f"{'update':<10}{args.accounts:>10}{update['seconds_from_last_deposit_block']:>10}"
        f"{update['transactions']:>6}{update['gas_per_account']:>13,}"
    )
    print(
        f"(destination: a block every {args.dest_block_time} s, {result['destination_gas_limit']:,} gas; "
        f"first: from the daemon's start; update: from the last deposit's source block) -> {RESULTS}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
