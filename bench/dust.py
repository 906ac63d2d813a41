"""``python -m bench.dust``: what dust costs the relayer against what it costs the attacker.

A devnet (``relayer devnet``'s provisioning: two anvil nodes, the daemon run as a real process),
once with the default settings and once with ``min_change_wei = 0`` (every change counts: how
the relayer behaved before, when any vault log started an epoch) side by side. In each:

1. **deposits**: N fresh accounts (funded and impersonated on the source) deposit 1 wei each, a
   snapshot multiple apart, so that each could be an epoch of its own;
2. **withdrawals**: N settled accounts request a withdrawal of 1 wei each, spaced the same way;
3. **next real change**: a fresh account deposits 10^15 wei, which starts an epoch in both runs;
   with the defaults that epoch carries the dust (its claims are in the root, none is settled),
   so the difference of its gas between the runs is what the dust adds to it.

After each phase the run waits until the relayer has been quiet (no destination transaction of
its sender) for QUIET_SECONDS past the last change's final block. Attacker gas: the source
receipts' ``gasUsed`` of the dust transactions (the funding of fresh accounts left out: it only
makes the attacker's side dearer). Relayer gas: the ``gasUsed`` of every destination transaction
of the relayer's sender in the phase, and the epochs it accepted. The ratio is relayer gas per
attacker gas (target with the defaults: <= 0.2). Writes ``bench/results/dust.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.types import Wei

from chains.anvil import rpc
from chains.bindings import contract
from relayer import devnet
from relayer.config import DestinationConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "dust.json"
EVERY_BLOCKS = 2
QUIET_SECONDS = 10.0
"""A phase ends once the relayer sent nothing for this long after the dust was final (an epoch
of the devnet lands in about a second)."""


class Run:
    """One devnet and its daemon with `min_change_wei` (None: the default)."""

    def __init__(self, directory: Path, dust: int, min_change_wei: int | None) -> None:
        self.net = devnet.provision(directory, accounts=dust, detach=False, progress=False, every_blocks=EVERY_BLOCKS)
        if min_change_wei is not None:
            table = "[destinations.destination]\n"
            text = self.net.config_path.read_text()
            self.net.config_path.write_text(text.replace(table, f"{table}min_change_wei = {min_change_wei}\n"))
        info: Any = self.net.info
        self.source_rpc: str = info["chains"]["source"]["rpc"]
        self.src = Web3(Web3.HTTPProvider(self.source_rpc))
        self.dst = Web3(Web3.HTTPProvider(info["chains"]["destination"]["rpc"]))
        self.vault = contract(self.src, "CollateralVault", info["contracts"]["vault"])
        self.settlement = contract(self.dst, "MarginSettlement", info["contracts"]["settlement"])
        self.holders: list[str] = info["accounts"]
        self.sender = devnet.member_keys(0)[1].address
        self.log = open(directory / "daemon.log", "wb")
        env = {k: v for k, v in os.environ.items() if k != "RELAYER_TEST_DIE_AT"}
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(self.net.config_path), "--log-format", "json"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )  # fmt: skip
        chain_id = self.src.eth.chain_id
        expected = [int(self.vault.functions.collateral(a).call()) for a in self.holders]
        self._wait(
            "the first settlement",
            lambda: list(self.settlement.functions.positionsOf(self.holders, chain_id).call()[0]) == expected,
        )
        self.quiet_since(self.dst.eth.block_number)

    def _wait(self, what: str, done: Callable[[], bool], limit: float = 180) -> None:
        deadline = time.monotonic() + limit
        while not done():
            if self.daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.daemon.returncode}) waiting for {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {limit} s waiting for {what}")
            time.sleep(0.25)

    def latest_epoch(self) -> int:
        return int(self.settlement.functions.latestEpoch().call())

    def relayer_gas(self, first: int, last: int) -> tuple[int, int]:
        """(transactions, gas used) of the relayer's sender in destination blocks first..last."""
        count = gas = 0
        for number in range(first, last + 1):
            for tx in self.dst.eth.get_block(number, full_transactions=True)["transactions"]:
                entry: Any = tx
                if str(entry["from"]).lower() == self.sender.lower():
                    count += 1
                    gas += int(self.dst.eth.get_transaction_receipt(entry["hash"])["gasUsed"])
        return count, gas

    def quiet_since(self, first: int) -> None:
        """Wait until the relayer's sender sent nothing on the destination for QUIET_SECONDS."""
        sent = self.dst.eth.get_transaction_count(self.sender)
        since = time.monotonic()
        while time.monotonic() - since < QUIET_SECONDS:
            time.sleep(0.5)
            now = self.dst.eth.get_transaction_count(self.sender)
            if now != sent:
                sent, since = now, time.monotonic()

    def phase(self, send: Callable[[int], Any], count: int) -> dict[str, Any]:
        """`count` dust transactions `send(i)` a snapshot multiple apart; what each side paid."""
        first_dest_block, epoch = self.dst.eth.block_number + 1, self.latest_epoch()
        attacker = 0
        for i in range(count):
            receipt = self.src.eth.wait_for_transaction_receipt(send(i))
            attacker += int(receipt["gasUsed"])
            for _ in range(EVERY_BLOCKS + 1):
                rpc(self.source_rpc, "evm_mine", [])
        self.quiet_since(first_dest_block)
        txs, gas = self.relayer_gas(first_dest_block, self.dst.eth.block_number)
        return {
            "changes": count,
            "attacker_source_gas": attacker,
            "relayer_epochs": self.latest_epoch() - epoch,
            "relayer_transactions": txs,
            "relayer_destination_gas": gas,
            "ratio": round(gas / attacker, 4),
        }

    def deposits(self, count: int) -> dict[str, Any]:
        sybils = [self.fresh(f"bench dust {i}") for i in range(count)]
        return self.phase(
            lambda i: self.vault.functions.deposit().transact({"from": sybils[i], "value": Wei(1)}), count
        )

    def real_change(self) -> dict[str, Any]:
        honest = self.fresh("bench honest")
        figures = self.phase(
            lambda _: self.vault.functions.deposit().transact({"from": honest, "value": Wei(10**15)}), 1
        )
        del figures["ratio"]  # not an attack
        return figures

    def fresh(self, label: str) -> str:
        address = Account.from_key(keccak(text=label)).address
        rpc(self.source_rpc, "anvil_setBalance", [address, hex(10**18)])
        rpc(self.source_rpc, "anvil_impersonateAccount", [address])
        return address

    def withdrawals(self, count: int) -> dict[str, Any]:
        return self.phase(lambda i: self.vault.functions.requestWithdraw(1).transact({"from": self.holders[i]}), count)

    def close(self) -> None:
        self.daemon.terminate()
        self.daemon.wait(30)
        self.log.close()
        devnet.stop(self.net.directory)


