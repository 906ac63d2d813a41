"""Health bookkeeping of the endpoints of one chain: failures, cooldowns, latency, selection.

Per endpoint (`Endpoint`) it tracks consecutive failures, a cooldown (exponential backoff with
full jitter after each failure, `cooldown_seconds`; HTTP 429/503 use the `Retry-After` delay
when the endpoint gave one) and an EWMA of its latency. `select_endpoint` picks the first
endpoint in configured order that is not cooling down, so the primary is preferred whenever it
is healthy; when every endpoint is cooling down, the one whose cooldown ends first (the caller
waits for it). An endpoint that reported another chain id is set aside (`disabled`) until its
cooldown has run out; `record_chain_ids` judges the answers of the check at start.
`chains.fallback.FallbackClient` drives this; nothing here sends a call except
`Endpoint.addresses`, which resolves the endpoint's host (`chains.nodes`).

Like the clients, nothing here holds an endpoint URL in a message or log: only `host`
("host:port").
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog

from chains import nodes
from chains.errors import ChainIdMismatch, EndpointsUnavailable, RpcError, RpcTransportError
from chains.nodes import NodeAddress
from chains.rpc import RpcClient

log = structlog.get_logger(__name__)

LATENCY_EWMA_ALPHA: Final = 0.3
"""Weight of the newest sample in the latency EWMA."""
RESOLVE_TTL_SECONDS: Final = 60.0
"""How long an endpoint's resolved addresses are reused before `call_elsewhere` resolves its
host again (a DNS name may move)."""

_STATUSES_WITH_RETRY_AFTER: Final = frozenset({429, 503})


@dataclass
class Endpoint:
    """One configured endpoint (`index`: its position in configured order) and its health."""

    index: int
    client: RpcClient
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    latency_seconds: float | None = None
    verified: bool = False
    wrong_chain_id: int | None = None
    """The other chain id it reported when last asked (set aside until its cooldown ends)."""
    addresses_cache: frozenset[NodeAddress] | None = None
    resolved_at: float = 0.0

    @property
    def host(self) -> str:
        return self.client.host

    @property
    def disabled(self) -> bool:
        return self.wrong_chain_id is not None

    def answered(self, seconds: float) -> None:
        """An exchange that took `seconds` got an answer: failures and cooldown reset, the
        latency EWMA takes the sample (logs `rpc.endpoint_recovered` after failures)."""
        if self.consecutive_failures:
            log.info(
                "rpc.endpoint_recovered",
                chain=self.client.chain_label,
                host=self.host,
                failures=self.consecutive_failures,
            )
        self.consecutive_failures = 0
        self.cooldown_until = 0.0
        previous = self.latency_seconds
        self.latency_seconds = (
            seconds if previous is None else LATENCY_EWMA_ALPHA * seconds + (1 - LATENCY_EWMA_ALPHA) * previous
        )

    def status(self, now: float) -> dict[str, Any]:
        """The row of `FallbackClient.endpoints_status()` at monotonic time `now` (seconds)."""
        return {
            "host": self.host,
            "healthy": not self.disabled and self.consecutive_failures == 0,
            "consecutive_failures": self.consecutive_failures,
            "cooldown_seconds_left": round(max(0.0, self.cooldown_until - now), 3),
            "latency_ms": None if self.latency_seconds is None else round(self.latency_seconds * 1000, 3),
            "disabled": self.disabled,
            "reported_chain_id": self.wrong_chain_id,
        }

    async def addresses(self, now: float) -> frozenset[NodeAddress]:
        """The endpoint's resolved (address, port) pairs, cached for RESOLVE_TTL_SECONDS from
        monotonic time `now`. Raises RpcTransportError (method "getaddrinfo") when its host
        does not resolve."""
        if self.addresses_cache is not None and now - self.resolved_at < RESOLVE_TTL_SECONDS:
            return self.addresses_cache
        self.addresses_cache = await resolve_host(self.host, chain=self.client.chain_label)
        self.resolved_at = now
        return self.addresses_cache


async def resolve_host(host: str, *, chain: str) -> frozenset[NodeAddress]:
    """`chains.nodes.resolve(host)`; raises RpcTransportError (method "getaddrinfo") when
    `host` ("host:port") does not resolve."""
    try:
        return await nodes.resolve(host)
    except (OSError, ValueError) as exc:
        raise RpcTransportError(
            f"host does not resolve ({exc})", method="getaddrinfo", host=host, chain=chain
        ) from None


def cooldown_seconds(
    failures: int,
    exc: RpcError | None,
    *,
    base: float,
    cap: float,
    max_retry_after: float,
    jitter: random.Random | None,
) -> float:
    """The cooldown after the `failures`-th consecutive failure (`exc`; None: the endpoint
    reported another chain id): min(cap, base * 2**(failures-1)) seconds, scaled by a uniform
    draw in [0, 1) from `jitter` when given (full jitter); the endpoint's `Retry-After` of an
    HTTP 429/503, capped at `max_retry_after`, when it gave one."""
    exponent = min(failures - 1, 62)
    delay = min(cap, base * 2.0**exponent)
    if jitter is not None:
        delay *= jitter.random()
    if isinstance(exc, RpcTransportError) and exc.status in _STATUSES_WITH_RETRY_AFTER and exc.retry_after is not None:
        delay = min(exc.retry_after, max_retry_after)
    return delay


def select_endpoint(
    endpoints: list[Endpoint],
    now: float,
    tried: set[int],
    *,
    exclude: frozenset[int] = frozenset(),
    skip: frozenset[int] = frozenset(),
    expected_chain_id: int | None = None,
    chain: str = "",
) -> Endpoint:
    """The endpoint to ask next at monotonic time `now`: the first in configured order not
    cooling down, preferring those not in `tried` (indexes asked this round); else the one
    whose cooldown ends first. `exclude`: indexes never to ask (another node's turn); `skip`:
    indexes found on another chain during this call. An endpoint that reported another chain
    id is a candidate again once its cooldown has run out (it is then asked for its chain id
    first). Raises ChainIdMismatch when every endpoint left reported another chain id than
    `expected_chain_id`; EndpointsUnavailable when none is left at all."""
    usable = [
        e
        for e in endpoints
        if e.index not in exclude and e.index not in skip and (not e.disabled or e.cooldown_until <= now)
    ]
    if not usable:
        wrong = {e.host: e.wrong_chain_id for e in endpoints if e.index not in exclude}
        reported = {host: chain_id for host, chain_id in wrong.items() if chain_id is not None}
        if reported and expected_chain_id is not None:
            raise ChainIdMismatch(expected=expected_chain_id, actual=reported, chain=chain)
        raise EndpointsUnavailable("no endpoint left to ask", errors={}, chain=chain)
    candidates = [e for e in usable if e.index not in tried] or usable
    for endpoint in candidates:
        if endpoint.cooldown_until <= now:
            return endpoint
    return min(candidates, key=lambda e: (e.cooldown_until, e.index))


def record_chain_ids(
    endpoints: Sequence[Endpoint], answers: Sequence[int | RpcError], expected: int, *, chain: str = ""
) -> None:
    """Judge each endpoint's answer to `eth_chainId` (EIP-695; `answers` in endpoint order):
    one that reported `expected` is marked verified; one that could not be asked (an RpcError)
    is logged as `rpc.endpoint_unreachable` and stays unverified. Raises ChainIdMismatch naming
    the hosts that reported another id; EndpointsUnavailable when no endpoint answered."""
    wrong: dict[str, int] = {}
    errors: dict[str, str] = {}
    for endpoint, answer in zip(endpoints, answers, strict=True):
        if isinstance(answer, RpcError):
            errors[endpoint.host] = str(answer)
            log.warning(
                "rpc.endpoint_unreachable",
                chain=chain,
                host=endpoint.host,
                reason=answer.reason,
                error=str(answer),
            )
        elif answer != expected:
            wrong[endpoint.host] = answer
        else:
            endpoint.verified = True
    if wrong:
        raise ChainIdMismatch(expected=expected, actual=wrong, chain=chain)
    if errors and len(errors) == len(endpoints):
        raise EndpointsUnavailable("no endpoint answered eth_chainId", errors=errors, chain=chain)
