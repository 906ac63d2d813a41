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
The daemon run and watched as a process: ``bench/relay_watch.py``; the analysis and the printed
table: ``bench/relay_analysis.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3 import Web3

from bench.relay_analysis import first_round, proving_throughput, report, stage_times
from bench.relay_analysis import first_round_wall as first_round_wall  # re-exported: tests/bench
from bench.relay_analysis import full_round as full_round
from bench.relay_analysis import rounds as rounds
from bench.relay_watch import RPC_BATCH, Event, Progress, batch, post, run_daemon
from bench.relay_watch import metric_sum as metric_sum  # re-exported: bench.users, tests/bench
from bench.relay_watch import parse_event as parse_event
from bench.relay_watch import rss_bytes as rss_bytes
from bench.relay_watch import scrape as scrape
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
PROOF_CHUNK = 256  # the daemon's default `proof_chunk_size`, written into the config
DEPOSIT_GAS = 120_000
DEPOSIT_MAX_FEE = 1_000 * 10**9  # full blocks while seeding raise the base fee 12.5% a block: a
# deposit sent with anvil's default fee cap (twice the base fee when sent) can wait for good
SOURCE_STATES = 160  # states a source anvil keeps in memory (--prune-history): 10 anvils x 10,000
# accounts keeping every state ran the machine out of memory; 160 s of history still covers a round


# ------------------------------------------------------------------------------ provisioning


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


# ------------------------------------------------------------------------------ the chains, read back


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
