"""A committee member run as a hot-standby pair (docs/standby.md) on a provisioned devnet: two
`relayer run` processes of the one member, each with its own listeners, sharing one PostgreSQL
database (`[store] url`), restartable and killable; and the checks that nothing was done twice,
read from that database and from the destination chain. Used by tests/integration/test_failover.py
and bench/failover.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from web3 import Web3

from chains.anvil import free_port
from chains.bindings import contract
from relayer import devnet

REPO = Path(__file__).resolve().parents[2]


def store_url(conninfo: str) -> str:
    """The `postgresql://` URL of a libpq key=value connection string over a unix socket (what
    tests/pg.py gives): `postgresql://user@/dbname?host=DIR&port=N`."""
    parts = dict(item.split("=", 1) for item in conninfo.split())
    query = urllib.parse.urlencode({"host": parts["host"], "port": parts["port"]})
    return f"postgresql://{parts['user']}@/{parts['dbname']}?{query}"


def pair_config(net: devnet.Devnet, name: str, url: str, store_lines: str = "") -> Path:
    """The devnet's member config for process `name` of the pair: the shared PostgreSQL store
    (`[store] url`, then `store_lines`, e.g. the lease's times) and listeners of its own (free
    ports), written beside the devnet's as `relayer-<name>.toml`."""
    text, dropped = re.subn(r'\[relayer\]\nstore = "[^"]*"\n', "", net.config_path.read_text())
    assert dropped == 1, f"no [relayer] store in {net.config_path}"  # the store is the database's
    for table in ("metrics", "keeper"):
        pattern = rf'(\[{table}\]\nlisten = )"127\.0\.0\.1:\d+"'
        text, count = re.subn(pattern, rf'\1"127.0.0.1:{free_port()}"', text)
        assert count == 1, f"no [{table}] listen in {net.config_path}"
    path = net.config_path.with_name(f"relayer-{name}.toml")
    path.write_text(f'{text.rstrip()}\n\n[store]\nurl = "{url}"\n{store_lines}\n')
    return path


@contextmanager
def failover_devnet(directory: Path, accounts: int) -> Iterator[devnet.Devnet]:
    """A devnet in `directory` with `accounts` funded accounts (the crash-recovery test's
    ACCOUNTS), producing an epoch every 2 source blocks, with several settlement
    transactions per epoch and every change settled (as the crash-recovery test); stopped after."""
    network = devnet.provision(directory, accounts=accounts, detach=False, progress=False, every_blocks=2)
    text, table = network.config_path.read_text(), "[destinations.destination]\n"
    network.config_path.write_text(text.replace(table, f"{table}max_gas_per_batch = 250000\nmin_change_wei = 0\n"))
    try:
        yield network
    finally:
        devnet.stop(directory)


@dataclass
class PairProcess:
    """One process of the pair: `start(die_at)` runs `relayer run` on its config (`die_at`: a
    relayer.faults checkpoint that kills it), each run logging to `<name>-<n>.log`."""

    name: str
    config: Path
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        listen = re.search(r'\[metrics\]\nlisten = "([^"]+)"', self.config.read_text())
        assert listen is not None
        return f"http://{listen.group(1)}"

    def start(self, die_at: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RELAYER_TEST_DIE_AT"}
        if die_at:
            env["RELAYER_TEST_DIE_AT"] = die_at
        self.runs += 1
        self.logs.append(self.config.with_name(f"{self.name}-{self.runs}.log"))
        out = open(self.logs[-1], "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(self.config), "--log-format", "json"],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env,
        )  # fmt: skip

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def role(self) -> str | None:
        """The role this process reports on /v1/status (None: not answering)."""
        try:
            with urllib.request.urlopen(self.url + "/v1/status", timeout=3) as answer:
                return str(json.loads(answer.read())["leadership"]["role"])
        except (OSError, ValueError, KeyError):
            return None

    def events(self, name: str, run: int | None = None) -> list[dict[str, Any]]:
        """The log events `name` of run `run` (1-based; default every run), in order."""
        logs = self.logs if run is None else [self.logs[run - 1]]
        found = []
        for log in logs:
            for line in log.read_text(errors="replace").splitlines():
                if f'"{name}"' in line and line.startswith("{"):
                    found.append(json.loads(line))
        return found

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> int | None:
        """SIGTERM and the exit code (None when it was not running)."""
        if not self.alive():
            return None
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def event_time(event: dict[str, Any]) -> float:
    """The Unix time of a JSON log event (its ISO `timestamp`, UTC)."""
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def wait_until(what: str, predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Doubles:
    """What was done twice, counted: nonces of two transactions (store and destination), epochs
    signed by this member with two roots (store), roots accepted twice and settlements sent twice
    (destination)."""

    nonces: int
    signatures: int
    settlements: int
    details: list[str]
    checked: int = 0
    """The sender's destination transactions checked against the store."""

    @property
    def total(self) -> int:
        return self.nonces + self.signatures + self.settlements


def count_doubles(net: devnet.Devnet, conninfo: str) -> Doubles:
    """Read the shared store and the destination: every way the pair could have done something twice."""
    info: Any = net.info
    dst = Web3(Web3.HTTPProvider(info["chains"]["destination"]["rpc"]))
    settlement = contract(dst, "MarginSettlement", info["contracts"]["settlement"])
    verifier = contract(dst, "EpochVerifier", info["contracts"]["settlement"])
    details: list[str] = []
    with psycopg.connect(conninfo) as db:
        reused = db.execute(
            "SELECT chain_id, sender, nonce, count(*) FROM tx_intents "
            "GROUP BY chain_id, sender, nonce HAVING count(*) > 1"
        ).fetchall()
        attempts = {row[0].lower(): (row[1], row[2]) for row in db.execute(
            "SELECT a.tx_hash, a.nonce, i.nonce FROM tx_attempts a JOIN tx_intents i "
            "ON (a.chain_id, a.sender, a.key) = (i.chain_id, i.sender, i.key)"
        ).fetchall()}  # fmt: skip
        two_roots = db.execute(
            "SELECT chain_id, verifier, epoch, signer, count(DISTINCT root) FROM attestations "
            "GROUP BY chain_id, verifier, epoch, signer HAVING count(DISTINCT root) > 1"
        ).fetchall()
        senders = {row[0] for row in db.execute("SELECT DISTINCT sender FROM tx_intents").fetchall()}
    details += [f"nonce {r[2]} of {r[1]} given to {r[3]} intents" for r in reused]
    details += [f"epoch {r[2]} signed by {r[3]} with {r[4]} roots" for r in two_roots]
    # every transaction the sender mined on the destination is one the store allotted that nonce
    mined_wrong = checked = 0
    for number in range(dst.eth.block_number + 1):
        block: Any = dst.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] not in senders:
                continue
            checked += 1
            allotted = attempts.get("0x" + bytes(tx["hash"]).hex())
            if allotted is None or allotted != (tx["nonce"], tx["nonce"]):
                mined_wrong += 1
                details.append(f"destination tx {bytes(tx['hash']).hex()} nonce {tx['nonce']}: store says {allotted}")
    roots = Counter(bytes(e["args"]["root"]) for e in verifier.events.EpochAccepted.get_logs(from_block=0))
    accepted_twice = sum(n - 1 for n in roots.values())
    skipped = len(settlement.events.SettlementSkipped.get_logs(from_block=0))  # nobody else settles here
    if accepted_twice or skipped:
        details.append(f"roots accepted twice {accepted_twice}, settlements skipped (sent twice) {skipped}")
    return Doubles(len(reused) + mined_wrong, len(two_roots) + accepted_twice, skipped, details, checked)
