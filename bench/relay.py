"""``python -m bench.relay`` (``make bench-relay``): N source chains x M accounts into one destination.

N source anvils (a block a second; ``--auto-impersonate``, so the M depositors are plain addresses
funded with ``anvil_setBalance``; the same M accounts deposit on every chain, as margin users
with collateral on many chains), one destination anvil (a block per transaction, its head final),
the reference contracts deployed, and the daemon run as a real process (``relayer run``, JSON
logs) with a generated config: one pair per source chain, the daemon's defaults otherwise (proof
chunk 256 keys, batches up to 8M gas, 4 in flight). Everything below is measured in one run:

- **per stage**, summed over every round until all N x M claims are settled, taken from outside
  the daemon (its JSON logs and its Prometheus ``/metrics``, scraped every 0.5 s; nothing in the
  pipeline is patched): discover (``eth_getLogs`` seconds, metrics), eth_getProof (seconds,
  metrics), verify (``verify_ms`` of ``snapshot.proven``), aggregate + sign (not separable in the
  logs: from the round's last ``snapshot.proven`` to ``epoch.created``; it also holds the
  destination reads that decide what to settle and the store write), submit (``epoch.created`` to
  ``epoch.confirmed``: batch sizing and the ``submitAndSettle`` transaction), settle
  (``epoch.confirmed`` to ``settlement.final``: the other batches), and what is left of the window
  unattributed (start-up, waiting for a due height, header fetches, proof parsing, store writes);
- **proving + verifying rate** of the round that proved the most claims (rounds end at their
  ``epoch.created``; the first round proves the heights of the first deposit, often only part of
  them): from its first ``accounts.discovered`` to its last ``snapshot.proven``, wall clock, the
  chains proven concurrently (header, ``eth_getProof``, parsing, native verification, store
  write; every round is listed, and each chain's first snapshot as before, whose span can hold
  two rounds and the settling between them) against the **baseline**: anvil's own
  ``eth_getProof`` rate for the same storage keys in the same state, requested directly by this
  process with the same chunking (one JSON-RPC batch of chunk-sized calls per chain, as the
  daemon sends them; timed until the reply's last byte), before the daemon starts, at each
  source's head (each vault's storageHash is checked to be the same at the end: nothing changes
  after seeding);
- claims per second end to end (from ``daemon.started`` to the last ``settlement.final``), time
  from the proven blocks (their timestamps) to all settled, and the daemon's peak RSS (VmHWM).

At the end every position is read back from the destination and checked against the deposits.
Writes ``bench/results/relay.json`` (one entry per size, earlier sizes kept) and prints a table.
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
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address
from prometheus_client.parser import text_string_to_metric_families
from web3 import Web3

from chains.anvil import AnvilNode, free_port, start_anvil
from chains.bindings import contract, deploy_destination, deploy_vault, register_vault
from chains.headers import VerifiedHeader
from chains.types import Hash32
from relayer import devnet
from relayer.aggregation.aggregator import aggregate_epoch
from relayer.attestation.eip712 import sign_epoch
from relayer.config import KeySource
from relayer.config.render import ChainTable, DestinationTable, PairTable, render_config
from relayer.epoch import Claim, Snapshot
from relayer.proving.prover import collateral_storage_key

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "relay.json"

DESTINATION_CHAIN_ID = 31400
FIRST_SOURCE_CHAIN_ID = 31401
RPC_BATCH = 500  # JSON-RPC calls per HTTP request while seeding
PROOF_CHUNK = 256  # the daemon's default `proof_chunk_size`, written into the config
METRICS_EVERY = 0.5
DEPOSIT_GAS = 120_000
DEPOSIT_MAX_FEE = 1_000 * 10**9  # full blocks while seeding raise the base fee 12.5% a block: a
# deposit sent with anvil's default fee cap (twice the base fee when sent) can wait for good
SOURCE_STATES = 160  # states a source anvil keeps in memory (--prune-history): 10 anvils x 10,000
# accounts keeping every state ran the machine out of memory; 160 s of history still covers a round
STAGES = ("discover", "eth_getProof", "verify", "aggregate+sign", "submit", "settle")


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


# ------------------------------------------------------------------------------ provisioning


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


@dataclass
class Source:
    name: str
    chain_id: int
    node: AnvilNode
    vault: str = ""
    vault_block: int = 0


@dataclass
class Net:
    directory: Path
    destination: AnvilNode
    sources: list[Source]
    settlement: str
    accounts: list[str]
    metrics_url: str
    nodes: list[AnvilNode] = field(default_factory=list)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def depositors(m: int) -> list[str]:
    """M deterministic depositor addresses (the same on every source chain)."""
    return [to_checksum_address(keccak(b"bench-relay depositor %d" % i)[:20]) for i in range(m)]


def seed(source: Source, accounts: list[str], sent: Progress, mined: Progress) -> None:
    """Every account deposits devnet.deposit_of(i) into the source's vault (impersonated senders,
    sent in JSON-RPC batches); returns when every deposit is mined with status 1."""
    url = source.node.url
    batch(url, [("anvil_setBalance", [a, hex(devnet.deposit_of(i) + 10**18)]) for i, a in enumerate(accounts)])
    data = "0x" + keccak(b"deposit()")[:4].hex()
    hashes: list[str] = []
    for start in range(0, len(accounts), RPC_BATCH):
        hashes += batch(url, [
            ("eth_sendTransaction", [{"from": a, "to": source.vault, "value": hex(devnet.deposit_of(start + i)),
                                      "data": data, "gas": hex(DEPOSIT_GAS),
                                      "maxFeePerGas": hex(DEPOSIT_MAX_FEE), "maxPriorityFeePerGas": hex(10**9)}])
            for i, a in enumerate(accounts[start : start + RPC_BATCH])
        ])  # fmt: skip
        sent.add(len(accounts[start : start + RPC_BATCH]))
    pending = list(hashes)
    while pending:
        receipts = batch(url, [("eth_getTransactionReceipt", [h]) for h in pending])
        waiting = []
        for tx_hash, receipt in zip(pending, receipts, strict=True):
            if receipt is None:
                waiting.append(tx_hash)
            elif int(receipt["status"], 16) != 1:
                raise RuntimeError(f"{source.name}: deposit {tx_hash} failed")
        mined.add(len(pending) - len(waiting))
        pending = waiting
        if pending:
            time.sleep(0.5)


def provision(directory: Path, chains: int, accounts: int) -> Net:
    """Start the destination and `chains` source anvils, deploy and register, seed, write the config."""
    deployer, attester, sender = devnet.dev_account(0), devnet.dev_account(1), devnet.dev_account(2)
    nodes: list[AnvilNode] = []
    try:
        destination = start_anvil(DESTINATION_CHAIN_ID, log_path=directory / "anvil-destination.log")
        nodes.append(destination)
        sources = []
        for k in range(chains):
            node = start_anvil(FIRST_SOURCE_CHAIN_ID + k, block_time=1.0,
                               extra_args=("--auto-impersonate", "--prune-history", str(SOURCE_STATES)),
                               log_path=directory / f"anvil-source{k}.log")  # fmt: skip
            nodes.append(node)
            sources.append(Source(f"source{k}", FIRST_SOURCE_CHAIN_ID + k, node))
        w3_dest = Web3(Web3.HTTPProvider(destination.url))
        settlement = deploy_destination(w3_dest, deployer, [attester.address], 1)
        slot = -1
        for source in sources:
            w3 = Web3(Web3.HTTPProvider(source.node.url))
            source.vault = deploy_vault(w3, deployer, devnet.WITHDRAW_DELAY_SECONDS)
            source.vault_block = w3.eth.block_number
            slot = int(contract(w3, "CollateralVault", source.vault).functions.collateralSlot().call())
            register_vault(w3_dest, deployer, settlement, source.chain_id, source.vault, slot, devnet.HAIRCUT_BPS,
                           devnet.MAX_AGE_SECONDS)  # fmt: skip
        print(
            f"relay: {chains} source chains, destination {destination.url}; vaults deployed and registered", flush=True
        )
        holders = depositors(accounts)
        sent, mined = Progress("deposits sent", chains * accounts), Progress("deposits mined", chains * accounts)
        with ThreadPoolExecutor(max_workers=chains) as pool:
            for future in [pool.submit(seed, s, holders, sent, mined) for s in sources]:
                future.result()
        sent.close()
        mined.close()

        keys = directory / "keys"
        keys.mkdir()
        (keys / "attester.key").write_text("0x" + bytes(attester.key).hex() + "\n")
        (keys / "sender.key").write_text("0x" + bytes(sender.key).hex() + "\n")
        for key in keys.iterdir():
            key.chmod(0o600)
        metrics_port = free_port()
        (directory / "relayer.toml").write_text(config_text(sources, destination.url, settlement, slot, metrics_port))
        return Net(directory, destination, sources, settlement, holders,
                   f"http://127.0.0.1:{metrics_port}/metrics", nodes)  # fmt: skip
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def config_text(sources: list[Source], destination_rpc: str, settlement: str, slot: int, metrics_port: int) -> str:
    """`relayer.toml` for N pairs, devnet's settings per chain (relayer/devnet.py `_config_text`)."""
    destination = ChainTable(
        "destination", DESTINATION_CHAIN_ID, [destination_rpc], finality="head", poll_interval_seconds=0.5
    )
    chains = [
        ChainTable(
            s.name,
            s.chain_id,
            [s.node.url],
            finality="confirmations",
            confirmations=devnet.CONFIRMATIONS,
            poll_interval_seconds=0.5,
        )
        for s in sources
    ]
    pairs = [
        PairTable(
            s.name,
            "destination",
            s.vault,
            vault_deploy_block=s.vault_block,
            collateral_slot=slot,
            every_blocks=devnet.EVERY_BLOCKS,
            proof_chunk_size=PROOF_CHUNK,
        )
        for s in sources
    ]
    return render_config(
        comment="Generated by bench/relay.py: the keys are anvil's public dev keys.",
        store="relayer.sqlite",
        metrics_listen=f"127.0.0.1:{metrics_port}",
        keeper_listen="127.0.0.1:0",
        attester=KeySource(key_file=Path("keys/attester.key")),
        chains=[destination, *chains],
        destinations=[DestinationTable("destination", settlement, KeySource(key_file=Path("keys/sender.key")))],
        pairs=pairs,
    )


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


