"""JSON-RPC over several endpoints of one chain: health-based selection, fallback, retries.

`FallbackClient` is an `RpcMethods` (every helper - `chain_id`, `get_block`, `get_logs` - and
`chains.proofs.fetch_proof` / `fetch_header` work on it unchanged) that owns one
`chains.rpc.RpcClient` per configured endpoint.

Selection: the first endpoint in configured order that is not cooling down after a failure,
so the primary is preferred whenever it is healthy (the health bookkeeping, backoff and
selection are `chains.endpoints`); when every endpoint is cooling down, the wait for the first
to come back goes through the injected `sleep`, so tests switch it off with a no-op.

Retries: only idempotent, read-only methods (`IDEMPOTENT_METHODS`; a batch only when every
call in it is one) are retried, up to `attempts` tries per call across endpoints, on
`RpcTransportError` (incl. HTTP 429/5xx), `RpcTimeoutError` and `RpcGarbageError`. Within a
round each endpoint is tried at most once; the next round waits for the cooldowns (the
backoff). `RpcResponseError` - a JSON-RPC error object such as "execution reverted" - is never
retried: the node answered. Non-idempotent methods (`eth_sendRawTransaction` and every method
not in the list) are sent once; a failure propagates, because a timed-out transaction may
still have been delivered. Each retry is logged once (event `rpc.retry`) and counted through
the `on_retry(method, host, reason)` hook.

Confirmation: `call_answered` names the endpoint (host) that answered a call, and
`call_elsewhere(host, ...)` sends a call to the endpoints on another node only, so that what
one endpoint said (a proven block's hash) is confirmed by another, never by itself
(DESIGN section 2, "one endpoint is never the truth"). Nodes are told apart by resolved
address and port (`chains.nodes`, `getaddrinfo` off the event loop, cached for
RESOLVE_TTL_SECONDS), never by the host string: `127.0.0.1:8545` and `localhost:8545` are one
node and do not confirm each other. It fails closed: when no endpoint on another node can
answer - none configured, one node under two names, down, slow, or on another chain id - it
raises, and the caller holds what it wanted confirmed; nothing is ever skipped.

Chain identity: `check_chain_id(expected)` asks every endpoint at start. An endpoint that
reports another chain id fails the check (`ChainIdMismatch`); an endpoint that cannot be
reached is logged (`rpc.endpoint_unreachable`) and does not fail the check as long as one
endpoint reported the right id - one provider's outage must not stop the relayer from
starting. Such an endpoint stays unverified: before its use it is asked for its chain id; one
that then reports another id is set aside (`rpc.chain_id_mismatch`, `disabled` in
`endpoints_status()`) and asked again after a cooldown (the backoff of a failure), so that it
is used again by itself once it serves the configured chain.

Like `RpcClient`, nothing here ever shows an endpoint URL (they carry API keys): errors, logs,
hooks and `endpoints_status()` only use `host` ("host:port").
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Final

import aiohttp
import structlog

from chains import nodes
from chains.endpoints import (
    LATENCY_EWMA_ALPHA,
    RESOLVE_TTL_SECONDS,
    Endpoint,
    cooldown_seconds,
    record_chain_ids,
    resolve_host,
    select_endpoint,
)
from chains.errors import (
    ChainIdMismatch,
    EndpointsUnavailable,
    NoOtherEndpoint,
    RpcError,
    RpcResponseError,
    RpcTransportError,
)
from chains.methods import Answered, RpcMethods
from chains.rpc import OnRequest, RpcClient

__all__ = [
    "IDEMPOTENT_METHODS",
    "LATENCY_EWMA_ALPHA",
    "RESOLVE_TTL_SECONDS",
    "ChainIdMismatch",
    "EndpointsUnavailable",
    "FallbackClient",
    "OnRetry",
]
"""`FallbackClient` and its retry policy live here; its errors (`chains.errors`) and the health
constants (`chains.endpoints`) are re-exported, so `from chains.fallback import ...` names them."""

log = structlog.get_logger(__name__)

IDEMPOTENT_METHODS: Final = frozenset(
    {
        "eth_chainId",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getProof",
        "eth_getLogs",
        "eth_call",
        "eth_estimateGas",
        "eth_getTransactionReceipt",
        "eth_getTransactionCount",
        "eth_getBalance",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        "eth_getStorageAt",
        "eth_getCode",
        "eth_gasPrice",
    }
)
"""Read-only methods that are safe to send again, to the same or another endpoint."""

OnRetry = Callable[[str, str, str], None]
"""Metrics hook `on_retry(method, host, reason)`, called once per retry: `host` is the endpoint
that failed, `reason` the error's `reason` ("rpc_transport", "rpc_timeout", "rpc_garbage").
Exceptions raised by the hook are logged and swallowed."""


def _method_label(calls: Sequence[tuple[str, Sequence[Any]]]) -> str:
    methods = {method for method, _ in calls}
    return next(iter(methods)) if len(methods) == 1 else "batch"


class FallbackClient(RpcMethods):
    """JSON-RPC 2.0 over several HTTP(S) endpoints of one chain, as an async context manager.

        async with FallbackClient([primary_url, backup_url], chain_label="source") as client:
            await client.check_chain_id(1)
            head = await client.block_number()

    `urls`: the endpoints, preferred first (at least one). `timeout_seconds`: the deadline of
    one HTTP exchange. `on_request`: the per-exchange metrics hook of `RpcClient` (labels:
    method and host). `on_retry`: see `OnRetry`. `attempts`: tries per idempotent call across
    endpoints (>= 1). `backoff_base_seconds` / `backoff_max_seconds`: the cooldown after the
    n-th consecutive failure of an endpoint is min(max, base * 2**(n-1)) seconds, scaled by a
    uniform random factor in [0, 1) when `jitter` (full jitter). `max_retry_after_seconds`:
    cap on a server's `Retry-After`. `sleep` / `clock`: injectable for tests (`clock` in
    seconds, monotonic). `session`: an aiohttp session shared by every endpoint (not closed
    here); None: each endpoint client owns its own.
    Raises ValueError for no URL, a URL that is not http(s) (without echoing it), or a bad number.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        chain_label: str = "",
        timeout_seconds: float = 10.0,
        on_request: OnRequest | None = None,
        on_retry: OnRetry | None = None,
        attempts: int = 3,
        backoff_base_seconds: float = 0.2,
        backoff_max_seconds: float = 5.0,
        max_retry_after_seconds: float = 60.0,
        jitter: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if isinstance(urls, str) or not urls:
            raise ValueError("at least one RPC endpoint URL is required (a sequence of URLs)")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"attempts must be an int >= 1, got {attempts!r}")
        if backoff_base_seconds < 0 or backoff_max_seconds < 0 or max_retry_after_seconds < 0:
            raise ValueError("backoff and retry-after limits must be >= 0 seconds")
        self._endpoints = [
            Endpoint(
                index,
                RpcClient(
                    url,
                    session=session,
                    timeout_seconds=timeout_seconds,
                    chain_label=chain_label,
                    on_request=on_request,
                ),
            )
            for index, url in enumerate(urls)
        ]
        self.chain_label = chain_label
        self.timeout_seconds = timeout_seconds
        self.on_retry = on_retry
        self.attempts = attempts
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.jitter = jitter
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()
        self._expected_chain_id: int | None = None

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FallbackClient:
        for endpoint in self._endpoints:
            await endpoint.client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every endpoint client's own session (idempotent)."""
        for endpoint in self._endpoints:
            await endpoint.client.close()

    def __repr__(self) -> str:
        label = f" {self.chain_label}" if self.chain_label else ""
        return f"<FallbackClient{label} {', '.join(e.host for e in self._endpoints)}>"

    # ----------------------------------------------------------------- state

    @property
    def host(self) -> str:
        """The host ("host:port") of the endpoint the next call would go to."""
        try:
            return self._select(set()).host
        except EndpointsUnavailable:
            return self._endpoints[0].host

    @property
    def hosts(self) -> list[str]:
        """Every endpoint's host, in configured order."""
        return [endpoint.host for endpoint in self._endpoints]

    def endpoints_status(self) -> list[dict[str, Any]]:
        """Per endpoint, in configured order, for the status API:

        `host` ("host:port"), `healthy` (bool: enabled and its last exchange did not fail),
        `consecutive_failures` (int), `cooldown_seconds_left` (float >= 0), `latency_ms`
        (EWMA of exchange wall time, float, None before the first answer), `disabled` (bool:
        reported another chain id when last asked; asked again after its cooldown),
        `reported_chain_id` (that other id, else None).
        """
        now = self._clock()
        return [endpoint.status(now) for endpoint in self._endpoints]

    def _select(
        self, tried: set[int], exclude: frozenset[int] = frozenset(), skip: frozenset[int] = frozenset()
    ) -> Endpoint:
        """`chains.endpoints.select_endpoint` over this client's endpoints, now."""
        return select_endpoint(
            self._endpoints,
            self._clock(),
            tried,
            exclude=exclude,
            skip=skip,
            expected_chain_id=self._expected_chain_id,
            chain=self.chain_label,
        )

    def _failed(self, endpoint: Endpoint, exc: RpcError | None) -> None:
        """Count a failure (`exc` None: it reported another chain id) and cool the endpoint down."""
        endpoint.consecutive_failures += 1
        endpoint.cooldown_until = self._clock() + cooldown_seconds(
            endpoint.consecutive_failures,
            exc,
            base=self.backoff_base_seconds,
            cap=self.backoff_max_seconds,
            max_retry_after=self.max_retry_after_seconds,
            jitter=self._random if self.jitter else None,
        )

    def _retry_noted(self, method: str, endpoint: Endpoint, attempt: int, exc: RpcError) -> None:
        log.warning(
            "rpc.retry",
            chain=self.chain_label,
            host=endpoint.host,
            method=method,
            attempt=attempt,
            reason=exc.reason,
            error=str(exc),
        )
        if self.on_retry is not None:
            try:
                self.on_retry(method, endpoint.host, exc.reason)
            except Exception as hook_exc:
                log.warning("rpc.hook_failed", host=endpoint.host, error=repr(hook_exc))

    # ----------------------------------------------------------------- chain id

    async def check_chain_id(self, expected: int) -> None:
        """Ask every endpoint for `eth_chainId` (EIP-695), concurrently, one try each.

        Returns when no endpoint reports another id and at least one reported `expected`.
        Unreachable endpoints (any RpcError) are logged as `rpc.endpoint_unreachable` and
        marked unverified: they are checked again before their first use, and disabled if
        they then report another id. Raises ChainIdMismatch naming the hosts that report
        another id; EndpointsUnavailable when no endpoint answered.
        """
        self._expected_chain_id = expected

        async def ask(endpoint: Endpoint) -> int | RpcError:
            try:
                return await self._on_endpoint(endpoint, lambda c: c.chain_id())
            except RpcError as exc:
                return exc

        answers = await asyncio.gather(*(ask(e) for e in self._endpoints))
        record_chain_ids(self._endpoints, answers, expected, chain=self.chain_label)

    async def _verify(self, endpoint: Endpoint) -> bool:
        """Check an endpoint not yet seen on the configured chain (unreachable at start, or on
        another chain when last asked). False on another id: set aside until its cooldown ends,
        then asked again (never dropped for good: it may serve the right chain later)."""
        expected = self._expected_chain_id
        if expected is None or endpoint.verified:
            return True
        failures = endpoint.consecutive_failures
        reported = await self._on_endpoint(endpoint, lambda client: client.chain_id())
        if reported != expected:
            endpoint.wrong_chain_id = reported
            endpoint.consecutive_failures = failures  # an answer, but not a recovery: the backoff grows
            self._failed(endpoint, None)
            log.error(
                "rpc.chain_id_mismatch",
                chain=self.chain_label,
                host=endpoint.host,
                expected=expected,
                reported=reported,
            )
            return False
        if endpoint.wrong_chain_id is not None:
            log.info("rpc.chain_id_recovered", chain=self.chain_label, host=endpoint.host, chain_id=reported)
        endpoint.wrong_chain_id = None
        endpoint.verified = True
        return True

    # ----------------------------------------------------------------- calls

    async def _on_endpoint(self, endpoint: Endpoint, send: Callable[[RpcClient], Awaitable[Any]]) -> Any:
        """One exchange with health bookkeeping; RpcResponseError counts as an answer."""
        start = time.perf_counter()
        try:
            result = await send(endpoint.client)
        except RpcResponseError:
            endpoint.answered(time.perf_counter() - start)
            raise
        except RpcError as exc:
            self._failed(endpoint, exc)
            raise
        endpoint.answered(time.perf_counter() - start)
        return result

    async def _run(
        self,
        method: str,
        idempotent: bool,
        send: Callable[[RpcClient], Awaitable[Any]],
        exclude: frozenset[int] = frozenset(),
    ) -> Answered[Any]:
        """Send on the selected endpoint (never one whose index is in `exclude`), retrying
        elsewhere when idempotent; returns the result with the host that answered."""
        tries = self.attempts if idempotent else 1
        tried: set[int] = set()
        wrong_chain: set[int] = set()
        attempt = 0
        while True:
            endpoint = self._select(tried, exclude, frozenset(wrong_chain))
            if endpoint.index in tried:  # every usable endpoint was tried: a new round
                tried.clear()
            tried.add(endpoint.index)
            wait = endpoint.cooldown_until - self._clock()
            if wait > 0:
                await self._sleep(wait)
            attempt += 1
            try:
                if not await self._verify(endpoint):
                    attempt -= 1  # an endpoint on another chain does not use up an attempt
                    wrong_chain.add(endpoint.index)  # and is not asked again within this call
                    continue
                return Answered(await self._on_endpoint(endpoint, send), endpoint.host)
            except RpcResponseError:
                raise
            except RpcError as exc:
                if attempt >= tries:
                    raise
                self._retry_noted(method, endpoint, attempt, exc)

    async def call(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        decode: Callable[[Any], Any] | None = None,
    ) -> Any:
        """One JSON-RPC call on the selected endpoint, retried elsewhere when idempotent.

        Returns like `RpcClient.call`. Raises the last RpcError when every attempt failed
        (RpcResponseError at once); EndpointsUnavailable when every endpoint was disabled.
        """

        return (await self.call_answered(method, params, decode=decode)).result

    async def call_answered(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        decode: Callable[[Any], Any] | None = None,
    ) -> Answered[Any]:
        """`call`, with the host ("host:port") of the endpoint that gave the result (after a
        fallback, not the first one tried). Raises like `call`."""
        return await self._run(method, method in IDEMPOTENT_METHODS, self._sender(method, params, decode))

    def hosts_other_than(self, host: str) -> list[str]:
        """Distinct configured hosts ("host:port" strings) other than `host`, in configured
        order, whatever their state (down, on another chain id): a non-empty list means a
        confirmation is configured, and so required (`call_elsewhere` then raises rather than
        skip). Endpoints with one host string count as one (two API keys of one provider);
        whether two strings are one node is decided by `call_elsewhere` on resolved addresses."""
        hosts: list[str] = []
        for endpoint in self._endpoints:
            if endpoint.host != host and endpoint.host not in hosts:
                hosts.append(endpoint.host)
        return hosts

    async def call_elsewhere(
        self,
        host: str,
        method: str,
        params: Sequence[Any] = (),
        *,
        decode: Callable[[Any], Any] | None = None,
    ) -> Answered[Any]:
        """One call answered by an endpoint on another node than `host`: to confirm what `host`
        said (e.g. a block hash), never by asking it again. Another node: another host string
        whose resolved (address, port) pairs share none with those of `host` (`chains.nodes`;
        resolved off the event loop, cached for RESOLVE_TTL_SECONDS). Selection, health
        bookkeeping and retries are those of `call`, restricted to the endpoints on other nodes
        (an idempotent method is retried among them only). It never skips the confirmation.

        Raises NoOtherEndpoint when no endpoint is on another node (`same_node`: the endpoints
        that resolve to the same address and port as `host`; empty for a single-host chain);
        RpcTransportError (method "getaddrinfo") when `host`, or every other host, does not
        resolve; ChainIdMismatch when every other node reported another chain id when last
        asked; the last RpcError when none of the others answered (RpcTimeoutError when it was
        too slow; RpcResponseError at once, as `call`).
        """
        others = [endpoint for endpoint in self._endpoints if endpoint.host != host]
        if not others:
            raise NoOtherEndpoint(host, chain=self.chain_label)
        serving = [endpoint for endpoint in self._endpoints if endpoint.host == host]
        own = await serving[0].addresses(self._clock()) if serving else await resolve_host(host, chain=self.chain_label)
        exclude = {endpoint.index for endpoint in serving}
        same_node: dict[str, str] = {}
        unresolved: RpcTransportError | None = None
        for endpoint in others:
            try:
                addresses = await endpoint.addresses(self._clock())
            except RpcTransportError as exc:
                exclude.add(endpoint.index)
                unresolved = exc
                continue
            shared = addresses & own
            if shared:
                exclude.add(endpoint.index)
                same_node[endpoint.host] = nodes.describe(shared)
        if len(exclude) == len(self._endpoints):
            if unresolved is not None:
                raise unresolved
            raise NoOtherEndpoint(host, chain=self.chain_label, same_node=same_node)
        send = self._sender(method, params, decode)
        return await self._run(method, method in IDEMPOTENT_METHODS, send, exclude=frozenset(exclude))

    @staticmethod
    def _sender(
        method: str, params: Sequence[Any], decode: Callable[[Any], Any] | None
    ) -> Callable[[RpcClient], Awaitable[Any]]:
        async def send(client: RpcClient) -> Any:
            if decode is None:
                return await client.call(method, params)
            return await client.call(method, params, decode=decode)

        return send

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """A JSON-RPC batch on the selected endpoint; retried only when every call is idempotent.

        Returns and raises like `RpcClient.batch` and `call`.
        """
        if not calls:
            return []
        idempotent = all(method in IDEMPOTENT_METHODS for method, _ in calls)

        async def send(client: RpcClient) -> list[Any]:
            return await client.batch(calls)

        answer = await self._run(_method_label(calls), idempotent, send)
        result: list[Any] = answer.result
        return result
