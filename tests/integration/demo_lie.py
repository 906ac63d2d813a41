"""A colluding committee majority behind a fake chain, and what the destination does (issue 20).

A 2-of-3 committee devnet (`relayer devnet --committee 3 --anchor op-l1block`): member-1 and
member-2 read the source chain from a FAKE chain (a second anvil with the source's chain id, the
vault at the same address, every depositor holding FAKE_FACTOR times its real collateral; both of
their source endpoints, primary and confirming, point at it), member-0 reads the real one. The two
colluders sign the fake chain's blocks and have the threshold.

- `require-anchor`: the destination asks the OP Stack `L1Block` anchor (fed from the real source)
  for each block leaf's hash; the fake block's hash is not the anchored one, so every settlement
  of the colluders reverts (AnchorMismatch, or BlockNotAnchored for a block the anchor has not
  seen): 0 wei of fake collateral counted.
- `committee` with the same anchor and one watchtower (`relayer watch` against the real source,
  with a sender key): the fake epoch is accepted and its positions counted, then the watchtower
  proves the block hash false (`challengeAnchor`) and the chain's positions are void. The number of
  destination blocks between the epoch's acceptance and the void is printed.

Run: `make demo-lie` (both modes), or `python -m tests.integration.demo_lie --policy committee`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chains.anvil import free_port, rpc
from relayer import devnet
from relayer.config import KeySource
from relayer.config.render import ChainTable, render_watch_config
from tests.integration.committee_runs import CommitteeRuns, FakeSourceChain, wait_until
from tests.integration.proxy import TamperProxy

COLLUDERS = (1, 2)
DEST_BLOCK_TIME = 1.0
"""The destination mines a block a second (an L2's pace), so the blocks between acceptance and
void count time, not the feeder's transactions."""
REFUSALS = ("AnchorMismatch", "BlockNotAnchored")


@dataclass
class Outcome:
    policy: str
    fake_counted_wei: int
    """The most collateral of the fake chain the destination ever counted (collateralOf summed)."""
    refusals: list[str]
    """The destination's errors that the colluders' transactions reverted with."""
    accepted_block: int | None = None
    voided_block: int | None = None
    counted_after_void_wei: int | None = None
    settled_accounts: int = 0
    """Accounts the destination settled from the fake chain's blocks (BlockSettled events)."""

    @property
    def blocks_to_void(self) -> int | None:
        if self.accepted_block is None or self.voided_block is None:
            return None
        return self.voided_block - self.accepted_block


def _point_at(runs: CommitteeRuns, i: int, fake: FakeSourceChain) -> None:
    """Member `i`'s source endpoints at `fake`: the primary, the confirming one (a second node the
    colluder also controls: a proxy in front of the fake anvil) and its head subscription."""
    confirming = TamperProxy(fake.url).start()
    runs.proxies[i] = confirming
    runs.set_source(i, [fake.url, confirming.url])
    port = fake.url.rsplit(":", 1)[1]
    config = runs.members[i].config
    text = config.read_text()
    start = text.index('ws = "', text.index("[chains.source]"))
    end = text.index("\n", start)
    config.write_text(text[:start] + f'ws = "ws://127.0.0.1:{port}"' + text[end:])


@contextmanager
def watchtower(runs: CommitteeRuns, directory: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`relayer watch` against the real source, with its own funded sender key, from the current
    destination block; logs to DIR/watch.log. Stopped (SIGTERM) on exit."""
    _, sender = devnet.member_keys(9)  # another BIP-44 account of the dev mnemonic than the members'
    rpc(runs.dest_rpc, "anvil_setBalance", [sender.address, hex(10**21)])
    key = directory / "watch-keys" / "sender.key"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text("0x" + bytes(sender.key).hex() + "\n")
    key.chmod(0o600)
    config = directory / "watch.toml"
    config.write_text(
        render_watch_config(
            destination="destination",
            settlement=runs.settlement.address,
            chains=[
                ChainTable("destination", runs.dest_chain_id, [runs.dest_rpc], finality="head"),
                ChainTable(
                    "source",
                    runs.chain_id,
                    [runs.source_rpc],
                    finality="confirmations",
                    confirmations=devnet.CONFIRMATIONS,
                ),
            ],
            sender=KeySource(key_file=key),
            metrics_listen=f"127.0.0.1:{free_port()}",
            options={
                "confirmations": 0,
                "poll_interval_seconds": 0.2,
                "start_block": runs.dst.eth.block_number,
                "data_dir": directory / "watch-data",
            },
            comment="The demo's watchtower: its own endpoint of the REAL source chain.",
        )
    )
    with (directory / "watch.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "watch", "--config", str(config), "--log-format", "json"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def counted(runs: CommitteeRuns) -> int:
    """The collateral the destination counts for the devnet's depositors now, in wei."""
    return sum(runs.settled(a) for a in runs.accounts)


def counted_on_source(runs: CommitteeRuns) -> int:
    """The depositors' collateral on the real source chain now, in wei."""
    return sum(int(runs.vault.functions.collateral(a).call()) for a in runs.accounts)


def refusals(runs: CommitteeRuns) -> list[str]:
    """The anchor errors the colluders' epochs failed with (their `epoch.failed` logs: the destination
    reverted the epoch's submission with its first settlement)."""
    found = []
    for i in COLLUDERS:
        found += [str(e["reason"]) for e in runs.events(i, "epoch.failed") if e.get("reason") in REFUSALS]
    return found


def run_demo(directory: Path, policy: str, *, say: Callable[[str], None] = print, timeout: float = 90.0) -> Outcome:
    """The scenario of the module docstring under `policy` ("require-anchor" or "committee", the
    latter with a watchtower) in `directory`; returns what the destination did."""
    directory = directory.resolve()
    runs = CommitteeRuns.provision(
        directory, members=3, threshold=2, accounts=3, every_blocks=2, dest_block_time=DEST_BLOCK_TIME,
        anchor="op-l1block", anchor_policy=policy,
    )  # fmt: skip
    try:
        fake = FakeSourceChain(directory, runs.src, runs.vault.address, runs.accounts)
        runs.fakes[1] = fake
        for i in COLLUDERS:
            _point_at(runs, i, fake)
        say(f"demo: {policy}: member-1 and member-2 read a fake chain {runs.chain_id} at {fake.url} (its vault holds "
            f"{sum(fake.values.values()) / 1e18:.1f} ETH, the real one {counted_on_source(runs) / 1e18:.1f} ETH), "
            "member-0 the real chain")  # fmt: skip
        if policy == "committee":
            with watchtower(runs, directory) as tower:
                return _committee(runs, tower, say, timeout)
        return _require_anchor(runs, policy, say, timeout)
    finally:
        runs.close()


def _require_anchor(runs: CommitteeRuns, policy: str, say: Callable[[str], None], timeout: float) -> Outcome:
    runs.start_all()
    outcome = Outcome(policy, 0, [])

    def refused() -> bool:
        outcome.fake_counted_wei = max(outcome.fake_counted_wei, counted(runs))
        outcome.refusals = refusals(runs)
        return bool(outcome.refusals)

    wait_until("the destination refusing the colluders' block", refused, timeout)
    outcome.fake_counted_wei = max(outcome.fake_counted_wei, counted(runs))
    say(f"demo: {policy}: the destination refused the fake block ({', '.join(sorted(set(outcome.refusals)))}); "
        f"{outcome.fake_counted_wei} wei of fake collateral counted")  # fmt: skip
    return outcome


def _committee(
    runs: CommitteeRuns, tower: subprocess.Popen[bytes], say: Callable[[str], None], timeout: float
) -> Outcome:
    runs.start_all()
    outcome = Outcome("committee", 0, [])

    def voided() -> bool:
        if tower.poll() is not None:
            raise AssertionError(
                f"relayer watch exited with code {tower.returncode}: see {runs.net.directory}/watch.log"
            )
        outcome.fake_counted_wei = max(outcome.fake_counted_wei, counted(runs))
        return bool(runs.settlement.functions.chainVoided(runs.chain_id).call())

    wait_until("the watchtower voiding the fake positions", voided, timeout)
    proven = runs.settlement.events.LieProven().get_logs(from_block=0)[-1]
    epoch = int(proven["args"]["epoch"])
    accepted = [
        e for e in runs.verifier.events.EpochAccepted.get_logs(from_block=0) if int(e["args"]["epoch"]) == epoch
    ]
    outcome.accepted_block = int(accepted[0]["blockNumber"])
    outcome.voided_block = int(proven["blockNumber"])
    outcome.counted_after_void_wei = counted(runs)
    outcome.refusals = refusals(runs)
    outcome.settled_accounts = sum(
        int(e["args"]["settled"]) for e in runs.settlement.events.BlockSettled.get_logs(from_block=0)
    )
    say(f"demo: committee: the colluders' epoch {epoch} was accepted in destination block {outcome.accepted_block} "
        f"({outcome.fake_counted_wei / 1e18:.2f} ETH of fake collateral counted); the watchtower's challenge "
        f"voided the chain in block {outcome.voided_block}: {outcome.blocks_to_void} destination block(s) later, "
        f"{outcome.counted_after_void_wei} wei counted now")  # fmt: skip
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", choices=("require-anchor", "committee", "both"), default="both")
    parser.add_argument("--dir", default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args(argv)
    policies = ("require-anchor", "committee") if args.policy == "both" else (args.policy,)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="demo-lie-"))
    os.environ.setdefault("RELAYER_LOG_LEVEL", "warning")
    started = time.monotonic()
    for policy in policies:
        run_demo(base / policy, policy)
    print(f"demo: done in {time.monotonic() - started:.0f} s (logs in {base})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
