"""The watchtower's configuration (`relayer watch --config PATH`): a TOML file with a `[watch]` table,
the `[chains.<name>]` tables of relayer.toml (the same keys and checks: the destination and every
source chain whose leaves it re-proves, with the watchtower's own endpoints) and `[metrics]`.

    [watch]
    destination = "destination"    a [chains.<name>]: where the MarginSettlement is. Required.
    settlement = "0x..."           the MarginSettlement address. Required.
    data_dir = PATH                its SQLite store (watch.sqlite). Default: "watch-data" beside the file.
    confirmations = 2              destination blocks below head before a block is read, 0..1000. Default: 2.
    start_block = 0                the first destination block read on a first run. Default: 0.
    poll_interval_seconds = 2.0    seconds between polls, > 0. Default: 2.0.
    max_blocks_per_poll = 1000     destination blocks read per poll, 1..100000. Default: 1000.
    [watch.sender]                 optional: the key that pays for challenges (key_file / key_env /
                                   keystore + password_file or password_env, as [attester]); without
                                   it the watchtower only alerts.

A chain other than the destination is a source: its leaves are re-proven at its `finality`.
Unknown keys are errors; every problem is reported at once (`ConfigError`). No attester key is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from eth_typing import ChecksumAddress

from relayer.config.loader import _Reader, read_toml
from relayer.config.schema import ChainConfig, ConfigError, KeySource
from relayer.config.values import Table, toml_key

WATCH_TABLE = "watch"
"""A config file with this table is a watchtower's (check-config tells the two kinds apart by it)."""


@dataclass(frozen=True)
class WatchConfig:
    """The watchtower's configuration (see the module doc); times in seconds, paths absolute."""

    path: Path
    data_dir: Path
    metrics_host: str
    metrics_port: int
    destination: ChainConfig
    settlement: ChecksumAddress
    sender: KeySource | None
    confirmations: int
    start_block: int
    poll_interval_seconds: float
    max_blocks_per_poll: int
    chains: Mapping[str, ChainConfig]

    @property
    def sources(self) -> tuple[ChainConfig, ...]:
        """The chains whose block leaves are re-proven: every chain but the destination."""
        return tuple(c for c in self.chains.values() if c.name != self.destination.name)


def is_watch_config(path: Path | str) -> bool:
    """Whether the TOML file at `path` is a watchtower's (has `[watch]`). Raises ConfigError when unreadable."""
    return WATCH_TABLE in read_toml(Path(path).expanduser().absolute())


def load_watch_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> WatchConfig:
    """Read and validate the watchtower's TOML file at `path`. Raises `ConfigError` with every problem."""
    path = Path(path).expanduser().absolute()
    reader = _Reader(path.parent, os.environ if environ is None else environ)
    document = reader.scrub(read_toml(path), "")
    config = _watch_config(reader, path, document)
    if reader.problems or config is None:
        raise ConfigError(reader.problems or ["configuration is invalid"], path)
    return config


def _watch_config(reader: _Reader, path: Path, document: dict[str, Any]) -> WatchConfig | None:
    top = Table(reader, document, "")
    listen: tuple[str, int] | None = ("127.0.0.1", 9467)
    metrics = top.get("metrics", reader.table, {})
    if metrics is not None:
        m = Table(reader, metrics, "metrics")
        listen = m.get("listen", reader.listen, listen)
        m.finish()
    watch = top.get(WATCH_TABLE, reader.table)
    chains = reader._chains(top)
    top.finish()
    if watch is None or chains is None:
        return None
    t = Table(reader, watch, WATCH_TABLE)
    destination = t.get("destination", reader.string)
    settlement = t.get("settlement", reader.address)
    data_dir = t.get("data_dir", reader.local_path, path.parent / "watch-data")
    confirmations = t.get("confirmations", reader.integer(0, 1_000), 2)
    start_block = t.get("start_block", reader.integer(0), 0)
    poll = t.get("poll_interval_seconds", reader.seconds, 2.0)
    max_blocks = t.get("max_blocks_per_poll", reader.integer(1, 100_000), 1_000)
    sender = t.get("sender", reader.key_source, None)
    sender_ok = not t.has("sender") or sender is not None
    t.finish()
    valid, names, all_valid = chains
    if destination is not None and destination not in names:
        reader.problem(t.at("destination"), f"no chain named {destination!r} (no [chains.{toml_key(destination)}])")
        destination = None
    if (
        destination is None
        or settlement is None
        or data_dir is None
        or confirmations is None
        or start_block is None
        or poll is None
        or max_blocks is None
        or listen is None
        or not sender_ok
        or not all_valid
        or destination not in valid
    ):
        return None
    return WatchConfig(
        path, data_dir, listen[0], listen[1], valid[destination], settlement, sender, confirmations, start_block,
        poll, max_blocks, MappingProxyType(valid),
    )  # fmt: skip
