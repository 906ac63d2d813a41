"""A devnet run like production, for the operations tests (log secrecy, readiness, metrics).

`opsnet(directory)` provisions a small devnet (`relayer.devnet.provision`, the chains in this
process), puts each chain's RPC behind its own `TamperProxy` reached through a URL that carries
secrets the way hosted providers do (basic-auth password, API key in the path and the query),
and configures the keys the production way:

- the destination sender from `key_env` (the private key in an environment variable);
- the attester from a Web3 Secret Storage keystore whose password is in another environment
  variable (pbkdf2 with a few iterations: fast).

The daemon then runs as a real process (`relayer run --log-format json`), stdout and stderr in
`daemon.log`. Every secret is in `OpsNet.secrets` so tests can look for them anywhere.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relayer import devnet
from relayer.keys import write_keystore
from tests.integration.proxy import TamperProxy

REPO = Path(__file__).resolve().parents[2]
SENDER_ENV = "RELAYER_OPS_SENDER_KEY"
PASSWORD_ENV = "RELAYER_OPS_ATTESTER_PASSWORD"
RPC_TIMEOUT_SECONDS = 2.0
"""rpc_timeout_seconds of both chains: readiness turns within 5 polls + this (api.STALE_POLLS)."""


@dataclass
class OpsNet:
    net: devnet.Devnet
    proxies: dict[str, TamperProxy]
    """Chain name ("source", "destination") -> the proxy in front of its node."""
    daemon: subprocess.Popen[bytes]
    log_path: Path
    base: str
    """The daemon's HTTP address, e.g. http://127.0.0.1:9464."""
    secrets: dict[str, str] = field(default_factory=dict)
    """What must never be shown: name -> secret text."""

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET `base + path` -> (HTTP status, body); a 503 is an answer, not an error."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get_json(self, path: str) -> tuple[int, Any]:
        status, body = self.get(path)
        return status, json.loads(body)

    def metrics_text(self) -> str:
        return self.get("/metrics")[1].decode()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        """Every JSON log line of the daemon (other lines, e.g. tracebacks, are not events)."""
        events = []
        for line in self.log_text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                events.append(item)
        return events

    def alive(self) -> None:
        code = self.daemon.poll()
        if code is not None:
            raise AssertionError(f"daemon exited with {code}; log tail:\n{self.log_text()[-3000:]}")


def wait_for(
    what: str, predicate: Callable[[], bool], timeout: float = 60.0, every: float = 0.25, net: OpsNet | None = None
) -> float:
    """Poll `predicate` until true; returns the seconds it took. Fails (with the daemon's log
    tail when `net` is given) after `timeout` seconds or if the daemon died."""
    start = time.monotonic()
    while True:
        if net is not None:
            net.alive()
        try:
            if predicate():
                return time.monotonic() - start
        except (OSError, ValueError):
            pass  # not answering yet
        if time.monotonic() - start > timeout:
            tail = f"\nlog tail:\n{net.log_text()[-3000:]}" if net is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{tail}")
        time.sleep(every)


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric `name` (exact name, not its _bucket/_count children) in a
    Prometheus text exposition: [(labels, value), ...]."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        rest = line[len(name) :]
        if rest[:1] not in (" ", "{"):
            continue
        labels: dict[str, str] = {}
        if rest.startswith("{"):
            body, _, rest = rest[1:].partition("} ")
            for part in _split_labels(body):
                key, _, value = part.partition("=")
                labels[key] = json.loads(value)
        out.append((labels, float(rest.split()[0])))
    return out


def _split_labels(body: str) -> list[str]:
    parts, current, quoted, escaped = [], "", False, False
    for char in body:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += char
    if current:
        parts.append(current)
    return parts


def settled(net: OpsNet) -> bool:
    status, body = net.get_json("/v1/status")
    return status == 200 and int(body.get("settlements", {}).get("confirmed", 0)) > 0


