"""Unit tests for relayer.config and relayer.keys: TOML -> frozen typed config, every problem
reported at once with its key path, secrets refused inline and never echoed, key loading."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import pytest
from eth_account import Account
from eth_typing import ChecksumAddress

from relayer import keys
from relayer.config import (
    ChainConfig,
    CommitteeConfig,
    Config,
    ConfigError,
    DestinationConfig,
    KeyLoadError,
    KeySource,
    PairConfig,
    load_config,
    notes,
)
from relayer.config.render import ChainTable, DestinationTable, PairTable, render_config
from relayer.errors import RelayerError

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config" / "relayer.example.toml"

# anvil's public dev keys (accounts 0 and 1 of the "test test ... junk" mnemonic).
KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDR0 = cast(ChecksumAddress, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
KEY1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ADDR1 = cast(ChecksumAddress, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
VAULT = cast(ChecksumAddress, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
VERIFIER = cast(ChecksumAddress, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
SETTLEMENT = cast(ChecksumAddress, "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0")
ENV = {"ATTESTER_KEY": KEY0, "SENDER_KEY": KEY1}

MINIMAL = "\n" + render_config(
    attester=KeySource(key_env="ATTESTER_KEY"),
    chains=[
        ChainTable("source", 1, ["http://127.0.0.1:8545"]),
        ChainTable("destination", 10, ["https://rpc.example/v1"]),
    ],
    destinations=[DestinationTable("destination", SETTLEMENT, KeySource(key_env="SENDER_KEY"))],
    pairs=[PairTable("source", "destination", VAULT)],
)
"""Every required key and nothing else (each table's defaults apply), as relayer.config.render writes it."""


def write_secret(path: Path, text: str) -> None:
    """A key, password or keystore file, private to its owner (as the relayer requires)."""
    path.write_text(text)
    path.chmod(0o600)


def _write(folder: Path, text: str, name: str = "relayer.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(folder: Path, text: str, environ: Mapping[str, str] = ENV) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        load_config(_write(folder, text), environ=environ)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _fast_keystore(path: Path, key: str, password: str) -> Path:
    return keys.write_keystore(Account.from_key(key), path, password, kdf="pbkdf2", iterations=2)


# --- valid configurations ----------------------------------------------------------------


def test_minimal_config_takes_every_default(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL), environ=ENV)
    assert config == Config(
        path=tmp_path / "relayer.toml",
        store_path=tmp_path / "relayer.sqlite",
        metrics_host="127.0.0.1",
        metrics_port=9464,
        attester=KeySource(key_env="ATTESTER_KEY"),
        chains={
            "source": ChainConfig("source", 1, ("http://127.0.0.1:8545",), "finalized", 0, 2.0, 10.0),
            "destination": ChainConfig("destination", 10, ("https://rpc.example/v1",), "finalized", 0, 2.0, 10.0),
        },
        destinations={
            "destination": DestinationConfig(
                "destination",
                SETTLEMENT,
                KeySource(key_env="SENDER_KEY"),
                8_000_000,
                2_000,
                120.0,
            )
        },
        pairs=(PairConfig("source", "destination", VAULT, 0, 0, 10, (), 256),),
    )
    assert list(config.chains) == ["source", "destination"]
    with pytest.raises(TypeError):
        config.chains["x"] = config.chains["source"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.pairs[0].every_blocks = 1  # type: ignore[misc]
    assert config.attester.load(ENV).address == ADDR0
    assert config.destinations["destination"].sender.load(ENV).address == ADDR1


def test_every_key_set_round_trips_into_typed_objects(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    write_secret(tmp_path / "secrets" / "attester.key", KEY0 + "\n")
    _fast_keystore(tmp_path / "sender.json", KEY1, "correct horse")
    write_secret(tmp_path / "sender.pw", "correct horse\n")
    text = f"""
[relayer]
store = "state/relayer.db"
[metrics]
listen = "[::1]:0"
[attester]
key_file = "secrets/attester.key"
[chains.l1]
chain_id = 11155111
rpc = ["https://a.example", "http://b.example:8545/rpc"]
finality = "confirmations"
confirmations = 12
poll_interval_seconds = 12
rpc_timeout_seconds = 2.5
[chains.l2-dest]
chain_id = 31337
rpc = ["http://127.0.0.1:8545"]
finality = "safe"
[destinations.l2-dest]
settlement = "{SETTLEMENT.upper().replace("0X", "0x")}"
max_gas_per_batch = 3000000
max_accounts_per_batch = 5
receipt_timeout_seconds = 30.5
max_in_flight = 7
min_change_wei = 1000
refresh_before_expiry_seconds = 90
max_epoch_attempts = 2
fee_budget_multiple = 2.5
[destinations.l2-dest.sender]
keystore = "{tmp_path / "sender.json"}"
password_file = "sender.pw"
[[pairs]]
source = "l1"
destination = "l2-dest"
vault = "{VAULT}"
vault_deploy_block = 1234
collateral_slot = 3
every_blocks = 1
accounts = ["{ADDR0.lower()}", "{ADDR1}"]
proof_chunk_size = 1024
[chains.l1b]
chain_id = 10
rpc = ["https://c.example"]
[[pairs]]
source = "l1b"
destination = "l2-dest"
vault = "{SETTLEMENT}"
proof_chunk_size = 1
"""
    config = load_config(_write(tmp_path, text), environ={})
    assert config.store_path == tmp_path / "state" / "relayer.db"
    assert (config.metrics_host, config.metrics_port) == ("::1", 0)
    assert config.attester == KeySource(key_file=tmp_path / "secrets" / "attester.key")
    assert config.chains["l1"] == ChainConfig(
        "l1",
        11155111,
        ("https://a.example", "http://b.example:8545/rpc"),
        "confirmations",
        12,
        12.0,
        2.5,
    )
    assert config.chains["l2-dest"].finality == "safe"
    assert isinstance(config.chains["l1"].poll_interval_seconds, float)
    destination = config.destinations["l2-dest"]
    assert destination.settlement == SETTLEMENT  # checksummed
    assert destination.sender == KeySource(keystore=tmp_path / "sender.json", password_file=tmp_path / "sender.pw")
    assert (destination.max_gas_per_batch, destination.max_accounts_per_batch) == (3_000_000, 5)
    assert destination.receipt_timeout_seconds == 30.5
    assert (destination.max_in_flight, destination.min_change_wei) == (7, 1000)
    assert (destination.refresh_before_expiry_seconds, destination.max_epoch_attempts) == (90, 2)
    assert destination.fee_budget_multiple == 2.5
    assert config.pairs[0] == PairConfig("l1", "l2-dest", VAULT, 1234, 3, 1, (ADDR0, ADDR1), 1024)
    assert config.pairs[1].vault == SETTLEMENT and config.pairs[1].proof_chunk_size == 1
    assert config.attester.load().address == ADDR0
    assert destination.sender.load().address == ADDR1


def test_example_config_has_only_missing_file_problems() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, environ={"RELAYER_SENDER_KEY": KEY1})
    assert info.value.problems == (
        "attester.keystore: file /run/credentials/relayer.service/attester.json does not exist",
        "attester.password_file: file /run/credentials/relayer.service/attester-password does not exist",
    )


def test_example_config_loads_when_its_files_exist(tmp_path: Path) -> None:
    _fast_keystore(tmp_path / "attester.json", KEY0, "pw")
    write_secret(tmp_path / "attester-password", "pw")
    text = EXAMPLE.read_text()
    text = _replace(text, "/run/credentials/relayer.service/attester.json", str(tmp_path / "attester.json"))
    text = _replace(text, "/run/credentials/relayer.service/attester-password", "attester-password")
    config = load_config(_write(tmp_path, text), environ={"RELAYER_SENDER_KEY": KEY1})
    assert [p.source for p in config.pairs] == ["source"]
    assert config.chains["destination"].confirmations == 10
    assert config.attester.load().address == ADDR0
    assert config.destinations["destination"].sender.load({"RELAYER_SENDER_KEY": KEY1}).address == ADDR1


def test_example_config_documents_every_key() -> None:
    """Every schema field appears in the example with a comment above it."""
    lines = EXAMPLE.read_text().splitlines()
    assigned = {line.split("=")[0].strip() for line in lines if "=" in line and not line.startswith("#")}
    fields = {
        f.name for cls in (ChainConfig, DestinationConfig, PairConfig, CommitteeConfig) for f in dataclasses.fields(cls)
    }
    fields -= {"name", "chain", "sender", "directory"}
    assert fields <= assigned, fields - assigned
    assert "# directory = " in EXAMPLE.read_text()  # optional, shown commented out (it must exist)
    assert "[destinations.destination.sender]" in EXAMPLE.read_text()
    assert {"store", "listen", "keystore", "password_file", "key_env"} <= assigned


# --- validation rules --------------------------------------------------------------------


def test_unknown_keys_anywhere_are_errors(tmp_path: Path) -> None:
    text = MINIMAL + "\n[extra]\nx = 1\n"
    text = _replace(
        text,
        "[attester]\n",
        "[relayer]\nstor = 'a'\n[metrics]\nport = 1\n[attester]\nkeyfile = 'x'\n",
    )
    text = _replace(text, "chain_id = 1\n", "chain_id = 1\nblock_time = 12\n")
    text = _replace(text, f'settlement = "{SETTLEMENT}"\n', f'settlement = "{SETTLEMENT}"\nowner = 1\n')
    text = _replace(text, 'key_env = "SENDER_KEY"\n', 'key_env = "SENDER_KEY"\nkind = "x"\n')
    text = _replace(text, f'vault = "{VAULT}"\n', f'vault = "{VAULT}"\nslot = 0\n')
    assert set(_problems(tmp_path, text)) == {
        "relayer.stor: unknown key",
        "metrics.port: unknown key",
        "attester.keyfile: unknown key",
        "chains.source.block_time: unknown key",
        "destinations.destination.owner: unknown key",
        "destinations.destination.sender.kind: unknown key",
        "pairs[0].slot: unknown key",
        "extra: unknown key",
    }


def test_wrong_types_are_reported_with_key_paths(tmp_path: Path) -> None:
    text = _replace(MINIMAL, "chain_id = 1\n", 'chain_id = "1"\n')
    text = _replace(text, 'rpc = ["https://rpc.example/v1"]', 'rpc = "https://rpc.example/v1"')
    text = _replace(
        text,
        f'vault = "{VAULT}"\n',
        f'vault = "{VAULT}"\nevery_blocks = true\naccounts = "{ADDR0}"\n',
    )
    text = _replace(text, "[chains.destination]\n", "[chains.destination]\npoll_interval_seconds = '2'\n")
    text = _replace(text, 'key_env = "SENDER_KEY"', "key_env = 7")
    assert set(_problems(tmp_path, text)) == {
        "chains.source.chain_id: expected an integer, got a string",
        "chains.destination.rpc: expected an array of http(s) URLs, got a string",
        "chains.destination.poll_interval_seconds: expected a number of seconds, got a string",
        "destinations.destination.sender.key_env: expected a string, got an integer",
        "pairs[0].every_blocks: expected an integer, got a boolean",
        "pairs[0].accounts: expected an array of addresses, got a string",
    }


def test_tables_of_the_wrong_shape(tmp_path: Path) -> None:
    text = _replace(
        MINIMAL,
        "[chains.source]\nchain_id = 1\n",
        "[chains]\nsource = 1\n[chains.other]\nchain_id = 1\n",
    )
    text = _replace(text, "[[pairs]]", "[pairs]")
    problems = _problems(tmp_path, text)
    assert "chains.source: expected a table, got an integer" in problems
    assert "pairs: expected an array of tables ([[pairs]]), got a table" in problems


def test_missing_required_sections_and_keys(tmp_path: Path) -> None:
    assert set(_problems(tmp_path, "[relayer]\n")) == {
        "attester: missing (required)",
        "chains: missing (required)",
        "destinations: missing (required)",
        "pairs: missing (required)",
    }
    text = "pairs = []\n[attester]\nkey_env = 'ATTESTER_KEY'\n[chains]\n[destinations]\n"
    assert set(_problems(tmp_path, text)) == {
        "chains: at least one [chains.<name>] table is required",
        "destinations: at least one [destinations.<chain name>] table is required",
        "pairs: at least one [[pairs]] table is required",
    }
    text = _replace(MINIMAL, "chain_id = 10\n", "")
    text = _replace(text, f'vault = "{VAULT}"\n', "")
    assert set(_problems(tmp_path, text)) == {
        "chains.destination.chain_id: missing (required)",
        "pairs[0].vault: missing (required)",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0x5FbDB2315678afecb367f032d93F642f64180aa", "not a 20-byte hex address"),  # 19.5 bytes
        ("5FbDB2315678afecb367f032d93F642f64180aa3", "not a 20-byte hex address"),  # no 0x
        ("0x5FbDB2315678afecb367f032d93F642f64180aaZ", "not a 20-byte hex address"),
        ("0x5fbDB2315678afecb367f032d93F642f64180aa3", "bad EIP-55 checksum"),  # one letter flipped
        ("0x0000000000000000000000000000000000000000", "the zero address"),
    ],
)
def test_malformed_addresses(tmp_path: Path, value: str, message: str) -> None:
    (problem,) = _problems(tmp_path, _replace(MINIMAL, f'vault = "{VAULT}"', f'vault = "{value}"'))
    assert problem.startswith(f"pairs[0].vault: {message}")


@pytest.mark.parametrize("spelling", [VAULT.lower(), "0x" + VAULT[2:].upper(), "0X" + VAULT[2:].lower()])
def test_single_case_addresses_are_normalised_to_checksum(tmp_path: Path, spelling: str) -> None:
    config = load_config(_write(tmp_path, _replace(MINIMAL, VAULT, spelling)), environ=ENV)
    assert config.pairs[0].vault == VAULT


def test_accounts_are_checked_one_by_one(tmp_path: Path) -> None:
    accounts = f'accounts = ["{ADDR0}", "0x12", "{ADDR0.lower()}", 5]\n'
    text = _replace(MINIMAL, f'vault = "{VAULT}"\n', f'vault = "{VAULT}"\n{accounts}')
    assert _problems(tmp_path, text) == (
        "pairs[0].accounts[1]: not a 20-byte hex address (expected 0x followed by 40 hex digits)",
        "pairs[0].accounts[2]: duplicate of pairs[0].accounts[0]",
        "pairs[0].accounts[3]: expected a 0x-hex address string, got an integer",
    )


def test_duplicate_chain_ids(tmp_path: Path) -> None:
    text = _replace(MINIMAL, "chain_id = 10\n", "chain_id = 1\n")
    assert _problems(tmp_path, text) == ("chains.destination.chain_id: chain id 1 is also used by chains.source",)


def test_pairs_must_name_known_chains_and_destinations(tmp_path: Path) -> None:
    text = _replace(MINIMAL, 'source = "source"', 'source = "mainnet"')
    text += f'[[pairs]]\nsource = "source"\ndestination = "source"\nvault = "{VAULT}"\n'
    assert _problems(tmp_path, text) == (
        "pairs[0].source: no chain named 'mainnet' (no [chains.mainnet])",
        "pairs[1].destination: no destination named 'source' (no [destinations.source])",
    )


def test_a_pair_may_relay_a_vault_on_the_destinations_own_chain(tmp_path: Path) -> None:
    """A vault on the destination chain itself (EIP-2935-anchored, `relayer devnet --anchor eip2935`)."""
    text = _replace(
        MINIMAL,
        "[[pairs]]",
        f'[destinations.source]\nsettlement = "{SETTLEMENT}"\nsender = {{ key_env = "SENDER_KEY" }}\n[[pairs]]',
    )
    text = _replace(text, 'destination = "destination"\nvault', 'destination = "source"\nvault')
    config = load_config(_write(tmp_path, text), environ=ENV)
    assert [(p.source, p.destination) for p in config.pairs] == [("source", "source")]


def test_duplicate_pairs(tmp_path: Path) -> None:
    pair = MINIMAL[MINIMAL.index("[[pairs]]") :]
    text = MINIMAL + pair.replace(VAULT, VAULT.lower()) + pair.replace(VAULT, SETTLEMENT)
    # a second vault on the same route is refused too: one vault per source chain and destination
    assert _problems(tmp_path, text) == (
        "pairs[1]: same source and destination as pairs[0] (one vault per source chain and destination)",
        "pairs[2]: same source and destination as pairs[0] (one vault per source chain and destination)",
    )


def test_destination_must_be_a_chain(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + f"""
[destinations.arbitrum]
settlement = "{SETTLEMENT}"
sender = {{ key_env = "SENDER_KEY" }}
"""
    )
    assert _problems(tmp_path, text) == ("destinations.arbitrum: not a chain: there is no [chains.arbitrum]",)


@pytest.mark.parametrize("verifier", [SETTLEMENT, VERIFIER])
def test_the_removed_verifier_key_is_refused_naming_settlement(tmp_path: Path, verifier: str) -> None:
    """MarginSettlement is its own EpochVerifier: the destination is one address, `settlement`.
    An old config that still names `verifier` (even the settlement's own address) is refused
    with a message that says what to write instead, not silently read."""
    text = _replace(MINIMAL, "[destinations.destination]\n", f'[destinations.destination]\nverifier = "{verifier}"\n')
    assert _problems(tmp_path, text) == (
        "destinations.destination.verifier: removed: MarginSettlement is its own EpochVerifier; give its "
        "address as `settlement` only and delete `verifier`",
    )


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:8546",
        "ftp://rpc.example",
        "localhost:8545",
        "https://",
        "http://host:port",
        " https://rpc.example",
        "https://rpc.example/ key",
    ],
)
def test_rpc_urls_must_be_http(tmp_path: Path, url: str) -> None:
    text = _replace(MINIMAL, '"http://127.0.0.1:8545"', json.dumps(url))
    assert _problems(tmp_path, text) == (
        "chains.source.rpc[0]: not an http(s) URL (expected http://host[:port]/... or https://...)",
    )


