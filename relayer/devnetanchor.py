"""The anchor of a devnet's destination (`relayer devnet --anchor MODE`, DESIGN section 2): the
adapter deployed, the source chain's anchor policy set (chains.anchors), and for `op-l1block` the
feeder that keeps the OP Stack `L1Block` stand-in fed from the source chain as a sequencer would.

Modes: `none` (the committee alone, as before); `op-l1block` (L1BlockStandIn at the predeploy
address on the destination anvil, the predeploy's address as the source chain's anchor:
MarginSettlement's built-in OP Stack path; a feeder process, `python -m relayer.devnetanchor`, sets
the stand-in's L1 origin to the source block `lag` blocks below the source head, for every source
block, as the sequencer does; under `prefer-anchor` and `require-anchor` that is all (`--feed-only`):
the relayer reads the source `lag` blocks behind the head and records the origins its epochs prove
itself (relayer.relay.epochflow.record_l1_origin); under `committee` the feeder also records every
origin with the settlement's permissionless `recordL1Origin()`, so that a watchtower's
`challengeAnchor` finds the real block); `eip2935` (the destination's own chain is the source: its
anvil runs `--hardfork prague`, a vault is deployed on it and registered, and Eip2935Anchor answers its block hashes).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from chains.anchors import (
    DEPOSITOR_ACCOUNT,
    POLICIES,
    deploy_anchor,
    feed_l1block,
    install_l1block_standin,
    set_anchor_policy,
)
from chains.anvil import AnvilNode
from chains.bindings import contract

ANCHOR_MODES = ("none", "op-l1block", "eip2935")
DEFAULT_LAG_BLOCKS = 2
"""Source blocks between the source head and the L1 origin the stand-in is fed (`--anchor-lag-blocks`)."""
FEEDER_PID = "anchor-feeder.pid"
FEEDER_LOG = "anchor-feeder.log"


@dataclass(frozen=True)
class Anchoring:
    """A devnet's anchor as asked (`relayer devnet --anchor MODE --anchor-policy P --anchor-lag-blocks N`)."""

    mode: str
    policy: str
    lag: int
    detach: bool
    inclusion_blocks: int = 0
    """Source blocks the destination may take to mine the feeder's record (one destination block
    interval, rounded up; 0 for a destination mining a block per transaction)."""
    feeder_records: bool = False
    """Whether the feeder also records every origin it feeds (`recordL1Origin()`); False: it only feeds
    the stand-in, as the real sequencer does, and the relayer records the origins its epochs prove."""

    @classmethod
    def of(
        cls, mode: str, policy: str | None, lag: int, detach: bool, dest_block_time: float, source_block_time: float,
        *, feeder_records: bool | None = None,
    ) -> Anchoring:  # fmt: skip
        """The anchoring of a devnet whose chains mine every `dest_block_time` / `source_block_time`
        seconds; `feeder_records` None: only under `committee` (no relay daemon records then, and a
        watchtower's `challengeAnchor` needs the real block recorded). Raises ValueError naming a bad
        option (`check_anchor_options`)."""
        policy = check_anchor_options(mode, policy, lag)
        blocks = inclusion_blocks(dest_block_time, source_block_time)
        records = policy == "committee" if feeder_records is None else feeder_records
        return cls(mode, policy, lag, detach, blocks, records)

    @property
    def source_confirmations(self) -> int:
        """The relayer's source confirmations: lag + 1 + `inclusion_blocks` under op-l1block (a
        snapshot's block is fed and its record mined before the relayer proves it); `lag` when the
        feeder does not record (the relayer proves the block the moment it is the live origin, and
        records it itself); 0 (the devnet's default) otherwise."""
        if self.mode != "op-l1block":
            return 0
        return self.lag + 1 + self.inclusion_blocks if self.feeder_records else self.lag

    def setup(
        self, directory: Path, source: AnvilNode, destination: AnvilNode, owner: LocalAccount, settlement: str
    ) -> dict[str, object] | None:
        """Set the anchor up on the running chains (the vault of `source` registered); returns
        devnet.json's "anchor" (None for mode "none")."""
        if self.mode == "op-l1block":
            return setup_op_l1block(directory, source.url, destination.url, owner, settlement, source.chain_id,
                                    self.policy, self.lag, detach=self.detach, record=self.feeder_records)  # fmt: skip
        if self.mode == "eip2935":
            return setup_eip2935(destination.url, owner, settlement, source.chain_id, self.policy)
        return None


