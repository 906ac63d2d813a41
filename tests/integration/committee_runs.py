"""An M-of-N committee devnet with every member daemon run as a real process (DESIGN section 2).

`CommitteeRuns.provision(dir, members=3, threshold=2)` provisions a committee devnet
(`relayer devnet --committee N --threshold M`, see relayer.devnet) and gives a test:

- each member as a `relayer run` process: `start(i)`, `stop(i)` (SIGTERM, exit 0 expected),
  `kill(i)` (kill -9), `restart(i)`, `start_all()`, `close()`;
- each member's JSON log events across its runs (`events(i, name)`, `member-<i>/daemon.log`),
  its metrics (`metric(i, name)`), `/readyz` (`readyz(i)`) and `/v1/status` (`status(i)`);
- a member behind a TamperProxy for its source RPC (`behind_proxy(i, tamper)`, see
  tests/integration/proxy.py) or behind a self-consistent fake source chain
  (`behind_fake_chain(i)`: same chain id, the vault at the same address, other balances);
- the destination as evidence: accepted epochs with the committee members that signed each
  (recovered from the submitting transaction's signatures, `accepted()`), a committee rotation
  by the owner (`rotate`), and the end-state check every test ends with (`check_end_state`:
  the destination holds what the source says, no epoch accepted twice, no account settled twice
  for the same block).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.types import Wei

from chains.anvil import AnvilNode, rpc, start_anvil
from chains.bindings import contract, deploy_vault
from relayer import devnet
from relayer.errors import RelayerError
from tests.integration.proxy import TamperProxy
from tests.integration.test_devnet_relay import source_collateral_at, wait_for

FAKE_FACTOR = 5
"""A fake chain's depositors hold this many times their honest collateral."""


@dataclass
class Member:
    """One committee member as provisioned (devnet.json "committee") and its current process."""

    index: int
    name: str
    attester: str
    sender: str
    config: Path
    api: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    runs: int = 0

    @property
    def home(self) -> Path:
        return self.config.parent

    @property
    def log(self) -> Path:
        return self.home / "daemon.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass(frozen=True)
class Accepted:
    """One `EpochAccepted` on the destination, with the members whose signatures it carried."""

    epoch: int
    root: str
    previous: str
    generation: int
    sender: str
    """The account that sent the transaction (a member's sender key); the event's `submitter`
    is the contract that called the verifier (MarginSettlement for submitAndSettle)."""
    signers: tuple[str, ...]
    tx_hash: str


class FakeSourceChain:
    """A second anvil with the source's chain id, mined up to the honest chain's height, the
    vault deployed at the same address (same deployer, same nonce) and every depositor holding
    FAKE_FACTOR times its honest collateral: every proof from it verifies, only the values lie."""

    def __init__(self, directory: Path, honest: Web3, vault: str, accounts: list[str]) -> None:
        self.node: AnvilNode = start_anvil(
            devnet.SOURCE_CHAIN_ID, block_time=1.0, accounts=devnet.FIRST_SEEDED + len(accounts),
            log_path=directory / "anvil-fake.log",
        )  # fmt: skip
        self.w3 = Web3(Web3.HTTPProvider(self.node.url))
        self.vault = deploy_vault(self.w3, devnet.dev_account(0), devnet.WITHDRAW_DELAY_SECONDS)
        if self.vault != vault:
            raise AssertionError(f"the fake vault is at {self.vault}, not at the honest vault's {vault}")
        honest_vault = contract(honest, "CollateralVault", vault)
        fake_vault = contract(self.w3, "CollateralVault", self.vault)
        self.values: dict[str, int] = {}
        for account in accounts:
            value = FAKE_FACTOR * int(honest_vault.functions.collateral(account).call())
            tx = fake_vault.functions.deposit().transact({"from": account, "value": Wei(value)})
            self.w3.eth.wait_for_transaction_receipt(tx)
            self.values[account] = value
        behind = honest.eth.block_number - self.w3.eth.block_number
        if behind > 0:  # the same heights as the honest chain, so both sides compute the same epochs
            rpc(self.node.url, "anvil_mine", [hex(behind)])

    @property
    def url(self) -> str:
        return self.node.url

    def stop(self) -> None:
        self.node.stop()


