"""Unit tests for relayer.config and relayer.keys: TOML -> frozen typed config, every problem
reported at once with its key path, secrets refused inline and never echoed, key loading.

Valid configurations and the validation rules; key sources and key loading are in
test_config_keys.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from relayer.config import (
    ChainConfig,
    CommitteeConfig,
    Config,
    ConfigError,
    DestinationConfig,
    KeySource,
    PairConfig,
    load_config,
)
from tests.relayer.config_files import (
    ADDR0,
    ADDR1,
    ENV,
    EXAMPLE,
    KEY0,
    KEY1,
    MINIMAL,
    SETTLEMENT,
    VAULT,
    VERIFIER,
    _fast_keystore,
    _problems,
    _replace,
    _write,
    write_secret,
)

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
