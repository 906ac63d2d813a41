"""The keeper API attacked as a client would (issue 16, attack 5), on the devnet with the daemon
run as a process: one client flooding `/v1/proofs`, many clients flooding it, malformed accounts
and oversized requests. The keeper API has its own listener (`[keeper] listen`), rate-limited per
client, so a flood costs the flooder its own answers and nothing else: another client is still
served, and `/healthz` and `/metrics` (on the metrics listener) keep answering.

Clients are told apart by their address: the test's clients bind 127.0.0.x source addresses
(all of 127.0.0.0/8 is loopback on Linux)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator

import aiohttp
import pytest

from relayer import devnet
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration

ACCOUNTS = 3
BURST = 40  # the [keeper] default devnet keeps


def session_from(address: str) -> aiohttp.ClientSession:
    """A client whose requests come from `address` (127.0.0.x)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(address, 0), limit=0),
        timeout=aiohttp.ClientTimeout(total=30),
    )


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonRuns]:
    directory = tmp_path_factory.mktemp("keeper")
    provisioned = devnet.provision(directory, accounts=ACCOUNTS, detach=False, progress=False, every_blocks=2)
    n = DaemonRuns(provisioned)
    n.start()
    try:
        account = n.accounts[0]

        def served() -> bool:
            try:
                return bool(json.loads(get(f"{n.keeper}/v1/proofs/{account}")[1])["claims"])
            except OSError:  # not listening yet
                return False

        wait_for("a served claim", served, 90)
        yield n
    finally:
        try:
            n.stop()
        finally:
            devnet.stop(directory)


async def test_a_flood_from_one_client_gets_429_while_another_client_is_served(net: DaemonRuns) -> None:
    account = net.accounts[0]
    url = f"{net.keeper}/v1/proofs/{account}"
    async with session_from("127.0.0.2") as flooder:

        async def one() -> tuple[int, str | None]:
            async with flooder.get(url) as response:
                await response.read()
                return response.status, response.headers.get("Retry-After")

        answers = await asyncio.gather(*(one() for _ in range(4 * BURST)))
    limited = [retry for status, retry in answers if status == 429]
    assert {status for status, _ in answers} <= {200, 429}
    assert len(limited) >= 2 * BURST, f"only {len(limited)} of {len(answers)} refused"
    assert all(retry is not None and int(retry) >= 1 for retry in limited)
    async with session_from("127.0.0.3") as other, other.get(url) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["account"] == account and answer["claims"]


async def test_health_and_metrics_are_not_on_the_keeper_listener_and_answer_during_a_flood(net: DaemonRuns) -> None:
    base = net.metrics.removesuffix("/metrics")
    for path in ("/healthz", "/readyz", "/metrics", "/v1/status", f"/v1/attestations/{net.chain_id}/1"):
        assert get(f"{net.keeper}{path}")[0] == 404, path
    assert get(f"{base}/v1/proofs/{net.accounts[0]}")[0] == 404

    clients = [session_from(f"127.0.0.{10 + k}") for k in range(20)]
    stop = asyncio.Event()
    sent = 0

    async def flood(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while not stop.is_set():
            requests = [session.get(f"{net.keeper}/v1/proofs/0x{k:040x}") for k in range(25)]
            for response in await asyncio.gather(*requests, return_exceptions=True):
                if isinstance(response, aiohttp.ClientResponse):
                    sent += 1
                    response.release()

    floods = [asyncio.create_task(flood(c)) for c in clients]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as probe:
            for _ in range(20):
                for path in ("/healthz", "/metrics"):
                    async with probe.get(f"{base}{path}") as response:
                        assert response.status == 200, path
                        await response.read()
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*floods, return_exceptions=True)
        for c in clients:
            await c.close()
    assert sent > 500  # the flood did arrive
    status, body = get(net.metrics)
    assert status == 200 and b'relayer_keeper_requests_total{outcome="rate_limited"}' in body


@pytest.mark.parametrize(
    "account",
    [
        "0x1234",
        "0x" + "zz" * 20,
        "0x" + "ab" * 21,
        "ab" * 20 + "ab",
        "0x" + "ab" * 20 + "%00",
        "0x" + "ab" * 20 + ";drop",
        "1" * 4000,
    ],
)
def test_a_malformed_account_is_400(net: DaemonRuns, account: str) -> None:
    status, body = get(f"{net.keeper}/v1/proofs/{account}")
    assert status == 400, body
    assert "error" in json.loads(body)


def test_oversized_requests_and_other_methods_are_refused_and_the_daemon_lives(net: DaemonRuns) -> None:
    assert get(f"{net.keeper}/v1/proofs/0x{'ab' * 20}?{'x' * 20_000}")[0] in (400, 414)
    post = urllib.request.Request(f"{net.keeper}/v1/proofs/0x{'ab' * 20}", data=b"{}" * 100, method="POST")
    try:
        urllib.request.urlopen(post, timeout=10)
        raise AssertionError("POST was answered")
    except urllib.error.HTTPError as exc:
        assert exc.code == 405
    assert get(f"{net.keeper}/v1/proofs")[0] == 404
    status, body = get(f"{net.keeper}/v1/proofs/0x{'AB' * 20}")  # any case
    assert status == 200 and json.loads(body)["claims"] == []
    assert net.process is not None and net.process.poll() is None
    assert get(net.metrics.removesuffix("/metrics") + "/healthz")[0] == 200


def test_the_daemon_prunes_superseded_claims_and_serves_each_account_its_newest(net: DaemonRuns) -> None:
    """Through the real relay: a new deposit makes an epoch that, once settled, supersedes the
    depositor's older claim; the daemon deletes it (`store.claims_pruned`), keeps one settled
    claim per account, and the keeper API serves every account from the epoch holding it."""
    depositor = net.accounts[0]
    before = len(net.events("store.claims_pruned"))
    target = int(net.vault.functions.collateral(depositor).call()) + 10**18
    tx = net.vault.functions.deposit().transact({"from": depositor, "value": 10**18})
    net.src.eth.wait_for_transaction_receipt(tx)
    wait_for("the deposit settled", lambda: net.settled(depositor) == target, 90)
    pruned = lambda: any(e["claims"] > 0 for e in net.events("store.claims_pruned")[before:])  # noqa: E731
    wait_for("the depositor's older claim pruned", pruned, 60)
    with sqlite3.connect(f"file:{net.net.directory / 'relayer.sqlite'}?mode=ro", uri=True) as db:
        kept = db.execute(
            "SELECT i.account, i.chain_id, COUNT(*), MAX(i.epoch) FROM claim_index i JOIN epochs e ON "
            "e.epoch = i.epoch WHERE e.status = 'settled' GROUP BY i.account, i.chain_id"
        ).fetchall()
        (orphans,) = db.execute(
            "SELECT COUNT(*) FROM epoch_claims c JOIN epochs e ON e.epoch = c.epoch AND e.root = c.root "
            "WHERE e.status = 'settled' AND NOT EXISTS (SELECT 1 FROM claim_index i WHERE i.account = c.account "
            "AND i.epoch = c.epoch AND i.block = c.block AND i.idx = c.idx)"
        ).fetchone()
    assert {a for a, _c, _n, _e in kept} == set(net.accounts)
    assert all(count == 1 for _a, _c, count, _e in kept) and orphans == 0
    for account, chain_id, _count, epoch in kept:
        status, body = get(f"{net.keeper}/v1/proofs/{account}")
        assert status == 200
        assert [(c["chain_id"], c["epoch"]) for c in json.loads(body)["claims"]] == [(chain_id, epoch)]