def test_rpc_list_rules_and_urls_are_never_echoed(tmp_path: Path) -> None:
    secret_url = "wss://mainnet.example/v3/apikey0123456789"
    text = _replace(
        MINIMAL,
        '["http://127.0.0.1:8545"]',
        f'["http://a.example", "{secret_url}", "http://a.example"]',
    )
    text = _replace(text, '["https://rpc.example/v1"]', "[]")
    problems = _problems(tmp_path, text)
    assert problems == (
        "chains.source.rpc[1]: not an http(s) URL (expected http://host[:port]/... or https://...)",
        "chains.source.rpc[2]: duplicate of chains.source.rpc[0]",
        "chains.destination.rpc: at least one RPC URL is required",
    )
    assert "apikey" not in "\n".join(problems)


def test_finality_and_confirmations(tmp_path: Path) -> None:
    text = _replace(MINIMAL, "chain_id = 1\n", 'chain_id = 1\nfinality = "latest"\n')
    text = _replace(text, "chain_id = 10\n", 'chain_id = 10\nfinality = "confirmations"\n')
    assert _problems(tmp_path, text) == (
        "chains.source.finality: must be one of 'finalized', 'safe', 'confirmations', 'head'",
        'chains.destination.confirmations: must be >= 1 when finality = "confirmations"',
    )
    # confirmations is ignored (but kept) unless finality = "confirmations"
    text = _replace(MINIMAL, "chain_id = 1\n", "chain_id = 1\nconfirmations = 5\n")
    assert load_config(_write(tmp_path, text), environ=ENV).chains["source"].confirmations == 5


