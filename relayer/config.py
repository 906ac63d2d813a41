"""The relayer's configuration: one TOML file read with `tomllib` into frozen, typed objects.

`load_config(path)` validates everything at once and raises `ConfigError` listing every
problem, each as "key.path: message" (e.g. "pairs[0].vault: not a 20-byte hex address").
Unknown keys are errors. Relative paths in the file resolve against the file's folder.

Secrets never live in the file: signing keys come from a key file (e.g. a systemd
credential), an environment variable, or a Web3 Secret Storage keystore plus a password
file or environment variable (`KeySource`). A key or password written inline is refused,
and no message ever repeats a value that looks like a secret. Files are checked for
existence here; the secrets themselves are read only by `KeySource.load()`.

Layout (see config/relayer.example.toml for every key, its unit and default):

    [relayer] store            [metrics] listen              [attester] <KeySource>
    [chains.<name>]            chain_id, rpc, finality, confirmations, poll/timeout seconds,
                               proof_scheme
    [destinations.<chain>]     settlement, batch limits; [destinations.<chain>.sender]
    [[pairs]]                  source, destination, vault, collateral_slot, every_blocks, ...
    [committee]                peers, directory, fetch_timeout_seconds, takeover_seconds, listen (optional)
    [keeper]                   listen, requests_per_second, burst (optional: the keeper API)
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from chains.nodes import NodeAddress, resolve_blocking
from chains.nodes import describe as describe_addresses
from relayer import keys
from relayer.errors import RelayerError
from relayer.keys import KeyLoadError

__all__ = [
    "FINALITY_MODES",
    "ChainConfig",
    "CommitteeConfig",
    "Config",
    "ConfigError",
    "DestinationConfig",
    "KeeperConfig",
    "KeyLoadError",
    "KeySource",
    "PairConfig",
    "load_config",
    "node_checks",
    "notes",
]

FINALITY_MODES: Final = ("finalized", "safe", "confirmations", "head")
"""`finalized` / `safe`: the node's block tags of those names; `confirmations`: head - N;
`head`: the head itself (only for a chain that cannot reorg, e.g. an instantly mining devnet)."""

PROOF_SCHEMES: Final = ("eip1186", "verkle")
SNAPSHOT_MODES: Final = ("delta", "full")
"""`[[pairs]] snapshots`: "delta" (an epoch proves the accounts whose collateral changed, from the
vault's events, plus a refresh slice) or "full" (every known account, every epoch: for a vault
that does not emit an event for every change of `collateral[account]`)."""
"""`eip1186`: eth_getProof (Merkle-Patricia); `verkle`: the blocks' EIP-6800 executionWitness."""

MAX_PROOF_CHUNK_SIZE: Final = 1024
MIN_TX_GAS: Final = 21_000
"""The intrinsic gas of any transaction (Yellow Paper, G_transaction)."""

