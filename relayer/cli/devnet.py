"""`relayer devnet`: two local anvil chains, the contracts deployed and seeded, and the relayer
(one, or an M-of-N committee) relaying in the foreground, each settlement printed
(`relayer.devnet` does the provisioning)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from relayer.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, eth


def cmd_devnet(args: argparse.Namespace) -> int:
    from relayer import devnet

    directory = Path(args.dir)
    if args.stop:
        return _stop(directory)
    if not 1 <= args.committee <= devnet.MAX_COMMITTEE:
        print(f"devnet: --committee must be 1..{devnet.MAX_COMMITTEE} members, got {args.committee}", file=sys.stderr)
        return EXIT_USAGE
    try:
        devnet.check_anchor_options(args.anchor, args.anchor_policy, args.anchor_lag_blocks)
    except ValueError as exc:
        print(f"devnet: {exc}", file=sys.stderr)
        return EXIT_USAGE
    threshold = devnet.majority(args.committee) if args.threshold is None else args.threshold
    if not 1 <= threshold <= args.committee:
        print(
            f"devnet: --threshold must be 1..{args.committee} (at least one signature, at most the "
            f"--committee size {args.committee}), got {threshold}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        net = devnet.provision(
            directory,
            accounts=args.accounts,
            detach=args.no_run,
            dest_block_time=args.dest_block_time,
            committee=args.committee,
            threshold=threshold,
            anchor=args.anchor,
            anchor_policy=args.anchor_policy,
            anchor_lag_blocks=args.anchor_lag_blocks,
        )
    except (devnet.DevnetError, RuntimeError) as exc:
        print(f"devnet: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    configs = [Path(m["config"]) for m in net.members] or [net.config_path]
    print(f"devnet: wrote {net.directory / 'devnet.json'} and {', '.join(str(c) for c in configs)}")
    if args.no_run:
        if net.members:
            runs = f"`relayer run --config {net.directory}/member-<i>/relayer.toml` runs member i"
        else:
            runs = f"`relayer run --config {net.config_path}` relays"
        print(f"devnet: chains left running; {runs}, `relayer devnet --stop --dir {args.dir}` stops them")
        return EXIT_OK
    try:
        return _run_devnet_daemon(net)
    finally:
        devnet.stop(net.directory)
        print("devnet: chains stopped")


def _stop(directory: Path) -> int:
    """`relayer devnet --stop`: the foreground `relayer devnet`, the member daemons, the anchor
    feeder and the chains of `directory`."""
    from relayer import devnet

    foreground = devnet.stop_foreground(directory)
    if foreground:
        print(
            f"devnet: stopped the `relayer devnet` in the foreground (pid {foreground}), "
            "with its member daemons and chains"
        )
    members = devnet.stop_members(directory)
    if members:
        print(f"devnet: stopped {len(members)} member daemon(s)")
    stopped = devnet.stop(directory)
    if stopped or not foreground:
        print(f"devnet: stopped {len(stopped)} node(s)" if stopped else "devnet: no chains running")
    return EXIT_OK


def signer_names(signers: tuple[str, ...], members: list[dict[str, str]]) -> list[str]:
    """The committee members' names (member-0, ...) for signer addresses, the address itself
    for a signer that is not one of `members` (devnet.json "committee" entries)."""
    names = {m["attester"].lower(): m["name"] for m in members}
    return [names.get(signer.lower(), signer) for signer in signers]


def settlement_line(s: Any, members: list[dict[str, str]]) -> str:
    """One printed line per settled account (`relayer.settlement.settler.Settlement`)."""
    signed = f", signed by {', '.join(signer_names(s.signers, members))}" if s.signers else ""
    return (
        f"settled {s.account} chain {s.chain_id} block {s.block_number}: {eth(s.value)} "
        f"(epoch {s.epoch}{signed}, tx {s.tx_hash[:12]}…, {s.latency_seconds:.1f} s after the block, "
        f"{s.gas_used // s.batch_size} gas/account)"
    )


def _run_devnet_daemon(net: Any) -> int:
    """Run the devnet's relayer in the foreground, printing each settlement; in a committee,
    member 0 runs here and the others as `relayer run` processes (logs in member-<i>/daemon.log),
    stopped when this returns."""
    from relayer import devnet
    from relayer.config import load_config
    from relayer.daemon import Daemon
    from relayer.errors import RelayerError
    from relayer.observability.log import configure
    from relayer.settlement.settler import Settlement

    configure(json=False, level=os.environ.get("RELAYER_LOG_LEVEL", "warning"))
    members: list[dict[str, str]] = net.members

    def show(s: Settlement) -> None:
        print(settlement_line(s, members), flush=True)

    stop = threading.Event()
    threads = [threading.Thread(target=devnet.simulate_activity, args=(net.info, stop), kwargs={"say": _say},
                                daemon=True)]  # fmt: skip
    pid_file = net.directory / devnet.FOREGROUND_PID
    pid_file.write_text(f"{os.getpid()}\n")  # for `relayer devnet --stop` from another shell
    try:
        if members:
            threads += _start_other_members(net, stop)
        _say("devnet: relayer running (Ctrl-C stops it and the chains); settlements:")
        for thread in threads:
            thread.start()
        try:
            asyncio.run(Daemon(load_config(net.config_path), on_settled=show).run())
        except RelayerError as exc:  # ConfigError included
            print(f"devnet: relayer stopped: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        finally:
            stop.set()
            for thread in threads:
                if thread.is_alive():
                    thread.join(5)
    finally:
        stop.set()
        pid_file.unlink(missing_ok=True)
        if members:
            stopped = devnet.stop_members(net.directory)
            if stopped:
                _say(f"devnet: stopped {len(stopped)} member daemon(s)")
    return EXIT_OK


def _say(message: str) -> None:
    print(message, flush=True)


def _start_other_members(net: Any, stop: threading.Event) -> list[threading.Thread]:
    """Members 1.. of the committee started as `relayer run` processes (the caller stops them
    with `devnet.stop_members`) and waited for; returns the threads, not started, that say when
    one exits on its own and print the other members' settlements read from the destination."""
    from relayer import devnet

    members: list[dict[str, str]] = net.members
    others: dict[str, subprocess.Popen[bytes]] = {}
    for i in range(1, len(members)):
        others[members[i]["name"]] = devnet.start_member(net.directory, i)
    _say(
        f"devnet: committee of {len(members)}, threshold {net.threshold}: member-0 runs here, "
        f"member-1..{len(members) - 1} as processes (logs in {net.directory}/member-<i>/daemon.log)"
    )
    devnet.wait_members_up(net, timeout=20)

    def watch_members() -> None:  # a member that exits on its own is said once, with its log
        while not stop.wait(1.0):
            for name, process in list(others.items()):
                if process.poll() is not None:
                    _say(
                        f"devnet: {name} exited with code {process.returncode}; see "
                        f"{net.directory / name / 'daemon.log'}"
                    )
                    del others[name]

    settlements = threading.Thread(
        target=devnet.watch_settlements, args=(net.info, stop),
        kwargs={"skip_sender": members[0]["sender"], "say": _say}, daemon=True,
    )  # fmt: skip
    return [threading.Thread(target=watch_members, daemon=True), settlements]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the command to `sub` (what `ArgumentParser.add_subparsers` returns); it sets `func`."""
    p = sub.add_parser(
        "devnet",
        help="start two local anvil chains, deploy, seed and relay (one relayer or an M-of-N committee)",
        description="Start a source and a destination anvil chain, deploy the contracts, seed depositors and "
        "relay in the foreground, printing each settlement with the members that signed its epoch. With "
        "--committee N > 1: N member daemons, each with its own attester and sender keys, store and HTTP "
        "port in DIR/member-<i>/ (member-0 runs in this process, the others as `relayer run` processes "
        "logging to DIR/member-<i>/daemon.log); Ctrl-C or `relayer devnet --stop --dir DIR` stops them all.",
    )
    p.add_argument("--dir", default=".devnet", help="working directory (default .devnet)")
    p.add_argument("--accounts", type=int, default=50, help="depositors to seed (default 50)")
    p.add_argument(
        "--committee",
        type=int,
        default=1,
        metavar="N",
        help="committee members, 1..16 (default 1: a single relayer, DIR/relayer.toml); "
        "above 1, one directory DIR/member-<i>/ per member",
    )
    p.add_argument(
        "--threshold",
        type=int,
        default=None,
        metavar="M",
        help="signatures an epoch needs, 1..N (default the majority, N // 2 + 1)",
    )
    p.add_argument(
        "--dest-block-time",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds between destination blocks (default 0: a block per transaction; 2 shows an L2's pace)",
    )
    _add_anchor_arguments(p)
    p.add_argument("--no-run", action="store_true", help="provision, leave the chains running, exit")
    p.add_argument("--stop", action="store_true", help="stop the member daemons and the chains of --dir")
    p.set_defaults(func=cmd_devnet)
    return p


def _add_anchor_arguments(p: argparse.ArgumentParser) -> None:
    """--anchor, --anchor-policy, --anchor-lag-blocks (relayer.devnetanchor)."""
    p.add_argument(
        "--anchor",
        choices=("none", "op-l1block", "eip2935"),
        default="none",
        help="the destination's anchor of source block hashes (DESIGN section 2; default none: the committee "
        "alone): op-l1block puts the OP Stack L1Block stand-in at its predeploy address on the destination, "
        "names it as the source's anchor (MarginSettlement's built-in OP Stack path) and keeps the stand-in "
        "fed and its origins recorded from the source chain (a feeder process, log DIR/anchor-feeder.log); "
        "eip2935 relays a vault on the destination's own chain (anvil --hardfork prague), anchored by "
        "Eip2935Anchor",
    )
    p.add_argument(
        "--anchor-policy",
        choices=("committee", "prefer-anchor", "require-anchor"),
        default=None,
        help="the source chain's anchor policy (default require-anchor with an anchor, committee without; "
        "committee with an anchor: only challenges ask it)",
    )
    p.add_argument(
        "--anchor-lag-blocks",
        type=int,
        default=2,
        metavar="N",
        help="op-l1block: the stand-in is fed the source block N below the source head, as a sequencer's L1 "
        "origin trails L1 (default 2, 0..64)",
    )
