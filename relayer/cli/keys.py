"""`relayer keys new|import|show`: create, import and inspect Web3 Secret Storage keystores.

    relayer keys new    --out PATH [--password-file F | --password-env VAR] [--kdf scrypt|pbkdf2]
    relayer keys import --out PATH (--key-file F | --key-env VAR) [--password-file F | --password-env VAR]
    relayer keys show   PATH [--password-file F | --password-env VAR]

Each prints the account's checksummed address, alone on stdout (so `$(relayer keys new ...)`
captures it); notes go to stderr. A private key or password is never printed, and no error
message quotes one (`relayer.keys.KeyLoadError` names only where a secret was looked for).

Keystores are version 3 JSON (scrypt by default, as geth and eth-account write them; pbkdf2 on
request), created 0600 by `relayer.keys.write_keystore`, which never replaces an existing file.
Without `--password-file` / `--password-env`, `new` and `import` ask for the password twice on
the terminal. `show` reads the keystore's `address` field without any password; given one, it
also decrypts the keystore and checks that the key matches that address.

Exit status: 0 done; 1 a key, password or keystore problem (missing, wrong, exists already);
2 usage errors (as argparse).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any, Literal, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from relayer import keys
from relayer.cli._common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from relayer.errors import RelayerError
from relayer.keys import KeyLoadError

__all__ = ["add_parser", "cmd_keys_import", "cmd_keys_new", "cmd_keys_show"]


class KeysCommandError(RelayerError):
    """A `relayer keys` command cannot proceed; the message names the file or variable, never a secret."""


def _fail(message: str) -> int:
    print(f"relayer keys: {message}", file=sys.stderr)
    return EXIT_FAILURE


def _password(args: argparse.Namespace, *, confirm: bool) -> str | None:
    """The password from --password-file / --password-env, else (when `confirm`) asked twice
    on the terminal; None when none was given and none can be asked. Raises KeyLoadError /
    KeysCommandError."""
    if args.password_file is not None:
        password = keys.read_password_file(args.password_file)
    elif args.password_env is not None:
        password = keys.read_password_env(args.password_env)
    elif not confirm:
        return None
    else:
        if not sys.stdin.isatty():
            raise KeysCommandError(
                "no password: give --password-file or --password-env (stdin is not a terminal to ask on)"
            )
        password = getpass.getpass("keystore password: ")
        if getpass.getpass("repeat the password: ") != password:
            raise KeysCommandError("the two passwords differ")
    if confirm and not password:
        raise KeysCommandError("refusing an empty keystore password")
    return password


def _write(account: LocalAccount, args: argparse.Namespace) -> int:
    n = args.iterations
    if n is not None and args.kdf == "scrypt" and (n < 2 or n & (n - 1)):
        print("relayer keys: --iterations for scrypt must be a power of 2 (>= 2)", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    if out.exists() or out.is_symlink():
        return _fail(f"{out} already exists; refusing to overwrite a keystore")
    if not out.parent.is_dir():
        return _fail(f"folder {out.parent} does not exist")
    try:
        password = _password(args, confirm=True)
        if password is None:  # unreachable with confirm=True: narrowed for the type checker
            raise KeysCommandError("no password")
        kdf = cast(Literal["scrypt", "pbkdf2"], args.kdf)
        keys.write_keystore(account, out, password, kdf=kdf, iterations=args.iterations)
    except (KeyLoadError, KeysCommandError) as exc:
        return _fail(str(exc))
    except FileExistsError:
        return _fail(f"{out} already exists; refusing to overwrite a keystore")
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror or type(exc).__name__}")
    print(f"relayer keys: wrote {out} ({args.kdf}, mode 0600)", file=sys.stderr)
    print(account.address)
    return EXIT_OK


def cmd_keys_new(args: argparse.Namespace) -> int:
    """`keys new`: a fresh random key (os.urandom via eth-account), encrypted into `--out`."""
    account: LocalAccount = Account.create()
    return _write(account, args)


def cmd_keys_import(args: argparse.Namespace) -> int:
    """`keys import`: the hex private key of `--key-file` or `--key-env`, encrypted into `--out`."""
    try:
        if args.key_file is not None:
            account = keys.read_key_file(args.key_file)
        else:
            account = keys.read_key_env(args.key_env)
    except KeyLoadError as exc:
        return _fail(str(exc))
    return _write(account, args)


def cmd_keys_show(args: argparse.Namespace) -> int:
    """`keys show`: the keystore's address; with a password, decrypted and checked against it."""
    path = Path(args.path)
    source = f"keystore {path}"
    try:
        password = _password(args, confirm=False)
        if password is not None:
            account = keys.read_keystore(path, password)
            print(f"relayer keys: {path}: password ok, the key matches the address", file=sys.stderr)
            print(account.address)
            return EXIT_OK
        data: Any = keys.read_keystore_json(path)
    except (KeyLoadError, KeysCommandError) as exc:
        return _fail(str(exc))
    recorded = data.get("address") if isinstance(data, dict) else None
    if not isinstance(recorded, str) or not recorded:
        return _fail(f"{source}: no address field; give --password-file or --password-env to decrypt it")
    try:
        address = to_checksum_address("0x" + recorded.lower().removeprefix("0x"))
    except ValueError:
        return _fail(f"{source}: the address field is not a 20-byte hex address")
    print(address)
    return EXIT_OK


