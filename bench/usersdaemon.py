"""The daemon of bench/users.py: `relayer run` as a process with its RSS sampled, the source's
heads as this process saw them, and a copy of the devnet's config per mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.relay import metric_sum, parse_event, rss_bytes, scrape
from chains.anvil import free_port, rpc
from relayer import devnet

ROOT = Path(__file__).resolve().parent.parent
METRICS_EVERY = 0.5


class HeadWatch:
    """When this process first saw each source block number (time.time()), polled every 50 ms."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = -1
        while not self._stop.wait(0.05):
            try:
                head = int(str(rpc(self.url, "eth_blockNumber", [])), 16)
            except OSError:
                continue
            now = time.time()
            for number in range(last + 1, head + 1):
                self.seen.setdefault(number, now)
            last = max(last, head)

    def wait(self, number: int, limit: float = 120) -> float:
        """time.time() when block `number` was first seen (waits for it)."""
        deadline = time.monotonic() + limit
        while number not in self.seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"source block {number} not seen within {limit} s")
            time.sleep(0.02)
        return self.seen[number]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Daemon:
    """`relayer run` with `config` (JSON logs in `log_path`), its VmRSS and VmHWM sampled."""

    def __init__(self, config: Path, metrics_url: str) -> None:
        self.metrics_url = metrics_url
        self.log_path = config.parent / "daemon.log"
        self._log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if k != "RELAYER_TEST_DIE_AT"}
        self.started = time.time()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(config), "--log-format", "json"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )  # fmt: skip
        self.rss: list[tuple[float, int]] = []
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(METRICS_EVERY):
            try:
                self.rss.append((time.time(), rss_bytes(self.process.pid)))
                self.peak = rss_bytes(self.process.pid, "VmHWM")
            except (OSError, RuntimeError):
                pass

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the daemon exited ({self.process.returncode}); see {self.log_path}")

    def hwm(self) -> int:
        """The daemon's peak RSS so far, bytes."""
        self.check()
        self.peak = rss_bytes(self.process.pid, "VmHWM")
        return self.peak

    def rss_max(self, since: float) -> float | None:
        """The largest VmRSS sampled at or after `since` (time.time()), MB; None without a sample."""
        samples = [b for t, b in self.rss if t >= since]
        return round(max(samples) / 2**20, 1) if samples else None

    def events(self, since: float = 0.0) -> list[Any]:
        """The daemon's log events (bench.relay.Event) at or after `since` (time.time())."""
        with open(self.log_path, encoding="utf-8", errors="replace") as reader:
            found = [parse_event(line) for line in reader]
        return [e for e in found if e is not None and e.t >= since]

    def metrics(self) -> dict[str, float]:
        """Storage keys requested and eth_getProof calls so far (all chains, all outcomes)."""
        sample = scrape(self.metrics_url)
        return {
            "storage_keys": metric_sum(sample, "relayer_storage_keys_requested_total"),
            "get_proof_calls": metric_sum(sample, "relayer_rpc_requests_total", method=lambda m: m == "eth_getProof"),
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def mode_config(
    net: devnet.Devnet,
    directory: Path,
    snapshots: str,
    epoch_retry_seconds: int | None = None,
    source_rpc_timeout: float | None = None,
) -> tuple[Path, str]:
    """A copy of the devnet's relayer config in `directory` (its own store, keys, fresh metrics and
    keeper ports) with `snapshots = <snapshots>` in its [[pairs]] table and, when given,
    `epoch_retry_seconds` in its destination's table and `rpc_timeout_seconds` in the source
    chain's; (path, metrics URL)."""
    directory.mkdir(parents=True)
    shutil.copytree(net.directory / "keys", directory / "keys")
    metrics_port, keeper_port = free_port(), free_port()
    lines = []
    table = ""
    for line in net.config_path.read_text().splitlines():
        if line.startswith("["):
            table = line.strip()
        if line.startswith("listen = ") and table == "[metrics]":
            line = f'listen = "127.0.0.1:{metrics_port}"'
        elif line.startswith("listen = ") and table == "[keeper]":
            line = f'listen = "127.0.0.1:{keeper_port}"'
        lines.append(line)
        if line.strip() == "[destinations.destination]" and epoch_retry_seconds is not None:
            lines.append(f"epoch_retry_seconds = {epoch_retry_seconds}")
        if line.strip() == "[chains.source]" and source_rpc_timeout is not None:
            lines.append(f"rpc_timeout_seconds = {source_rpc_timeout}")
    if table != "[[pairs]]":
        raise RuntimeError(f"the devnet's config does not end with its [[pairs]] table ({table})")
    lines.append(f'snapshots = "{snapshots}"')
    path = directory / "relayer.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, f"http://127.0.0.1:{metrics_port}/metrics"