def inclusion_blocks(dest_block_time: float, source_block_time: float) -> int:
    """Source blocks one destination block interval spans, rounded up (`Anchoring.inclusion_blocks`);
    0 when either chain mines a block per transaction (0 s)."""
    return math.ceil(dest_block_time / source_block_time) if dest_block_time and source_block_time else 0


def default_policy(mode: str) -> str:
    """`require-anchor` when an anchor is set, else `committee`."""
    return "committee" if mode == "none" else "require-anchor"


def check_anchor_options(mode: str, policy: str | None, lag: int) -> str:
    """The policy (default `default_policy(mode)`); raises ValueError naming the bad option."""
    if mode not in ANCHOR_MODES:
        raise ValueError(f"--anchor must be one of {', '.join(ANCHOR_MODES)}, got {mode!r}")
    policy = policy or default_policy(mode)
    if policy not in POLICIES:
        raise ValueError(f"--anchor-policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if mode == "none" and policy != "committee":
        raise ValueError(f"--anchor-policy {policy} needs an anchor (--anchor op-l1block or eip2935)")
    if not 0 <= lag <= 64:
        raise ValueError(f"--anchor-lag-blocks must be 0..64, got {lag}")
    return policy


def setup_op_l1block(
    directory: Path, source_url: str, dest_url: str, owner: LocalAccount, settlement: str, chain_id: int,
    policy: str, lag: int, *, detach: bool, record: bool = True,
) -> dict[str, object]:  # fmt: skip
    """Install the stand-in on the destination, feed it the source block `lag` below the head, set
    `chain_id`'s `policy` with the predeploy's address as its anchor (the built-in OP Stack path) and
    start the feeder process (pid in DIR/anchor-feeder.pid, log DIR/anchor-feeder.log; `record`: it
    also records every origin it feeds). Returns devnet.json's "anchor"."""
    w3_dest = Web3(Web3.HTTPProvider(dest_url))
    w3_source = Web3(Web3.HTTPProvider(source_url))
    l1block = install_l1block_standin(w3_dest, owner)
    origin = w3_source.eth.get_block(max(0, w3_source.eth.block_number - lag))
    feed_l1block(w3_dest, int(origin["number"]), int(origin["timestamp"]), 0, bytes(origin["hash"]))
    adapter = deploy_anchor(w3_dest, owner, "op-l1block-builtin")  # deploys nothing: the predeploy's address
    set_anchor_policy(w3_dest, owner, settlement, chain_id, policy, adapter)
    pid = start_feeder(directory, source_url, dest_url, settlement, lag, detach=detach, record=record)
    return {"mode": "op-l1block", "policy": policy, "adapter": adapter, "l1block": l1block,
            "chain_id": chain_id, "lag_blocks": lag, "feeder_pid": pid, "feeder_records": record}  # fmt: skip


def setup_eip2935(dest_url: str, owner: LocalAccount, settlement: str, chain_id: int, policy: str) -> dict[str, object]:
    """Deploy Eip2935Anchor and set `policy` for `chain_id` (the destination's own chain id, its
    vault registered). Returns devnet.json's "anchor"."""
    w3_dest = Web3(Web3.HTTPProvider(dest_url))
    adapter = deploy_anchor(w3_dest, owner, "eip2935")
    set_anchor_policy(w3_dest, owner, settlement, chain_id, policy, adapter)
    return {"mode": "eip2935", "policy": policy, "adapter": adapter, "chain_id": chain_id}


def start_feeder(
    directory: Path, source_url: str, dest_url: str, settlement: str, lag: int, *, detach: bool, record: bool = True
) -> int:
    """Run the feeder (`python -m relayer.devnetanchor`, `--feed-only` unless `record`) as a process;
    returns its pid."""
    with open(directory / FEEDER_LOG, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "relayer.devnetanchor", "--source", source_url, "--destination", dest_url,
             "--settlement", settlement, "--lag", str(lag), *([] if record else ["--feed-only"])],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=detach,
        )  # fmt: skip
    (directory / FEEDER_PID).write_text(f"{process.pid}\n")
    return process.pid


