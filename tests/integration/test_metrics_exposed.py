"""/metrics of a daemon that relayed: every metric an operator needs exists, with sane values.

One daemon (`opsnet`, 4 depositors) settles at least once; its source endpoint then answers
HTTP 502 for a moment, so that failed RPC requests are counted too. The scrape is checked for
the questions of docs/operations.md: active (heights, RPC requests by host and method), succeeding
(snapshots, proofs, epochs, settlement latency), backlogged, funded (signer balance, gas).

It also checks the metrics added for the "Operate it like production" issue: head lag in
seconds, the age of the oldest backlog item and RPC retries by host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from web3 import Web3

from relayer import devnet
from tests.integration.opsnet import OpsNet, opsnet, samples, settled, wait_for

pytestmark = pytest.mark.integration

ACCOUNTS = 4
HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}")


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsNet]:
    with opsnet(tmp_path_factory.mktemp("metrics"), accounts=ACCOUNTS) as net:
        yield net


def rpc_failures(text: str, chain: str) -> float:
    return sum(
        v
        for labels, v in samples(text, "relayer_rpc_requests_total")
        if labels["chain"] == chain and labels["outcome"] != "ok"
    )


@pytest.fixture(scope="module")
def scrape(ops: OpsNet) -> str:
    """The /metrics text after a settlement and a short source outage (HTTP 502)."""
    wait_for("a settlement", lambda: settled(ops), net=ops)
    proxy = ops.proxies["source"]
    proxy.set_mode("down")
    try:
        wait_for("failed source requests counted", lambda: rpc_failures(ops.metrics_text(), "source") > 0, net=ops)
    finally:
        proxy.set_mode("ok")
    wait_for("source polled again", lambda: ops.get_json("/v1/status")[1]["chains"]["source"]["error"] is None, net=ops)
    return ops.metrics_text()


def value(text: str, name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`."""
    found = [v for have, v in samples(text, name) if labels.items() <= have.items()]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def declared(text: str, name: str, kind: str) -> bool:
    return f"# TYPE {name} {kind}" in text.splitlines()


# --- active ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chain", ["source", "destination"])
def test_chain_head_and_finalized_height(scrape: str, chain: str) -> None:
    head = value(scrape, "relayer_chain_head_block", chain=chain)
    finalized = value(scrape, "relayer_chain_finalized_block", chain=chain)
    assert 0 < finalized <= head


def test_rpc_requests_by_chain_host_method_and_outcome_without_urls(ops: OpsNet, scrape: str) -> None:
    requests = samples(scrape, "relayer_rpc_requests_total")
    assert requests
    for labels, count in requests:
        assert set(labels) == {"chain", "host", "method", "outcome"}, labels
        assert HOST.fullmatch(labels["host"]), labels["host"]
        assert re.fullmatch(r"[a-z]+_[A-Za-z]+", labels["method"]), labels["method"]
        assert count >= 1
    hosts = {labels["chain"]: labels["host"] for labels, _ in requests}
    assert hosts == {name: f"127.0.0.1:{proxy.port}" for name, proxy in ops.proxies.items()}
    methods = {labels["method"] for labels, _ in requests if labels["outcome"] == "ok"}
    assert {
        "eth_chainId",
        "eth_getBlockByNumber",
        "eth_getProof",
        "eth_sendRawTransaction",
        "eth_getTransactionReceipt",
    } <= methods
    latency = samples(scrape, "relayer_rpc_latency_seconds_count")
    assert latency and all(set(labels) == {"chain", "host", "method"} for labels, _ in latency)
    # no URL, path or query anywhere on the page
    assert "/v3/" not in scrape and "apikey" not in scrape.lower() and "@127.0.0.1" not in scrape
    assert not [name for name, secret in ops.secrets.items() if secret.lower().removeprefix("0x") in scrape.lower()]


def test_rpc_errors_counted_by_host(ops: OpsNet, scrape: str) -> None:
    failed = [
        (labels, v)
        for labels, v in samples(scrape, "relayer_rpc_requests_total")
        if labels["chain"] == "source" and labels["outcome"] != "ok"
    ]
    assert failed and sum(v for _, v in failed) >= 1
    assert {labels["host"] for labels, _ in failed} == {f"127.0.0.1:{ops.proxies['source'].port}"}
    assert {labels["outcome"] for labels, _ in failed} <= {"error", "timeout", "garbage"}


# --- succeeding -----------------------------------------------------------------------------


