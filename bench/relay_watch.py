"""The daemon of ``python -m bench.relay`` run as a real process and watched from outside: JSON-RPC
batches, its JSON log events, its Prometheus ``/metrics`` and its resident memory.

``bench.users`` uses ``batch``, ``parse_event``, ``scrape``, ``metric_sum`` and ``rss_bytes`` (through ``bench.relay``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from bench.relay import Net

ROOT = Path(__file__).resolve().parent.parent
RPC_BATCH = 500  # JSON-RPC calls per HTTP request while seeding
METRICS_EVERY = 0.5


# ------------------------------------------------------------------------------ JSON-RPC


def post(url: str, payload: Any, timeout: float = 300) -> tuple[Any, float]:
    """POST a JSON-RPC payload; returns (decoded reply, seconds until the reply's last byte)."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body), time.perf_counter() - started


def batch(url: str, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    """Results of `calls`, RPC_BATCH per HTTP request; raises RuntimeError on a JSON-RPC error."""
    out: list[Any] = []
    for start in range(0, len(calls), RPC_BATCH):
        part = calls[start : start + RPC_BATCH]
        replies, _ = post(url, [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(part)])
        by_id = {r["id"]: r for r in replies}
        for i in range(len(part)):
            reply = by_id[i]
            if "error" in reply:
                raise RuntimeError(f"{part[i][0]}: {reply['error']}")
            out.append(reply["result"])
    return out


class Progress:
    """A count shown as one line every few seconds while a long phase runs."""

    def __init__(self, what: str, total: int, every: float = 3.0) -> None:
        self.what, self.total, self.every = what, total, every
        self.done = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def _line(self) -> str:
        return f"  {self.what}: {self.done:,} / {self.total:,} ({time.monotonic() - self.started:.0f} s)"

    def _run(self) -> None:
        while not self._stop.wait(self.every) and self.done < self.total:
            print(self._line(), flush=True)
        print(self._line(), flush=True)  # once when complete (or closed)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------ the daemon, watched


@dataclass
class Event:
    t: float  # unix seconds (the log's UTC timestamp)
    name: str
    fields: dict[str, Any]


def parse_event(line: str) -> Event | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or "event" not in data or "timestamp" not in data:
        return None
    t = datetime.fromisoformat(str(data["timestamp"]).replace("Z", "+00:00")).timestamp()
    return Event(t, str(data["event"]), data)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the daemon's /metrics: (name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def metric_sum(sample: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
               **labels: Callable[[str], bool]) -> float:  # fmt: skip
    total = 0.0
    for (n, lbls), value in sample.items():
        d = dict(lbls)
        if n == name and all(test(d.get(k, "")) for k, test in labels.items()):
            total += value
    return total


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """`field` of /proc/`pid`/status in bytes: VmRSS (resident now) or VmHWM (peak resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def follow_until_settled(
    log_path: Path, daemon: subprocess.Popen[bytes], expected: int, started: float, limit: float
) -> list[Event]:
    """Follow the daemon's JSON log at `log_path` until `expected` claims are final; returns its
    events so far. Reports batches as they settle and prints failures; raises RuntimeError when
    the daemon exits or `limit` seconds pass since `started` (a time.time())."""
    events: list[Event] = []
    progress = Progress("claims settled (batches mined)", expected, every=5.0)
    with open(log_path, encoding="utf-8", errors="replace") as reader:
        buffered = ""
        settled = 0
        while settled < expected:
            chunk = reader.read()
            if not chunk:
                if daemon.poll() is not None:
                    raise RuntimeError(f"the daemon exited with {daemon.returncode}; see {log_path}")
                if time.time() - started > limit:
                    raise RuntimeError(f"only {settled:,} of {expected:,} settled within {limit:.0f} s")
                time.sleep(0.1)
                continue
            buffered += chunk
            *lines, buffered = buffered.split("\n")
            for line in lines:
                event = parse_event(line)
                if event is None:
                    continue
                events.append(event)
                if event.name == "settlement.final":
                    settled += int(event.fields["accounts"])
                elif event.name == "batch.settled":
                    progress.add(int(event.fields["accounts"]))
                elif event.name in ("epoch.failed", "proof.rejected", "daemon.failed", "round.failed"):
                    print(f"  daemon: {event.name} {event.fields}", flush=True)
    progress.close()
    return events


def run_daemon(
    net: Net, expected: int, limit: float
) -> tuple[list[Event], list[tuple[float, Any]], int, list[tuple[float, int]]]:
    """Run the daemon until `expected` settlements are final (its logs say so); returns its events,
    the timed metric scrapes, its peak RSS (VmHWM) in bytes and its timed VmRSS samples."""
    log_path = net.directory / "daemon.log"
    env = {k: v for k, v in os.environ.items() if k != "RELAYER_TEST_DIE_AT"}
    started = time.time()
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(net.directory / "relayer.toml"),
             "--log-format", "json"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )  # fmt: skip
    scrapes: list[tuple[float, Any]] = []
    rss: list[tuple[float, int]] = []
    stop = threading.Event()

    def scraper() -> None:
        while not stop.wait(METRICS_EVERY):
            try:
                scrapes.append((time.time(), scrape(net.metrics_url)))
            except OSError:
                pass
            try:
                rss.append((time.time(), rss_bytes(daemon.pid)))
            except (OSError, RuntimeError):
                pass

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    try:
        events = follow_until_settled(log_path, daemon, expected, started, limit)
        time.sleep(METRICS_EVERY * 2)  # one more scrape after the end
        peak = rss_bytes(daemon.pid, "VmHWM")
    finally:
        stop.set()
        thread.join()
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    return events, scrapes, peak, rss