def _is_feeder(pid: int) -> bool:
    try:
        return b"relayer.devnetanchor" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_feeder(directory: Path, timeout: float = 5.0) -> int | None:
    """SIGTERM the feeder recorded in DIR/anchor-feeder.pid (SIGKILL after `timeout` s); its pid or None."""
    path = directory / FEEDER_PID
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    path.unlink(missing_ok=True)
    if not _is_feeder(pid):
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_feeder(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _is_feeder(pid):
        os.kill(pid, signal.SIGKILL)
    return pid


def feed(
    source_url: str, dest_url: str, settlement: str, lag: int, *, interval: float = 0.2, record: bool = True
) -> None:
    """Forever: for each source block up to head - `lag` not fed yet, set the stand-in's L1 origin
    to it and (`record`) record it with the settlement's `recordL1Origin()`, both from the
    impersonated depositor account (the two transactions sent together, so an interval-mining
    destination takes them in one block). Without `record` it only feeds, as the real sequencer
    does: the relayer records the origins its epochs prove (relayer.relay.epochflow)."""
    w3_source = Web3(Web3.HTTPProvider(source_url))
    w3_dest = Web3(Web3.HTTPProvider(dest_url))
    w3_dest.provider.make_request("anvil_impersonateAccount", [DEPOSITOR_ACCOUNT])  # type: ignore[arg-type]
    w3_dest.provider.make_request("anvil_setBalance", [DEPOSITOR_ACCOUNT, hex(10**21)])  # type: ignore[arg-type]
    standin = contract(w3_dest, "L1BlockStandIn", "0x4200000000000000000000000000000000000015")
    recorder = contract(w3_dest, "MarginSettlement", settlement)
    fed = int(standin.functions.number().call()) - 1  # the origin set up front is recorded too
    sent: Any = {"from": DEPOSITOR_ACCOUNT, "gas": 200_000}
    while True:
        target = w3_source.eth.block_number - lag
        records = []  # sent without waiting in between (the node orders them by nonce), checked after
        for number in range(fed + 1, target + 1):
            block: Any = w3_source.eth.get_block(number)
            fed_tx = standin.functions.setL1BlockValues(
                number, int(block["timestamp"]), int(block.get("baseFeePerGas", 0)), bytes(block["hash"])
            ).transact(sent)
            recorded = recorder.functions.recordL1Origin().transact(sent) if record else fed_tx
            records.append((number, block["hash"], recorded))
        for number, block_hash, tx in records:
            if w3_dest.eth.wait_for_transaction_receipt(tx, timeout=60)["status"] != 1:
                raise RuntimeError(
                    f"{'recordL1Origin()' if record else 'setL1BlockValues'} of L1 block {number} failed"
                )
            fed = number
            print(
                f"fed{' and recorded' if record else ''} L1 block {number} {bytes(block_hash).hex()[:12]}", flush=True
            )
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Feed a devnet's L1Block stand-in from the source chain")
    parser.add_argument("--source", required=True)
    parser.add_argument("--destination", required=True)
    parser.add_argument("--settlement", required=True)
    parser.add_argument("--lag", type=int, default=DEFAULT_LAG_BLOCKS)
    parser.add_argument("--feed-only", action="store_true", help="feed the stand-in only (no recordL1Origin)")
    args = parser.parse_args(argv)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C in a foreground devnet reaches it too
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    try:
        feed(args.source, args.destination, args.settlement, args.lag, record=not args.feed_only)
    except (OSError, ConnectionError) as exc:  # the chains went away
        print(f"feeder stopped: {exc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