_SECRET_NAME = re.compile(
    r"(?:^|[_-])(?:private[_-]?key|priv[_-]?key|key|secret|password|passphrase|passwd|"
    r"mnemonic|seed(?:[_-]?phrase)?)$",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ADDRESS = re.compile(r"0[xX]([0-9a-fA-F]{40})")
_TOML_POSITION = re.compile(r"\s*\((at line \d+, column \d+|at end of document)\)$")
_USE_INSTEAD = "use key_file, key_env or keystore with password_file / password_env instead"


class ConfigError(RelayerError):
    """The configuration is invalid. `problems` holds every problem found, each as
    "key.path: message"; `str()` lists them one per line. No message contains a secret."""

    def __init__(self, problems: tuple[str, ...] | list[str], path: Path | None = None) -> None:
        self.problems = tuple(problems)
        self.path = path
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class KeySource:
    """Where a signing key comes from: exactly one of `key_file` (a file holding a 0x-hex
    private key, e.g. a systemd credential), `key_env` (the name of an environment variable
    holding one) or `keystore` (a Web3 Secret Storage JSON file) with exactly one of
    `password_file` / `password_env`. Paths are absolute once loaded by `load_config`."""

    key_file: Path | None = None
    key_env: str | None = None
    keystore: Path | None = None
    password_file: Path | None = None
    password_env: str | None = None

    def describe(self) -> str:
        """A log-safe description, e.g. "keystore /etc/relayer/a.json" or "key_env NAME"."""
        if self.key_file is not None:
            return f"key_file {self.key_file}"
        if self.key_env is not None:
            return f"key_env {self.key_env}"
        if self.keystore is not None:
            return f"keystore {self.keystore}"
        return "no key source"

    def load(self, environ: Mapping[str, str] | None = None) -> LocalAccount:
        """Read the key and return its eth-account `LocalAccount`.

        Environment variables are looked up in `environ` (default `os.environ`). Raises
        `KeyLoadError` naming the source and the problem, never the secret.
        """
        ways = [w for w in ("key_file", "key_env", "keystore") if getattr(self, w) is not None]
        if len(ways) != 1:
            raise KeyLoadError(
                self.describe(),
                f"exactly one of key_file, key_env, keystore is needed (got {len(ways)})",
            )
        if self.key_file is not None:
            return keys.read_key_file(self.key_file)
        if self.key_env is not None:
            return keys.read_key_env(self.key_env, environ)
        keystore = self.keystore
        if keystore is None:  # unreachable: narrowed for the type checker
            raise KeyLoadError(self.describe(), "no key source")
        if (self.password_file is None) == (self.password_env is None):
            raise KeyLoadError(self.describe(), "a keystore needs exactly one of password_file, password_env")
        if self.password_file is not None:
            password = keys.read_password_file(self.password_file)
        else:
            password = keys.read_password_env(str(self.password_env), environ)
        return keys.read_keystore(keystore, password)


@dataclass(frozen=True)
class ChainConfig:
    """One EVM chain, `[chains.<name>]`.

    `finality` picks the height the relayer treats as final: the node's `finalized` or
    `safe` block tag, head - `confirmations` (>= 1, used only in that mode), or the head itself
    (`head`: a chain that cannot reorg, such as an instantly mining devnet). `rpc` holds
    one or more http(s) JSON-RPC endpoints, tried in order. Times are in seconds.
    """

    name: str
    chain_id: int
    rpc: tuple[str, ...]
    finality: str = "finalized"
    confirmations: int = 0
    poll_interval_seconds: float = 2.0
    rpc_timeout_seconds: float = 10.0
    proof_scheme: str = "eip1186"
    """How the chain proves its state: "eip1186" (eth_getProof, Merkle-Patricia) or "verkle"
    (the blocks' EIP-6800 executionWitness), relayer/proving/proofscheme.py."""
    ws: str | None = None
    """A ws(s):// endpoint whose `eth_subscribe("newHeads")` wakes the watcher at each new head
    (the heights are still read over `rpc`); None: the watcher polls every
    `poll_interval_seconds`, as it also does while the subscription is down."""


@dataclass(frozen=True)
class DestinationConfig:
    """The contract on a destination chain, `[destinations.<chain name>]`: the
    MarginSettlement (its own EpochVerifier, the EIP-712 verifyingContract), the key that
    signs destination transactions, and how settlements are sent: gas per transaction (at
    most half the destination's block gas limit is used either way), accounts per
    transaction, transactions in flight at once, the receipt timeout (seconds), the
    smallest change worth an epoch or a settlement (`min_change_wei`, below), how
    long before a position expires (`maxAge`) it is refreshed (seconds), how many times
    a failing epoch is retried before it is given up (its accounts are proven again later),
    and the fee budget of one epoch (`fee_budget_multiple`: fee bumps may raise the most its
    transactions can cost, gas limit x maxFeePerGas summed, to this multiple of what they were
    first signed with; relayer/submission/txmanager.py).

    `min_change_wei` (wei, default 10^15 = 0.001 ETH): a deposit or withdrawal request
    smaller than this starts no epoch, and a position that moved by less is not settled until
    its refresh (relayer/scheduling/schedule.py, relayer/settlement/settler.py say why a
    delayed decrease is safe). Every member of one committee must use the same value: it is
    part of the epoch rule. Why 10^15: an epoch forced by one change costs the relayer 88k to
    105k destination gas (`submitAndSettle` of one account, bench/results/dust.json), while
    the change costs its sender 45k source gas (a 1-wei deposit from a fresh account, plus 21k
    to fund it) or 73k (a withdrawal request): with every change counted that is 2.3 (1.2)
    relayer gas per attacker gas. Below the threshold the relayer pays nothing for a change,
    so 1-wei sybils cost it no gas at all (`make bench-dust`: 0 of 272k); at or above it, each
    epoch a sender forces takes at least 10^15 wei of its own collateral, locked until
    `withdrawDelay` after it asks for it back, which is more than that epoch costs the
    relayer at destination gas prices up to about 10 gwei (105k gas x 9.5 gwei ~ 10^15 wei).
    On a dearer destination raise it (about 105k x the gas price you expect); 0 counts every
    change (the threshold is then 1 wei)."""

    chain: str
    settlement: ChecksumAddress
    sender: KeySource
    max_gas_per_batch: int = 8_000_000
    max_accounts_per_batch: int = 2_000
    receipt_timeout_seconds: float = 120.0
    min_signer_balance_wei: int = 0
    max_fee_per_gas_wei: int = 500 * 10**9
    max_in_flight: int = 4
    min_change_wei: int = 10**15
    refresh_before_expiry_seconds: int = 600
    max_epoch_attempts: int = 5
    fee_budget_multiple: float = 4.0
    epoch_retry_seconds: int = 60
    """When an epoch's heights have been final this long (source time, seconds) and it is still
    not accepted, the epoch rule moves on to heights this much later (relayer/scheduling/
    schedule.py: a height no member can prove never stops the committee). Part of the rule:
    every member of one committee must use the same value."""


@dataclass(frozen=True)
class PairConfig:
    """One source vault relayed to one destination, `[[pairs]]`.

    Accounts are discovered from the vault's events from `vault_deploy_block` on, plus
    `accounts`. The claim for an account is storage slot
    keccak256(abi.encode(account, collateral_slot)) of `vault` (Solidity mapping layout).
    A snapshot is taken every `every_blocks` blocks; storage keys are requested from
    `eth_getProof` (EIP-1186) `proof_chunk_size` at a time. `snapshots` (SNAPSHOT_MODES): which
    accounts an epoch proves; "delta" needs a vault that emits `Deposited` or
    `WithdrawRequested` for every change of `collateral[account]` (CollateralVault does).
    """

    source: str
    destination: str
    vault: ChecksumAddress
    vault_deploy_block: int = 0
    collateral_slot: int = 0
    every_blocks: int = 10
    accounts: tuple[ChecksumAddress, ...] = ()
    proof_chunk_size: int = 256
    snapshots: str = "delta"


@dataclass(frozen=True)
class CommitteeConfig:
    """How this member exchanges attestations with the other committee members, `[committee]`
    (optional; relayer.attestation.committee). `peers`: base http(s) URLs of the other members' listeners
    (their `[metrics] listen`), asked for attestations with a timeout of
    `fetch_timeout_seconds`; `directory`: a directory shared by the members (one JSON file per
    attestation), None when not used; `takeover_seconds`: how long a member waits for the
    epoch's designated submitter before it submits the epoch itself. Times in seconds."""

    peers: tuple[str, ...] = ()
    directory: Path | None = None
    fetch_timeout_seconds: float = 2.0
    takeover_seconds: float = 20.0
    listen: tuple[str, int] | None = None
    """(host, port) of a listener of its own for `/v1/attestations/...`; None: served on the
    `[metrics] listen` listener."""


@dataclass(frozen=True)
class KeeperConfig:
    """The keeper API (`/v1/proofs/{account}`, relayer.pullpath), `[keeper]` (optional): its own
    listener (`host`, `port`; port 0 = any free port) and the rate limit per client
    (`requests_per_second` refill, `burst` bucket size)."""

    host: str = "127.0.0.1"
    port: int = 9465
    requests_per_second: float = 20.0
    burst: int = 40


@dataclass(frozen=True)
class Config:
    """The whole configuration. `path` is the absolute path of the file read; `store_path`
    the SQLite store; `metrics_host` / `metrics_port` the Prometheus listener (port 0 = any
    free port; an IPv6 host is given without brackets); `attester` the committee member key
    that signs epochs (EIP-712). `chains` and `destinations` are read-only mappings keyed by
    chain name, in file order; `committee` the attestation exchange (defaults: no peers)."""

    path: Path
    store_path: Path
    metrics_host: str
    metrics_port: int
    attester: KeySource
    chains: Mapping[str, ChainConfig]
    destinations: Mapping[str, DestinationConfig]
    pairs: tuple[PairConfig, ...]
    committee: CommitteeConfig = field(default_factory=CommitteeConfig)
    keeper: KeeperConfig = field(default_factory=KeeperConfig)


def load_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the TOML file at `path`.

    `environ` (default `os.environ`) is used to check that the environment variables named by
    `key_env` / `password_env` are set. Raises `ConfigError` with every problem found.
    """
    path = Path(path).expanduser().absolute()
    env = os.environ if environ is None else environ
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
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
    reader = _Reader(path.parent, env)
    config = reader.config(path, reader.scrub(document, ""))
    if reader.problems or config is None:
        raise ConfigError(reader.problems or ["configuration is invalid"], path)
    return config


def endpoint_host(url: str) -> str:
    """An endpoint's "host:port" (default port by scheme), as the RPC clients label it; never
    the URL (it may carry an API key)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def notes(config: Config) -> list[str]:
    """Set-ups that are valid but weaker than they could be, as "key.path: note" lines (printed
    by `check-config`, logged at start): a source chain whose endpoints are all on one host
    cannot have a proven block hash confirmed by a second endpoint (DESIGN section 2)."""
    out = []
    sources = {pair.source for pair in config.pairs}
    for name, chain in config.chains.items():
        if name in sources and len({endpoint_host(url) for url in chain.rpc}) < 2:
            out.append(
                f"chains.{_key(name)}.rpc: one endpoint host: proven block hashes are not confirmed by a second "
                "endpoint (a single RPC could serve a self-consistent fake chain); list an independent one"
            )
    return out


def node_checks(
    config: Config, resolve: Callable[[str], frozenset[NodeAddress]] = resolve_blocking
) -> tuple[list[str], list[str]]:
    """Endpoints compared as nodes (resolved address and port, `chains.nodes`), not as host
    strings, for `relayer check-config`: returns (problems, warnings), "key.path: message".

    Warning: two endpoints of a chain that are one node (`127.0.0.1:8545` and `localhost:8545`),
    naming both: they do not confirm each other; a host that does not resolve here (not
    compared). Problem: a source chain that lists two or more endpoint hosts - so a block-hash
    confirmation is configured, and required - whose hosts all resolve to one node: the daemon
    would hold every snapshot of that chain (fail closed), so it is an error here.
    `resolve`: "host:port" -> its addresses, raising OSError (injectable for tests)."""
    problems: list[str] = []
    warnings: list[str] = []
    sources = {pair.source for pair in config.pairs}
    for name, chain in config.chains.items():
        key = f"chains.{_key(name)}.rpc"
        first: dict[str, int] = {}  # host -> index of its first endpoint
        for index, url in enumerate(chain.rpc):
            first.setdefault(endpoint_host(url), index)
        if len(first) < 2:
            continue  # one host string: nothing to compare (a single-endpoint note, `notes`)
        resolved: dict[str, frozenset[NodeAddress]] = {}
        for host, index in first.items():
            try:
                resolved[host] = resolve(host)
            except (OSError, ValueError) as exc:
                warnings.append(f"{key}[{index}]: {host} does not resolve here ({exc}): not compared with the others")
        hosts = list(resolved)
        node_of = {host: position for position, host in enumerate(hosts)}
        for i, a in enumerate(hosts):
            for b in hosts[i + 1 :]:
                shared = resolved[a] & resolved[b]
                if shared:
                    warnings.append(
                        f"{key}: rpc[{first[a]}] ({a}) and rpc[{first[b]}] ({b}) are one node (both resolve to "
                        f"{describe_addresses(shared)}): they do not confirm each other"
                    )
                    old, new = node_of[b], node_of[a]
                    node_of = {h: new if n == old else n for h, n in node_of.items()}
        if name in sources and len(resolved) == len(first) and len(set(node_of.values())) < 2:
            problems.append(
                f"{key}: a block-hash confirmation is configured ({len(first)} endpoint hosts) but every endpoint "
                "is one node: every snapshot would be held; list an endpoint on another node (or a single one, "
                "not cross-checked)"
            )
    return problems, warnings


# --- reading ---------------------------------------------------------------------------

T = TypeVar("T")

_REQUIRED: Final[Any] = object()


class _Redacted:
    """Stands in for a value that was refused as a secret (already reported)."""


_REDACTED: Final = _Redacted()


def _toml_message(exc: tomllib.TOMLDecodeError) -> str:
    text = str(exc)
    match = _TOML_POSITION.search(text)
    if match is None:
        return text
    return f"{match.group(1).removeprefix('at ')}: {text[: match.start()]}"


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{_key(name)}" if prefix else _key(name)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


class _Table:
    """A view of one TOML table that records which keys were read, to report the rest."""

    def __init__(self, reader: _Reader, data: dict[str, Any], path: str) -> None:
        self.reader = reader
        self.data = data
        self.path = path
        self.seen: set[str] = set()

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, parse: Callable[[Any, str], T | None], default: Any = _REQUIRED) -> T | None:
        """The parsed value of `key`; `default` if absent; None (problem recorded) if invalid."""
        self.seen.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                self.reader.problem(self.at(key), "missing (required)")
                return None
            return default
        value = self.data[key]
        if isinstance(value, _Redacted):
            return None
        return parse(value, self.at(key))

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                self.reader.problem(self.at(key), "unknown key")


