"""Signing keys: raw key files, environment variables and Web3 Secret Storage keystores.

Secrets never go into messages: every failure raises `KeyLoadError` naming the source
(a path or an environment variable name) and what is wrong with it, never the key or the
password, and without chaining the library exception that might carry either.

Key files (a raw key file, a password file, a keystore) must be private to their owner, as
ssh requires of its keys: one that its group or others may read, write or execute (any bit of
0o077) is refused, naming the file and the fix (`chmod 600 FILE`). It is a mode check, so it
holds for root too (who could read the file anyway).

Keystores are the Web3 Secret Storage format (version 3 JSON, scrypt or pbkdf2 KDF), as read
and written by eth-account / eth-keyfile, geth and foundry (`cast wallet`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chains.errors import MalformedJson
from chains.jsonparse import parse_json
from relayer.errors import RelayerError

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""n, the order of the secp256k1 group (SEC 2, section 2.4.1): valid keys are 1..n-1."""

_HEX_KEY = re.compile(r"(?:0[xX])?([0-9a-fA-F]{64})")


class KeyLoadError(RelayerError):
    """A signing key could not be loaded.

    `source` names where it was looked for ("key_file /run/credentials/x", "key_env NAME",
    "keystore /etc/relayer/a.json"); `reason` says what is wrong. Neither holds a secret.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def parse_private_key(text: str, source: str) -> LocalAccount:
    """A 32-byte secp256k1 private key written as hex (0x prefix optional, surrounding
    whitespace ignored) -> its account. Raises `KeyLoadError` (without the text) if malformed
    or outside 1..n-1."""
    match = _HEX_KEY.fullmatch(text.strip())
    if match is None:
        raise KeyLoadError(source, "not a 32-byte hex private key (expected 0x followed by 64 hex digits)")
    raw = bytes.fromhex(match.group(1))
    if not 0 < int.from_bytes(raw, "big") < SECP256K1_ORDER:
        raise KeyLoadError(source, "private key is outside the secp256k1 range 1..n-1")
    try:
        account: LocalAccount = Account.from_key(raw)
    except Exception:  # never chain: the library message may quote the key
        raise KeyLoadError(source, "not a valid secp256k1 private key") from None
    return account


def too_open(path: Path) -> str | None:
    """Why the key file at `path` is refused for its mode (group or others may access it: any
    bit of 0o077, as ssh checks), with the fix; None when it is private (or not a regular
    file: the read that follows reports that)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if not stat.S_ISREG(mode) or not mode & 0o077:
        return None
    return (
        f"is accessible by group or others (mode {stat.S_IMODE(mode):04o}): a key file must be private "
        f"to its owner; run `chmod 600 {path}`"
    )


def _read_text(path: Path, source: str) -> str:
    reason = too_open(path)
    if reason is not None:
        raise KeyLoadError(source, reason)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyLoadError(source, "file does not exist") from None
    except IsADirectoryError:
        raise KeyLoadError(source, "is a directory, not a file") from None
    except PermissionError:
        raise KeyLoadError(source, "permission denied") from None
    except UnicodeDecodeError:
        raise KeyLoadError(source, "is not UTF-8 text") from None
    except OSError as exc:
        raise KeyLoadError(source, f"cannot be read ({exc.strerror or type(exc).__name__})") from None


def read_key_file(path: Path | str) -> LocalAccount:
    """The account whose 0x-hex private key is the content of `path` (e.g. a systemd
    credential under /run/credentials/). Raises `KeyLoadError`."""
    path = Path(path)
    source = f"key_file {path}"
    return parse_private_key(_read_text(path, source), source)


def read_key_env(name: str, environ: Mapping[str, str] | None = None) -> LocalAccount:
    """The account whose 0x-hex private key is the value of environment variable `name`
    (looked up in `environ`, default `os.environ`). Raises `KeyLoadError`."""
    env = os.environ if environ is None else environ
    source = f"key_env {name}"
    value = env.get(name)
    if value is None:
        raise KeyLoadError(source, "environment variable is not set")
    return parse_private_key(value, source)


def read_password_file(path: Path | str) -> str:
    """The keystore password held in `path`: its content with trailing CR/LF removed (so a
    file written by `echo` works), everything else kept. Raises `KeyLoadError`."""
    path = Path(path)
    return _read_text(path, f"password_file {path}").rstrip("\r\n")


def read_password_env(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The keystore password held in environment variable `name` (default `os.environ`),
    used as is. Raises `KeyLoadError` if unset."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is None:
        raise KeyLoadError(f"password_env {name}", "environment variable is not set")
    return value


def read_keystore(path: Path | str, password: str) -> LocalAccount:
    """Decrypt the Web3 Secret Storage keystore at `path` with `password`.

    If the keystore carries an `address` field it must match the decrypted key. Raises
    `KeyLoadError` for an unreadable file, invalid JSON, an unsupported format, a wrong
    password (MAC mismatch) or an address mismatch.
    """
    path = Path(path)
    source = f"keystore {path}"
    data = read_keystore_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("crypto", data.get("Crypto")), dict):
        raise KeyLoadError(source, "not a Web3 Secret Storage keystore (no crypto object)")
    try:
        raw = Account.decrypt(data, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeyLoadError(source, "wrong password (MAC mismatch)") from None
        raise KeyLoadError(source, "unsupported or corrupt keystore") from None
    except Exception:
        raise KeyLoadError(source, "unsupported or corrupt keystore") from None
    account = parse_private_key(bytes(raw).hex(), source)
    recorded = data.get("address")
    if isinstance(recorded, str) and recorded:
        if recorded.lower().removeprefix("0x") != account.address.lower().removeprefix("0x"):
            raise KeyLoadError(source, "the keystore's address field does not match its decrypted key")
    return account


MAX_KEYSTORE_BYTES = 64 * 1024
"""A keystore file larger than this (bytes) is refused unparsed: one is under 1 kB."""
MAX_KEYSTORE_DEPTH = 8
"""A keystore nested deeper than this is refused: version 3 has 3 levels (crypto.kdfparams)."""


def read_keystore_json(path: Path | str) -> Any:
    """The JSON value in the keystore file at `path`, parsed (not decrypted, shape not checked).
    Raises `KeyLoadError` for an unreadable file, or one larger than `MAX_KEYSTORE_BYTES`,
    nested deeper than `MAX_KEYSTORE_DEPTH` or not JSON (chains.jsonparse)."""
    path = Path(path)
    source = f"keystore {path}"
    text = _read_text(path, source)
    try:
        return parse_json(text, max_bytes=MAX_KEYSTORE_BYTES, max_depth=MAX_KEYSTORE_DEPTH, what=source)
    except MalformedJson as exc:
        raise KeyLoadError(source, exc.detail) from None


def write_keystore(
    account: LocalAccount,
    path: Path | str,
    password: str,
    *,
    kdf: Literal["scrypt", "pbkdf2"] = "scrypt",
    iterations: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Encrypt `account` with `password` into a Web3 Secret Storage keystore at `path`.

    The file is created with mode 0600, written to a temporary file in the same folder,
    fsynced and then moved into place, so `path` is never seen half-written. `kdf` and
    `iterations` are passed to eth-account (scrypt's default costs about a second; tests use
    pbkdf2 with few iterations). An existing file is kept unless `overwrite` is true
    (raises `FileExistsError`). Returns `path`.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite a keystore")
    text = json.dumps(account.encrypt(password, kdf=kdf, iterations=iterations))
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic and never clobbers: FileExistsError if raced
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
