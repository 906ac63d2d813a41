"""No secret ever leaves the daemon: not in a log line, not on /metrics, /readyz or /v1/status.

The daemon runs as in production (`opsnet`): the sender key in an environment variable, the
attester in a keystore whose password is in another, and both RPC endpoints reached through
URLs holding a basic-auth password, an API key in the path and one in the query. It relays a
settlement, then each chain's endpoint fails for a moment (HTTP 502: retries, failed polls,
a failed round are logged with their error text), then it recovers and settles again. Every
byte the daemon wrote (stdout and stderr, JSON logs and anything else) and every HTTP answer,
including those taken while the endpoints failed, must be free of every secret, in any case,
with or without 0x.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from web3 import Web3
from web3.types import Wei

from chains.bindings import contract
from tests.integration.opsnet import OpsNet, opsnet, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsNet]:
    with opsnet(tmp_path_factory.mktemp("secrecy")) as net:
        yield net


def confirmed(net: OpsNet) -> int:
    return sum(1 for e in net.log_events() if e.get("event") == "batch.settled")


def variants(secret: str) -> set[str]:
    """The forms a secret could be shown in, lower-cased: as is, without 0x, and (for a hex
    key) the Python repr of its bytes, as a careless f"{key!r}" would print it."""
    text = secret.lower()
    forms = {text, text.removeprefix("0x")}
    if text.startswith("0x") and len(text) == 66:
        forms.add(repr(bytes.fromhex(text[2:]))[2:-1].lower())
    return forms


def leaks(net: OpsNet, where: str, text: str) -> list[str]:
    lowered = text.lower()
    return [
        f"{name} in {where}"
        for name, secret in net.secrets.items()
        if any(form in lowered for form in variants(secret))
    ]


def chain_error(net: OpsNet, chain: str) -> str | None:
    error: str | None = net.get_json("/v1/status")[1]["chains"][chain]["error"]
    return error


def fail_for_a_moment(net: OpsNet, chain: str, snapshot: Callable[[str], None]) -> None:
    """`chain`'s endpoint answers HTTP 502 until a failed poll shows in /v1/status and the log;
    `snapshot` records the HTTP answers meanwhile. Returns once the chain is polled again."""
    net.proxies[chain].set_mode("down")
    try:
        wait_for(f"{chain} poll failure in /v1/status", lambda: chain_error(net, chain) is not None, net=net)
        wait_for(
            f"{chain} poll failure logged",
            lambda: any(e.get("event") == "chain.poll_failed" and e.get("chain") == chain for e in net.log_events()),
            net=net,
        )
        snapshot(f"{chain} failing")
    finally:
        net.proxies[chain].set_mode("ok")
    wait_for(f"{chain} polled again", lambda: chain_error(net, chain) is None, net=net)


def test_no_secret_in_logs_metrics_or_status(ops: OpsNet) -> None:
    seen: dict[str, str] = {}

    def snapshot(label: str) -> None:
        for path in ("/metrics", "/readyz", "/healthz", "/v1/status"):
            seen[f"{path} ({label})"] = ops.get(path)[1].decode()

    wait_for("a first settlement", lambda: confirmed(ops) > 0, net=ops)
    before = confirmed(ops)
    snapshot("running")

    for chain in ("source", "destination"):
        fail_for_a_moment(ops, chain, snapshot)

    # a change to relay after the faults: the error paths are behind us, the happy path again
    info = ops.net.info
    w3 = Web3(Web3.HTTPProvider(info["chains"]["source"]["rpc"]))  # type: ignore[index]
    vault = contract(w3, "CollateralVault", info["contracts"]["vault"])  # type: ignore[index]
    account = info["accounts"][0]  # type: ignore[index]
    w3.eth.wait_for_transaction_receipt(vault.functions.deposit().transact({"from": account, "value": Wei(10**15)}))
    wait_for("a settlement after the faults", lambda: confirmed(ops) > before, net=ops)
    snapshot("after")

    log = ops.log_text()
    events = ops.log_events()
    names = {e.get("event") for e in events}
    # the paths that handle URLs and keys did run: start-up, signing, sending, errors on both chains
    assert {"daemon.started", "epoch.confirmed", "batch.settled", "chain.poll_failed"} <= names, names
    assert {e.get("chain") for e in events if e.get("event") == "chain.poll_failed"} >= {"source", "destination"}
    # errors name the endpoint by host:port only
    for chain in ("source", "destination"):
        assert f"127.0.0.1:{ops.proxies[chain].port}" in log
    assert any("502" in str(e.get("error", "")) for e in events)

    found = leaks(ops, "the daemon's output", log)
    for where, text in seen.items():
        found += leaks(ops, where, text)
    assert not found, found
    for where, text in [("the daemon's output", log), *seen.items()]:
        assert "/v3/" not in text and "apikey" not in text.lower() and "@127.0.0.1" not in text, where