class _Reader:
    def __init__(self, base: Path, environ: Mapping[str, str]) -> None:
        self.base = base
        self.environ = environ
        self.problems: list[str] = []
        self.chain_ids: dict[str, int] = {}  # every valid chain_id, even of an invalid chain

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    # secrets ---------------------------------------------------------------------------

    def scrub(self, value: Any, path: str) -> Any:
        """A copy of the document with inline secrets removed, each reported once: keys
        named like a secret holding a value are dropped; 32-byte hex strings (private keys)
        are replaced by a placeholder so no later message can quote them."""
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                where = _join(path, key)
                if _SECRET_VALUE.fullmatch(key):
                    self.problem(
                        _join(path, "<redacted>"),
                        f"a key name that looks like a private key; {_USE_INSTEAD}",
                    )
                    continue
                if _SECRET_NAME.search(key) and not isinstance(item, dict):
                    self.problem(
                        where,
                        f"plaintext secret refused: secrets never go in the config file; {_USE_INSTEAD}",
                    )
                    continue
                out[key] = self.scrub(item, where)
            return out
        if isinstance(value, list):
            return [self.scrub(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, str) and _SECRET_VALUE.fullmatch(value.strip()):
            self.problem(
                path,
                "refused: the value looks like a private key (32-byte hex); "
                f"secrets never go in the config file; {_USE_INSTEAD}",
            )
            return _REDACTED
        return value

    # scalars ---------------------------------------------------------------------------

    def table(self, value: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(path, f"expected a table, got {_kind(value)}")
            return None
        return value

    def integer(self, lo: int | None = None, hi: int | None = None) -> Callable[[Any, str], int | None]:
        def parse(value: Any, path: str) -> int | None:
            if isinstance(value, bool) or not isinstance(value, int):
                self.problem(path, f"expected an integer, got {_kind(value)}")
                return None
            if lo is not None and value < lo:
                self.problem(path, f"must be >= {lo}")
                return None
            if hi is not None and value > hi:
                self.problem(path, f"must be <= {hi}")
                return None
            return value

        return parse

    def seconds(self, value: Any, path: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(path, f"expected a number of seconds, got {_kind(value)}")
            return None
        if not math.isfinite(value) or value <= 0:
            self.problem(path, "must be a finite number > 0 (seconds)")
            return None
        return float(value)

    def multiple(self, value: Any, path: str) -> float | None:
        """A finite factor >= 1."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(path, f"expected a number, got {_kind(value)}")
            return None
        if not math.isfinite(value) or value < 1:
            self.problem(path, "must be a finite number >= 1")
            return None
        return float(value)

    def string(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.problem(path, f"expected a string, got {_kind(value)}")
            return None
        if not value.strip():
            self.problem(path, "must not be empty")
            return None
        return value

    def address(self, value: Any, path: str) -> ChecksumAddress | None:
        if not isinstance(value, str):
            self.problem(path, f"expected a 0x-hex address string, got {_kind(value)}")
            return None
        match = _ADDRESS.fullmatch(value)
        if match is None:
            self.problem(path, "not a 20-byte hex address (expected 0x followed by 40 hex digits)")
            return None
        digits = match.group(1)
        checksummed = to_checksum_address("0x" + digits)
        mixed_case = digits != digits.lower() and digits != digits.upper()
        if mixed_case and checksummed[2:] != digits:
            self.problem(
                path,
                "bad EIP-55 checksum (a mixed-case address must be correctly checksummed; check for a typo)",
            )
            return None
        if int(digits, 16) == 0:
            self.problem(path, "the zero address is not a contract or account")
            return None
        return checksummed

    def addresses(self, value: Any, path: str) -> tuple[ChecksumAddress, ...] | None:
        if not isinstance(value, list):
            self.problem(path, f"expected an array of addresses, got {_kind(value)}")
            return None
        out: list[ChecksumAddress] = []
        first: dict[str, int] = {}
        ok = True
        for i, item in enumerate(value):
            if isinstance(item, _Redacted):
                ok = False
                continue
            address = self.address(item, f"{path}[{i}]")
            if address is None:
                ok = False
            elif address in first:
                self.problem(f"{path}[{i}]", f"duplicate of {path}[{first[address]}]")
                ok = False
            else:
                first[address] = i
                out.append(address)
        return tuple(out) if ok else None

    def urls(self, value: Any, path: str) -> tuple[str, ...] | None:
        return self._urls(value, path, "at least one RPC URL is required")

    def peer_urls(self, value: Any, path: str) -> tuple[str, ...] | None:
        return self._urls(value, path, None)

    def _urls(self, value: Any, path: str, required: str | None) -> tuple[str, ...] | None:
        """A tuple of distinct http(s) URLs; `required` is the problem of an empty array (None:
        an empty array is fine)."""
        if not isinstance(value, list):
            self.problem(path, f"expected an array of http(s) URLs, got {_kind(value)}")
            return None
        if not value and required is not None:
            self.problem(path, required)
            return None
        out: list[str] = []
        first: dict[str, int] = {}
        ok = True
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if isinstance(item, _Redacted):
                ok = False
                continue
            if not isinstance(item, str):
                self.problem(where, f"expected a URL string, got {_kind(item)}")
                ok = False
                continue
            # The URL itself is never quoted back: it may carry an API key.
            try:
                parts = urlsplit(item)
                valid = parts.scheme in ("http", "https") and bool(parts.hostname)
                _ = parts.port  # raises ValueError for a malformed port
            except ValueError:
                valid = False
            if not valid or item != item.strip() or any(c.isspace() for c in item):
                self.problem(where, "not an http(s) URL (expected http://host[:port]/... or https://...)")
                ok = False
            elif item in first:
                self.problem(where, f"duplicate of {path}[{first[item]}]")
                ok = False
            else:
                first[item] = i
                out.append(item)
        return tuple(out) if ok else None

    def ws_url(self, value: Any, path: str) -> str | None:
        """A ws(s) URL (never quoted back: it may carry an API key)."""
        if isinstance(value, _Redacted):
            return None
        if not isinstance(value, str):
            self.problem(path, f"expected a ws(s) URL string, got {_kind(value)}")
            return None
        try:
            parts = urlsplit(value)
            valid = parts.scheme in ("ws", "wss") and bool(parts.hostname)
            _ = parts.port
        except ValueError:
            valid = False
        if not valid or value != value.strip() or any(c.isspace() for c in value):
            self.problem(path, "not a ws(s) URL (expected ws://host[:port]/... or wss://...)")
            return None
        return value

    def local_path(self, value: Any, path: str) -> Path | None:
        text = self.string(value, path)
        if text is None:
            return None
        resolved = Path(text).expanduser()
        return resolved if resolved.is_absolute() else self.base / resolved

    def readable_file(self, value: Any, path: str) -> Path | None:
        resolved = self.local_path(value, path)
        if resolved is None:
            return None
        if not resolved.exists():
            self.problem(path, f"file {resolved} does not exist")
        elif not resolved.is_file():
            self.problem(path, f"{resolved} is not a regular file")
        elif not os.access(resolved, os.R_OK):
            self.problem(path, f"file {resolved} is not readable by this user")
        elif (too_open := keys.too_open(resolved)) is not None:  # every readable_file holds a secret
            self.problem(path, f"file {resolved} {too_open}")
        return resolved

    def directory(self, value: Any, path: str) -> Path | None:
        resolved = self.local_path(value, path)
        if resolved is None:
            return None
        if not resolved.exists():
            self.problem(path, f"directory {resolved} does not exist (create it, or mount the shared directory)")
        elif not resolved.is_dir():
            self.problem(path, f"{resolved} is not a directory")
        elif not os.access(resolved, os.R_OK | os.W_OK | os.X_OK):
            self.problem(path, f"directory {resolved} is not readable and writable by this user")
        return resolved

    def env_name(self, value: Any, path: str) -> str | None:
        name = self.string(value, path)
        if name is None:
            return None
        if not _ENV_NAME.fullmatch(name):
            self.problem(
                path,
                "not an environment variable name (letters, digits and _, not starting with a digit)",
            )
            return None
        if name not in self.environ:
            self.problem(path, f"environment variable {name} is not set")
        elif not self.environ[name]:
            self.problem(path, f"environment variable {name} is empty")
        return name

    def listen(self, value: Any, path: str) -> tuple[str, int] | None:
        text = self.string(value, path)
        if text is None:
            return None
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            sep, port = rest[:1], rest[1:]
            ok = bool(bracket) and sep == ":"
        else:
            host, colon, port = text.rpartition(":")
            ok = bool(colon) and ":" not in host
        if not ok or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
            self.problem(
                path,
                'expected "host:port" (port 0..65535, 0 = any free port; IPv6 as "[::1]:port")',
            )
            return None
        return host, int(port)

    # tables ----------------------------------------------------------------------------

    def key_source(self, value: Any, path: str) -> KeySource | None:
        data = self.table(value, path)
        if data is None:
            return None
        t = _Table(self, data, path)
        ways = [w for w in ("key_file", "key_env", "keystore") if t.has(w)]
        key_file = t.get("key_file", self.readable_file, None)
        key_env = t.get("key_env", self.env_name, None)
        keystore = t.get("keystore", self.readable_file, None)
        password_file = t.get("password_file", self.readable_file, None)
        password_env = t.get("password_env", self.env_name, None)
        t.finish()
        ok = True
        if len(ways) != 1:
            found = ", ".join(ways) if ways else "none"
            self.problem(path, f"exactly one of key_file, key_env, keystore is required (found: {found})")
            ok = False
        passwords = [w for w in ("password_file", "password_env") if t.has(w)]
        if ways == ["keystore"] and len(passwords) != 1:
            if passwords:
                self.problem(path, "a keystore needs exactly one of password_file, password_env (found both)")
            else:
                self.problem(path, "a keystore needs a password: set password_file or password_env")
            ok = False
        if "keystore" not in ways:
            for w in passwords:
                self.problem(t.at(w), "only used with keystore")
                ok = False
        needed = {"key_file": key_file, "key_env": key_env, "keystore": keystore}
        needed |= {w: password_file if w == "password_file" else password_env for w in passwords}
        if not ok or any(needed.get(w) is None for w in [*ways, *passwords]):
            return None
        return KeySource(key_file, key_env, keystore, password_file, password_env)

    def chain(self, name: str, value: Any, path: str) -> ChainConfig | None:
        data = self.table(value, path)
        if data is None:
            return None
        t = _Table(self, data, path)
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
        if not _BARE_KEY.fullmatch(name):
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
        t = _Table(self, data, path)
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
            self.problem(path, f"not a chain: there is no [chains.{_key(name)}]")
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
        t = _Table(self, data, path)
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
            self.problem(t.at("source"), f"no chain named {source!r} (no [chains.{_key(source)}])")
            source = None
        if destination is not None and destination not in destination_names:
            self.problem(
                t.at("destination"),
                f"no destination named {destination!r} (no [destinations.{_key(destination)}])",
            )
            destination = None
        if source is not None and source == destination:
            self.problem(
                t.at("destination"),
                f"same chain as source ({source!r}); a pair relays between two chains",
            )
            return None
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
        t = _Table(self, data, path)
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
        t = _Table(self, data, path)
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
        top = _Table(self, document, "")

        store: Path | None = self.base / "relayer.sqlite"
        relayer = top.get("relayer", self.table, {})
        if relayer is not None:
            t = _Table(self, relayer, "relayer")
            store = t.get("store", self.local_path, store)
            t.finish()

        listen: tuple[str, int] | None = ("127.0.0.1", 9464)
        metrics = top.get("metrics", self.table, {})
        if metrics is not None:
            t = _Table(self, metrics, "metrics")
            listen = t.get("listen", self.listen, listen)
            t.finish()

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

        chains: dict[str, ChainConfig] = {}
        chain_names: set[str] = set()
        chains_ok = True
        chain_table = top.get("chains", self.table)
        if chain_table is not None:
            if not chain_table:
                self.problem("chains", "at least one [chains.<name>] table is required")
            for name, value in chain_table.items():
                chain_names.add(name)
                chain = self.chain(name, value, _join("chains", name))
                if chain is None:
                    chains_ok = False
                else:
                    chains[name] = chain
            ids: dict[int, str] = {}
            for name, chain_id in self.chain_ids.items():
                if chain_id in ids:
                    other = _join("chains", ids[chain_id])
                    self.problem(
                        _join(_join("chains", name), "chain_id"),
                        f"chain id {chain_id} is also used by {other}",
                    )
                    chains_ok = False
                else:
                    ids[chain_id] = name

        destinations: dict[str, DestinationConfig] = {}
        destination_names: set[str] = set()
        destinations_ok = True
        destination_table = top.get("destinations", self.table)
        if destination_table is not None:
            if not destination_table:
                self.problem("destinations", "at least one [destinations.<chain name>] table is required")
            for name, value in destination_table.items():
                destination_names.add(name)
                destination = self.destination(name, value, _join("destinations", name), chain_names)
                if destination is None:
                    destinations_ok = False
                else:
                    destinations[name] = destination

        pairs: list[PairConfig] = []
        pairs_ok = True
        pair_list = top.get("pairs", self._pair_array)
        if pair_list is not None:
            seen: dict[tuple[str, str], int] = {}
            for i, value in enumerate(pair_list):
                pair = self.pair(value, f"pairs[{i}]", chain_names, destination_names)
                if pair is None:
                    pairs_ok = False
                    continue
                # MarginSettlement registers one vault per source chain, and a settle call
                # takes one claim per chain: one pair per (source, destination).
                route = (pair.source, pair.destination)
                if route in seen:
                    self.problem(
                        f"pairs[{i}]",
                        f"same source and destination as pairs[{seen[route]}] (one vault per source chain "
                        "and destination)",
                    )
                    pairs_ok = False
                    continue
                seen[route] = i
                pairs.append(pair)
        top.finish()

        if (
            store is None
            or listen is None
            or attester is None
            or committee is None
            or keeper is None
            or not listeners_ok
            or chain_table is None
            or destination_table is None
            or pair_list is None
            or not (chains_ok and destinations_ok and pairs_ok)
        ):
            return None
        return Config(
            path=path,
            store_path=store,
            metrics_host=listen[0],
            metrics_port=listen[1],
            attester=attester,
            chains=MappingProxyType(chains),
            destinations=MappingProxyType(destinations),
            pairs=tuple(pairs),
            committee=committee,
            keeper=keeper,
        )

    def _pair_array(self, value: Any, path: str) -> list[Any] | None:
        if not isinstance(value, list):
            self.problem(path, f"expected an array of tables ([[pairs]]), got {_kind(value)}")
            return None
        if not value:
            self.problem(path, "at least one [[pairs]] table is required")
            return None
        return value