# ------------------------------------------------------------------------------ analysis


def stage_times(events: list[Event], scrapes: list[tuple[float, Any]], source_names: list[str]) -> dict[str, Any]:
    """Per-stage seconds over the window daemon.started .. the last settlement.final."""
    start = next(e.t for e in events if e.name == "daemon.started")
    end = max(e.t for e in events if e.name == "settlement.final")
    window = [e for e in events if e.t <= end]
    created = [e for e in window if e.name == "epoch.created"]
    # the metrics: the last scrape at or before the end, if it is after the last epoch's proving
    # (then it holds every round's proving up to the end and none of the next round's)
    before = [s for s in scrapes if s[0] <= end]
    note = ""
    if before and created and before[-1][0] >= created[-1].t:
        sample = before[-1][1]
    else:  # the last epoch settled within one scrape interval: take the first scrape after the end
        after = [s for s in scrapes if s[0] > end]
        sample = after[0][1] if after else (before[-1][1] if before else {})
        note = "metrics scraped after the end: may hold up to one scrape interval of the next round's RPC"
    is_source: Callable[[str], bool] = lambda chain: chain in source_names  # noqa: E731
    discover = metric_sum(sample, "relayer_rpc_latency_seconds_sum", chain=is_source,
                          method=lambda m: m == "eth_getLogs")  # fmt: skip
    get_proof = metric_sum(sample, "relayer_rpc_latency_seconds_sum", chain=is_source,
                           method=lambda m: m == "eth_getProof")  # fmt: skip
    headers = metric_sum(sample, "relayer_rpc_latency_seconds_sum", chain=is_source,
                         method=lambda m: m == "eth_getBlockByNumber")  # fmt: skip
    verify = sum(float(e.fields["verify_ms"]) for e in window if e.name == "snapshot.proven") / 1000
    aggregate = submit = settle = 0.0
    for epoch in created:
        proven = [e.t for e in window if e.name == "snapshot.proven" and e.t <= epoch.t]
        aggregate += epoch.t - max(proven)
        number = epoch.fields["epoch"]
        confirmed = [e.t for e in window if e.name == "epoch.confirmed" and e.fields.get("epoch") == number]
        final = [e.t for e in window if e.name == "settlement.final" and e.fields.get("epoch") == number]
        if confirmed:
            submit += min(confirmed) - epoch.t
            if final:
                settle += max(final) - min(confirmed)
    seconds = {"discover": discover, "eth_getProof": get_proof, "verify": verify, "aggregate+sign": aggregate,
               "submit": submit, "settle": settle}  # fmt: skip
    total = end - start
    return {
        "window_seconds": total,
        "stages": seconds,
        "unattributed": total - sum(seconds.values()),
        "source_header_and_watcher_rpc_seconds": headers,
        "epochs": len(created),
        "rounds_proven": sum(1 for e in window if e.name == "snapshot.proven"),
        "claims_proven": sum(int(e.fields["claims"]) for e in window if e.name == "snapshot.proven"),
        "note": note,
        "start": start,
        "end": end,
    }