class CommitteeRuns:
    """A provisioned committee devnet and its members as real processes (see the module docstring)."""

    def __init__(self, net: devnet.Devnet) -> None:
        if not net.members:
            raise ValueError("not a committee devnet: provision it with committee > 1")
        self.net = net
        info: Any = net.info
        self.source_rpc: str = info["chains"]["source"]["rpc"]
        self.dest_rpc: str = info["chains"]["destination"]["rpc"]
        self.src = Web3(Web3.HTTPProvider(self.source_rpc))
        self.dst = Web3(Web3.HTTPProvider(self.dest_rpc))
        self.vault = contract(self.src, "CollateralVault", info["contracts"]["vault"])
        self.settlement = contract(self.dst, "MarginSettlement", info["contracts"]["settlement"])
        self.verifier = contract(self.dst, "EpochVerifier", info["contracts"]["settlement"])
        self.accounts: list[str] = info["accounts"]
        self.chain_id = self.src.eth.chain_id
        self.dest_chain_id = self.dst.eth.chain_id
        self.members = [
            Member(i, m["name"], m["attester"], m["sender"], Path(m["config"]), m["api"])
            for i, m in enumerate(net.members)
        ]
        self.threshold = net.threshold
        self.proxies: dict[int, TamperProxy] = {}
        self.fakes: dict[int, FakeSourceChain] = {}

    @classmethod
    def provision(
        cls,
        directory: Path,
        *,
        members: int = 3,
        threshold: int | None = None,
        accounts: int = 3,
        every_blocks: int = 2,
        takeover_seconds: float = 3.0,
        fetch_timeout_seconds: float = 1.0,
        dest_block_time: float = 0.0,
        anchor: str = "none",
        anchor_policy: str | None = None,
    ) -> CommitteeRuns:
        """Provision a committee devnet in `directory` (short takeover and fetch timeouts, so a
        test sees a takeover within seconds; `dest_block_time`, `anchor`, `anchor_policy`: see
        `devnet.provision`); no member is started yet."""
        net = devnet.provision(
            directory, accounts=accounts, detach=False, progress=False, every_blocks=every_blocks,
            committee=members, threshold=threshold, takeover_seconds=takeover_seconds,
            dest_block_time=dest_block_time, anchor=anchor, anchor_policy=anchor_policy,
        )  # fmt: skip
        runs = cls(net)
        for member in runs.members:
            text = member.config.read_text()
            member.config.write_text(
                text.replace("[committee]\n", f"[committee]\nfetch_timeout_seconds = {fetch_timeout_seconds}\n")
            )
        return runs

    # --- processes ------------------------------------------------------------------------

    def member(self, who: int | str) -> Member:
        return self.members[who] if isinstance(who, int) else next(m for m in self.members if m.name == who)

    def start(self, i: int, die_at: str | None = None) -> Member:
        """Run member `i` as `relayer run` (JSON logs appended to member-<i>/daemon.log);
        `die_at`: a fault checkpoint that kills it (relayer.faults)."""
        member = self.members[i]
        if member.running:
            raise AssertionError(f"{member.name} is already running")
        env = {k: v for k, v in os.environ.items() if k != "RELAYER_TEST_DIE_AT"}
        if die_at:
            env["RELAYER_TEST_DIE_AT"] = die_at
        member.runs += 1
        with member.log.open("ab") as log:
            log.write(f'{{"event": "test.run", "run": {member.runs}}}\n'.encode())
        member.process = devnet.start_member(self.net.directory, i, env=env)
        return member

    def start_all(self) -> None:
        for i, member in enumerate(self.members):
            if not member.running:
                self.start(i)

    def stop(self, i: int, timeout: float = 20.0) -> None:
        """SIGTERM member `i` and expect exit 0 within `timeout` seconds."""
        member = self.members[i]
        if member.process is not None and member.process.poll() is None:
            member.process.send_signal(signal.SIGTERM)
            code = member.process.wait(timeout=timeout)
            assert code == 0, f"{member.name} exited with {code} on SIGTERM (see {member.log})"
        member.process = None

    def kill(self, i: int) -> None:
        """kill -9 member `i`."""
        member = self.members[i]
        if member.process is not None and member.process.poll() is None:
            member.process.send_signal(signal.SIGKILL)
            member.process.wait(timeout=10)
        member.process = None

    def restart(self, i: int, *, hard: bool = False) -> Member:
        """Stop (or with `hard`, kill -9) member `i` and start it again on the same store."""
        (self.kill if hard else self.stop)(i)
        return self.start(i)

    def close(self) -> None:
        """Stop every member (killing one that does not exit), the proxies, fake chains and the devnet."""
        try:
            for i in range(len(self.members)):
                try:
                    self.stop(i, timeout=15)
                except (AssertionError, subprocess.TimeoutExpired):
                    self.kill(i)
        finally:
            for proxy in self.proxies.values():
                proxy.stop()
            for fake in self.fakes.values():
                fake.stop()
            devnet.stop(self.net.directory)

    # --- what a member says ---------------------------------------------------------------

    def events(self, i: int, name: str) -> list[dict[str, Any]]:
        """Every JSON log event `name` of member `i`, across its runs, in order."""
        found = []
        log = self.members[i].log
        if not log.exists():
            return []
        for line in log.read_text(errors="replace").splitlines():
            if f'"{name}"' not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == name:
                found.append(event)
        return found

    def _get(self, i: int, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.members[i].api + path, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def metric(self, i: int, name: str, labels: str | None = None) -> float | None:
        """Sum of member `i`'s samples of metric `name` (those whose labels contain `labels`,
        e.g. 'destination="destination"'); None when the member does not answer or has none."""
        try:
            _, body = self._get(i, "/metrics")
        except OSError:
            return None
        total, seen = 0.0, False
        for line in body.decode().splitlines():
            if not line.startswith(name) or line[len(name)] not in " {":
                continue
            if labels is not None and labels not in line:
                continue
            total += float(line.rsplit(" ", 1)[1])
            seen = True
        return total if seen else None

    def readyz(self, i: int) -> tuple[int, dict[str, Any]]:
        """Member `i`'s /readyz: (HTTP status, {"ready": bool, "problems": [str, ...]})."""
        code, body = self._get(i, "/readyz")
        data: dict[str, Any] = json.loads(body)
        return code, data

    def status(self, i: int) -> dict[str, Any]:
        code, body = self._get(i, "/v1/status")
        assert code == 200, f"{self.members[i].name} /v1/status answered {code}"
        data: dict[str, Any] = json.loads(body)
        return data

    def answers(self, i: int) -> bool:
        try:
            return self._get(i, "/healthz")[0] == 200
        except OSError:
            return False

    def caught_up(self, i: int) -> bool:
        """Member `i` answers and its store holds an epoch as new as the destination's latest."""
        try:
            return int(self.status(i)["last_epoch"]) >= self.latest_epoch()
        except (OSError, AssertionError):
            return False

    # --- a member's source endpoint -------------------------------------------------------

    def set_source(self, i: int, urls: list[str]) -> None:
        """Point member `i`'s source chain at `urls` (its config; a running member is restarted)."""
        member = self.members[i]
        text = member.config.read_text()
        start = text.index("[chains.source]")
        line_start = text.index("rpc = [", start)
        line_end = text.index("\n", line_start)
        listed = ", ".join(f'"{u}"' for u in urls)
        member.config.write_text(text[:line_start] + f"rpc = [{listed}]" + text[line_end:])
        if member.running:
            self.restart(i)

    def behind_proxy(self, i: int, tamper: str | None = None) -> TamperProxy:
        """Member `i` reads the source through a TamperProxy (`tamper`: one of proxy.TAMPER_MODES)."""
        proxy = TamperProxy(self.source_rpc).start()
        proxy.tamper = tamper
        self.proxies[i] = proxy
        self.set_source(i, [proxy.url])
        return proxy

    def behind_fake_chain(self, i: int) -> FakeSourceChain:
        """Member `i` reads the source from a self-consistent fake chain (FakeSourceChain)."""
        fake = FakeSourceChain(self.net.directory, self.src, self.vault.address, self.accounts)
        self.fakes[i] = fake
        self.set_source(i, [fake.url])
        return fake

    # --- the chains -----------------------------------------------------------------------

    def deposit(self, account: str, wei: int) -> int:
        """`account` deposits `wei` on the source; returns its collateral after the deposit."""
        tx = self.vault.functions.deposit().transact({"from": account, "value": Wei(wei)})
        assert self.src.eth.wait_for_transaction_receipt(tx)["status"] == 1
        return int(self.vault.functions.collateral(account).call())

    def settled(self, account: str) -> int:
        """collateralOf(account) on the destination (fresh positions only), in wei."""
        return int(self.settlement.functions.collateralOf(account).call())

    def last_block(self, account: str) -> int:
        return int(self.settlement.functions.lastSettledBlock(account, self.chain_id).call())

    def latest_epoch(self) -> int:
        return int(self.verifier.functions.latestEpoch().call())

    def rotate(self, members: list[int], threshold: int) -> int:
        """The owner (dev account 0) sets the committee to these members' attesters and
        `threshold`; returns the new generation."""
        owner = self.dst.eth.accounts[0]
        attesters = [self.members[i].attester for i in members]
        tx = self.verifier.functions.setCommittee(attesters, threshold).transact({"from": owner})
        assert self.dst.eth.wait_for_transaction_receipt(tx)["status"] == 1
        return int(self.verifier.functions.generation().call())

    def accepted(self) -> list[Accepted]:
        """Every accepted epoch, with the signers recovered from its transaction's signatures
        (submitEpoch on the verifier or submitAndSettle on the settlement contract)."""
        found = []
        for event in self.verifier.events.EpochAccepted.get_logs(from_block=0):
            args = event["args"]
            epoch, root, previous = int(args["epoch"]), bytes(args["root"]), bytes(args["previous"])
            tx = self.dst.eth.get_transaction(event["transactionHash"])
            try:
                signers = devnet.epoch_signers(self.dst, self.verifier, self.settlement, event)
            except RelayerError:
                signers = ("unrecoverable",)
            found.append(Accepted(
                epoch, "0x" + root.hex(), "0x" + previous.hex(), int(args["generation"]), str(tx["from"]),
                signers, "0x" + bytes(event["transactionHash"]).hex(),
            ))  # fmt: skip
        return found

    def names(self, addresses: tuple[str, ...]) -> tuple[str, ...]:
        """Member names for attester or sender addresses (the address itself for a non-member)."""
        by_address = {m.attester.lower(): m.name for m in self.members}
        by_address.update({m.sender.lower(): m.name for m in self.members})
        return tuple(by_address.get(a.lower(), a) for a in addresses)

    def all_settled_as_source_says(self) -> bool:
        """Every account's destination collateral equals its collateral on the source now and at
        the block it was settled from (an account with nothing, never settled, counts as right)."""
        head = self.src.eth.block_number
        for account in self.accounts:
            value, block, _timestamp, _fresh = self.settlement.functions.positionOf(account, self.chain_id).call()
            source_now = source_collateral_at(self.src, self.vault, account, head)
            if block == 0 and source_now == 0 and value == 0:
                continue
            if block == 0 or value != source_now or value != source_collateral_at(self.src, self.vault, account, block):
                return False
        return True

    def doubled_settlements(self) -> list[dict[str, Any]]:
        """Settlements sent for a block the account was already settled at: the contract skips
        them (`SettlementSkipped` with blockNumber == lastBlock); nobody but the committee
        settles here, so each is a settlement sent twice."""
        return [
            dict(e["args"])
            for e in self.settlement.events.SettlementSkipped.get_logs(from_block=0)
            if int(e["args"]["blockNumber"]) == int(e["args"]["lastBlock"])
        ]

    def check_end_state(self, timeout: float = 60.0) -> list[Accepted]:
        """Wait until the destination holds what the source says; then assert that no epoch was
        accepted twice (numbers consecutive, roots distinct) and no account settled twice for the
        same block, and that every settled block came from an accepted epoch. Returns the
        accepted epochs."""
        wait_for("every account settled as the source chain says", self.all_settled_as_source_says, timeout)
        accepted = self.accepted()
        numbers = [a.epoch for a in accepted]
        assert numbers == list(range(1, len(numbers) + 1)), f"accepted epochs {numbers}"
        roots = Counter(a.root for a in accepted)
        assert not roots or max(roots.values()) == 1, f"an epoch root was accepted twice: {roots.most_common(1)}"
        doubled = self.doubled_settlements()
        assert not doubled, f"accounts settled twice for the same block: {doubled}"
        per_block: Counter[tuple[int, int]] = Counter()
        for e in self.settlement.events.BlockSettled.get_logs(from_block=0):
            assert int(e["args"]["epoch"]) in numbers, "a block settled from an epoch that was never accepted"
            per_block[(int(e["args"]["chainId"]), int(e["args"]["blockNumber"]))] += int(e["args"]["settled"])
        over = {block: n for block, n in per_block.items() if n > len(self.accounts)}
        assert not over, f"more settlements than accounts for one block: {over}"
        return accepted


def wait_until(what: str, predicate: Any, timeout: float) -> None:
    """wait_for with a predicate that may raise while a member is (re)starting: counts as False."""

    def safe() -> bool:
        try:
            return bool(predicate())
        except (OSError, ValueError, KeyError):
            return False

    wait_for(what, safe, timeout)


def settles_within(runs: CommitteeRuns, account: str, wei: int, timeout: float) -> int:
    """Deposit `wei` for `account` and wait until the destination holds its new collateral;
    returns the seconds it took."""
    started = time.monotonic()
    target = runs.deposit(account, wei)
    wait_for(f"{account} settled at {target} wei", lambda: runs.settled(account) == target, timeout)
    return int(time.monotonic() - started)
