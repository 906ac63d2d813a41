"""Writing a `relayer.toml`: the one template every generated config comes from (`relayer
devnet`, the benchmarks, the tests), so that its layout and key names are written once, here,
next to the loader (`relayer.config.load_config`) that reads them back.

`render_config` takes the tables as typed values (`ChainTable`, `DestinationTable`,
`PairTable`, `CommitteeTable`, key sources as `relayer.config.KeySource`) and returns TOML
text. A field left `None` is not written, so the loader's default applies; `options` adds
further keys of a table (any key `relayer.config` accepts there; an unknown one is the
loader's error). Layout, in order: a comment, `[relayer]`, `[metrics]`, `[keeper]`,
`[attester]`, `[chains.<name>]`..., `[destinations.<chain>]` with its `.sender`, `[[pairs]]`...,
`[committee]`; one blank line between tables, each key on its own line, so a test may still
insert a key after a table's header line.

Values are TOML strings (basic strings, escaped), integers, floats, booleans and arrays of
those (TOML v1.0.0). Raises `ValueError` for a value TOML cannot hold as given (e.g. None in
`options`, a nested mapping) or a bad table name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from relayer.config.schema import KeySource

__all__ = [
    "ChainTable",
    "CommitteeTable",
    "DestinationTable",
    "PairTable",
    "TomlValue",
    "render_config",
    "render_watch_config",
]

TomlValue = str | int | float | bool | Path | Sequence[str | int | float | bool]
"""A value `render_config` writes: a scalar or a flat array (a `Path` is written as its string)."""

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


@dataclass(frozen=True)
class ChainTable:
    """`[chains.<name>]` (relayer.config.ChainConfig): `rpc` endpoints in order, `ws` the head
    subscription, `finality` one of relayer.config.FINALITY_MODES, times in seconds."""

    name: str
    chain_id: int
    rpc: Sequence[str]
    ws: str | None = None
    finality: str | None = None
    confirmations: int | None = None
    poll_interval_seconds: float | None = None
    options: Mapping[str, TomlValue] = field(default_factory=dict)


@dataclass(frozen=True)
class DestinationTable:
    """`[destinations.<chain>]` (relayer.config.DestinationConfig): the MarginSettlement
    address on chain `chain` and the key that sends its transactions; `options` e.g.
    `max_accounts_per_batch`."""

    chain: str
    settlement: str
    sender: KeySource
    options: Mapping[str, TomlValue] = field(default_factory=dict)


@dataclass(frozen=True)
class PairTable:
    """One `[[pairs]]` table (relayer.config.PairConfig): `vault` on chain `source`, relayed to
    the destination on chain `destination`."""

    source: str
    destination: str
    vault: str
    vault_deploy_block: int | None = None
    collateral_slot: int | None = None
    every_blocks: int | None = None
    proof_chunk_size: int | None = None
    options: Mapping[str, TomlValue] = field(default_factory=dict)


@dataclass(frozen=True)
class CommitteeTable:
    """`[committee]` (relayer.config.CommitteeConfig): the other members' base URLs; seconds."""

    peers: Sequence[str] = ()
    takeover_seconds: float | None = None
    options: Mapping[str, TomlValue] = field(default_factory=dict)
    comment: str = "The other members' HTTP APIs (their [metrics] listen addresses): attestations are fetched there."


def render_config(
    *,
    attester: KeySource,
    chains: Sequence[ChainTable],
    destinations: Sequence[DestinationTable],
    pairs: Sequence[PairTable],
    store: str | Path | None = None,
    metrics_listen: str | None = None,
    keeper_listen: str | None = None,
    committee: CommitteeTable | None = None,
    comment: str = "",
) -> str:
    """A `relayer.toml` holding the given tables (see the module docstring for the layout).

    `comment`: text put first, each line as a `# ` comment. `store`, `metrics_listen`,
    `keeper_listen`: `[relayer] store`, `[metrics] listen`, `[keeper] listen` ("host:port"),
    each table left out when None. Paths in key sources and `store` are written as given
    (relative ones resolve against the config file's folder when loaded)."""
    tables: list[str] = []
    if store is not None:
        tables.append(_table("relayer", {"store": store}))
    if metrics_listen is not None:
        tables.append(_table("metrics", {"listen": metrics_listen}))
    if keeper_listen is not None:
        tables.append(_table("keeper", {"listen": keeper_listen}))
    tables.append(_table("attester", _key_source(attester)))
    tables += [_chain_table(chain) for chain in chains]
    for dest in destinations:
        name = f"destinations.{_name(dest.chain)}"
        tables.append(_table(name, _merge({"settlement": dest.settlement}, dest.options)))
        tables.append(_table(f"{name}.sender", _key_source(dest.sender)))
    for pair in pairs:
        keys: dict[str, TomlValue | None] = {
            "source": pair.source,
            "destination": pair.destination,
            "vault": pair.vault,
            "vault_deploy_block": pair.vault_deploy_block,
            "collateral_slot": pair.collateral_slot,
            "every_blocks": pair.every_blocks,
            "proof_chunk_size": pair.proof_chunk_size,
        }
        tables.append(_table("pairs", _merge(keys, pair.options), array=True))
    if committee is not None:
        keys = {"peers": list(committee.peers), "takeover_seconds": committee.takeover_seconds}
        text = _table("committee", _merge(keys, committee.options))
        tables.append(_comment(committee.comment) + text if committee.comment else text)
    return _comment(comment) + "\n".join(tables)


