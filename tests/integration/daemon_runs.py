"""A provisioned devnet with the relayer daemon run as a real process, restartable on the same
store: web3 handles on both chains and the contracts, the daemon's JSON log events across runs,
and the end-state check every fault test ends with (the destination holds what the source says)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from web3 import Web3

from chains.bindings import contract
from relayer import devnet
from tests.integration.test_devnet_relay import source_collateral_at, wait_for

REPO = Path(__file__).resolve().parents[2]


class DaemonRuns:
    """`start()` runs `relayer run` on the devnet's config (`die_at`: a fault checkpoint that
    kills it, see relayer.faults), each run logging to `daemon-<n>.log`; `stop()` SIGTERMs it
    and expects exit 0."""

    def __init__(self, net: devnet.Devnet) -> None:
        self.net = net
        info: Any = net.info
        self.source_rpc: str = info["chains"]["source"]["rpc"]
        self.dest_rpc: str = info["chains"]["destination"]["rpc"]
        self.metrics: str = info["metrics"]
        self.keeper: str = info["keeper"]
        """Base URL of the keeper API (`[keeper] listen`)."""
        self.src = Web3(Web3.HTTPProvider(self.source_rpc))
        self.dst = Web3(Web3.HTTPProvider(self.dest_rpc))
        self.vault = contract(self.src, "CollateralVault", info["contracts"]["vault"])
        self.settlement = contract(self.dst, "MarginSettlement", info["contracts"]["settlement"])
        self.verifier = contract(self.dst, "EpochVerifier", info["contracts"]["settlement"])
        self.accounts: list[str] = info["accounts"]
        self.chain_id = self.src.eth.chain_id
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def log(self) -> Path:
        return self.net.directory / f"daemon-{self.runs}.log"

    def start(self, die_at: str | None = None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "RELAYER_TEST_DIE_AT"}
        if die_at:
            env["RELAYER_TEST_DIE_AT"] = die_at
        self.runs += 1
        out = open(self.log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(self.net.config_path), "--log-format", "json"],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env,
        )  # fmt: skip
        return self.process

    @contextmanager
    def running(self) -> Iterator[None]:
        """A module fixture's life: start the daemon and wait until every account is settled as
        the source says; on exit stop the daemon, then the devnet."""
        self.start()
        try:
            wait_for("first settlement of every account", self.all_settled_as_source_says, timeout=90)
            yield
        finally:
            try:
                self.stop()
            finally:
                devnet.stop(self.net.directory)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(timeout=20) == 0
        self.process = None

    def events(self, name: str) -> list[dict[str, Any]]:
        """Every log event `name` of every run so far, in order."""
        found = []
        for run in range(1, self.runs + 1):
            for line in (self.net.directory / f"daemon-{run}.log").read_text().splitlines():
                if f'"{name}"' in line:
                    found.append(json.loads(line))
        return found

    def settled(self, account: str) -> int:
        """collateralOf(account) on the destination (fresh positions only), in wei."""
        return int(self.settlement.functions.collateralOf(account).call())

    def last_block(self, account: str) -> int:
        return int(self.settlement.functions.lastSettledBlock(account, self.chain_id).call())

    def all_settled_as_source_says(self) -> bool:
        """Every account's destination collateral equals its collateral on the source now and at
        the block it was settled from (an account with nothing, never settled, counts as right)."""
        head = self.src.eth.block_number
        for account in self.accounts:
            block = self.last_block(account)
            value = self.settled(account)
            source_now = source_collateral_at(self.src, self.vault, account, head)
            if block == 0 and source_now == 0 and value == 0:
                continue
            if block == 0 or value != source_now or value != source_collateral_at(self.src, self.vault, account, block):
                return False
        return True