def measure(dust: int, min_change_wei: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dust-") as tmp:
        run = Run(Path(tmp), dust, min_change_wei)
        try:
            return {
                "deposits": run.deposits(dust),
                "withdrawals": run.withdrawals(dust),
                "next_real": run.real_change(),
            }
        finally:
            run.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dust", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dust", type=int, default=6, help="1-wei changes per phase (default 6)")
    args = parser.parse_args(argv)
    default = DestinationConfig.__dataclass_fields__["min_change_wei"].default
    settings: list[tuple[str, int | None]] = [("default", None), ("every change (min_change_wei = 0)", 0)]
    result: dict[str, Any] = {"dust_per_phase": args.dust, "every_blocks": EVERY_BLOCKS, "runs": []}
    for name, setting in settings:
        print(f"dust: {name}: {args.dust} 1-wei deposits, then {args.dust} 1-wei withdrawal requests", flush=True)
        figures = measure(args.dust, setting)
        result["runs"].append({"setting": name, "min_change_wei": default if setting is None else setting, **figures})
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'setting':<36}{'phase':<13}{'attacker gas':>13}{'epochs':>8}{'relayer gas':>13}{'ratio':>8}")
    for entry in result["runs"]:
        for phase in ("deposits", "withdrawals"):
            f = entry[phase]
            print(
                f"{entry['setting']:<36}{phase:<13}{f['attacker_source_gas']:>13,}{f['relayer_epochs']:>8}"
                f"{f['relayer_destination_gas']:>13,}{f['ratio']:>8.3f}"
            )
    for entry in result["runs"]:
        real = entry["next_real"]
        print(f"{entry['setting']:<36}{'next real':<13}{'':>13}{real['relayer_epochs']:>8}"
              f"{real['relayer_destination_gas']:>13,}")  # fmt: skip
    print(f"(relayer gas per attacker gas; target with the defaults: <= 0.2) -> {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
