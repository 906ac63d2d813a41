"""``python -m bench.pullpath`` (``make bench-pullpath``): the keeper API under load.

Input, built in the run: a real store filled with EPOCHS epochs of CLAIMS claims each (split over
CHAINS source chains; each epoch's accounts drawn from a population of POPULATION, so an account
is last proven in epochs of every age), made as the relay makes them (``aggregate_epoch``,
``Store.create_epoch`` with the claims trees) and each submitted to a real MarginSettlement on
anvil (``submitEpoch`` signed by the committee of one), so every answer's proofs check on chain.

The daemon's two listeners (the real ``make_keeper_app`` and ``make_app``) are served from a
child process on 127.0.0.1, one event loop as in ``relayer run``; the load comes from this
process. Figures (latency = request sent to answer read, milliseconds):

- ``/healthz`` idle (the baseline of the "unchanged" target), ``/v1/proofs`` alone (one request
  at a time, random accounts of the population), and both while LOAD_RPS requests per second
  arrive at ``/v1/proofs`` (open loop, spread over LOAD_CLIENTS source addresses 127.0.0.x so
  that no client exceeds the default rate limit), ``/healthz`` probed at 20 per second;
- the old scan path (``relayer/settlement/keeper.py`` before the index: rebuild each of the 64
  newest epochs' aggregates, cache of 4), kept here as ``ScanBaseline``, timed in this process
  on a few accounts; its answers are compared with the served ones (all epochs are in its window).

Checks printed with the figures: a sample of served ``check`` calls run as ``eth_call`` on the
destination and return the claimed value. Writes ``bench/results/pullpath.json``.

The destination and the stored epochs: ``bench/pullpath_store.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
from eth_utils import to_checksum_address
from web3 import Web3

from bench.pullpath_store import (
    DESTINATION_CHAIN_ID,
    FIRST_SOURCE_CHAIN_ID,
    Destination,
    dev_account,
    make_snapshots,
    open_destination,
    population,
    store_epoch,
)
from chains.anvil import free_port
from chains.bindings import BLOCK_LEAF_FIELDS
from chains.fallback import FallbackClient
from relayer.aggregation.aggregator import StoredEpochUnusable, rebuild_epoch
from relayer.epoch import (
    EPOCH_FORMATS,
    EpochAggregate,
)
from relayer.observability.api import HealthView, make_app
from relayer.observability.metrics import Metrics
from relayer.pullpath.proofs import ProofServer
from relayer.pullpath.ratelimit import ClientBuckets
from relayer.pullpath.server import make_keeper_app
from relayer.storage.store import Store
from relayer.submission.submitter import Submitter
from relayer.submission.txmanager import TxManager

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "pullpath.json"
HEALTH_PROBE_RPS = 20

# ------------------------------------------------------------------------------ the old scan path


class ScanBaseline:
    """The pull path before the index (relayer/settlement/keeper.py as of commit 8394afb): the
    64 newest epochs scanned, each one's aggregate rebuilt from its stored claims (4 cached)."""

    SCAN_EPOCHS = 64
    CACHE_EPOCHS = 4

    def __init__(self, store: Store, submitter: Submitter) -> None:
        self.store = store
        self.submitter = submitter
        self._cache: OrderedDict[tuple[int, bytes], EpochAggregate] = OrderedDict()

    def _aggregate(self, epoch: int, root: bytes, content: dict[str, Any]) -> EpochAggregate | None:
        key = (epoch, root)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        try:
            aggregate = rebuild_epoch(content, root, lambda block: self.store.epoch_claims(epoch, root, block))
        except StoredEpochUnusable:
            return None
        self._cache[key] = aggregate
        while len(self._cache) > self.CACHE_EPOCHS:
            self._cache.popitem(last=False)
        return aggregate

    async def proofs(self, account: str) -> dict[str, Any]:
        holder = to_checksum_address(account)
        found: dict[int, dict[str, Any]] = {}
        settlement = self.submitter.settlement
        records = [
            r
            for r in reversed(self.store.recent_epochs(self.SCAN_EPOCHS))
            if r.status in ("settled", "confirmed", "signed") and r.content.get("format") in EPOCH_FORMATS
        ]
        for record in records:
            aggregate = self._aggregate(record.epoch, record.root, record.content)
            if aggregate is None:
                continue
            hits = []
            for block_index, block in enumerate(aggregate.blocks):
                if block.snapshot.chain_id in found:
                    continue
                for claim_index, claim in enumerate(block.snapshot.claims):
                    if claim.account == holder:
                        hits.append((block_index, claim_index))
                        break
            if not hits or await self.submitter.root_of(record.epoch) != record.root:
                continue
            for block_index, claim_index in hits:
                block = aggregate.blocks[block_index]
                claim = block.snapshot.claims[claim_index]
                leaf = block.leaf_values()
                block_proof = list(aggregate.block_proofs[block_index])
                claim_proof = list(aggregate.claim_proof(block_index, claim_index))
                item = aggregate.block_settlement(record.epoch, block_index, [claim_index])
                found[block.snapshot.chain_id] = {
                    "chain_id": block.snapshot.chain_id,
                    "epoch": record.epoch,
                    "epoch_root": "0x" + record.root.hex(),
                    "value": str(claim.value),
                    "block_leaf": dict(
                        zip(
                            BLOCK_LEAF_FIELDS,
                            ["0x" + v.hex() if isinstance(v, bytes) else v for v in leaf],
                            strict=True,
                        )
                    ),
                    "block_proof": ["0x" + h.hex() for h in block_proof],
                    "claim_proof": ["0x" + h.hex() for h in claim_proof],
                    "settle": {"to": settlement.contract.address, "data": settlement.encode("settle", list(item))},
                    "check": {
                        "to": settlement.contract.address,
                        "data": settlement.encode(
                            "provenCollateral", record.epoch, leaf, block_proof, holder, claim.value, claim_proof
                        ),
                    },
                }
        return {"account": holder, "claims": [found[c] for c in sorted(found)]}


