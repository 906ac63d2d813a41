"""`load_config`: the TOML file read with `tomllib`, every table checked, every problem
reported at once (`ConfigError`), the result one frozen `Config`."""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from relayer.config.schema import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_REFRESH_SECONDS,
    FINALITY_MODES,
    MAX_PROOF_CHUNK_SIZE,
    MIN_TX_GAS,
    PROOF_SCHEMES,
    SNAPSHOT_MODES,
    ChainConfig,
    CommitteeConfig,
    Config,
    ConfigError,
    DestinationConfig,
    KeeperConfig,
    PairConfig,
)
from relayer.config.values import BARE_KEY, Table, ValueReader, join_key, kind_of, toml_key

_TOML_POSITION = re.compile(r"\s*\((at line \d+, column \d+|at end of document)\)$")
_MEMBER = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
MAX_LEASE_SECONDS = 3600.0
"""The longest `[store] lease_seconds`: a longer lease leaves a dead leader's member idle too long."""
REFRESHES_PER_LEASE = 3
"""`[store] refresh_seconds` must fit this many times in `lease_seconds`."""


def load_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the TOML file at `path`.

    `environ` (default `os.environ`) is used to check that the environment variables named by
    `key_env` / `password_env` are set. Raises `ConfigError` with every problem found.
    """
    path = Path(path).expanduser().absolute()
    env = os.environ if environ is None else environ
    document = read_toml(path)
    reader = _Reader(path.parent, env)
    config = reader.config(path, reader.scrub(document, ""))
    if reader.problems or config is None:
        raise ConfigError(reader.problems or ["configuration is invalid"], path)
    return config


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at `path` (absolute). Raises `ConfigError` when it cannot be read or parsed."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file does not exist"], path) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a file"], path) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"], path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 (byte offset {exc.start})"], path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {_toml_message(exc)}"], path) from None


def _toml_message(exc: tomllib.TOMLDecodeError) -> str:
    text = str(exc)
    match = _TOML_POSITION.search(text)
    if match is None:
        return text
    return f"{match.group(1).removeprefix('at ')}: {text[: match.start()]}"


class _Reader(ValueReader):
    """The tables of the document, each read into its dataclass (None when it has problems)."""

    def chain(self, name: str, value: Any, path: str) -> ChainConfig | None:
        data = self.table(value, path)
        if data is None:
            return None
        t = Table(self, data, path)
        chain_id = t.get("chain_id", self.integer(1, 2**256 - 1))
        if chain_id is not None:
            self.chain_ids[name] = chain_id
        rpc = t.get("rpc", self.urls)
        finality = t.get("finality", self.string, "finalized")
        confirmations = t.get("confirmations", self.integer(0), 0)
        poll = t.get("poll_interval_seconds", self.seconds, 2.0)
        timeout = t.get("rpc_timeout_seconds", self.seconds, 10.0)
        scheme = t.get("proof_scheme", self.string, "eip1186")
        ws = t.get("ws", self.ws_url, None)
        ws_ok = not t.has("ws") or ws is not None
        t.finish()
        if scheme is not None and scheme not in PROOF_SCHEMES:
            self.problem(t.at("proof_scheme"), f"must be one of {', '.join(map(repr, PROOF_SCHEMES))}")
            scheme = None
        if finality is not None and finality not in FINALITY_MODES:
            self.problem(t.at("finality"), f"must be one of {', '.join(map(repr, FINALITY_MODES))}")
            finality = None
        if finality == "confirmations" and confirmations is not None and confirmations < 1:
            self.problem(t.at("confirmations"), 'must be >= 1 when finality = "confirmations"')
            confirmations = None
        if not BARE_KEY.fullmatch(name):
            self.problem(path, "chain names may hold only letters, digits, _ and -")
            return None
        if (
            chain_id is None
            or rpc is None
            or finality is None
            or confirmations is None
            or poll is None
            or timeout is None
            or scheme is None
            or not ws_ok
        ):
            return None
        return ChainConfig(name, chain_id, rpc, finality, confirmations, poll, timeout, scheme, ws)

    def destination(self, name: str, value: Any, path: str, chain_names: set[str]) -> DestinationConfig | None:
        data = self.table(value, path)
        if data is None:
            return None
        t = Table(self, data, path)
        settlement = t.get("settlement", self.address)
        if t.has("verifier"):
            t.seen.add("verifier")
            self.problem(
                t.at("verifier"),
                "removed: MarginSettlement is its own EpochVerifier; give its address as `settlement` only "
                "and delete `verifier`",
            )
        sender = t.get("sender", self.key_source)
        max_gas = t.get("max_gas_per_batch", self.integer(MIN_TX_GAS), 8_000_000)
        max_accounts = t.get("max_accounts_per_batch", self.integer(1, 10_000), 2_000)
        receipt_timeout = t.get("receipt_timeout_seconds", self.seconds, 120.0)
        min_balance = t.get("min_signer_balance_wei", self.integer(0), 0)
        max_fee = t.get("max_fee_per_gas_wei", self.integer(1), 500 * 10**9)
        in_flight = t.get("max_in_flight", self.integer(1, 64), 4)
        min_change = t.get("min_change_wei", self.integer(0, 2**256 - 1), 10**15)
        refresh = t.get("refresh_before_expiry_seconds", self.integer(0, 30 * 86_400), 600)
        attempts = t.get("max_epoch_attempts", self.integer(1, 1_000), 5)
        budget = t.get("fee_budget_multiple", self.multiple, 4.0)
        retry = t.get("epoch_retry_seconds", self.integer(1, 86_400), 60)
        t.finish()
        ok = True
        if name not in chain_names:
            self.problem(path, f"not a chain: there is no [chains.{toml_key(name)}]")
            ok = False
        if (
            not ok
            or settlement is None
            or sender is None
            or max_gas is None
            or max_accounts is None
            or receipt_timeout is None
            or min_balance is None
            or max_fee is None
            or in_flight is None
            or min_change is None
            or refresh is None
            or attempts is None
            or budget is None
            or retry is None
        ):
            return None
        return DestinationConfig(
            name, settlement, sender, max_gas, max_accounts, receipt_timeout, min_balance, max_fee,
            in_flight, min_change, refresh, attempts, budget, retry,
        )  # fmt: skip

    def pair(self, value: Any, path: str, chain_names: set[str], destination_names: set[str]) -> PairConfig | None:
        data = self.table(value, path)
        if data is None:
            return None
        t = Table(self, data, path)
        source = t.get("source", self.string)
        destination = t.get("destination", self.string)
        vault = t.get("vault", self.address)
        deploy_block = t.get("vault_deploy_block", self.integer(0), 0)
        slot = t.get("collateral_slot", self.integer(0, 2**256 - 1), 0)
        every = t.get("every_blocks", self.integer(1), 10)
        accounts = t.get("accounts", self.addresses, ())
        chunk = t.get("proof_chunk_size", self.integer(1, MAX_PROOF_CHUNK_SIZE), 256)
        snapshots = t.get("snapshots", self.string, "delta")
        t.finish()
        if snapshots is not None and snapshots not in SNAPSHOT_MODES:
            self.problem(t.at("snapshots"), f"must be one of {', '.join(map(repr, SNAPSHOT_MODES))}")
            snapshots = None
        if source is not None and source not in chain_names:
            self.problem(t.at("source"), f"no chain named {source!r} (no [chains.{toml_key(source)}])")
            source = None
        if destination is not None and destination not in destination_names:
            self.problem(
                t.at("destination"),
                f"no destination named {destination!r} (no [destinations.{toml_key(destination)}])",
            )
            destination = None
        if (
            source is None
            or destination is None
            or vault is None
            or deploy_block is None
            or slot is None
            or every is None
            or accounts is None
            or chunk is None
            or snapshots is None
        ):
            return None
        return PairConfig(source, destination, vault, deploy_block, slot, every, accounts, chunk, snapshots)

    def committee(self, value: Any, path: str) -> CommitteeConfig | None:
        data = self.table(value, path)
        if data is None:
            return None
        t = Table(self, data, path)
        peers = t.get("peers", self.peer_urls, ())
        directory = t.get("directory", self.directory, None)
        fetch_timeout = t.get("fetch_timeout_seconds", self.seconds, 2.0)
        takeover = t.get("takeover_seconds", self.seconds, 20.0)
        listen = t.get("listen", self.listen, None)
        t.finish()
        if (
            peers is None
            or fetch_timeout is None
            or takeover is None
            or (t.has("directory") and directory is None)
            or (t.has("listen") and listen is None)
        ):
            return None
        return CommitteeConfig(peers, directory, fetch_timeout, takeover, listen)

    def keeper(self, value: Any, path: str) -> KeeperConfig | None:
        data = self.table(value, path)
        if data is None:
            return None
        t = Table(self, data, path)
        default = KeeperConfig()
        listen = t.get("listen", self.listen, (default.host, default.port))
        rate = t.get("requests_per_second", self.keeper_rate, default.requests_per_second)
        burst = t.get("burst", self.keeper_burst, default.burst)
        t.finish()
        if listen is None or rate is None or burst is None:
            return None
        return KeeperConfig(listen[0], listen[1], rate, burst)

    def keeper_rate(self, value: Any, path: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            self.problem(path, "expected a finite number > 0 (requests per second, per client)")
            return None
        return float(value)

    def keeper_burst(self, value: Any, path: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
            self.problem(path, "expected an integer 1..1000000 (requests a client may send at once)")
            return None
        return value

    def listeners_apart(self, listeners: list[tuple[str, tuple[str, int]]]) -> bool:
        """Each listener on its own port: two with one non-zero port clash when their hosts are
        equal or one is a wildcard (0.0.0.0, ::)."""
        wildcard = {"0.0.0.0", "::", "*"}
        ok = True
        for i, (path, (host, port)) in enumerate(listeners):
            for other, (other_host, other_port) in listeners[:i]:
                if port and port == other_port and (host == other_host or {host, other_host} & wildcard):
                    self.problem(path, f"same address as {other}: each listener needs its own port")
                    ok = False
        return ok

    def config(self, path: Path, document: dict[str, Any]) -> Config | None:
        """The whole document (secrets already scrubbed) as a `Config`; None when anything in it
        has a problem (each recorded). Tables are read in file-layout order, so problems are
        listed in that order."""
        top = Table(self, document, "")
        store, listen = self._relayer_and_metrics(top)
        store_ok, store_url, lease = self._store(top)
        attester = top.get("attester", self.key_source)
        committee = top.get("committee", self.committee, CommitteeConfig())
        keeper = top.get("keeper", self.keeper, KeeperConfig())
        listeners_ok = (
            listen is None
            or committee is None
            or keeper is None
            or self.listeners_apart(
                [("metrics.listen", listen), ("keeper.listen", (keeper.host, keeper.port))]
                + ([("committee.listen", committee.listen)] if committee.listen is not None else [])
            )
        )
        chains = self._chains(top)
        chain_names = chains[1] if chains is not None else set()
        destinations = self._destinations(top, chain_names)
        pairs = self._pairs(top, chain_names, destinations[1] if destinations is not None else set())
        top.finish()
        if (
            store is None
            or not store_ok
            or listen is None
            or attester is None
            or committee is None
            or keeper is None
            or not listeners_ok
            or chains is None
            or destinations is None
            or pairs is None
            or not (chains[2] and destinations[2] and pairs[1])
        ):
            return None
        return Config(
            path=path,
            store_path=store,
            store_url=store_url,
            metrics_host=listen[0],
            metrics_port=listen[1],
            attester=attester,
            chains=MappingProxyType(chains[0]),
            destinations=MappingProxyType(destinations[0]),
            pairs=tuple(pairs[0]),
            committee=committee,
            keeper=keeper,
            **lease,
        )

    def _relayer_and_metrics(self, top: Table) -> tuple[Path | None, tuple[str, int] | None]:
        """`[relayer] store` and `[metrics] listen`, each with its default when absent."""
        store: Path | None = self.base / "relayer.sqlite"
        relayer = top.get("relayer", self.table, {})
        if relayer is not None:
            t = Table(self, relayer, "relayer")
            store = t.get("store", self.local_path, store)
            t.finish()
        listen: tuple[str, int] | None = ("127.0.0.1", 9464)
        metrics = top.get("metrics", self.table, {})
        if metrics is not None:
            t = Table(self, metrics, "metrics")
            listen = t.get("listen", self.listen, listen)
            t.finish()
        return store, listen

    def _store(self, top: Table) -> tuple[bool, str | None, dict[str, Any]]:
        """(no problem, `[store] url`, the lease's `Config` fields): the URL of a PostgreSQL store,
        None when absent (the SQLite store of `[relayer] store`). Naming both stores is a
        problem, and so is a lease key (`lease_seconds`, `refresh_seconds`, `member`) without a
        URL: a SQLite store has one process and no lease."""
        store = top.get("store", self.table, {})
        if store is None:
            return False, None, {}
        t = Table(self, store, "store")
        url = t.get("url", self.store_url, None)
        lease = self._lease(t)
        t.finish()
        if (t.has("url") and url is None) or lease is None:
            return False, None, {}
        relayer = top.data.get("relayer")
        if url is not None and isinstance(relayer, dict) and "store" in relayer:
            both = "set either [relayer] store (a SQLite file) or [store] url (PostgreSQL), not both"
            self.problem("store.url", both)
            return False, None, {}
        if url is None and lease:
            for key in ("lease_seconds", "refresh_seconds", "member"):
                if t.has(key):
                    self.problem(
                        t.at(key), "only with [store] url (PostgreSQL): a SQLite store has one process and no lease"
                    )
            return False, None, {}
        return True, url, lease

    def _lease(self, t: Table) -> dict[str, Any] | None:
        """`[store] lease_seconds` (default 10, at most 3600), `refresh_seconds` (default 1, at most
        a third of the lease: a missed refresh or two must not lose it) and `member` (default
        None: the attester's address) as `Config` fields, only those given; None on a problem."""
        lease = t.get("lease_seconds", self.seconds, None)
        refresh = t.get("refresh_seconds", self.seconds, None)
        member = t.get("member", self.string, None)
        ok = (lease is not None or not t.has("lease_seconds")) and (refresh is not None or not t.has("refresh_seconds"))
        if lease is not None and lease > MAX_LEASE_SECONDS:
            self.problem(t.at("lease_seconds"), f"must be <= {MAX_LEASE_SECONDS:g} (seconds)")
            ok = False
        if ok and (refresh is not None or lease is not None):
            lease_s = lease if lease is not None else DEFAULT_LEASE_SECONDS
            refresh_s = refresh if refresh is not None else DEFAULT_REFRESH_SECONDS
            if refresh_s * REFRESHES_PER_LEASE > lease_s:
                self.problem(
                    t.at("refresh_seconds" if t.has("refresh_seconds") else "lease_seconds"),
                    f"refresh_seconds ({refresh_s:g}) must be at most a third of lease_seconds ({lease_s:g}): "
                    "the leader must be able to miss a refresh or two without losing its lease",
                )
                ok = False
        if member is not None and not _MEMBER.fullmatch(member):
            self.problem(t.at("member"), "1 to 128 characters of letters, digits and . _ : @ - (no spaces)")
            ok = False
        elif t.has("member") and member is None:
            ok = False
        if not ok:
            return None
        given = {"lease_seconds": lease, "refresh_seconds": refresh, "lease_member": member}
        return {k: v for k, v in given.items() if v is not None}

    def _chains(self, top: Table) -> tuple[dict[str, ChainConfig], set[str], bool] | None:
        """The `[chains.<name>]` tables: (the valid chains, every name given, whether all are
        valid with distinct chain ids); None when `chains` is missing or not a table."""
        chain_table = top.get("chains", self.table)
        if chain_table is None:
            return None
        if not chain_table:
            self.problem("chains", "at least one [chains.<name>] table is required")
        chains: dict[str, ChainConfig] = {}
        ok = True
        for name, value in chain_table.items():
            chain = self.chain(name, value, join_key("chains", name))
            if chain is None:
                ok = False
            else:
                chains[name] = chain
        ids: dict[int, str] = {}
        for name, chain_id in self.chain_ids.items():
            if chain_id in ids:
                other = join_key("chains", ids[chain_id])
                self.problem(
                    join_key(join_key("chains", name), "chain_id"), f"chain id {chain_id} is also used by {other}"
                )
                ok = False
            else:
                ids[chain_id] = name
        return chains, set(chain_table), ok

    def _destinations(
        self, top: Table, chain_names: set[str]
    ) -> tuple[dict[str, DestinationConfig], set[str], bool] | None:
        """The `[destinations.<chain>]` tables: (the valid ones, every name given, whether all
        are valid); None when `destinations` is missing or not a table."""
        destination_table = top.get("destinations", self.table)
        if destination_table is None:
            return None
        if not destination_table:
            self.problem("destinations", "at least one [destinations.<chain name>] table is required")
        destinations: dict[str, DestinationConfig] = {}
        ok = True
        for name, value in destination_table.items():
            destination = self.destination(name, value, join_key("destinations", name), chain_names)
            if destination is None:
                ok = False
            else:
                destinations[name] = destination
        return destinations, set(destination_table), ok

    def _pairs(
        self, top: Table, chain_names: set[str], destination_names: set[str]
    ) -> tuple[list[PairConfig], bool] | None:
        """The `[[pairs]]` tables: (the valid pairs, whether all are valid and no two share a
        source and a destination); None when `pairs` is missing or not an array of tables."""
        pair_list = top.get("pairs", self._pair_array)
        if pair_list is None:
            return None
        pairs: list[PairConfig] = []
        ok = True
        seen: dict[tuple[str, str], int] = {}
        for i, value in enumerate(pair_list):
            pair = self.pair(value, f"pairs[{i}]", chain_names, destination_names)
            if pair is None:
                ok = False
                continue
            # MarginSettlement registers one vault per source chain, and a settle call
            # takes one claim per chain: one pair per (source, destination).
            route = (pair.source, pair.destination)
            if route in seen:
                self.problem(
                    f"pairs[{i}]",
                    f"same source and destination as pairs[{seen[route]}] (one vault per source chain and destination)",
                )
                ok = False
                continue
            seen[route] = i
            pairs.append(pair)
        return pairs, ok

    def _pair_array(self, value: Any, path: str) -> list[Any] | None:
        if not isinstance(value, list):
            self.problem(path, f"expected an array of tables ([[pairs]]), got {kind_of(value)}")
            return None
        if not value:
            self.problem(path, "at least one [[pairs]] table is required")
            return None
        return value
