"""Configuration files for the tests of relayer.config (tests/relayer/test_config*.py and others):
anvil's dev keys and addresses, the MINIMAL configuration, and writing and loading a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import cast

import pytest
from eth_account import Account
from eth_typing import ChecksumAddress

from relayer import keys
from relayer.config import ConfigError, KeySource, load_config
from relayer.config.render import ChainTable, DestinationTable, PairTable, render_config

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