def test_snapshots_and_proofs(scrape: str) -> None:
    proven = value(scrape, "relayer_snapshots_proven_total", chain="source")
    verified = value(scrape, "relayer_proofs_verified_total", chain="source")
    assert proven >= 1
    # each snapshot: the vault's account proof and one storage proof per account
    assert verified >= proven * (1 + ACCOUNTS)
    assert declared(scrape, "relayer_proofs_rejected_total", "counter")
    assert sum(v for _, v in samples(scrape, "relayer_proofs_rejected_total")) == 0
    count = value(scrape, "relayer_verify_seconds_count", chain="source")
    total = value(scrape, "relayer_verify_seconds_sum", chain="source")
    assert count >= proven
    assert 0 < total / count < 1.0  # seconds per snapshot: native verification of a few proofs


def test_epochs_and_claims(scrape: str) -> None:
    signed = value(scrape, "relayer_epochs_signed_total")
    submitted = value(scrape, "relayer_epochs_submitted_total")
    confirmed = value(scrape, "relayer_epochs_confirmed_total")
    assert 1 <= confirmed <= submitted <= signed
    claims = value(scrape, "relayer_claims_per_epoch_count")
    assert claims >= signed
    # the first epoch carries every depositor's claim
    assert value(scrape, "relayer_claims_per_epoch_sum") >= ACCOUNTS
    assert value(scrape, "relayer_claims_per_epoch_bucket", le="+Inf") == claims


def test_settlements_and_their_latency(scrape: str) -> None:
    assert value(scrape, "relayer_settlements_confirmed_total") >= ACCOUNTS
    latency = samples(scrape, "relayer_settlement_latency_seconds_count")
    assert latency
    count = sum(v for _, v in latency)
    total = sum(v for _, v in samples(scrape, "relayer_settlement_latency_seconds_sum"))
    assert count >= ACCOUNTS
    assert 0 < total / count < 600  # seconds from source block to destination receipt, on a devnet


# --- backlogged -----------------------------------------------------------------------------


def test_backlog(scrape: str) -> None:
    assert declared(scrape, "relayer_backlog_snapshots", "gauge")
    assert value(scrape, "relayer_backlog_snapshots") >= 0


# --- funded ---------------------------------------------------------------------------------


def test_destination_transactions(scrape: str) -> None:
    # an epoch goes out with its first settlements (submitAndSettle, kind "epoch"); a handful of
    # accounts fits in that one transaction, so "settle" transactions may not have been needed
    assert value(scrape, "relayer_tx_gas_used_total", kind="epoch") > 21_000
    assert value(scrape, "relayer_tx_submitted_total", kind="epoch") >= 1
    assert declared(scrape, "relayer_tx_replaced_total", "counter")
    assert declared(scrape, "relayer_tx_failed_total", "counter")
    assert sum(v for _, v in samples(scrape, "relayer_tx_failed_total")) == 0


def test_signer_balance(ops: OpsNet, scrape: str) -> None:
    balance = value(scrape, "relayer_signer_balance_wei", chain="destination")
    w3 = Web3(Web3.HTTPProvider(ops.net.info["chains"]["destination"]["rpc"]))  # type: ignore[index]
    now = w3.eth.get_balance(devnet.dev_account(2).address)  # the devnet's sender
    # the gauge was read after a round; the sender only spends since (float: ~16 digits)
    assert 0 < balance and now <= balance * (1 + 1e-12)


# --- added for the "Operate it like production" issue ----------------------------------------


@pytest.mark.parametrize("chain", ["source", "destination"])
def test_head_lag_seconds(scrape: str, chain: str) -> None:
    # now - the head block's timestamp; the destination mines only on transactions, still recent here
    assert declared(scrape, "relayer_chain_head_lag_seconds", "gauge")
    assert 0 <= value(scrape, "relayer_chain_head_lag_seconds", chain=chain) < 600


def test_backlog_oldest_age_seconds(scrape: str) -> None:
    assert declared(scrape, "relayer_backlog_oldest_age_seconds", "gauge")
    age = value(scrape, "relayer_backlog_oldest_age_seconds")
    assert 0 <= age < 600
    if value(scrape, "relayer_backlog_snapshots") == 0:
        assert age == 0


def test_rpc_retries_counted_by_host(ops: OpsNet, scrape: str) -> None:
    retries = samples(scrape, "relayer_rpc_retries_total")
    assert retries and all(set(labels) == {"chain", "host", "method", "reason"} for labels, _ in retries)
    source = [labels for labels, _ in retries if labels["chain"] == "source"]
    assert {labels["host"] for labels in source} == {f"127.0.0.1:{ops.proxies['source'].port}"}
    assert {labels["reason"] for labels in source} == {"rpc_transport"}  # HTTP 502
