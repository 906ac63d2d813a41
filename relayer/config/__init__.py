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

Modules: `schema` (the dataclasses, `ConfigError`), `loader` (`load_config` and the tables),
`values` (typed values from TOML ones, with key paths), `checks` (`notes`, `node_checks`),
`render` (`render_config`: the one `relayer.toml` template devnet, bench and tests write).
The names below are re-exported here: `from relayer.config import X` works for each.
"""

from __future__ import annotations

from relayer.config.checks import endpoint_host, node_checks, notes
from relayer.config.loader import load_config
from relayer.config.schema import (
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
    KeyLoadError,
    KeySource,
    PairConfig,
)

__all__ = [
    "FINALITY_MODES",
    "MAX_PROOF_CHUNK_SIZE",
    "MIN_TX_GAS",
    "PROOF_SCHEMES",
    "SNAPSHOT_MODES",
    "ChainConfig",
    "CommitteeConfig",
    "Config",
    "ConfigError",
    "DestinationConfig",
    "KeeperConfig",
    "KeyLoadError",
    "KeySource",
    "PairConfig",
    "endpoint_host",
    "load_config",
    "node_checks",
    "notes",
]
