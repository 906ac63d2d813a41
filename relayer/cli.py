"""`relayer` command line: run, check-config, devnet, deploy, register-vault, remove-chain, prove,
verify, status, keys, conflicts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.4f} ETH"


# --- run / check-config -------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from relayer.config import ConfigError, load_config
    from relayer.daemon import Daemon
    from relayer.errors import EXPECTED_ERRORS
    from relayer.observability.log import configure
    from relayer.storage.lock import DataDirLocked

    configure(json=None if args.log_format == "auto" else args.log_format == "json", level=args.log_level)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"relayer: invalid config {args.config}:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(Daemon(config).run())
    except DataDirLocked as exc:  # another process runs this member: a usage error, not a failure
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EXPECTED_ERRORS as exc:
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    from relayer.config import ConfigError, load_config, node_checks, notes

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return EXIT_USAGE
    problems, warnings = node_checks(config)  # endpoints compared as resolved nodes
    problems += _committee_problems(config) if args.online else []
    for warning in warnings:
        print(f"warning: {warning}")
    for problem in problems:
        print(problem)
    if problems:
        return EXIT_USAGE
    print(f"{args.config}: ok ({len(config.chains)} chains, {len(config.pairs)} pairs)")
    for note in notes(config):
        print(f"note: {note}")
    return EXIT_OK


def _committee_problems(config: Any) -> list[str]:
    """Read each destination's committee (threshold, members) from its EpochVerifier and say
    what this member cannot meet: its attester is not a member, or the threshold needs more
    signatures than this member and its `[committee] peers` can give (a shared `directory` may
    hold any member's, so it is not counted against)."""
    from web3 import Web3

    from chains.bindings import contract
    from relayer.errors import EXPECTED_ERRORS

    try:
        attester = config.attester.load().address
    except EXPECTED_ERRORS as exc:
        return [f"attester: {exc}"]
    out = []
    for name, dest in config.destinations.items():
        chain = config.chains[dest.chain]
        try:
            w3 = Web3(Web3.HTTPProvider(chain.rpc[0], request_kwargs={"timeout": chain.rpc_timeout_seconds}))
            verifier = contract(w3, "EpochVerifier", dest.verifier)
            threshold = int(verifier.functions.threshold().call())
            members = [str(m) for m in verifier.functions.members().call()]
        except Exception as exc:  # any failure to read is reported, not raised
            out.append(f"destinations.{name}: cannot read the committee from {dest.verifier}: {exc}")
            continue
        if attester not in members:
            out.append(f"destinations.{name}: attester {attester} is not a member of the committee {members}")
        peers = len(config.committee.peers)
        if config.committee.directory is None and 1 + peers < threshold:
            out.append(
                f"destinations.{name}: threshold {threshold} needs more signatures than this member and its {peers} "
                f"[committee] peer(s) can give ({1 + peers})"
            )
    return out


# --- devnet -------------------------------------------------------------------------------


def cmd_devnet(args: argparse.Namespace) -> int:
    from relayer import devnet

    directory = Path(args.dir)
    if args.stop:
        foreground = devnet.stop_foreground(directory)
        if foreground:
            print(f"devnet: stopped the `relayer devnet` in the foreground (pid {foreground}), "
                  "with its member daemons and chains")
        members = devnet.stop_members(directory)
        if members:
            print(f"devnet: stopped {len(members)} member daemon(s)")
        stopped = devnet.stop(directory)
        if stopped or not foreground:
            print(f"devnet: stopped {len(stopped)} node(s)" if stopped else "devnet: no chains running")
        return EXIT_OK
    if not 1 <= args.committee <= devnet.MAX_COMMITTEE:
        print(f"devnet: --committee must be 1..{devnet.MAX_COMMITTEE} members, got {args.committee}", file=sys.stderr)
        return EXIT_USAGE
    threshold = devnet.majority(args.committee) if args.threshold is None else args.threshold
    if not 1 <= threshold <= args.committee:
        print(f"devnet: --threshold must be 1..{args.committee} (at least one signature, at most the "
              f"--committee size {args.committee}), got {threshold}", file=sys.stderr)
        return EXIT_USAGE
    try:
        net = devnet.provision(
            directory, accounts=args.accounts, detach=args.no_run, dest_block_time=args.dest_block_time,
            committee=args.committee, threshold=threshold,
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


def signer_names(signers: tuple[str, ...], members: list[dict[str, str]]) -> list[str]:
    """The committee members' names (member-0, ...) for signer addresses, the address itself
    for a signer that is not one of `members` (devnet.json "committee" entries)."""
    names = {m["attester"].lower(): m["name"] for m in members}
    return [names.get(signer.lower(), signer) for signer in signers]


def settlement_line(s: Any, members: list[dict[str, str]]) -> str:
    """One printed line per settled account (`relayer.settlement.settler.Settlement`)."""
    signed = f", signed by {', '.join(signer_names(s.signers, members))}" if s.signers else ""
    return (
        f"settled {s.account} chain {s.chain_id} block {s.block_number}: {_eth(s.value)} "
        f"(epoch {s.epoch}{signed}, tx {s.tx_hash[:12]}…, {s.latency_seconds:.1f} s after the block, "
        f"{s.gas_used // s.batch_size} gas/account)"
    )


def _run_devnet_daemon(net: Any) -> int:
    """Run the devnet's relayer in the foreground, printing each settlement; in a committee,
    member 0 runs here and the others as `relayer run` processes (logs in member-<i>/daemon.log),
    stopped when this returns."""
    import subprocess
    import threading

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
    others: dict[str, subprocess.Popen[bytes]] = {}

    def watch_members() -> None:  # a member that exits on its own is said once, with its log
        while not stop.wait(1.0):
            for name, process in list(others.items()):
                if process.poll() is not None:
                    print(f"devnet: {name} exited with code {process.returncode}; see "
                          f"{net.directory / name / 'daemon.log'}", flush=True)
                    del others[name]

    def say(message: str) -> None:
        print(message, flush=True)

    threads = [threading.Thread(target=devnet.simulate_activity, args=(net.info, stop), kwargs={"say": say},
                                daemon=True)]  # fmt: skip
    pid_file = net.directory / devnet.FOREGROUND_PID
    pid_file.write_text(f"{os.getpid()}\n")  # for `relayer devnet --stop` from another shell
    try:
        for i in range(1, len(members)):
            others[members[i]["name"]] = devnet.start_member(net.directory, i)
        if members:
            print(f"devnet: committee of {len(members)}, threshold {net.threshold}: member-0 runs here, "
                  f"member-1..{len(members) - 1} as processes (logs in {net.directory}/member-<i>/daemon.log)",
                  flush=True)
            devnet.wait_members_up(net, timeout=20)
            threads.append(threading.Thread(target=watch_members, daemon=True))
            threads.append(threading.Thread(  # the other members' settlements, read from the destination
                target=devnet.watch_settlements, args=(net.info, stop),
                kwargs={"skip_sender": members[0]["sender"], "say": say}, daemon=True,
            ))  # fmt: skip
        print("devnet: relayer running (Ctrl-C stops it and the chains); settlements:", flush=True)
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
                print(f"devnet: stopped {len(stopped)} member daemon(s)", flush=True)
    return EXIT_OK


# --- deploy -------------------------------------------------------------------------------


def _key_from_env(name: str) -> Any:
    from eth_account import Account

    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"relayer: environment variable {name} (the deployer or owner key) is not set")
    return Account.from_key(value.strip())


FUTURE_TOLERANCE_SECONDS = 300
"""MarginSettlement.FUTURE_TOLERANCE: how far a block's timestamp may run ahead of the destination."""


def cmd_deploy(args: argparse.Namespace) -> int:
    from web3 import Web3

    from chains.bindings import contract, deploy_destination, deploy_vault

    if args.role == "source" and args.withdraw_delay <= args.max_age + FUTURE_TOLERANCE_SECONDS:
        print(
            f"relayer: --withdraw-delay {args.withdraw_delay} s must exceed the destination's maxAge "
            f"({args.max_age} s, --max-age) plus its future tolerance ({FUTURE_TOLERANCE_SECONDS} s): "
            "otherwise collateral counted on the destination could already have left the vault",
            file=sys.stderr,
        )
        return EXIT_USAGE
    w3 = Web3(Web3.HTTPProvider(args.rpc))
    deployer = _key_from_env(args.key_env)
    if args.role == "source":
        vault = deploy_vault(w3, deployer, args.withdraw_delay)
        slot = int(contract(w3, "CollateralVault", vault).functions.collateralSlot().call())
        print(json.dumps({"chain_id": w3.eth.chain_id, "vault": vault, "collateral_slot": slot}))
    else:
        committee = [m for m in (args.committee or "").split(",") if m]
        if not committee:
            print("relayer: --committee ADDR[,ADDR...] is required for --role destination", file=sys.stderr)
            return EXIT_USAGE
        verifier, settlement = deploy_destination(w3, deployer, committee, args.threshold)
        print(json.dumps({"chain_id": w3.eth.chain_id, "verifier": verifier, "settlement": settlement}))
    return EXIT_OK


def cmd_register_vault(args: argparse.Namespace) -> int:
    from web3 import Web3

    from chains.bindings import register_vault
    from chains.errors import ChainError

    w3 = Web3(Web3.HTTPProvider(args.rpc))
    owner = _key_from_env(args.key_env)
    try:
        receipt = register_vault(
            w3, owner, args.settlement, args.chain_id, args.vault, args.collateral_slot, args.haircut_bps, args.max_age
        )
    except ChainError as exc:
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    print(json.dumps({"chain_id": args.chain_id, "vault": args.vault, "tx": tx}))
    return EXIT_OK


def cmd_remove_chain(args: argparse.Namespace) -> int:
    from web3 import Web3

    from chains.bindings import remove_chain
    from chains.errors import ChainError

    w3 = Web3(Web3.HTTPProvider(args.rpc))
    owner = _key_from_env(args.key_env)
    try:
        receipt = remove_chain(w3, owner, args.settlement, args.chain_id)
    except ChainError as exc:
        print(f"relayer: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    print(json.dumps({"chain_id": args.chain_id, "removed": True, "tx": tx}))
    return EXIT_OK


# --- prove / verify -----------------------------------------------------------------------


def cmd_prove(args: argparse.Namespace) -> int:
    from chains.errors import ChainError
    from relayer.errors import RelayerError
    from relayer.proving.schemes import SCHEMES

    try:
        document = asyncio.run(SCHEMES[args.scheme].prove(args.rpc, args.contract, args.slot, args.block))
    except (RelayerError, ChainError, ValueError, OSError) as exc:
        print(f"relayer: prove failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    text = json.dumps(document, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from chains.errors import ChainError, MalformedJson
    from relayer.proving.scheme import Unconfirmed, VerificationFailed, read_document
    from relayer.proving.schemes import scheme_for

    try:
        root = None
        if args.root is not None:
            root = bytes.fromhex(args.root.removeprefix("0x"))
            if len(root) != 32:
                raise ValueError("--root must be 32 bytes of hex")
        document = read_document(args.file)
        scheme = scheme_for(document)
        result = scheme.verify(document, root)
    except MalformedJson as exc:
        print(f"relayer: refused {args.file}: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError) as exc:
        print(f"relayer: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VerificationFailed as exc:
        print(f"INVALID: {exc}")
        return EXIT_FAILURE
    if args.rpc is not None:
        try:
            result["confirmed"] = asyncio.run(scheme.confirm(result, args.rpc))
        except Unconfirmed as exc:
            print(f"UNCONFIRMED: {exc}")
            return EXIT_FAILURE
        except (ChainError, ValueError, OSError) as exc:
            print(f"relayer: cannot confirm with --rpc: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    print(json.dumps(result, indent=2))
    number = result.get("blockNumber", result.get("block", "?"))
    checked = f"chain {result.get('chainId', '?')} block {number} hash {result.get('blockHash', '?')}"
    if "confirmed" in result:
        print(f"verified: {checked}, confirmed by {result['confirmed']['host']}", file=sys.stderr)
    else:
        print(f"verified offline: {checked} (not confirmed by a node: pass --rpc URL)", file=sys.stderr)
    return EXIT_OK


# --- status -------------------------------------------------------------------------------


STATUS_MAX_BYTES = 1 << 20
"""A `/v1/status` answer larger than this (bytes) is refused: one is a few kB."""


def cmd_status(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        from relayer.config import ConfigError, load_config

        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(f"relayer: invalid config {args.config}:\n{exc}", file=sys.stderr)
            return EXIT_USAGE
        url = f"http://{config.metrics_host}:{config.metrics_port}"
    from chains.errors import MalformedJson
    from chains.jsonparse import parse_json

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v1/status", timeout=5) as response:
            data = parse_json(response.read(STATUS_MAX_BYTES + 1), max_bytes=STATUS_MAX_BYTES, what="status answer")
    except (urllib.error.URLError, OSError, ValueError, MalformedJson) as exc:
        print(f"relayer: no daemon answering at {url}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{'chain':<14}{'id':>8}{'head':>10}{'finalized':>11}{'lag':>6}{'head age s':>12}  error")
    for name, c in data["chains"].items():
        lag = c["lag_blocks"] or 0
        age = c.get("head_lag_seconds")
        shown = f"{age:.1f}" if age is not None else "-"
        print(f"{name:<14}{c['chain_id']:>8}{c['head']:>10}{c['finalized']:>11}{lag:>6}{shown:>12}  {c['error'] or ''}")
    print(f"backlog {data['backlog']}  last epoch {data['last_epoch']}  epochs {data['epochs']}  "
          f"settlements {data['settlements']}")
    for chain, balance in data.get("signer_balance_wei", {}).items():
        print(f"sender on {chain}: {_eth(balance) if balance is not None else 'unknown'}")
    for chain, committee in data.get("committee", {}).items():
        if committee.get("generation") is None:
            print(f"committee on {chain}: not read yet")
            continue
        member = "a member" if committee["attester_is_member"] else "NOT a member"
        print(f"committee on {chain}: generation {committee['generation']}, threshold {committee['threshold']} "
              f"of {len(committee['members'])}; attester {committee['attester']} is {member}")
        for problem in committee.get("problems", []):
            print(f"  cannot attest: {problem}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relayer",
        description="Cross-chain state-proof relayer: proves collateral on source chains (EIP-1186), "
        "verifies and aggregates it natively, attests it (EIP-712) and settles margin on a destination.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon")
    p.add_argument("--config", required=True, help="path of the TOML config")
    p.add_argument("--log-format", choices=["auto", "json", "console"], default="auto",
                   help="auto: JSON when not on a terminal or under systemd")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config; exit 2 listing every problem")
    p.add_argument("--online", action="store_true",
                   help="also read each destination's committee from its EpochVerifier (first RPC endpoint) and "
                        "check that this attester is a member and that the threshold can be met with the "
                        "[committee] peers")  # fmt: skip
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "devnet", help="start two local anvil chains, deploy, seed and relay (one relayer or an M-of-N committee)",
        description="Start a source and a destination anvil chain, deploy the contracts, seed depositors and "
        "relay in the foreground, printing each settlement with the members that signed its epoch. With "
        "--committee N > 1: N member daemons, each with its own attester and sender keys, store and HTTP "
        "port in DIR/member-<i>/ (member-0 runs in this process, the others as `relayer run` processes "
        "logging to DIR/member-<i>/daemon.log); Ctrl-C or `relayer devnet --stop --dir DIR` stops them all.",
    )
    p.add_argument("--dir", default=".devnet", help="working directory (default .devnet)")
    p.add_argument("--accounts", type=int, default=50, help="depositors to seed (default 50)")
    p.add_argument("--committee", type=int, default=1, metavar="N",
                   help="committee members, 1..16 (default 1: a single relayer, DIR/relayer.toml); "
                   "above 1, one directory DIR/member-<i>/ per member")
    p.add_argument("--threshold", type=int, default=None, metavar="M",
                   help="signatures an epoch needs, 1..N (default the majority, N // 2 + 1)")
    p.add_argument("--dest-block-time", type=float, default=0.0, metavar="S",
                   help="seconds between destination blocks (default 0: a block per transaction; "
                   "2 shows an L2's pace)")
    p.add_argument("--no-run", action="store_true", help="provision, leave the chains running, exit")
    p.add_argument("--stop", action="store_true", help="stop the member daemons and the chains of --dir")
    p.set_defaults(func=cmd_devnet)

    p = sub.add_parser("deploy", help="deploy the reference contracts; prints JSON addresses")
    p.add_argument("--rpc", required=True)
    p.add_argument("--role", required=True, choices=["source", "destination"])
    p.add_argument("--key-env", default="RELAYER_DEPLOYER_KEY", help="env var holding the deployer key")
    p.add_argument("--withdraw-delay", type=int, default=7200,
                   help="source: seconds, must exceed --max-age + 300 (default 7200)")
    p.add_argument("--max-age", type=int, default=3600,
                   help="source: the destination's maxAge for this chain, seconds (default 3600)")
    p.add_argument("--committee", help="destination: comma-separated committee addresses")
    p.add_argument("--threshold", type=int, default=1, help="destination: signatures required")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("register-vault", help="register (or update) a source chain's vault on MarginSettlement")
    p.add_argument("--rpc", required=True, help="destination JSON-RPC URL")
    p.add_argument("--settlement", required=True, help="MarginSettlement address")
    p.add_argument("--chain-id", required=True, type=int, help="the source chain's id")
    p.add_argument("--vault", required=True, help="the CollateralVault address on the source chain")
    p.add_argument("--collateral-slot", type=int, default=0, help="slot of the vault's collateral mapping (default 0)")
    p.add_argument("--haircut-bps", type=int, default=10_000, help="weight of its collateral, 0..10000 (default 10000)")
    p.add_argument("--max-age", type=int, required=True, help="seconds a proven block counts (< the vault's delay)")
    p.add_argument("--key-env", default="RELAYER_OWNER_KEY", help="env var holding the owner key")
    p.set_defaults(func=cmd_register_vault)

    p = sub.add_parser("remove-chain", help="remove a source chain from MarginSettlement (its positions count zero)")
    p.add_argument("--rpc", required=True, help="destination JSON-RPC URL")
    p.add_argument("--settlement", required=True, help="MarginSettlement address")
    p.add_argument("--chain-id", required=True, type=int)
    p.add_argument("--key-env", default="RELAYER_OWNER_KEY", help="env var holding the owner key")
    p.set_defaults(func=cmd_remove_chain)

    p = sub.add_parser("prove", help="one-shot proof of storage slots (EIP-1186 or Verkle), verified, as JSON")
    p.add_argument("--rpc", required=True)
    p.add_argument("--contract", required=True, help="account address")
    p.add_argument("--slot", nargs="+", default=[], help="storage slots (hex)")
    p.add_argument("--block", required=True, help="block number (or latest/finalized/safe)")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.add_argument("--scheme", choices=["eip1186", "verkle"], default="eip1186",
                   help="eip1186: eth_getProof (Merkle-Patricia); verkle: the block's EIP-6800 executionWitness")
    p.set_defaults(func=cmd_prove)

    p = sub.add_parser("verify", help="verify a `prove` file or a Verkle execution witness offline")
    p.add_argument("file")
    p.add_argument("--root", help="Verkle: the pre-state root (parent stateRoot) when the file has none")
    p.add_argument("--rpc", metavar="URL",
                   help="confirm the chain id and block hash against this node (exit 1 if it disagrees)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("status", help="the running daemon's chains, lag and backlog")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--url", help="daemon HTTP address, e.g. http://127.0.0.1:9464")
    group.add_argument("--config", help="read the address from this config")
    p.set_defaults(func=cmd_status)

    from relayer import keys_cli
    keys_cli.add_parser(sub)
    from relayer import conflicts_cli
    conflicts_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