def first_round(events: list[Event]) -> list[dict[str, Any]]:
    """Per chain, its first snapshot: from that chain's last accounts.discovered before it (the
    pair key starts with the chain's name) to its snapshot.proven (wall), claims, verify. The
    daemon proves the chains of a round concurrently, so their intervals overlap: `start` and
    `end` (absolute) give the round's wall clock (`first_round_wall`)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    discovered: dict[str, Event] = {}
    for event in events:
        if event.name == "accounts.discovered":
            discovered[str(event.fields.get("pair", "")).split("->")[0]] = event
        elif event.name == "snapshot.proven" and event.fields["chain"] not in seen:
            chain = str(event.fields["chain"])
            seen.add(chain)
            start = discovered.get(chain)
            if start is not None:
                out.append({"chain": chain, "block": int(event.fields["block"]), "claims": int(event.fields["claims"]),
                            "seconds": event.t - start.t, "verify_seconds": float(event.fields["verify_ms"]) / 1000,
                            "start": start.t, "end": event.t})  # fmt: skip
    return out


def first_round_wall(firsts: list[dict[str, Any]]) -> float:
    """Wall seconds of the first round's proving: its first accounts.discovered to its last
    snapshot.proven (with chains proven one after the other, also their discovery in between)."""
    return max(f["end"] for f in firsts) - min(f["start"] for f in firsts) if firsts else 0.0


def rounds(events: list[Event]) -> list[dict[str, Any]]:
    """The daemon's proving rounds, each ended by its `epoch.created`: its `snapshot.proven`
    events after the previous `epoch.created`, from the round's first `accounts.discovered`
    (the first snapshot.proven when no chain discovered new accounts) to its last
    `snapshot.proven` (wall: the chains are proven concurrently). A round is the daemon proving
    one epoch's heights; the first round may see only part of the deposits (its heights are
    those of the first deposit), so the round with the most claims is the one to compare with
    anvil's own `eth_getProof` of every account (`full_round`)."""
    out: list[dict[str, Any]] = []
    discovered: float | None = None
    proven: list[Event] = []
    for event in events:
        if event.name == "accounts.discovered" and discovered is None:
            discovered = event.t
        elif event.name == "snapshot.proven":
            proven.append(event)
        elif event.name == "epoch.created" and proven:
            start = min(discovered if discovered is not None else proven[0].t, proven[0].t)
            out.append({"epoch": event.fields.get("epoch"), "snapshots": len(proven),
                        "claims": sum(int(e.fields["claims"]) for e in proven), "start": start,
                        "end": max(e.t for e in proven), "seconds": max(e.t for e in proven) - start,
                        "verify_seconds": sum(float(e.fields["verify_ms"]) for e in proven) / 1000})  # fmt: skip
            discovered, proven = None, []
        elif event.name == "epoch.created":
            discovered = None
    return out


