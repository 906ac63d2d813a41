"""The configuration's typed, frozen values (`Config` and one dataclass per table) and
`ConfigError`; `relayer.config.loader` builds them from the TOML file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress

from relayer import keys
from relayer.errors import RelayerError
from relayer.keys import KeyLoadError

DEFAULT_LEASE_SECONDS = 10.0
"""How long a pair's leader lease lasts past its last acquire or refresh, in seconds (Chainlink's
default; `[store] lease_seconds`, relayer.storage.lease)."""
DEFAULT_REFRESH_SECONDS = 1.0
"""How often the leader refreshes its lease, in seconds (`[store] refresh_seconds`)."""

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
    (the blocks' EIP-6800 executionWitness), relayer/proving/verkle.py."""
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
    first signed with; relayer/submission/txinclusion.py, `_within_budget`).

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
    the SQLite store (`[relayer] store`), `store_url` the PostgreSQL one (`[store] url`, None:
    SQLite; `store_location` is the one the daemon opens); `metrics_host` / `metrics_port` the
    Prometheus listener (port 0 = any free port; an IPv6 host is given without brackets);
    `attester` the committee member key that signs epochs (EIP-712). `chains` and
    `destinations` are read-only mappings keyed by chain name, in file order; `committee` the
    attestation exchange (defaults: no peers). With a PostgreSQL store, the leader lease of the
    pair (relayer.leadership): `lease_seconds` how long it outlives its last refresh,
    `refresh_seconds` how often the leader refreshes it, `lease_member` the member's name in the
    lease (None: the attester's address) - `[store] lease_seconds`, `refresh_seconds`, `member`."""

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
    store_url: str | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    lease_member: str | None = None

    @property
    def store_location(self) -> Path | str:
        """What `relayer.storage.store.Store` opens: the `[store] url` when set, else `store_path`."""
        return self.store_url if self.store_url is not None else self.store_path