def _password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password-file", metavar="FILE", help="file holding the keystore password (a trailing newline is ignored)"
    )
    group.add_argument("--password-env", metavar="VAR", help="environment variable holding the keystore password")


def _kdf_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kdf", choices=["scrypt", "pbkdf2"], default="scrypt", help="key derivation function (default scrypt)"
    )
    parser.add_argument(
        "--iterations",
        type=_work_factor,
        metavar="N",
        help="KDF work factor: scrypt N (a power of 2) or pbkdf2 rounds; default "
        "eth-account's (scrypt 2^18, pbkdf2 10^6). Low values are for tests only",
    )


def _work_factor(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `keys` with its `new`, `import` and `show` sub-commands to `subparsers` (the object
    returned by `ArgumentParser.add_subparsers`). Each sets `func(args) -> exit status`."""
    keys_parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys",
        help="create, import and inspect encrypted keystores (Web3 Secret Storage)",
        description="Create, import and inspect Web3 Secret Storage keystores. Keys and passwords are never printed.",
    )
    sub = keys_parser.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")

    asked = "Without --password-file / --password-env the password is asked twice on the terminal."
    p = sub.add_parser(
        "new",
        help="create a random key in a new keystore; prints its address",
        description="Create a random key in a new keystore and print its address. " + asked,
    )
    p.add_argument("--out", required=True, metavar="PATH", help="keystore to create (never overwritten)")
    _password_options(p)
    _kdf_options(p)
    p.set_defaults(func=cmd_keys_new)

    p = sub.add_parser(
        "import",
        help="encrypt an existing hex private key into a new keystore",
        description="Encrypt an existing 0x-hex private key into a new keystore and print its address. " + asked,
    )
    p.add_argument("--out", required=True, metavar="PATH", help="keystore to create (never overwritten)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--key-file", metavar="FILE", help="file holding the 0x-hex private key")
    source.add_argument("--key-env", metavar="VAR", help="environment variable holding the 0x-hex private key")
    _password_options(p)
    _kdf_options(p)
    p.set_defaults(func=cmd_keys_import)

    p = sub.add_parser(
        "show",
        help="print a keystore's address (verified when a password is given)",
        description="Print a keystore's address from its address field (no password "
        "needed). With a password, decrypt it and check the key matches that address.",
    )
    p.add_argument("path", metavar="PATH", help="keystore file")
    _password_options(p)
    p.set_defaults(func=cmd_keys_show)
    return keys_parser
