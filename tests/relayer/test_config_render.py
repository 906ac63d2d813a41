"""relayer.config.render: the one `relayer.toml` template (devnet, bench, tests) writes what the
loader (relayer.config.load_config) reads back, value for value; it refuses what TOML cannot
hold as given rather than writing a file the loader would misread."""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayer import devnet
from relayer.config import ChainConfig, CommitteeConfig, KeeperConfig, KeySource, PairConfig, load_config
from relayer.config.render import ChainTable, CommitteeTable, DestinationTable, PairTable, render_config
from tests.relayer.config_files import ADDR0, ENV, SETTLEMENT, VAULT, write_secret

SOURCE = ChainTable(
    "l1",
    1,
    ["https://a.example/rpc", "http://127.0.0.1:8545"],
    ws="ws://127.0.0.1:8545",
    finality="confirmations",
    confirmations=3,
    poll_interval_seconds=0.25,
    options={"rpc_timeout_seconds": 2.5},
)
DESTINATION = ChainTable("l2-dest", 10, ["http://127.0.0.1:9545"], finality="head", poll_interval_seconds=1)


def test_every_table_round_trips_through_the_loader(tmp_path: Path) -> None:
    write_secret(tmp_path / "sender.key", "0x" + "22" * 32 + "\n")
    text = render_config(
        comment="first line\nsecond line",
        store="state/relayer.sqlite",
        metrics_listen="127.0.0.1:0",
        keeper_listen="127.0.0.1:9470",
        attester=KeySource(key_env="ATTESTER_KEY"),
        chains=[SOURCE, DESTINATION],
        destinations=[
            DestinationTable(
                "l2-dest",
                SETTLEMENT,
                KeySource(key_file=Path("sender.key")),
                options={"max_accounts_per_batch": 7, "min_change_wei": 0, "fee_budget_multiple": 2.5},
            )
        ],
        pairs=[
            PairTable(
                "l1",
                "l2-dest",
                VAULT,
                vault_deploy_block=12,
                collateral_slot=3,
                every_blocks=2,
                proof_chunk_size=64,
                options={"accounts": [ADDR0], "snapshots": "full"},
            )
        ],
        committee=CommitteeTable(["http://127.0.0.1:9465", "https://b.example/relayer"], takeover_seconds=30),
    )
    assert text.startswith("# first line\n# second line\n[relayer]\n")
    path = tmp_path / "relayer.toml"
    path.write_text(text)
    config = load_config(path, environ=ENV)
    assert config.store_path == tmp_path / "state" / "relayer.sqlite"
    assert (config.metrics_host, config.metrics_port) == ("127.0.0.1", 0)
    assert config.keeper == KeeperConfig("127.0.0.1", 9470)
    assert config.attester == KeySource(key_env="ATTESTER_KEY")
    assert config.chains["l1"] == ChainConfig(
        "l1", 1, tuple(SOURCE.rpc), "confirmations", 3, 0.25, 2.5, ws="ws://127.0.0.1:8545"
    )
    assert config.chains["l2-dest"] == ChainConfig("l2-dest", 10, ("http://127.0.0.1:9545",), "head", 0, 1.0)
    dest = config.destinations["l2-dest"]
    assert (dest.settlement, dest.sender) == (SETTLEMENT, KeySource(key_file=tmp_path / "sender.key"))
    assert (dest.max_accounts_per_batch, dest.min_change_wei, dest.fee_budget_multiple) == (7, 0, 2.5)
    assert config.pairs == (PairConfig("l1", "l2-dest", VAULT, 12, 3, 2, (ADDR0,), 64, "full"),)
    assert config.committee == CommitteeConfig(("http://127.0.0.1:9465", "https://b.example/relayer"), None, 2.0, 30.0)


def test_the_devnet_config_loads_as_the_devnet_means_it(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    for name in ("attester.key", "sender.key"):
        write_secret(tmp_path / "keys" / name, "0x" + "33" * 32)
    text = devnet._config_text(
        "http://127.0.0.1:8545", "http://127.0.0.1:9545", VAULT, 5, 0, SETTLEMENT, 9464, 4, 2.0, 9470,
        " (committee member 1 of 3, threshold 2)", CommitteeTable(["http://127.0.0.1:9466"], 12.5),
    )  # fmt: skip
    assert "committee member 1 of 3" in text.splitlines()[0]
    (tmp_path / "relayer.toml").write_text(text)
    config = load_config(tmp_path / "relayer.toml")
    assert config.chains["source"] == ChainConfig(
        "source", devnet.SOURCE_CHAIN_ID, ("http://127.0.0.1:8545",), "confirmations", devnet.CONFIRMATIONS, 0.5,
        ws="ws://127.0.0.1:8545",
    )  # fmt: skip
    assert config.chains["destination"].finality == "confirmations"
    assert config.destinations["destination"].settlement == SETTLEMENT
    assert config.pairs == (PairConfig("source", "destination", VAULT, 5, 0, devnet.EVERY_BLOCKS),)
    assert config.committee.peers == ("http://127.0.0.1:9466",) and config.committee.takeover_seconds == 12.5


@given(
    st.text(st.characters(exclude_categories=("Cs",))),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(st.text(st.characters(exclude_categories=("Cs",))), max_size=3),
)
def test_values_round_trip_through_tomllib(text: str, number: int, real: float, strings: list[str]) -> None:
    """Escaping: any string (quotes, backslashes, control characters, U+007F, non-ASCII) reads
    back as itself, and so do integers, floats (inf included) and arrays."""
    options = {"text": text, "number": number, "real": real, "strings": strings, "flag": True}
    document = tomllib.loads(render_config(attester=KeySource(key_env="A"), chains=[], destinations=[], pairs=[
        PairTable("s", "d", "v", options=options)
    ]))  # fmt: skip
    (pair,) = document["pairs"]
    assert pair == {"source": "s", "destination": "d", "vault": "v", **options}


def test_nan_is_written_as_toml_nan() -> None:
    table = PairTable("s", "d", "v", options={"x": math.nan})
    document = tomllib.loads(render_config(attester=KeySource(key_env="A"), chains=[], destinations=[], pairs=[table]))
    assert math.isnan(document["pairs"][0]["x"])


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (ChainTable("bad name", 1, ["http://x"]), "name 'bad name'"),
        (ChainTable("c", 1, ["http://x"], options={"chain_id": 2}), "options repeat keys of the table's own fields"),
        (ChainTable("c", 1, ["http://x"], options={"x": None}), "x: NoneType is not a TOML value"),  # type: ignore[dict-item]
        (ChainTable("c", 1, ["http://x"], options={"x": [["a"]]}), "x: arrays hold scalars only"),  # type: ignore[list-item]
        (ChainTable("c", 1, ["http://x"], options={"x": {"a": 1}}), "x: dict is not a TOML value"),  # type: ignore[dict-item]
        (ChainTable("c", 1, ["http://x"], options={"x": "\ud800"}), "lone surrogate U+D800"),
        (ChainTable("c", 1, ["http://x"], options={"a.b": 1}), "name 'a.b'"),
    ],
)
def test_what_toml_cannot_hold_as_given_is_refused(table: ChainTable, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        render_config(attester=KeySource(key_env="A"), chains=[table], destinations=[], pairs=[])
