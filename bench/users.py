"""``python -m bench.users`` (``make bench-users``): one vault with N depositors, epochs with K
changed accounts, delta snapshots and full snapshots side by side in one run.

A devnet (``relayer.devnet.provision`` with one depositor: dev account 3; the source mines a block a
second and takes a block as final ``devnet.CONFIRMATIONS`` deep, the destination mines every
``--dest-block-time`` seconds, 30M gas blocks), the daemon run as a real process
(``python -m relayer.cli run``, JSON logs, its Prometheus ``/metrics`` scraped).

**Seeding** (the other N - 1 depositors; the seconds are printed and kept): anvil's ``anvil_setCode``
puts bench/contracts/UsersSeeder.sol at the vault's address for a few blocks; each block then holds
one ``seed`` transaction of SEED_PER_TX accounts (25.1k gas each, 25M of the 30M block: a full
block, as a busy chain would have), which writes ``collateral[account]`` at the vault's own
mapping slot and emits the vault's own ``Deposited(account, amount, collateral)`` log from the
vault's address, the deposited wei sent with it; then the vault's code is put back and a block
mined. Source block production is paused meanwhile (``evm_setIntervalMining 0``, blocks mined one by
one with the base fee held where it was) and resumed after; the daemon starts only later, so no
block whose state was rewritten without a new header is ever proven. The seeded values are read
back through the vault's real code. The accounts that will change later are funded
(``anvil_setBalance``) before the last seeding block and sent from with
``anvil_autoImpersonateAccount``: their later deposits are real ``deposit()`` transactions.

Then, per mode (``snapshots = "delta"``, and with ``--full`` (the default) ``"full"``; each its
own daemon, data directory and store; the full daemon runs after the delta one, against the same
vault and destination contracts, like a member restarted from an empty store):

Both daemons run with ``epoch_retry_seconds = --epoch-retry-seconds`` (default 600; 0 leaves the
daemon's default, 60): a full snapshot of 100,000 accounts takes anvil about 150 s to prove, and
before main's 819162b an epoch not accepted within that time was failed for a later attempt of the
rule (the full daemon then exited: ``store write failed: UNIQUE constraint failed: epochs.epoch``).
Before delta epochs there was no such retry: 600 keeps the full baseline as it was.

1. **first settlement** (delta daemon only; the first epoch proves every account in both modes):
   seconds from the daemon's start until every depositor's position on the destination holds its
   collateral, and the relayer's destination gas per account (receipts' gasUsed of every
   transaction of its sender, epochs included);
2. a warm-up change of one account (the full daemon discovers the vault's accounts then);
3. **K changed accounts** for each K of ``--changes`` (fresh accounts each time, all deposits sent
   at once): seconds from the last change being final on the source (the first moment this process
   saw the source's head reach the change's block + ``CONFIRMATIONS``, as the daemon's finality
   rule has it) to every one of the K positions holding its new value on the destination; also from
   the epoch's height being final (the rule proves the first multiple of ``every_blocks`` at or
   above the change); storage keys requested (``relayer_storage_keys_requested_total``) and
   ``eth_getProof`` calls (``relayer_rpc_requests_total{method="eth_getProof"}``), both as the
   difference over the phase; the claims of the epochs created (their ``epoch.created`` logs);
   the relayer's destination gas over the accounts settled (``BlockSettled.settled``). A phase
   ends when the relayer sent nothing for QUIET_SECONDS;
4. the daemon's peak RSS (VmHWM of /proc/PID/status, read every METRICS_EVERY seconds).

**RSS** (``--rss-accounts``, default 1,000,000; 0 skips it; ``--rss-only`` runs it alone): a fresh
devnet with that many depositors, ``--rss-per-block`` (default 10,000; anvil refuses a seeding
transaction of 20,000) seeded a block (anvil's memory grows with blocks x slots: 17 GB for
1,000,000 in 200 blocks, so fewer, fuller blocks, then a source block every 12 s), and a delta
daemon from an empty store, run until 120 s after its second epoch was created (``--rss-seconds``
at most): its VmHWM once its discovery had found all of them (its
``accounts.discovered`` logs), once its first epoch was created (the MAX_ACCOUNTS_PER_SNAPSHOT
lowest addresses; the others are due at once), once its second was created (a delta epoch over
every known account: the refresh slice of those held back, read from the store's proven-accounts
set) and at the end. anvil answers ``eth_getProof`` at 1,000,000 slots in seconds per call, so each
epoch of 50,000 takes minutes there.

Targets (issue 18) are printed next to each figure; nothing is asserted. Writes
``bench/results/users.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from web3 import Web3

from bench.relay import batch
from bench.usersdaemon import Daemon, HeadWatch, mode_config
from bench.userseed import MAX_FEE, SEED_PER_TX, amount_of, depositor, seed
from bench.usersreport import TARGETS, rss_lines, table
from bench.usersrss import rss_run
from chains.bindings import contract
from relayer import devnet

__all__ = ["SEED_PER_TX", "amount_of", "depositor", "main", "seed"]  # (seeding: bench.userseed)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "users.json"

DEPOSIT_WEI = 10**15
"""Each change deposits this much: the default `min_change_wei`, so every change starts an epoch."""
DEPOSIT_GAS = 120_000
QUIET_SECONDS = 6.0
"""A phase ends once the relayer's sender sent no destination transaction for this long."""