def _count(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    return int(value) if isinstance(value, int | float) else 0


def _configure(net: devnet.Devnet, urls: dict[str, str], keystore: Path) -> None:
    text = net.config_path.read_text()
    chains: dict[str, Any] = net.info["chains"]  # type: ignore[assignment]
    for name, url in urls.items():
        original = f'rpc = ["{chains[name]["rpc"]}"]'
        if original not in text:
            raise RuntimeError(f"devnet config has no {original!r}")
        text = text.replace(original, f'rpc = ["{url}"]\nrpc_timeout_seconds = {RPC_TIMEOUT_SECONDS}')
    attester, sender = "[attester]\n", "[destinations.destination.sender]\n"
    replacements = {
        attester + 'key_file = "keys/attester.key"': attester
        + f'keystore = "{keystore}"\npassword_env = "{PASSWORD_ENV}"',
        sender + 'key_file = "keys/sender.key"': sender + f'key_env = "{SENDER_ENV}"',
    }
    for old, new in replacements.items():
        if old not in text:
            raise RuntimeError(f"devnet config has no {old!r}")
        text = text.replace(old, new)
    net.config_path.write_text(text)


@contextmanager
def opsnet(directory: Path, *, accounts: int = 4, every_blocks: int = 2) -> Iterator[OpsNet]:
    """Provision, configure and run the daemon; on exit SIGTERM it (must exit 0), stop the
    proxies and the chains."""
    net = devnet.provision(directory, accounts=accounts, detach=False, progress=False, every_blocks=every_blocks)
    proxies: dict[str, TamperProxy] = {}
    daemon: subprocess.Popen[bytes] | None = None
    log_path = directory / "daemon.log"
    log = log_path.open("wb")
    try:
        sender, attester = devnet.dev_account(2), devnet.dev_account(1)
        password = "pw-" + secrets.token_urlsafe(12)
        keystore = write_keystore(attester, directory / "keys" / "attester.json", password, kdf="pbkdf2", iterations=16)
        for key_file in (directory / "keys").glob("*.key"):  # only the env var and keystore hold keys now
            key_file.unlink()
        found: dict[str, str] = {
            "sender key": "0x" + bytes(sender.key).hex(),
            "attester key": "0x" + bytes(attester.key).hex(),
            "keystore password": password,
        }
        urls = {}
        chains: dict[str, Any] = net.info["chains"]  # type: ignore[assignment]
        for name in ("source", "destination"):
            proxy = proxies[name] = TamperProxy(chains[name]["rpc"]).start()
            user_pw, path_key, query_key = (
                f"{kind}{name.upper()}{secrets.token_hex(6)}" for kind in ("BASICPW", "PATHKEY", "QUERYKEY")
            )
            found |= {
                f"{name} URL password": user_pw,
                f"{name} URL path key": path_key,
                f"{name} URL query key": query_key,
            }
            urls[name] = f"http://relayer:{user_pw}@127.0.0.1:{proxy.port}/v3/{path_key}?apikey={query_key}"
        _configure(net, urls, keystore)
        env = {**os.environ, SENDER_ENV: found["sender key"], PASSWORD_ENV: password}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "relayer.cli", "run", "--config", str(net.config_path), "--log-format", "json"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
        base = str(net.info["metrics"]).removesuffix("/metrics")
        ops = OpsNet(net, proxies, daemon, log_path, base, found)
        wait_for("the daemon's HTTP endpoint", lambda: ops.get("/healthz")[0] == 200, timeout=30, net=ops)
        yield ops
    finally:
        code: int | None = 0
        if daemon is not None:
            daemon.terminate()
            try:
                code = daemon.wait(20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                code = daemon.wait(5)
        for proxy in proxies.values():
            proxy.stop()
        devnet.stop(directory)
        log.close()
    if code != 0:
        raise AssertionError(f"daemon exited with {code} on SIGTERM; log tail:\n{log_path.read_text()[-3000:]}")