def render_watch_config(
    *,
    destination: str,
    settlement: str,
    chains: Sequence[ChainTable],
    sender: KeySource | None = None,
    metrics_listen: str | None = None,
    options: Mapping[str, TomlValue] | None = None,
    comment: str = "",
) -> str:
    """A watchtower's config (`relayer watch`, relayer.config.watch): `[watch]` with `destination`
    (a chain's name) and `settlement`, plus `options` (e.g. `confirmations`, `data_dir`), its
    `[watch.sender]` when a `sender` pays for challenges, `[metrics]` and the `[chains.<name>]` tables
    (written as `render_config` writes them)."""
    watch = _merge({"destination": destination, "settlement": settlement}, options or {})
    tables = [_table("watch", watch)]
    if sender is not None:
        tables.append(_table("watch.sender", _key_source(sender)))
    if metrics_listen is not None:
        tables.append(_table("metrics", {"listen": metrics_listen}))
    tables += [_chain_table(chain) for chain in chains]
    return _comment(comment) + "\n".join(tables)


def _chain_table(chain: ChainTable) -> str:
    keys: dict[str, TomlValue | None] = {
        "chain_id": chain.chain_id,
        "rpc": list(chain.rpc),
        "ws": chain.ws,
        "finality": chain.finality,
        "confirmations": chain.confirmations,
        "poll_interval_seconds": chain.poll_interval_seconds,
    }
    return _table(f"chains.{_name(chain.name)}", _merge(keys, chain.options))


def _comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())


def _key_source(source: KeySource) -> dict[str, TomlValue]:
    keys = {
        "key_file": source.key_file,
        "key_env": source.key_env,
        "keystore": source.keystore,
        "password_file": source.password_file,
        "password_env": source.password_env,
    }
    return {key: value for key, value in keys.items() if value is not None}


def _merge(keys: Mapping[str, TomlValue | None], options: Mapping[str, TomlValue]) -> dict[str, TomlValue]:
    doubled = sorted(set(keys) & set(options))
    if doubled:
        raise ValueError(f"options repeat keys of the table's own fields: {', '.join(doubled)}")
    return {**{key: value for key, value in keys.items() if value is not None}, **options}


def _name(name: str) -> str:
    if not _BARE_KEY.fullmatch(name):
        raise ValueError(f"name {name!r}: only letters, digits, '_' and '-' (a TOML bare key)")
    return name


def _table(name: str, keys: Mapping[str, TomlValue], *, array: bool = False) -> str:
    header = f"[[{name}]]" if array else f"[{name}]"
    return header + "\n" + "".join(f"{_name(key)} = {_value(key, value)}\n" for key, value in keys.items())


def _value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if _control(c) else c) for c in value) + '"'
    if isinstance(value, Sequence):
        return "[" + ", ".join(_scalar(key, item) for item in value) + "]"
    raise ValueError(f"{key}: {type(value).__name__} is not a TOML value render_config writes")


def _scalar(key: str, value: object) -> str:
    if isinstance(value, Sequence | Mapping) and not isinstance(value, str):
        raise ValueError(f"{key}: arrays hold scalars only here, got {type(value).__name__}")
    return _value(key, value)


def _control(c: str) -> bool:
    """A character a TOML basic string must escape (U+0000..U+001F other than tab, and U+007F);
    ValueError for a lone surrogate (no Unicode scalar value: neither UTF-8 nor TOML holds it)."""
    if 0xD800 <= ord(c) <= 0xDFFF:
        raise ValueError(f"a lone surrogate U+{ord(c):04X} cannot be written as TOML")
    return ord(c) < 0x20 or ord(c) == 0x7F
