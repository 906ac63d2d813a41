"""Reading TOML values into typed ones, each problem recorded with its key path: `Table` (a
table whose unread keys are reported), `ValueReader` (secrets scrubbed, then integers, seconds,
addresses, URLs, paths, listen addresses, key sources). `relayer.config.loader` reads the
tables with them."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address

from relayer import keys
from relayer.config.schema import KeySource

_SECRET_NAME = re.compile(
    r"(?:^|[_-])(?:private[_-]?key|priv[_-]?key|key|secret|password|passphrase|passwd|"
    r"mnemonic|seed(?:[_-]?phrase)?)$",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ADDRESS = re.compile(r"0[xX]([0-9a-fA-F]{40})")
_USE_INSTEAD = "use key_file, key_env or keystore with password_file / password_env instead"

T = TypeVar("T")

_REQUIRED: Final[Any] = object()


class _Redacted:
    """Stands in for a value that was refused as a secret (already reported)."""


_REDACTED: Final = _Redacted()


def toml_key(name: str) -> str:
    """`name` as it is written in a key path: bare when it can be, else quoted (TOML)."""
    return name if BARE_KEY.fullmatch(name) else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def join_key(prefix: str, name: str) -> str:
    """The key path of `name` inside the table at `prefix` (e.g. "chains.l1" + "rpc")."""
    return f"{prefix}.{toml_key(name)}" if prefix else toml_key(name)


def kind_of(value: object) -> str:
    """What a TOML value is, for messages ("an integer", "a table", ...)."""
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


class Table:
    """A view of one TOML table that records which keys were read, to report the rest."""

    def __init__(self, reader: ValueReader, data: dict[str, Any], path: str) -> None:
        self.reader = reader
        self.data = data
        self.path = path
        self.seen: set[str] = set()

    def at(self, key: str) -> str:
        return join_key(self.path, key)

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


class ValueReader:
    """Parsers of TOML values, each returning the typed value or None with the problem recorded
    (`problems`, "key.path: message"); relative paths resolve against `base`, environment
    variables are looked up in `environ`."""

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
                where = join_key(path, key)
                if _SECRET_VALUE.fullmatch(key):
                    self.problem(
                        join_key(path, "<redacted>"),
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
            self.problem(path, f"expected a table, got {kind_of(value)}")
            return None
        return value

    def integer(self, lo: int | None = None, hi: int | None = None) -> Callable[[Any, str], int | None]:
        def parse(value: Any, path: str) -> int | None:
            if isinstance(value, bool) or not isinstance(value, int):
                self.problem(path, f"expected an integer, got {kind_of(value)}")
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
            self.problem(path, f"expected a number of seconds, got {kind_of(value)}")
            return None
        if not math.isfinite(value) or value <= 0:
            self.problem(path, "must be a finite number > 0 (seconds)")
            return None
        return float(value)

    def multiple(self, value: Any, path: str) -> float | None:
        """A finite factor >= 1."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(path, f"expected a number, got {kind_of(value)}")
            return None
        if not math.isfinite(value) or value < 1:
            self.problem(path, "must be a finite number >= 1")
            return None
        return float(value)

    def string(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.problem(path, f"expected a string, got {kind_of(value)}")
            return None
        if not value.strip():
            self.problem(path, "must not be empty")
            return None
        return value

    def address(self, value: Any, path: str) -> ChecksumAddress | None:
        if not isinstance(value, str):
            self.problem(path, f"expected a 0x-hex address string, got {kind_of(value)}")
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
            self.problem(path, f"expected an array of addresses, got {kind_of(value)}")
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

    def store_url(self, value: Any, path: str) -> str | None:
        """A PostgreSQL connection URI (`postgresql://` or `postgres://`, libpq's syntax: several
        hosts for failover, `?host=/socket/dir`, ...) without a password: the password comes from
        libpq's PGPASSFILE or PGPASSWORD. The value is never quoted (it could hold a secret)."""
        if not isinstance(value, str):
            self.problem(path, f"expected a postgresql:// URL string, got {kind_of(value)}")
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            self.problem(path, "expected a postgresql:// (or postgres://) URL (without it the store is SQLite)")
            return None
        from psycopg import Error as DriverError
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = conninfo_to_dict(value)
        except DriverError:
            self.problem(path, "not a valid PostgreSQL connection URI (libpq cannot parse it)")
            return None
        if parts.get("password") is not None:
            self.problem(
                path,
                "a password in the URL is refused: secrets never go in the config file; give it to libpq "
                "with PGPASSFILE (a .pgpass file, mode 0600) or the PGPASSWORD environment variable",
            )
            return None
        return value

    def peer_urls(self, value: Any, path: str) -> tuple[str, ...] | None:
        return self._urls(value, path, None)

    def _urls(self, value: Any, path: str, required: str | None) -> tuple[str, ...] | None:
        """A tuple of distinct http(s) URLs; `required` is the problem of an empty array (None:
        an empty array is fine)."""
        if not isinstance(value, list):
            self.problem(path, f"expected an array of http(s) URLs, got {kind_of(value)}")
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
                self.problem(where, f"expected a URL string, got {kind_of(item)}")
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
            self.problem(path, f"expected a ws(s) URL string, got {kind_of(value)}")
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
        t = Table(self, data, path)
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
