"""Unit tests for relayer.config and relayer.keys (tests/relayer/config_files.py): where keys come from,
secrets refused inline and never echoed, and loading keys and keystores.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account

from relayer import keys
from relayer.config import ConfigError, KeyLoadError, KeySource, load_config, notes
from relayer.errors import RelayerError
from tests.relayer.config_files import (
    ADDR0,
    ADDR1,
    ENV,
    KEY0,
    KEY1,
    MINIMAL,
    SETTLEMENT,
    VAULT,
    _fast_keystore,
    _problems,
    _replace,
    _write,
    write_secret,
)

# --- key sources -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attester", "expected"),
    [
        ("", ["attester: exactly one of key_file, key_env, keystore is required (found: none)"]),
        (
            'key_env = "ATTESTER_KEY"\nkey_file = "k"',
            [
                "attester.key_file: file {tmp}/k does not exist",
                "attester: exactly one of key_file, key_env, keystore is required (found: key_file, key_env)",
            ],
        ),
        (
            'keystore = "ks.json"',
            ["attester: a keystore needs a password: set password_file or password_env"],
        ),
        (
            'keystore = "ks.json"\npassword_file = "pw"\npassword_env = "PW"',
            ["attester: a keystore needs exactly one of password_file, password_env (found both)"],
        ),
        (
            'key_env = "ATTESTER_KEY"\npassword_env = "PW"',
            ["attester.password_env: only used with keystore"],
        ),
        ('key_env = "UNSET"', ["attester.key_env: environment variable UNSET is not set"]),
        ('key_env = "EMPTY"', ["attester.key_env: environment variable EMPTY is empty"]),
        (
            'key_env = "1BAD-NAME"',
            ["attester.key_env: not an environment variable name (letters, digits and _, not starting with a digit)"],
        ),
        ('key_file = "missing.key"', ["attester.key_file: file {tmp}/missing.key does not exist"]),
        ('key_file = "folder"', ["attester.key_file: {tmp}/folder is not a regular file"]),
        ('key_file = ""', ["attester.key_file: must not be empty"]),
        (
            'keystore = "gone.json"\npassword_file = "gone.pw"',
            [
                "attester.keystore: file {tmp}/gone.json does not exist",
                "attester.password_file: file {tmp}/gone.pw does not exist",
            ],
        ),
    ],
)
def test_key_source_rules(tmp_path: Path, attester: str, expected: list[str]) -> None:
    (tmp_path / "folder").mkdir()
    for name in ("ks.json", "pw"):
        write_secret(tmp_path / name, "{}")
    text = _replace(MINIMAL, 'key_env = "ATTESTER_KEY"', attester)
    environ = {**ENV, "EMPTY": "", "PW": "x"}
    assert sorted(_problems(tmp_path, text, environ)) == sorted(e.format(tmp=tmp_path) for e in expected)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of their mode")
def test_unreadable_key_file(tmp_path: Path) -> None:
    key = tmp_path / "attester.key"
    write_secret(key, KEY0)
    key.chmod(0)
    text = _replace(MINIMAL, 'key_env = "ATTESTER_KEY"', 'key_file = "attester.key"')
    assert _problems(tmp_path, text) == (f"attester.key_file: file {key} is not readable by this user",)


@pytest.mark.parametrize(
    ("line", "where"),
    [
        (f'private_key = "{KEY0}"', "attester.private_key"),
        (f'key = "{KEY0[2:]}"', "attester.key"),
        ('password = "hunter2-hunter2"', "attester.password"),
        ('secret = "hunter2-hunter2"', "attester.secret"),
        (
            'mnemonic = "test test test test test test test test test test test junk"',
            "attester.mnemonic",
        ),
        ('signing-key = ["hunter2-hunter2"]', "attester.signing-key"),
    ],
)
def test_plaintext_secrets_are_refused(tmp_path: Path, line: str, where: str) -> None:
    text = _replace(MINIMAL, 'key_env = "ATTESTER_KEY"', f'key_env = "ATTESTER_KEY"\n{line}')
    (problem,) = _problems(tmp_path, text)
    assert problem == (
        f"{where}: plaintext secret refused: secrets never go in the config file; "
        "use key_file, key_env or keystore with password_file / password_env instead"
    )
    for secret in (KEY0[2:], "hunter2", "junk"):
        assert secret not in problem


def test_private_key_values_are_refused_anywhere_and_never_echoed(tmp_path: Path) -> None:
    """A 32-byte hex value in any field (here: an env var name, a path, an address list, an
    RPC URL, a chain name, and a top-level secret-named key) is refused, and no problem, nor
    str() / repr() of the error, contains it."""
    text = _replace(MINIMAL, 'key_env = "ATTESTER_KEY"', f'key_env = "{KEY0}"')
    text = _replace(text, 'key_env = "SENDER_KEY"', f'key_file = "{KEY1[2:]}"')
    text = _replace(text, '"http://127.0.0.1:8545"', f'"{KEY1}"')
    text = _replace(text, 'source = "source"', f'source = "{KEY0.upper().replace("0X", "0x")}"')
    text = _replace(text, f'vault = "{VAULT}"\n', f'vault = "{VAULT}"\naccounts = ["{KEY1}"]\n')
    text = f'private_key = "{KEY0}"\n' + text
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), environ=ENV)
    error = info.value
    assert [p.split(":")[0] for p in error.problems] == [
        "private_key",
        "attester.key_env",
        "chains.source.rpc[0]",
        "destinations.destination.sender.key_file",
        "pairs[0].source",
        "pairs[0].accounts[0]",
    ]
    assert all("use key_file, key_env or keystore" in p for p in error.problems)
    rendered = "\n".join([str(error), repr(error), *error.problems]).lower()
    for key in (KEY0, KEY1):
        assert key[2:].lower() not in rendered


def test_many_problems_are_reported_at_once_with_key_paths(tmp_path: Path) -> None:
    text = f"""