# ------------------------------------------------------------------------------ the served daemon


async def serve(store_location: str, rpc: str, settlement: str, rate: float, burst: int) -> None:
    """The child process: the keeper listener and the health listener, one event loop, until
    stdin closes. Prints `{"keeper": port, "health": port}` once listening."""
    store = Store(store_location)
    client = FallbackClient([rpc], chain_label="destination")
    await client.__aenter__()
    sender = dev_account(2)
    txm = TxManager(client, chain_id=DESTINATION_CHAIN_ID, sender=sender, store=store)
    submitter = Submitter(
        client, txm, chain_id=DESTINATION_CHAIN_ID, sender=sender.address, verifier=settlement, settlement=settlement
    )
    relay = SimpleNamespace(config=SimpleNamespace(chain="destination"), proof_server=ProofServer(store, submitter))
    metrics = Metrics()
    health = HealthView({}, {}, [], {}, store, metrics)
    runners = []
    ports = {}
    for name, app in (
        ("keeper", make_keeper_app([relay], ClientBuckets(rate, burst), metrics)),
        ("health", make_app(health)),
    ):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ports[name] = port
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for runner in runners:
        await runner.cleanup()
    await client.close()
    store.close()


# ------------------------------------------------------------------------------ load


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def figures(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(1000 * percentile(values, 50), 3),
        "p99_ms": round(1000 * percentile(values, 99), 3),
        "max_ms": round(1000 * max(values), 3) if values else float("nan"),
    }


async def timed_get(session: aiohttp.ClientSession, url: str) -> tuple[float, int, bytes]:
    start = time.perf_counter()
    async with session.get(url) as response:
        body = await response.read()
    return time.perf_counter() - start, response.status, body


async def sequential(session: aiohttp.ClientSession, urls: Sequence[str]) -> list[float]:
    out = []
    for url in urls:
        seconds, status, _ = await timed_get(session, url)
        if status != 200:
            raise RuntimeError(f"{url}: HTTP {status}")
        out.append(seconds)
    return out