def full_round(all_rounds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The round that proved the most claims (the first of them on a tie)."""
    return max(all_rounds, key=lambda r: r["claims"], default=None)


def baseline(net: Net, slot: int) -> list[dict[str, Any]]:
    """anvil's own eth_getProof, before the daemon starts: every account's collateral slot at each
    source's head (its state is the one the daemon proves later: nothing changes after seeding, the
    proven blocks' stateRoot is compared afterwards), one JSON-RPC batch of PROOF_CHUNK-key calls per
    chain as the daemon sends them, timed until the reply's last byte (JSON decoding not included)."""
    keys = ["0x" + collateral_storage_key(a, slot).hex() for a in net.accounts]
    out = []
    for source in net.sources:
        (head,), _ = post(source.node.url, [{"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}])
        block = int(head["result"], 16)
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_getProof",
             "params": [source.vault, keys[start : start + PROOF_CHUNK], hex(block)]}
            for i, start in enumerate(range(0, len(keys), PROOF_CHUNK))
        ]  # fmt: skip
        replies, seconds = post(source.node.url, payload)
        proofs = sum(len(r["result"]["storageProof"]) for r in replies if "result" in r)
        if proofs != len(keys):
            raise RuntimeError(f"baseline: {proofs} storage proofs for {len(keys)} keys on {source.name}")
        out.append({"chain": source.name, "block": block, "storage_hash": replies[0]["result"]["storageHash"],
                    "keys": len(keys), "seconds": seconds})  # fmt: skip
    return out


def storage_hash(source: Source, block: str) -> str:
    (reply,), _ = post(source.node.url, [{"jsonrpc": "2.0", "id": 0, "method": "eth_getProof",
                                          "params": [source.vault, [], block]}])  # fmt: skip
    return str(reply["result"]["storageHash"])


def same_state(net: Net, base: list[dict[str, Any]]) -> bool:
    """True when every vault's storageHash at the head now equals the one at its baseline block
    (the stateRoot itself moves every block under Prague: EIP-2935/EIP-4788 system writes)."""
    by_name = {s.name: s for s in net.sources}
    return all(storage_hash(by_name[b["chain"]], "latest") == b["storage_hash"] for b in base)


def reference_aggregate_sign(net: Net, firsts: list[dict[str, Any]]) -> dict[str, float]:
    """aggregate and sign cannot be told apart from outside the daemon: the same functions
    (``relayer.aggregation.aggregator.aggregate_epoch``, ``relayer.attestation.eip712.sign_epoch``) timed in this
    process on the same claims (every chain's accounts with their deposits, value words given as
    the native verifier hands them over) as a reference, not a measurement of the daemon."""
    claims = tuple(Claim(a, devnet.deposit_of(i)) for i, a in enumerate(net.accounts))
    words = b"".join(c.value.to_bytes(32, "big") for c in claims)
    blocks = {f["chain"]: f["block"] for f in firsts}
    snapshots = []
    for s in net.sources:
        h = keccak(b"%d" % s.chain_id)
        header = VerifiedHeader(blocks.get(s.name, 1), Hash32(h), Hash32(h), Hash32(h), int(time.time()), b"")
        snapshots.append(Snapshot(s.chain_id, s.vault, header, claims, 0.0, words))
    started = time.perf_counter()
    aggregate = aggregate_epoch(snapshots)
    aggregated = time.perf_counter() - started
    started = time.perf_counter()
    sign_epoch(devnet.dev_account(1), DESTINATION_CHAIN_ID, net.settlement, 1, aggregate.root, bytes(32), generation=1)
    return {"aggregate_seconds": round(aggregated, 4), "sign_seconds": round(time.perf_counter() - started, 4)}


def check_positions(net: Net) -> int:
    """Accounts x chains whose settled value on the destination differs from their deposit."""
    w3 = Web3(Web3.HTTPProvider(net.destination.url))
    settlement = contract(w3, "MarginSettlement", net.settlement)
    wrong = 0
    for source in net.sources:
        for start in range(0, len(net.accounts), 1000):
            values, _blocks, _ts = settlement.functions.positionsOf(net.accounts[start : start + 1000],
                                                                    source.chain_id).call()  # fmt: skip
            wrong += sum(1 for i, v in enumerate(values) if v != devnet.deposit_of(start + i))
    return wrong


def block_timestamps(net: Net, blocks: dict[str, int]) -> dict[str, int]:
    by_name = {s.name: s for s in net.sources}
    return {
        name: int(Web3(Web3.HTTPProvider(by_name[name].node.url)).eth.get_block(number)["timestamp"])
        for name, number in blocks.items()
    }


# ------------------------------------------------------------------------------ main


@dataclass
class Measured:
    """What one `run` observed, before the analysis: the baseline, the daemon's events, stage
    times and memory, and what was read back from the chains."""

    provision_seconds: float
    base: list[dict[str, Any]]
    events: list[Event]
    stages: dict[str, Any]
    firsts: list[dict[str, Any]]
    wrong: int
    reference: dict[str, float]
    state_unchanged: bool
    stamps: dict[str, int]
    client: str
    rss: int
    rss_samples: list[tuple[float, int]]


def run(chains: int, accounts: int, directory: Path, limit: float) -> dict[str, Any]:
    t0 = time.monotonic()
    print(f"relay: provisioning {chains} source chains x {accounts:,} accounts into one destination", flush=True)
    net = provision(directory, chains, accounts)
    try:
        measured = measure(net, chains * accounts, time.monotonic() - t0, limit)
    finally:
        net.stop()
    return relay_result(chains, accounts, measured)


def measure(net: Net, claims: int, provision_seconds: float, limit: float) -> Measured:
    """The baseline, then the daemon until all `claims` are settled, then the positions and the
    state read back from the running `net`."""
    w3 = Web3(Web3.HTTPProvider(net.sources[0].node.url))
    slot = int(contract(w3, "CollateralVault", net.sources[0].vault).functions.collateralSlot().call())
    print(
        f"relay: provisioned in {provision_seconds:.0f} s; baseline: anvil's own eth_getProof of every "
        f"account's slot, chunks of {PROOF_CHUNK}, one batch per chain",
        flush=True,
    )
    base = baseline(net, slot)
    print(f"relay: daemon started, waiting until all {claims:,} claims are settled", flush=True)
    events, scrapes, rss, rss_samples = run_daemon(net, claims, limit)
    stages = stage_times(events, scrapes, [s.name for s in net.sources])
    firsts = first_round(events)
    wrong = check_positions(net)
    reference = reference_aggregate_sign(net, firsts)
    print(
        f"relay: daemon stopped; positions read back: {claims - wrong:,} of {claims:,} equal their deposits",
        flush=True,
    )
    state_unchanged = same_state(net, base)
    first_blocks = {f["chain"]: f["block"] for f in firsts}
    stamps = block_timestamps(net, first_blocks)
    client = str(Web3(Web3.HTTPProvider(net.destination.url)).client_version)
    return Measured(
        provision_seconds, base, events, stages, firsts, wrong, reference, state_unchanged, stamps, client, rss,
        rss_samples,
    )  # fmt: skip


def relay_result(chains: int, accounts: int, m: Measured) -> dict[str, Any]:
    """The entry of relay.json for one run: stages, throughput against the baseline, latency,
    memory and the targets."""
    claims = chains * accounts
    stages = m.stages
    throughput = proving_throughput(m.events, m.firsts, m.base)
    ratio = throughput["prove_verify_vs_anvil"]
    end = stages["end"]
    last_created = max(e.t for e in m.events if e.name == "epoch.created")
    return {
        "chains": chains,
        "accounts": accounts,
        "claims": claims,
        "positions_checked_wrong": m.wrong,
        "proof_chunk_size": PROOF_CHUNK,
        "provision_seconds": round(m.provision_seconds, 1),
        "stages_seconds": {k: round(v, 3) for k, v in stages["stages"].items()},
        "unattributed_seconds": round(stages["unattributed"], 3),
        "window_seconds": round(stages["window_seconds"], 3),
        "epochs": stages["epochs"],
        "snapshots_proven": stages["rounds_proven"],
        "claims_proven": int(stages["claims_proven"]),
        "source_eth_getBlockByNumber_rpc_seconds_incl_watcher_polls": round(
            stages["source_header_and_watcher_rpc_seconds"], 3
        ),
        "metrics_note": stages["note"],
        "aggregate_sign_reference_in_bench_process": m.reference,
        "end_to_end_claims_per_second": round(claims / stages["window_seconds"], 1),
        **throughput,
        "baseline_vault_storage_unchanged": m.state_unchanged,
        "proven_blocks_to_all_settled_seconds": {
            "from_newest": round(end - max(m.stamps.values()), 1),
            "from_oldest": round(end - min(m.stamps.values()), 1),
        },
        "daemon_peak_rss_bytes": m.rss,
        "daemon_rss_sampled_max_bytes": {  # VmRSS every METRICS_EVERY s: where the peak happens
            "proving (to the last epoch.created)": max((v for t, v in m.rss_samples if t <= last_created), default=0),
            "settling (after it)": max((v for t, v in m.rss_samples if t > last_created), default=0),
        },
        "targets": {
            "peak_rss_mb_max_150": round(m.rss / 2**20, 1),
            "prove_verify_share_of_anvil_min_0.8": ratio,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "node": m.client,
            "note": "all anvil nodes, the daemon and this process on the same machine",
        },
    }


def proving_throughput(events: list[Event], firsts: list[dict[str, Any]], base: list[dict[str, Any]]) -> dict[str, Any]:
    """The first round, every round, the fullest round and the baseline (claims, seconds, rates),
    and the fullest round's rate over the baseline's ("prove_verify_vs_anvil", None without a
    baseline rate). Drops the rounds' start and end times."""
    first_seconds = first_round_wall(firsts)
    for f in firsts:
        del f["start"], f["end"]
    first_claims = sum(f["claims"] for f in firsts)
    all_rounds = rounds(events)
    full = full_round(all_rounds) or {"claims": 0, "seconds": 0.0, "snapshots": 0, "epoch": None}
    for r in all_rounds:
        r["seconds"] = round(r["seconds"], 3)
        del r["start"], r["end"]
    ours_claims, ours_seconds = full["claims"], full["seconds"]
    base_seconds = sum(b["seconds"] for b in base)
    base_keys = sum(b["keys"] for b in base)
    ours_rate = ours_claims / ours_seconds if ours_seconds else 0.0
    base_rate = base_keys / base_seconds if base_seconds else 0.0
    return {
        "first_round": {  # each chain's first snapshot: may span two rounds and the settling between
            "per_chain": firsts,
            "claims": first_claims,
            "seconds": round(first_seconds, 3),
            "sum_per_chain_seconds": round(sum(f["seconds"] for f in firsts), 3),
            "claims_per_second": round(first_claims / first_seconds, 1) if first_seconds else 0.0,
        },
        "rounds": all_rounds,
        "full_round": {  # the round with the most claims: what the ratio compares with the baseline
            "epoch": full["epoch"],
            "snapshots": full["snapshots"],
            "claims": ours_claims,
            "seconds": round(ours_seconds, 3),
            "claims_per_second": round(ours_rate, 1),
        },
        "baseline_anvil_eth_getProof": {
            "per_chain": base,
            "keys": base_keys,
            "seconds": round(base_seconds, 3),
            "keys_per_second": round(base_rate, 1),
        },
        "prove_verify_vs_anvil": round(ours_rate / base_rate, 3) if base_rate else None,
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"\nbench relay: {r['chains']} source chains x {r['accounts']:,} accounts = {r['claims']:,} claims into one "
        f"destination ({r['epochs']} epoch(s), {r['snapshots_proven']} snapshots proven, "
        f"{r['claims_proven']:,} claims proven and verified)"
    )
    _report_stages(r)
    _report_throughput(r)
    total = r["window_seconds"]
    print(
        f"\n  end to end: {r['claims']:,} claims in {total:.1f} s = {r['end_to_end_claims_per_second']:,.0f} "
        f"claims/s (daemon.started -> all final)"
    )
    p = r["proven_blocks_to_all_settled_seconds"]
    print(
        f"  from the proven blocks to all settled: {p['from_newest']:.1f} s (newest block's timestamp), "
        f"{p['from_oldest']:.1f} s (oldest)"
    )
    mb = r["daemon_peak_rss_bytes"] / 2**20
    phases = ", ".join(f"{k} {v / 2**20:.0f} MB" for k, v in r["daemon_rss_sampled_max_bytes"].items())
    print(
        f"  daemon peak RSS (VmHWM): {mb:.1f} MB (target <= 150 MB: {'met' if mb <= 150 else 'MISSED'}); "
        f"highest VmRSS sampled every {METRICS_EVERY} s: {phases}"
    )
    print(
        f"  positions read back from the destination: {r['claims'] - r['positions_checked_wrong']:,} of "
        f"{r['claims']:,} equal their deposits"
    )


def _report_stages(r: dict[str, Any]) -> None:
    """The table of stage seconds and shares of the window, with how each was measured."""
    total = r["window_seconds"]
    how = {
        "discover": "eth_getLogs RPC seconds (metrics; the accounts' store write not included)",
        "eth_getProof": f"RPC seconds, chunks of {r['proof_chunk_size']} keys in one batch (metrics)",
        "verify": "native, verify_ms of snapshot.proven (logs)",
        "aggregate+sign": "not separable: last snapshot.proven -> epoch.created (logs; incl. destination reads)",
        "submit": "epoch.created -> epoch.confirmed (logs; sizing + submitAndSettle)",
        "settle": "epoch.confirmed -> settlement.final (logs; the other batches)",
    }
    print(f"\n  {'stage':<16} {'seconds':>9} {'share':>7}  how measured")
    for stage in STAGES:
        s = r["stages_seconds"][stage]
        print(f"  {stage:<16} {s:>9.2f} {s / total:>6.1%}  {how[stage]}")
    ref = r["aggregate_sign_reference_in_bench_process"]
    print(
        f"  {'':<16} {'':>9} {'':>7}  (the same aggregate_epoch and sign_epoch on the same claims, timed in this "
        f"process: {ref['aggregate_seconds']:.3f} s and {ref['sign_seconds']:.4f} s)"
    )
    u = r["unattributed_seconds"]
    print(
        f"  {'unattributed':<16} {u:>9.2f} {u / total:>6.1%}  start-up, waiting for a due height, headers, "
        f"proof parsing, store writes"
    )
    print(f"  {'window':<16} {total:>9.2f} {1:>6.0%}  daemon.started -> last settlement.final")
    if r["metrics_note"]:
        print(f"  note: {r['metrics_note']}")


def _report_throughput(r: dict[str, Any]) -> None:
    """Proving + verifying in the fullest round and in each round, against the baseline."""
    f, b = r["full_round"], r["baseline_anvil_eth_getProof"]
    print(
        f"\n  proving + verifying, the round with the most claims (epoch {f['epoch']}, {f['snapshots']} snapshots; "
        f"its first accounts.discovered -> last snapshot.proven, wall): "
        f"{f['claims']:,} claims in {f['seconds']:.2f} s = {f['claims_per_second']:,.0f} claims/s"
    )
    for k in r["rounds"]:
        print(
            f"    round of epoch {k['epoch']}: {k['snapshots']} snapshots, {k['claims']:,} claims in "
            f"{k['seconds']:.2f} s (native verification {k['verify_seconds']:.2f} s, summed)"
        )
    print(
        f"  baseline, anvil's own eth_getProof (same keys, state and chunking, before the daemon started): "
        f"{b['keys']:,} keys in {b['seconds']:.2f} s = {b['keys_per_second']:,.0f} keys/s"
    )
    if r["epochs"] == 1 and r["snapshots_proven"] == r["chains"]:  # one round: the metrics are its own
        st = r["stages_seconds"]
        rest = f["seconds"] - st["eth_getProof"] - st["verify"]
        if rest >= 0:
            print(
                f"    of which eth_getProof RPC {st['eth_getProof']:.2f} s, native verification "
                f"{st['verify']:.2f} s, the rest (header, slots, parsing, store) {rest:.2f} s"
            )
        else:  # chains, chunks and verification overlapped: the summed seconds exceed the wall
            print(
                f"    eth_getProof RPC {st['eth_getProof']:.2f} s and native verification {st['verify']:.2f} s, "
                f"summed over calls and chains that overlapped"
            )
    ratio = r["prove_verify_vs_anvil"]
    if not r["baseline_vault_storage_unchanged"]:
        print("  WARNING: a proven block's stateRoot differs from its baseline block's: not the same state")
    print(f"  ratio ours / anvil: {ratio:.2f} (target >= 0.80: {'met' if ratio and ratio >= 0.8 else 'MISSED'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, default=10, help="source chains (1..32)")
    parser.add_argument("--accounts", type=int, default=10_000, help="depositors per source chain")
    parser.add_argument("--limit", type=float, default=3600, help="seconds to wait for all settlements")
    args = parser.parse_args(argv)
    if not 1 <= args.chains <= 32 or args.accounts < 1:
        parser.error("--chains must be 1..32 and --accounts >= 1")
    directory = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    try:
        result = run(args.chains, args.accounts, directory, args.limit)
    except BaseException:
        print(f"bench relay failed; logs kept in {directory}", file=sys.stderr)
        raise
    shutil.rmtree(directory)
    report(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous[f"{args.chains}x{args.accounts}"] = result
    RESULTS.write_text(json.dumps(previous, indent=1, sort_keys=True) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)} (entry {args.chains}x{args.accounts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
