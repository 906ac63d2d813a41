"""`[chains.<name>] ws`: an optional ws(s):// endpoint for the head subscription, validated at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from relayer.config import ConfigError, load_config
from tests.relayer.config_files import ENV, MINIMAL, _replace, _write


def test_ws_endpoint_is_optional_and_read(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, MINIMAL), environ=ENV).chains["source"].ws is None
    text = _replace(
        MINIMAL, 'rpc = ["http://127.0.0.1:8545"]', 'rpc = ["http://127.0.0.1:8545"]\nws = "ws://127.0.0.1:8545"'
    )
    assert load_config(_write(tmp_path, text), environ=ENV).chains["source"].ws == "ws://127.0.0.1:8545"


@pytest.mark.parametrize("value", ['"http://127.0.0.1:8545"', '"wss://"', "8545", '"ws://host:99999"'])
def test_ws_endpoint_must_be_a_ws_url(tmp_path: Path, value: str) -> None:
    text = _replace(MINIMAL, 'rpc = ["http://127.0.0.1:8545"]', f'rpc = ["http://127.0.0.1:8545"]\nws = {value}')
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), environ=ENV)
    assert [p for p in info.value.problems if p.startswith("chains.source.ws:")], info.value.problems


def test_a_ws_url_with_a_key_is_never_quoted_back(tmp_path: Path) -> None:
    text = _replace(
        MINIMAL, 'rpc = ["http://127.0.0.1:8545"]', 'rpc = ["http://127.0.0.1:8545"]\nws = "https://x/SECRETKEY"'
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), environ=ENV)
    assert "SECRETKEY" not in "\n".join(info.value.problems)