async def open_loop(
    sessions: Sequence[aiohttp.ClientSession], urls: Sequence[str], rate: float
) -> list[tuple[float, int]]:
    """GET `urls[i]` at start + i / rate (open loop: a slow answer delays nothing), round-robin
    over `sessions`; (seconds, status) each."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(i: int, url: str) -> tuple[float, int]:
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        seconds, status, _ = await timed_get(sessions[i % len(sessions)], url)
        return seconds, status

    return await asyncio.gather(*(one(i, url) for i, url in enumerate(urls)))


# ------------------------------------------------------------------------------ main


async def _fill(
    args: argparse.Namespace,
    rng: random.Random,
    store: Store,
    destination: Destination,
    chains: list[int],
    people: list[str],
) -> float:
    """Store and submit args.epochs epochs of args.claims claims over `chains`, each epoch's
    accounts drawn from `people`; returns the seconds it took."""
    per_chain = args.claims // args.chains
    now = int(Web3(Web3.HTTPProvider(destination.node.url)).eth.get_block("latest")["timestamp"])
    fill_start = time.perf_counter()
    previous = bytes(32)
    for epoch in range(1, args.epochs + 1):
        accounts = [rng.sample(people, per_chain) for _ in chains]
        previous = await store_epoch(  # confirmed: unpruned, as the old scan path it is compared with needs
            store, destination, epoch, make_snapshots(epoch, chains, accounts, now, rng), previous, "confirmed"
        )
    return time.perf_counter() - fill_start


async def _measure_served(
    args: argparse.Namespace, rng: random.Random, people: list[str], store_path: Path | str, destination: Destination
) -> dict[str, Any]:
    """Serve the store from a child process (``--serve``) and `measure` its two listeners; the
    child stops when its stdin closes."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.pullpath", "--serve", str(store_path), "--rpc", destination.node.url,
        "--settlement", destination.settlement,
        "--rate", str(args.rate), "--burst", str(args.burst),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        ports = json.loads(await child.stdout.readline())
        keeper = f"http://127.0.0.1:{ports['keeper']}"
        health = f"http://127.0.0.1:{ports['health']}/healthz"
        return await measure(args, rng, people, keeper, health)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        await asyncio.wait_for(child.wait(), 30)


async def _compare_scan(
    args: argparse.Namespace, rng: random.Random, people: list[str], store: Store, destination: Destination
) -> dict[str, Any]:
    """The old scan path and the new one, in this process, on args.baseline_requests accounts:
    their figures and how many answers are identical."""
    baseline = ScanBaseline(store, destination.submitter)
    indexed = ProofServer(store, destination.submitter)
    scan_seconds, index_seconds = [], []
    same = 0
    sample = rng.sample(people, args.baseline_requests)
    for account in sample:
        start = time.perf_counter()
        old = await baseline.proofs(account)
        scan_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        new = await indexed.proofs(account)
        index_seconds.append(time.perf_counter() - start)
        same += new == old
    return {
        "baseline_scan": {**figures(scan_seconds), "answers_identical": f"{same}/{len(sample)}"},
        "index_in_process": figures(index_seconds),
    }


async def _check_served(answers: dict[str, Any], limit: int, destination: Destination) -> int:
    """Run the `check` of every claim of the first `limit` served answers as an eth_call on the
    destination; returns how many ran. Raises RuntimeError when one does not return the value."""
    checks = 0
    for answer in list(answers.values())[:limit]:
        for claim in answer["claims"]:
            raw = await destination.client.eth_call(claim["check"])
            if int.from_bytes(bytes(raw), "big") != int(claim["value"]):
                raise RuntimeError(f"check of {answer['account']} on chain {claim['chain_id']} failed")
            checks += 1
    return checks


