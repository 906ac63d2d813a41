"""The watchtower's config (relayer.config.watch): `[watch]` + the relayer's `[chains.<name>]` tables,
every problem at once, unknown keys refused; `relayer check-config` accepts a watchtower's file."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer import cli
from relayer.config import ConfigError, KeySource
from relayer.config.render import ChainTable, render_watch_config
from relayer.config.watch import load_watch_config

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config" / "watch.example.toml"
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil's public dev key 1


def example(tmp_path: Path, sender: str = '[watch.sender]\nkey_env = "WATCH_KEY"\n') -> Path:
    """The example file with its keystore (absent here) replaced by `sender`."""
    text = EXAMPLE.read_text()
    start = text.index("[watch.sender]")
    end = text.index("[metrics]")
    path = tmp_path / "watch.toml"
    path.write_text(text[:start] + sender + "\n" + text[end:])
    return path


def test_the_example_loads(tmp_path: Path) -> None:
    config = load_watch_config(example(tmp_path), environ={"WATCH_KEY": KEY})
    assert config.destination.name == "destination" and config.destination.chain_id == 10
    assert [c.name for c in config.sources] == ["source"]
    assert config.data_dir == Path("/var/lib/relayer-watch") and config.confirmations == 2
    assert (config.metrics_host, config.metrics_port) == ("127.0.0.1", 9467)
    assert config.sender is not None and config.sender.load({"WATCH_KEY": KEY}).address.startswith("0x7099")


def test_without_a_sender_it_alerts_only(tmp_path: Path) -> None:
    config = load_watch_config(example(tmp_path, sender=""))
    assert config.sender is None


def test_every_problem_is_listed_with_its_key(tmp_path: Path) -> None:
    path = example(tmp_path)
    text = path.read_text().replace('destination = "destination"\n', 'destination = "nowhere"\nsurprise = 1\n', 1)
    path.write_text(text.replace("confirmations = 2\n", "confirmations = -1\n", 1))
    with pytest.raises(ConfigError) as info:
        load_watch_config(path, environ={})
    problems = "\n".join(info.value.problems)
    assert "watch.surprise" in problems and "watch.confirmations" in problems
    assert "watch.destination: no chain named 'nowhere'" in problems
    assert "WATCH_KEY" in problems  # the sender's environment variable is not set


def test_check_config_accepts_a_watchtower_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = example(tmp_path, sender="")
    assert cli.main(["check-config", "--config", str(ok)]) == 0
    assert "watchtower of 0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(ok.read_text().replace("[watch]\n", "[watch]\nattester = 1\n"))
    assert cli.main(["check-config", "--config", str(bad)]) == 2
    assert "watch.attester: unknown key" in capsys.readouterr().out


def test_a_rendered_watch_config_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "watch.toml"
    path.write_text(
        render_watch_config(
            destination="dest",
            settlement="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
            chains=[ChainTable("dest", 10, ["http://127.0.0.1:8545"]), ChainTable("src", 1, ["http://127.0.0.1:8546"])],
            sender=KeySource(key_env="WATCH_KEY"),
            metrics_listen="127.0.0.1:0",
            options={"confirmations": 0, "data_dir": "state"},
        )
    )
    config = load_watch_config(path, environ={"WATCH_KEY": KEY})
    assert (config.destination.name, [c.name for c in config.sources]) == ("dest", ["src"])
    assert config.data_dir == tmp_path / "state" and config.confirmations == 0 and config.metrics_port == 0
    assert config.sender == KeySource(key_env="WATCH_KEY")