[metrics]
listen = "nowhere"
[attester]
keystore = "attester.json"
[chains.source]
chain_id = 1
rpc = ["ws://127.0.0.1:8546"]
finality = "latest"
[chains.destination]
chain_id = 1
rpc = ["http://127.0.0.1:9545"]
[destinations.destination]
verifier = "0x1234"
settlement = "{SETTLEMENT}"
[destinations.destination.sender]
key_env = "NOT_SET"
[[pairs]]
source = "source"
destination = "dest"
vault = "{VAULT.lower().replace("a", "A", 1)}"
every_blocks = 0
colour = "blue"
"""
    problems = _problems(tmp_path, text, environ={})
    assert [p.split(": ")[0] for p in problems] == [
        "metrics.listen",
        "attester.keystore",
        "attester",
        "chains.source.rpc[0]",
        "chains.source.finality",
        "chains.destination.chain_id",
        "destinations.destination.verifier",
        "destinations.destination.sender.key_env",
        "pairs[0].vault",
        "pairs[0].every_blocks",
        "pairs[0].colour",
        "pairs[0].destination",
    ]


def test_toml_syntax_error_is_one_problem_with_line_and_column(tmp_path: Path) -> None:
    text = MINIMAL.replace("chain_id = 10", "chain_id = = 10")
    problems = _problems(tmp_path, text)
    line = text.splitlines().index("chain_id = = 10") + 1
    assert problems == (f"{tmp_path / 'relayer.toml'}: TOML syntax error: line {line}, column 12: Invalid value",)


def test_toml_syntax_error_never_echoes_a_secret(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, f'[attester]\nkey_env = "ATTESTER_KEY" {KEY0}\n')
    assert "TOML syntax error: line 2" in problem
    assert KEY0[2:] not in problem


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert info.value.problems == (f"{tmp_path / 'absent.toml'}: file does not exist",)
    (tmp_path / "bad.toml").write_bytes(b"a = 1\n\xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "bad.toml")
    assert info.value.problems == (f"{tmp_path / 'bad.toml'}: not UTF-8 (byte offset 6)",)
    assert isinstance(info.value, RelayerError)


# --- loading keys ------------------------------------------------------------------------


def test_key_source_load_key_file_env_and_keystores(tmp_path: Path) -> None:
    write_secret(tmp_path / "k", f"  {KEY0}\n")
    assert KeySource(key_file=tmp_path / "k").load().address == ADDR0
    assert KeySource(key_env="K").load({"K": KEY1[2:]}).address == ADDR1
    _fast_keystore(tmp_path / "ks.json", KEY1, "pass word\n")
    write_secret(tmp_path / "pw", "pass word\n\n")  # trailing CR/LF is not part of the password
    write_secret(tmp_path / "pw2", "pass word\n")
    with pytest.raises(KeyLoadError, match="wrong password"):
        KeySource(keystore=tmp_path / "ks.json", password_file=tmp_path / "pw").load()
    _fast_keystore(tmp_path / "ks2.json", KEY1, "pass word")
    assert KeySource(keystore=tmp_path / "ks2.json", password_file=tmp_path / "pw").load().address == ADDR1
    assert KeySource(keystore=tmp_path / "ks2.json", password_env="P").load({"P": "pass word"}).address == ADDR1
    assert KeySource(keystore=tmp_path / "ks2.json", password_file=tmp_path / "pw").describe() == (
        f"keystore {tmp_path / 'ks2.json'}"
    )


def test_key_source_load_refuses_ambiguous_sources(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match=r"exactly one of key_file, key_env, keystore is needed \(got 0\)"):
        KeySource().load({})
    with pytest.raises(KeyLoadError, match=r"\(got 2\)"):
        KeySource(key_env="A", key_file=tmp_path / "k").load({"A": KEY0})
    with pytest.raises(KeyLoadError, match="exactly one of password_file, password_env"):
        KeySource(keystore=tmp_path / "ks.json").load({})


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (KEY0[:-2], "not a 32-byte hex private key"),
        (KEY0 + "00", "not a 32-byte hex private key"),
        (KEY0[:-1] + "g", "not a 32-byte hex private key"),
        ("0x" + "00" * 32, "outside the secp256k1 range"),
        (hex(keys.SECP256K1_ORDER), "outside the secp256k1 range"),
        ("", "not a 32-byte hex private key"),
    ],
)
def test_bad_keys_are_refused_without_echo(tmp_path: Path, content: str, reason: str) -> None:
    write_secret(tmp_path / "k", content)
    for source in (KeySource(key_file=tmp_path / "k"), KeySource(key_env="K")):
        with pytest.raises(KeyLoadError) as info:
            source.load({"K": content})
        error = info.value
        assert reason in error.reason
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__
        if len(content) > 8:
            assert content[4:-4] not in str(error) + repr(error)


def test_key_load_failures_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError) as info:
        KeySource(key_env="NOPE").load({})
    assert (info.value.source, info.value.reason) == (
        "key_env NOPE",
        "environment variable is not set",
    )
    with pytest.raises(KeyLoadError, match="password_env P: environment variable is not set"):
        KeySource(keystore=tmp_path / "ks.json", password_env="P").load({})
    with pytest.raises(KeyLoadError, match=f"key_file {tmp_path}/absent: file does not exist"):
        KeySource(key_file=tmp_path / "absent").load()
    with pytest.raises(KeyLoadError, match="is a directory"):
        KeySource(key_file=tmp_path).load()
    write_secret(tmp_path / "pw", "pw")
    write_secret(tmp_path / "ks.json", "{not json")
    with pytest.raises(KeyLoadError, match=r"not JSON \(line 1, column 2\)"):
        KeySource(keystore=tmp_path / "ks.json", password_file=tmp_path / "pw").load()
    write_secret(tmp_path / "ks.json", '{"address": "00"}')
    with pytest.raises(KeyLoadError, match="no crypto object"):
        keys.read_keystore(tmp_path / "ks.json", "pw")


def test_keystore_wrong_password_and_address_mismatch(tmp_path: Path) -> None:
    path = _fast_keystore(tmp_path / "ks.json", KEY0, "right")
    with pytest.raises(KeyLoadError) as info:
        keys.read_keystore(path, "wrong-password-value")
    assert info.value.reason == "wrong password (MAC mismatch)"
    assert "wrong-password-value" not in str(info.value) and "right" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    data = json.loads(path.read_text())
    data["address"] = ADDR1[2:].lower()
    write_secret(path, json.dumps(data))
    with pytest.raises(KeyLoadError, match="address field does not match"):
        keys.read_keystore(path, "right")
    data["crypto"]["kdf"] = "argon2"
    write_secret(path, json.dumps(data))
    with pytest.raises(KeyLoadError, match="unsupported or corrupt keystore"):
        keys.read_keystore(path, "right")


def test_write_keystore_is_private_atomic_and_does_not_clobber(tmp_path: Path) -> None:
    account = Account.from_key(KEY0)
    path = keys.write_keystore(account, tmp_path / "a.json", "pw", kdf="pbkdf2", iterations=2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["crypto"]["kdf"] == "pbkdf2" and data["address"].lower() == ADDR0[2:].lower()
    assert KEY0[2:] not in path.read_text()
    assert keys.read_keystore(path, "pw").address == ADDR0
    with pytest.raises(FileExistsError):
        keys.write_keystore(Account.from_key(KEY1), path, "pw", kdf="pbkdf2", iterations=2)
    assert keys.read_keystore(path, "pw").address == ADDR0
    keys.write_keystore(Account.from_key(KEY1), path, "pw2", kdf="pbkdf2", iterations=2, overwrite=True)
    assert keys.read_keystore(path, "pw2").address == ADDR1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temporary files left


def test_write_keystore_scrypt_default_is_readable(tmp_path: Path) -> None:
    account = Account.from_key(KEY1)
    path = keys.write_keystore(account, tmp_path / "s.json", "pw", iterations=2)  # scrypt, n=2: fast
    assert json.loads(path.read_text())["crypto"]["kdf"] == "scrypt"
    assert keys.read_keystore(path, "pw").address == ADDR1


def test_notes_name_a_source_chain_without_a_second_endpoint_host(tmp_path: Path) -> None:
    """Not an error: a single-endpoint source works, with the weaker guarantee (its proven block
    hashes are not confirmed by a second endpoint); check-config and the daemon say so."""
    (single,) = notes(load_config(_write(tmp_path, MINIMAL), environ=ENV))
    assert single.startswith("chains.source.rpc: one endpoint host")
    same_host = _replace(
        MINIMAL, 'rpc = ["http://127.0.0.1:8545"]', 'rpc = ["http://127.0.0.1:8545/a", "http://127.0.0.1:8545/b"]'
    )
    assert len(notes(load_config(_write(tmp_path, same_host), environ=ENV))) == 1  # two keys, one provider
    two = _replace(MINIMAL, 'rpc = ["http://127.0.0.1:8545"]', 'rpc = ["http://127.0.0.1:8545", "https://b.example/k"]')
    assert notes(load_config(_write(tmp_path, two), environ=ENV)) == []  # the destination is no source: no note


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_key_files_open_to_group_or_others_are_refused_naming_the_fix(tmp_path: Path, mode: int) -> None:
    """As ssh refuses an unprotected private key: by mode, so also when running as root."""
    key, password = tmp_path / "sender.key", tmp_path / "pw"
    write_secret(key, KEY0)
    write_secret(password, "pw")
    keystore = _fast_keystore(tmp_path / "ks.json", KEY0, "pw")
    for path, load in ((key, keys.read_key_file), (password, keys.read_password_file),
                       (keystore, lambda p: keys.read_keystore(p, "pw"))):  # fmt: skip
        path.chmod(mode)
        with pytest.raises(KeyLoadError) as caught:
            load(path)
        assert str(path) in str(caught.value) and f"mode {mode:04o}" in str(caught.value)
        assert f"chmod 600 {path}" in str(caught.value) and KEY0[2:] not in str(caught.value)
        path.chmod(0o600)
        load(path)  # private: accepted
    key.chmod(mode)
    text = _replace(MINIMAL, 'key_env = "ATTESTER_KEY"', 'key_file = "sender.key"')
    assert _problems(tmp_path, text) == (
        f"attester.key_file: file {key} is accessible by group or others (mode {mode:04o}): a key file must be "
        f"private to its owner; run `chmod 600 {key}`",
    )