def _store_bytes(store: Store) -> int:
    """The store's size on disk: the SQLite file, or the PostgreSQL database."""
    if store.path is not None:
        return store.path.stat().st_size
    return int(store._db.execute("SELECT pg_database_size(current_database())").rows[0][0])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fill a store, serve it and load it, compare with the old scan path and run served checks on
    the destination; returns the content of pullpath.json."""
    rng = random.Random(args.seed)
    chains = [FIRST_SOURCE_CHAIN_ID + i for i in range(args.chains)]
    per_chain = args.claims // args.chains
    workdir = Path(tempfile.mkdtemp(prefix="bench-pullpath-"))
    store_path: Path | str = args.store or workdir / "relayer.sqlite"
    store = Store(store_path)
    destination = await open_destination(store, chains)
    people = population(args.population, rng)
    try:
        fill_seconds = await _fill(args, rng, store, destination, chains, people)
        store_bytes = _store_bytes(store)
        print(f"filled {args.epochs} epochs x {per_chain * len(chains)} claims ({len(chains)} chains) "
              f"in {fill_seconds:.1f} s; store {store_bytes / 1e6:.0f} MB", flush=True)  # fmt: skip
        result = await _measure_served(args, rng, people, store_path, destination)
        compared = await _compare_scan(args, rng, people, store, destination)
        checks = await _check_served(result["answers"], args.checks, destination)
    finally:
        await destination.close()
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)
    result.pop("answers")
    result.update(
        {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "system": platform.platform()},
            "epochs": args.epochs,
            "claims_per_epoch": per_chain * len(chains),
            "chains": len(chains),
            "population": args.population,
            "fill_seconds": round(fill_seconds, 1),
            "store": store.dialect,
            "store_bytes": store_bytes,
            **compared,
            "checks_on_destination": checks,
        }
    )
    return result


async def measure(
    args: argparse.Namespace, rng: random.Random, people: Sequence[str], keeper: str, health: str
) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        await sequential(session, [health] * 20)  # warm-up: connections, caches of the first requests
        health_idle = await sequential(session, [health] * args.health_requests)
        accounts = rng.sample(people, args.requests)
        proofs_idle = await sequential(session, [f"{keeper}/v1/proofs/{a}" for a in accounts])
        for account in accounts[: args.checks]:
            _, _, body = await timed_get(session, f"{keeper}/v1/proofs/{account}")
            answers[account] = json.loads(body)
    # under load: LOAD_RPS at /v1/proofs from LOAD_CLIENTS addresses, /healthz probed meanwhile
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{2 + k}", 0), limit=0))
        for k in range(args.load_clients)
    ]
    probe = aiohttp.ClientSession()
    try:
        count = int(args.load_rps * args.load_seconds)
        load_urls = [f"{keeper}/v1/proofs/{a}" for a in (rng.choice(people) for _ in range(count))]
        probes = int(HEALTH_PROBE_RPS * args.load_seconds)
        loaded, health_loaded = await asyncio.gather(
            open_loop(sessions, load_urls, args.load_rps), open_loop([probe], [health] * probes, HEALTH_PROBE_RPS)
        )
    finally:
        for s in [*sessions, probe]:
            await s.close()
    statuses: dict[str, int] = {}
    for _, status in loaded:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "answers": answers,
        "healthz_idle": figures(health_idle),
        "proofs_idle": figures(proofs_idle),
        "load": {
            "rps": args.load_rps,
            "seconds": args.load_seconds,
            "clients": args.load_clients,
            "rate_limit_per_client": [args.rate, args.burst],
            "statuses": statuses,
        },
        "proofs_loaded": figures([s for s, status in loaded if status == 200]),
        "healthz_loaded": figures([s for s, status in health_loaded if status == 200]),
    }


def report(r: dict[str, Any]) -> None:
    print(f"\n/v1/proofs at {r['epochs']} epochs x {r['claims_per_epoch']:,} claims ({r['chains']} chains, "
          f"{r['population']:,} accounts), latency in ms:")  # fmt: skip
    rows = [
        ("/healthz idle (baseline)", r["healthz_idle"]),
        ("/v1/proofs alone", r["proofs_idle"]),
        (f"/v1/proofs at {r['load']['rps']:g}/s", r["proofs_loaded"]),
        (f"/healthz with {r['load']['rps']:g}/s at /v1/proofs", r["healthz_loaded"]),
        ("old scan path, per request (in process)", r["baseline_scan"]),
        ("indexed path, same accounts (in process)", r["index_in_process"]),
    ]
    for name, f in rows:
        print(f"  {name:48s} p50 {f['p50_ms']:9.2f}  p99 {f['p99_ms']:9.2f}  (n={f['n']})")
    idle, loaded = r["healthz_idle"]["p99_ms"], r["healthz_loaded"]["p99_ms"]
    print(f"  /healthz p99 loaded / idle: {loaded / idle:.2f}x; old scan p50 / new p50: "
          f"{r['baseline_scan']['p50_ms'] / r['proofs_idle']['p50_ms']:.0f}x")  # fmt: skip
    print(f"  load statuses: {r['load']['statuses']}; old and new answers identical: "
          f"{r['baseline_scan']['answers_identical']}; checks run on the destination: "
          f"{r['checks_on_destination']}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pullpath", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=64)
    parser.add_argument("--claims", type=int, default=10_000, help="claims per epoch, over every chain")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--population", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--health-requests", type=int, default=1_000)
    parser.add_argument("--load-rps", type=float, default=100.0)
    parser.add_argument("--load-seconds", type=float, default=20.0)
    parser.add_argument("--load-clients", type=int, default=10)
    parser.add_argument("--baseline-requests", type=int, default=3)
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000.0, help="the keeper API's requests per second per client")
    parser.add_argument("--burst", type=int, default=1000, help="the keeper API's burst per client")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--store", help="a postgresql:// URL of an empty database (default: a SQLite file)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--rpc", help=argparse.SUPPRESS)
    parser.add_argument("--settlement", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.rpc, args.settlement, args.rate, args.burst))
        return
    result = asyncio.run(run(args))
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