@pytest.mark.parametrize(
    ("table_line", "key", "value", "message"),
    [
        ("chain_id = 1\n", "chains.source.chain_id", "0", "must be >= 1"),
        ("chain_id = 1\n", "chains.source.confirmations", "-1", "must be >= 0"),
        (
            "chain_id = 1\n",
            "chains.source.poll_interval_seconds",
            "0",
            "must be a finite number > 0 (seconds)",
        ),
        (
            "chain_id = 1\n",
            "chains.source.rpc_timeout_seconds",
            "nan",
            "must be a finite number > 0 (seconds)",
        ),
        (
            "chain_id = 1\n",
            "chains.source.rpc_timeout_seconds",
            "inf",
            "must be a finite number > 0 (seconds)",
        ),
        ("settlement =", "destinations.destination.max_gas_per_batch", "20999", "must be >= 21000"),
        ("settlement =", "destinations.destination.max_accounts_per_batch", "0", "must be >= 1"),
        ("settlement =", "destinations.destination.max_accounts_per_batch", "10001", "must be <= 10000"),
        ("settlement =", "destinations.destination.max_in_flight", "0", "must be >= 1"),
        ("settlement =", "destinations.destination.min_change_wei", "-1", "must be >= 0"),
        ("settlement =", "destinations.destination.refresh_before_expiry_seconds", "2592001", "must be <= 2592000"),
        ("settlement =", "destinations.destination.max_epoch_attempts", "0", "must be >= 1"),
        ("settlement =", "destinations.destination.fee_budget_multiple", "0.5", "must be a finite number >= 1"),
        ("settlement =", "destinations.destination.fee_budget_multiple", '"2"', "expected a number, got a string"),
        (
            "settlement =",
            "destinations.destination.receipt_timeout_seconds",
            "-1.5",
            "must be a finite number > 0 (seconds)",
        ),
        ("vault =", "pairs[0].every_blocks", "0", "must be >= 1"),
        ("vault =", "pairs[0].proof_chunk_size", "0", "must be >= 1"),
        ("vault =", "pairs[0].proof_chunk_size", "1025", "must be <= 1024"),
        ("vault =", "pairs[0].vault_deploy_block", "-1", "must be >= 0"),
        ("vault =", "pairs[0].collateral_slot", "-1", "must be >= 0"),
    ],
)
def test_numeric_ranges(tmp_path: Path, table_line: str, key: str, value: str, message: str) -> None:
    name = key.rsplit(".", 1)[1]
    if table_line.startswith(name):
        text = _replace(MINIMAL, table_line, f"{name} = {value}\n")
    else:
        text = _replace(MINIMAL, table_line, f"{name} = {value}\n{table_line}")
    assert _problems(tmp_path, text) == (f"{key}: {message}",)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("[::]:9464", ("::", 9464)),
        ("9464", None),
        (":9464", None),
        ("127.0.0.1:65536", None),
        ("127.0.0.1:-1", None),
        ("::1:9464", None),
        ("[::1]9464", None),
        ("127.0.0.1:", None),
    ],
)
def test_metrics_listen(tmp_path: Path, listen: str, expected: tuple[str, int] | None) -> None:
    text = f'[metrics]\nlisten = "{listen}"\n' + MINIMAL
    if expected is None:
        (problem,) = _problems(tmp_path, text)
        assert problem.startswith('metrics.listen: expected "host:port"')
    else:
        config = load_config(_write(tmp_path, text), environ=ENV)
        assert (config.metrics_host, config.metrics_port) == expected


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