POSITIONS_PER_CALL = 1_000


# ------------------------------------------------------------------------------ measuring


class Bench:
    """The devnet of one run: chains, contracts, depositors (dev account 3 first, then the seeded)."""

    def __init__(self, net: devnet.Devnet, seeded: int) -> None:
        info: Any = net.info
        self.net = net
        self.source_url: str = info["chains"]["source"]["rpc"]
        self.dest_url: str = info["chains"]["destination"]["rpc"]
        self.src = Web3(Web3.HTTPProvider(self.source_url))
        self.dst = Web3(Web3.HTTPProvider(self.dest_url))
        self.vault = contract(self.src, "CollateralVault", info["contracts"]["vault"])
        self.settlement = contract(self.dst, "MarginSettlement", info["contracts"]["settlement"])
        self.chain_id = int(info["chains"]["source"]["chain_id"])
        self.holders: list[str] = [*info["accounts"], *(depositor(i) for i in range(seeded))]
        self.sender = devnet.dev_account(2).address
        self.every_blocks = devnet.EVERY_BLOCKS
        self.heads = HeadWatch(self.source_url)
        self._next_change = 1  # holders[0] (dev account 3) never changes; the seeded ones in turn

    def take(self, count: int) -> list[str]:
        """The next `count` depositors not changed yet in this run."""
        chosen = self.holders[self._next_change : self._next_change + count]
        if len(chosen) != count:
            raise RuntimeError(f"only {len(chosen)} depositors left to change, {count} wanted")
        self._next_change += count
        return chosen

    def positions(self, accounts: Sequence[str]) -> list[int]:
        """The settled values of `accounts` on the destination (positionsOf, in calls of 1,000)."""
        out: list[int] = []
        for start in range(0, len(accounts), POSITIONS_PER_CALL):
            part = list(accounts[start : start + POSITIONS_PER_CALL])
            out.extend(int(v) for v in self.settlement.functions.positionsOf(part, self.chain_id).call()[0])
        return out

    def collateral(self, accounts: Sequence[str]) -> list[int]:
        """The vault's collateral of `accounts` at the source's head."""
        data = [self.vault.encode_abi("collateral", args=[a]) for a in accounts]
        replies = batch(
            self.source_url, [("eth_call", [{"to": self.vault.address, "data": d}, "latest"]) for d in data]
        )
        return [int(r, 16) for r in replies]

    def wait_settled(self, daemon: Daemon, accounts: Sequence[str], expected: Sequence[int], limit: float,
                     poll: float) -> float:  # fmt: skip
        """time.time() when every one of `accounts` held its `expected` value on the destination
        (only the ones not there yet are read again); raises RuntimeError after `limit` seconds."""
        deadline = time.monotonic() + limit
        waiting = list(zip(accounts, expected, strict=True))
        while True:
            values = self.positions([a for a, _ in waiting])
            now = time.time()
            waiting = [(a, e) for (a, e), v in zip(waiting, values, strict=True) if v != e]
            if not waiting:
                return now
            daemon.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(waiting):,} of {len(accounts):,} not settled within {limit:.0f} s")
            time.sleep(poll)

    def quiet(self, limit: float = 600) -> None:
        """Wait until the relayer's sender sent no destination transaction for QUIET_SECONDS."""
        deadline = time.monotonic() + limit
        sent, since = self.dst.eth.get_transaction_count(self.sender), time.monotonic()
        while time.monotonic() - since < QUIET_SECONDS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relayer kept sending for {limit:.0f} s")
            time.sleep(0.5)
            now = self.dst.eth.get_transaction_count(self.sender)
            if now != sent:
                sent, since = now, time.monotonic()

    def relayer_gas(self, first: int, last: int) -> dict[str, int]:
        """The relayer's destination transactions in blocks first..last: count, gasUsed, and the
        accounts they settled (BlockSettled.settled)."""
        blocks: list[Any] = batch(
            self.dest_url, [("eth_getBlockByNumber", [hex(n), False]) for n in range(first, last + 1)]
        )
        every: list[Any] = batch(
            self.dest_url, [("eth_getTransactionReceipt", [h]) for block in blocks for h in block["transactions"]]
        )
        receipts = [r for r in every if str(r["from"]).lower() == self.sender.lower()]
        hashes = {str(r["transactionHash"]) for r in receipts}
        settled = sum(
            int(e["args"]["settled"])
            for e in self.settlement.events.BlockSettled.get_logs(from_block=first, to_block=last)
            if "0x" + bytes(e["transactionHash"]).hex() in hashes
        )
        return {"transactions": len(hashes), "gas": sum(int(r["gasUsed"], 16) for r in receipts), "settled": settled}

    def first_settlement(self, daemon: Daemon, limit: float) -> dict[str, Any]:
        first_block = self.dst.eth.block_number + 1
        expected = self.collateral(self.holders)
        settled_at = self.wait_settled(daemon, self.holders, expected, limit, poll=2.0)
        seconds = settled_at - daemon.started
        self.quiet()
        gas = self.relayer_gas(first_block, self.dst.eth.block_number)
        created = [e for e in daemon.events() if e.name == "epoch.created"]
        return {
            "accounts": len(self.holders),
            "seconds_from_daemon_start": round(seconds, 1),
            "first_epoch_created_after_s": round(created[0].t - daemon.started, 1) if created else None,
            "transactions": gas["transactions"],
            "accounts_settled": gas["settled"],
            "gas_per_account": round(gas["gas"] / max(1, gas["settled"])),
            "peak_rss_mb": round(daemon.hwm() / 2**20, 1),
        }

    def change(self, daemon: Daemon, count: int, limit: float) -> dict[str, Any]:
        """`count` fresh depositors deposit DEPOSIT_WEI each at once; the figures of the module doc."""
        accounts = self.take(count)
        self.quiet()
        before, dest_from, since = daemon.metrics(), self.dst.eth.block_number + 1, time.time()
        data = self.vault.encode_abi("deposit", args=[])
        hashes = batch(self.source_url, [
            ("eth_sendTransaction", [{"from": a, "to": self.vault.address, "value": hex(DEPOSIT_WEI), "data": data,
                                      "gas": hex(DEPOSIT_GAS), "maxFeePerGas": hex(MAX_FEE),
                                      "maxPriorityFeePerGas": hex(10**9)}])
            for a in accounts
        ])  # fmt: skip
        pending, blocks = list(hashes), []
        while pending:
            receipts: list[Any] = batch(self.source_url, [("eth_getTransactionReceipt", [h]) for h in pending])
            for receipt in receipts:
                if receipt is not None and int(receipt["status"], 16) != 1:
                    raise RuntimeError(f"deposit {receipt['transactionHash']} reverted")
            blocks += [int(r["blockNumber"], 16) for r in receipts if r is not None]
            pending = [h for h, r in zip(pending, receipts, strict=True) if r is None]
            if pending:
                time.sleep(0.05)
        last = max(blocks)
        expected = self.collateral(accounts)
        final_at = self.heads.wait(last + devnet.CONFIRMATIONS)
        epoch_block = -(-last // self.every_blocks) * self.every_blocks
        settled_at = self.wait_settled(daemon, accounts, expected, limit, poll=0.1)
        epoch_final_at = self.heads.seen.get(epoch_block + devnet.CONFIRMATIONS, settled_at)
        self.quiet()
        after = daemon.metrics()
        gas = self.relayer_gas(dest_from, self.dst.eth.block_number)
        epochs = [e.fields for e in daemon.events(since) if e.name == "epoch.created"]
        return {
            "changed": count,
            "source_blocks": sorted(set(blocks)),
            "seconds_from_final": round(settled_at - final_at, 2),
            "seconds_from_epoch_height_final": round(settled_at - epoch_final_at, 2),
            "storage_keys_requested": round(after["storage_keys"] - before["storage_keys"]),
            "get_proof_calls": round(after["get_proof_calls"] - before["get_proof_calls"]),
            "epochs": len(epochs),
            "claims": sum(int(e.get("claims", 0)) for e in epochs),
            "transactions": gas["transactions"],
            "accounts_settled": gas["settled"],
            "gas_per_settled_account": round(gas["gas"] / gas["settled"]) if gas["settled"] else None,
            "rss_mb_max_in_phase": daemon.rss_max(since),
            "peak_rss_mb": round(daemon.hwm() / 2**20, 1),
        }

    def close(self) -> None:
        self.heads.close()


def run_mode(bench: Bench, snapshots: str, directory: Path, changes: Sequence[int], first: bool,
             limit: float, logs: Path, epoch_retry_seconds: int | None,
             say: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """One daemon with `snapshots`: (`first`: the first settlement,) a warm-up change, each K.
    A failure (the daemon exited, a settlement not seen within `limit`) ends the mode: what was
    measured is kept and `error` says what happened. The daemon's log is copied into `logs`."""
    config, metrics_url = mode_config(bench.net, directory, snapshots, epoch_retry_seconds)
    daemon = Daemon(config, metrics_url)
    result: dict[str, Any] = {"snapshots": snapshots}
    try:
        if first:
            say(f"{snapshots}: daemon started; waiting for every first settlement")
            result["first"] = bench.first_settlement(daemon, limit)
            say(f"{snapshots}: first settlement {json.dumps(result['first'])}")
        say(f"{snapshots}: warm-up change of one account")
        result["warm_up"] = bench.change(daemon, 1, limit)
        for count in changes:
            say(f"{snapshots}: {count} accounts change")
            result[f"change_{count}"] = bench.change(daemon, count, limit)
            say(f"{snapshots}: {json.dumps(result[f'change_{count}'])}")
    except RuntimeError as exc:
        result["error"] = str(exc)
        say(f"{snapshots}: FAILED: {exc}")
    finally:
        result["peak_rss_mb"] = round(daemon.peak / 2**20, 1)
        daemon.close()
        logs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(daemon.log_path, logs / f"{snapshots}-daemon.log")
    return result


# ------------------------------------------------------------------------------ main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.users", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="depositors of the vault (N)")
    parser.add_argument("--changes", type=int, nargs="+", default=[100, 1_000], help="K per phase")
    parser.add_argument("--full", action=argparse.BooleanOptionalAction, default=True,
                        help="also run full snapshots on the same vault (default: yes)")  # fmt: skip
    parser.add_argument("--dest-block-time", type=float, default=2.0, help="seconds between destination blocks")
    parser.add_argument("--rss-accounts", type=int, default=1_000_000, help="depositors of the RSS run (0: none)")
    parser.add_argument("--rss-per-block", type=int, default=10_000, help="depositors seeded per block in the RSS run")
    parser.add_argument(
        "--rss-seconds",
        type=float,
        default=3_600.0,
        help="seconds the RSS run's daemon runs at most (it stops once its second epoch is final)",
    )
    parser.add_argument("--rss-only", action="store_true", help="only the RSS run (bench/results/users-rss.json)")
    parser.add_argument("--limit", type=float, default=1200.0, help="seconds a settlement is waited for at most")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--epoch-retry-seconds", type=int, default=600,
                        help="the daemons' epoch_retry_seconds (0: the daemon's default)")  # fmt: skip
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "bench-users-logs",
                        help="where each daemon's JSON log is copied")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.accounts < 2 or any(k < 1 for k in args.changes):
        parser.error("--accounts must be at least 2 and each of --changes at least 1")
    modes = ["delta", "full"] if args.full else ["delta"]
    if len(modes) * (1 + sum(args.changes)) >= args.accounts:
        parser.error(f"{args.accounts} accounts cannot change {len(modes)} x (1 + {sum(args.changes)}) times fresh")

    result = _header(args)
    if args.rss_only:
        return _rss_only(args, result, _say)
    with tempfile.TemporaryDirectory(prefix="bench-users-") as folder:
        _run_modes(args, modes, Path(folder), result, _say)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n")  # again below with the RSS run
        if args.rss_accounts:
            _say(f"RSS run: {args.rss_accounts:,} depositors on a fresh devnet")
            try:
                result["rss"] = rss_run(args.rss_accounts, args.rss_per_block, args.rss_seconds,
                                        args.dest_block_time, Path(folder) / "rss-net", args.logs, _say)  # fmt: skip
            except Exception as exc:  # recorded: the main run's figures are kept
                result["rss"] = {"accounts": args.rss_accounts, "error": f"{type(exc).__name__}: {exc}"}
                _say(f"RSS run: FAILED: {exc}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print()
    for line in table(result):
        print(line)
    print(
        f"(seeding {result['seeding_seconds']} s; destination a block every {args.dest_block_time} s) -> {args.output}"
    )
    return 0


def _say(message: str) -> None:
    print(f"users: {message}", flush=True)


def _header(args: argparse.Namespace) -> dict[str, Any]:
    """The result's description of the run: sizes, pace, targets, when, commit and machine."""
    return {
        "accounts": args.accounts,
        "changes": args.changes,
        "destination_block_time_s": args.dest_block_time,
        "source": f"a block a second, final {devnet.CONFIRMATIONS} deep, every_blocks = {devnet.EVERY_BLOCKS}",
        "seeding_method": "UsersSeeder at the vault's address (anvil_setCode), "
        f"{SEED_PER_TX:,} accounts per transaction and block, the vault's code restored",
        "targets": TARGETS,
        "epoch_retry_seconds": args.epoch_retry_seconds or "the daemon's default",
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def _rss_only(args: argparse.Namespace, result: dict[str, Any], say: Callable[[str], None]) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-users-") as folder:
        say(f"RSS run: {args.rss_accounts:,} depositors on a fresh devnet")
        result["rss"] = rss_run(args.rss_accounts, args.rss_per_block, args.rss_seconds, args.dest_block_time,
                                Path(folder) / "rss-net", args.logs, say)  # fmt: skip
    output = args.output.with_name(args.output.stem + "-rss.json")
    output.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(rss_lines(result["rss"])) + f"\n-> {output}")
    return 0


def _run_modes(args: argparse.Namespace, modes: list[str], directory: Path, result: dict[str, Any],
               say: Callable[[str], None]) -> None:  # fmt: skip
    """One devnet seeded with the vault's depositors; each mode's daemon in turn (result["modes"])."""
    say(f"provisioning a devnet (destination: a block every {args.dest_block_time} s)")
    net = devnet.provision(directory, accounts=1, detach=False, progress=False, dest_block_time=args.dest_block_time)
    try:
        info: Any = net.info
        changing = [depositor(i) for i in range(len(modes) * (1 + sum(args.changes)))]
        seeding = seed(info["chains"]["source"]["rpc"], info["contracts"]["vault"], args.accounts - 1, changing,
                       say)  # fmt: skip
        result["seeding_seconds"] = round(seeding, 1)
        say(f"seeded {args.accounts - 1:,} depositors (and dev account 3's deposit) in {seeding:.1f} s")
        bench = Bench(net, args.accounts - 1)
        try:
            result["modes"] = [
                run_mode(
                    bench,
                    mode,
                    directory / mode,
                    args.changes,
                    mode == "delta",
                    args.limit,
                    args.logs,
                    args.epoch_retry_seconds or None,
                    say,
                )
                for mode in modes
            ]
        finally:
            bench.close()
    finally:
        devnet.stop(directory)


if __name__ == "__main__":
    sys.exit(main())
