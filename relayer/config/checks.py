"""Checks of a loaded config beyond its syntax, for `relayer check-config` and the daemon's
start: set-ups that are valid but weaker than they could be (`notes`) and endpoints compared
as resolved nodes (`node_checks`)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from chains.nodes import NodeAddress, resolve_blocking
from chains.nodes import describe as describe_addresses
from relayer.config.schema import Config
from relayer.config.values import toml_key


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
                f"chains.{toml_key(name)}.rpc: one endpoint host: proven block hashes are not confirmed by a second "
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
        key = f"chains.{toml_key(name)}.rpc"
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
