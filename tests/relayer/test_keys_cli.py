"""`relayer keys new|import|show`, run as a process: keystores that decrypt to the printed
address, never overwritten, and no key or password in any output."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from relayer.keys import read_keystore

pytestmark = pytest.mark.process  # each case runs `python -m relayer.cli keys ...`

REPO = Path(__file__).resolve().parents[2]
KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"  # a documented example key
FAST = ["--kdf", "pbkdf2", "--iterations", "2"]


def relayer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayer.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def assert_no_secret(done: subprocess.CompletedProcess[str], *secrets: str) -> None:
    text = (done.stdout + done.stderr).lower()
    for secret in secrets:
        assert secret.lower().removeprefix("0x") not in text


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text("correct horse battery staple\n")
    path.chmod(0o600)
    return path


def test_new_writes_a_0600_keystore_that_decrypts_to_the_printed_address(tmp_path: Path, password_file: Path) -> None:
    out = tmp_path / "attester.json"
    done = relayer("keys", "new", "--out", str(out), "--password-file", str(password_file), *FAST)
    assert done.returncode == 0, done.stderr
    address = done.stdout.strip()
    assert done.stdout.count("\n") == 1 and address.startswith("0x") and len(address) == 42
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    document = json.loads(out.read_text())
    assert document["version"] == 3 and document["crypto"]["kdf"] == "pbkdf2"
    account = read_keystore(out, "correct horse battery staple")  # the trailing newline is not part of it
    assert account.address == address
    assert_no_secret(done, bytes(account.key).hex(), "correct horse battery staple")


def test_new_uses_scrypt_by_default(tmp_path: Path) -> None:
    out = tmp_path / "k.json"
    done = relayer(
        "keys", "new", "--out", str(out), "--password-env", "KS_PW", "--iterations", "2", env={"KS_PW": "pw-from-env"}
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["crypto"]["kdf"] == "scrypt" and document["crypto"]["kdfparams"]["n"] == 2
    assert read_keystore(out, "pw-from-env").address == done.stdout.strip()


def test_import_from_env_and_file_keeps_the_key_and_never_prints_it(tmp_path: Path, password_file: Path) -> None:
    expected = Account.from_key(KEY)
    from_env = tmp_path / "env.json"
    done = relayer(
        "keys",
        "import",
        "--out",
        str(from_env),
        "--key-env",
        "SENDER_KEY",
        "--password-file",
        str(password_file),
        *FAST,
        env={"SENDER_KEY": KEY.upper().replace("0X", "0x")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected.address
    assert bytes(read_keystore(from_env, "correct horse battery staple").key) == bytes(expected.key)
    assert_no_secret(done, KEY, "correct horse battery staple")

    key_file = tmp_path / "sender.key"
    key_file.write_text(KEY.removeprefix("0x") + "\n")
    key_file.chmod(0o600)
    from_file = tmp_path / "file.json"
    done = relayer(
        "keys",
        "import",
        "--out",
        str(from_file),
        "--key-file",
        str(key_file),
        "--password-env",
        "KS_PW",
        *FAST,
        env={"KS_PW": "another password"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected.address
    assert read_keystore(from_file, "another password").address == expected.address
    assert_no_secret(done, KEY, "another password")


def test_refuses_to_overwrite(tmp_path: Path, password_file: Path) -> None:
    out = tmp_path / "k.json"
    out.write_text("precious")
    for args in (["new"], ["import", "--key-env", "SENDER_KEY"]):
        done = relayer(
            "keys", *args, "--out", str(out), "--password-file", str(password_file), *FAST, env={"SENDER_KEY": KEY}
        )
        assert done.returncode == 1
        assert "already exists" in done.stderr and done.stdout == ""
        assert out.read_text() == "precious"


def test_show_reads_the_address_without_a_password_and_verifies_with_one(tmp_path: Path, password_file: Path) -> None:
    out = tmp_path / "k.json"
    done = relayer(
        "keys",
        "import",
        "--out",
        str(out),
        "--key-env",
        "SENDER_KEY",
        "--password-file",
        str(password_file),
        *FAST,
        env={"SENDER_KEY": KEY},
    )
    assert done.returncode == 0, done.stderr
    address = Account.from_key(KEY).address

    shown = relayer("keys", "show", str(out))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == address

    verified = relayer("keys", "show", str(out), "--password-file", str(password_file))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == address and "password ok" in verified.stderr

    wrong = relayer("keys", "show", str(out), "--password-env", "KS_PW", env={"KS_PW": "not-the-password"})
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert "wrong password" in wrong.stderr
    assert_no_secret(wrong, KEY, "not-the-password", "correct horse battery staple")


def test_show_detects_a_keystore_whose_address_field_lies(tmp_path: Path, password_file: Path) -> None:
    out = tmp_path / "k.json"
    assert relayer("keys", "new", "--out", str(out), "--password-file", str(password_file), *FAST).returncode == 0
    document = json.loads(out.read_text())
    document["address"] = Account.from_key(KEY).address.removeprefix("0x").lower()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    forged.chmod(0o600)
    assert relayer("keys", "show", str(forged)).stdout.strip() == Account.from_key(KEY).address
    done = relayer("keys", "show", str(forged), "--password-file", str(password_file))
    assert done.returncode == 1 and "does not match" in done.stderr

    del document["address"]
    forged.unlink()
    forged.write_text(json.dumps(document))
    forged.chmod(0o600)
    done = relayer("keys", "show", str(forged))
    assert done.returncode == 1 and "no address field" in done.stderr


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["new"], {}, 1, "no password"),  # stdin is not a terminal to ask on
        (
            ["new", "--password-env", "KS_UNSET_VAR"],
            {},
            1,
            "password_env KS_UNSET_VAR: environment variable is not set",
        ),
        (["new", "--password-env", "KS_PW"], {"KS_PW": ""}, 1, "empty keystore password"),
        (["new", "--password-env", "KS_PW", "--kdf", "scrypt", "--iterations", "3"], {"KS_PW": "x"}, 2, "power of 2"),
        (
            ["import", "--key-env", "SENDER_KEY", "--password-env", "KS_PW"],
            {"SENDER_KEY": "0x" + "zz" * 32, "KS_PW": "x"},
            1,
            "key_env SENDER_KEY: not a 32-byte hex private key",
        ),
        (["import", "--password-env", "KS_PW"], {"KS_PW": "x"}, 2, "one of the arguments --key-file --key-env"),
    ],
)
def test_errors_name_the_problem_and_write_nothing(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    out = tmp_path / "k.json"
    done = relayer("keys", *args, "--out", str(out), *(["--kdf", "pbkdf2"] if "--kdf" not in args else []), env=env)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert done.stdout == ""
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert_no_secret(done, "zz" * 32)


def test_keys_needs_a_subcommand() -> None:
    done = relayer("keys")
    assert done.returncode == 2 and "KEYS_COMMAND" in done.stderr
