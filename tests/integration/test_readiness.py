"""/readyz follows the chains: 503 naming the chain whose RPC stopped answering, 200 once it
answers again; /healthz (liveness) stays 200 throughout.

The destination's endpoint is a `TamperProxy` switched to "refused" (no listener, open
connections dropped). Readiness is `relayer.observability.api.ready_problems`: a chain is unready when its
polls fail and the last success is older than two poll intervals (or, for a hung endpoint, older
than STALE_POLLS poll intervals plus the RPC timeout), so the 503 must come within that limit
(plus one poll and some slack for a loaded machine).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from relayer.config import load_config
from relayer.observability.api import STALE_POLLS
from tests.integration.opsnet import PASSWORD_ENV, SENDER_ENV, OpsNet, opsnet, wait_for

pytestmark = pytest.mark.integration

SLACK_SECONDS = 4.0


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsNet]:
    with opsnet(tmp_path_factory.mktemp("readiness")) as net:
        yield net


def test_readyz_follows_the_destination_rpc(ops: OpsNet) -> None:
    config = load_config(ops.net.config_path, environ={SENDER_ENV: "set", PASSWORD_ENV: "set"})
    chain = config.chains["destination"]
    limit = STALE_POLLS * chain.poll_interval_seconds + chain.rpc_timeout_seconds
    wait_for("ready", lambda: ops.get("/readyz")[0] == 200, timeout=30, net=ops)
    assert ops.get_json("/readyz") == (200, {"ready": True, "problems": [], "role": "single"})

    proxy = ops.proxies["destination"]
    stopped = time.monotonic()
    proxy.set_mode("refused")
    try:
        took = wait_for(
            "503 from /readyz",
            lambda: ops.get("/readyz")[0] == 503,
            timeout=limit + chain.poll_interval_seconds + SLACK_SECONDS,
            every=0.2,
            net=ops,
        )
        status, body = ops.get_json("/readyz")
        assert status == 503 and body["ready"] is False
        assert [p for p in body["problems"] if p.startswith("chain destination:")], body
        assert not [p for p in body["problems"] if p.startswith("chain source:")], body
        assert f"127.0.0.1:{proxy.port}" in body["problems"][0]  # the endpoint, by host
        assert ops.get("/healthz")[0] == 200
        # not flapping: it stays unready while the endpoint is down
        time.sleep(1.5)
        assert ops.get("/readyz")[0] == 503
        # and it was not unready too early either: the last successful poll had to age first
        assert took >= 2 * chain.poll_interval_seconds - chain.poll_interval_seconds
    finally:
        proxy.set_mode("ok")
    down_for = time.monotonic() - stopped

    back = wait_for(
        "200 from /readyz",
        lambda: ops.get("/readyz")[0] == 200,
        timeout=chain.poll_interval_seconds + chain.rpc_timeout_seconds + SLACK_SECONDS,
        every=0.2,
        net=ops,
    )
    assert ops.get_json("/readyz") == (200, {"ready": True, "problems": [], "role": "single"})
    status, state = ops.get_json("/v1/status")
    assert status == 200 and state["chains"]["destination"]["error"] is None
    print(
        f"unready {took:.1f} s after the RPC stopped (limit {limit:.1f} s), "
        f"ready {back:.1f} s after it returned; down {down_for:.1f} s"
    )
