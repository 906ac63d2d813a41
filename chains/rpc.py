"""Async JSON-RPC 2.0 client over HTTP (aiohttp) for Ethereum execution-layer nodes.

`RpcClient` makes exactly one HTTP request per `call` or `batch`, validates the JSON-RPC
envelope strictly and turns every failure into a typed `chains.errors.RpcError`:

- `RpcTransportError` - no usable HTTP response (connection, TLS, HTTP status, incl. 429 with
  `retry_after`), `RpcTimeoutError` when `timeout_seconds` ran out;
- `RpcResponseError` - the node's JSON-RPC error object (`code`, `message`, `data`);
- `RpcGarbageError` - not JSON, wrong `id`, neither `result` nor `error`, a result of the wrong
  shape for the method...

There is no retry here: endpoint fallback and backoff wrap this client (subclass
`chains.methods.RpcMethods`, implement `call` and `batch`, and every typed helper works
unchanged). The hex codec of the execution API is `chains.hexcodec`.

Endpoint URLs of hosted providers carry API keys in their path or query, so the URL is kept
private: errors, `repr`, logs and the `on_request` metrics hook only ever see `host`
("host:port"), and transport exception texts are redacted before they are attached.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal

import aiohttp
import structlog
import yarl

from chains.errors import (
    MalformedJson,
    RpcAnswerTooLarge,
    RpcError,
    RpcGarbageError,
    RpcResponseError,
    RpcTimeoutError,
    RpcTransportError,
)
from chains.hexcodec import BLOCK_TAGS, HexDecodeError, block_param, hex_to_bytes, hex_to_int, int_to_hex
from chains.jsonparse import parse_json
from chains.methods import Answered, MinedReceipt, RpcMethods

__all__ = [
    "BLOCK_TAGS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Answered",
    "HexDecodeError",
    "MinedReceipt",
    "OnRequest",
    "RpcClient",
    "RpcMethods",
    "answer_limit",
    "block_param",
    "hex_to_bytes",
    "hex_to_int",
    "int_to_hex",
]
"""`RpcClient` and its hook live here; the hex codec (`chains.hexcodec`) and the typed verbs
(`chains.methods`) are re-exported, so `from chains.rpc import ...` names every one of them."""

log = structlog.get_logger(__name__)

OnRequest = Callable[[str, str, str, float], None]
"""Metrics hook `on_request(method, host, outcome, seconds)`, called once per HTTP exchange.

`outcome` is "ok", "error" (transport failure, HTTP status, JSON-RPC error object),
"timeout" or "garbage"; `seconds` is the wall time of the exchange. For a batch, `method` is
the common method of its calls, or "batch" when they differ. Not called for cancelled
requests. Exceptions raised by the hook are logged and swallowed.
"""

Outcome = Literal["ok", "error", "timeout", "garbage"]

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
"""The largest answer read (bytes): an eth_getProof of 1,024 keys (the providers' cap, and ours)
is about 10 MB, a window of 4,000 logs a few MB. Every byte read is also parsed into Python
objects (chains.jsonparse bounds how many), so this is a memory bound per answer too."""

_ANSWER_LIMIT: ContextVar[int | None] = ContextVar("answer_limit", default=None)


@contextmanager
def answer_limit(max_bytes: int) -> Iterator[None]:
    """Within the block, calls made by this asyncio task (and the tasks it starts) refuse an
    answer body larger than `max_bytes` with RpcAnswerTooLarge, read no further than that, and
    so hold at most that much of it; `RpcClient.max_response_bytes` still applies. Used where the
    caller can ask for less: eth_getLogs over a smaller block range."""
    token = _ANSWER_LIMIT.set(max_bytes)
    try:
        yield
    finally:
        _ANSWER_LIMIT.reset(token)


# --------------------------------------------------------------------------- the client


def _endpoint_host(url: str) -> tuple[yarl.URL, str]:
    try:
        parsed = yarl.URL(url)
    except (TypeError, ValueError):
        raise ValueError("RPC endpoint is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        # never echo the URL: it may hold an API key
        raise ValueError(f"RPC endpoint must be an http(s) URL with a host (scheme {parsed.scheme!r})")
    host = parsed.host
    if ":" in host:
        host = f"[{host}]"
    return parsed, f"{host}:{parsed.port}"


def _retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` (RFC 9110 s. 10.2.3): delay-seconds or an HTTP-date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RpcClient(RpcMethods):
    """JSON-RPC 2.0 over HTTP(S) to one endpoint, as an async context manager.

        async with RpcClient("http://127.0.0.1:8545", chain_label="source") as client:
            head = await client.block_number()

    `session`: a shared aiohttp session (not closed by this client); None: the client
    creates one on first use and closes it on exit. `timeout_seconds`: the deadline of one
    HTTP exchange, connect to last byte. `chain_label`: a name for errors and logs.
    `on_request`: the metrics hook (see `OnRequest`). `max_response_bytes`: a larger body is
    garbage (protects memory from a broken or hostile endpoint).
    Raises ValueError when `url` is not an http(s) URL (without echoing it).
    """

    def __init__(
        self,
        url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout_seconds: float = 10.0,
        chain_label: str = "",
        on_request: OnRequest | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        parsed, self._host = _endpoint_host(url)
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self._url = parsed
        self._secrets = sorted(
            {
                s
                for s in (
                    url,
                    str(parsed),
                    parsed.raw_path_qs,
                    parsed.path_qs,
                    parsed.raw_query_string,
                    parsed.raw_user,
                    parsed.raw_password,
                )
                if s and len(s) > 1
            },
            key=len,
            reverse=True,
        )
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.timeout_seconds = timeout_seconds
        self.chain_label = chain_label
        self.on_request = on_request
        self.max_response_bytes = max_response_bytes
        self._ids = itertools.count(1)

    @property
    def host(self) -> str:
        return self._host

    def __repr__(self) -> str:
        label = f" {self.chain_label}" if self.chain_label else ""
        return f"<RpcClient{label} {self._host}>"

    async def __aenter__(self) -> RpcClient:
        self._get_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it (idempotent)."""
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if not self._owns_session:
                raise RuntimeError("the shared aiohttp session of this RpcClient was released")
            self._session = aiohttp.ClientSession()
        return self._session

    # ----------------------------------------------------------------- public calls

    async def call(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        decode: Callable[[Any], Any] | None = None,
    ) -> Any:
        request_id = next(self._ids)
        body = json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)},
            separators=(",", ":"),
        ).encode()

        async def exchange() -> Any:
            reply = await self._post(method, body)
            if not isinstance(reply, dict):
                if isinstance(reply, list):
                    raise self._garbage(method, "expected a JSON-RPC object, got an array")
                raise self._garbage(method, f"expected a JSON-RPC object, got {_kind(reply)}")
            result = self._result_of(reply, method=method, request_id=request_id, index=None)
            if decode is None:
                return result
            try:
                return decode(result)
            except (ValueError, TypeError) as exc:
                raise self._garbage(method, f"unexpected result: {exc}") from None

        return await self._measured(method, exchange)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        methods = {method for method, _ in calls}
        label = next(iter(methods)) if len(methods) == 1 else "batch"
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
                for request_id, (method, params) in zip(ids, calls, strict=True)
            ],
            separators=(",", ":"),
        ).encode()

        async def exchange() -> list[Any]:
            reply = await self._post(label, body)
            if isinstance(reply, dict) and "error" in reply:
                # JSON-RPC 2.0 section 6: an invalid batch as a whole gets one error object
                self._result_of(reply, method=label, request_id=None, index=None)
            if not isinstance(reply, list):
                raise self._garbage(label, f"expected a JSON array for a batch, got {_kind(reply)}")
            if len(reply) != len(calls):
                raise self._garbage(label, f"batch of {len(calls)} calls answered with {len(reply)} items")
            position = {request_id: index for index, request_id in enumerate(ids)}
            items: list[dict[str, Any] | None] = [None] * len(calls)
            for item in reply:
                if not isinstance(item, dict):
                    raise self._garbage(label, f"batch item is {_kind(item)}, not an object")
                item_id = item.get("id")
                index = position.get(item_id) if type(item_id) is int else None
                if index is None:
                    raise self._garbage(label, f"batch item with unknown id {item_id!r}")
                if items[index] is not None:
                    raise self._garbage(label, f"batch item id {item_id} answered twice")
                items[index] = item
            results = []
            for index, item in enumerate(items):
                if item is None:  # unreachable: same length, ids unique and known
                    raise self._garbage(label, f"batch item {index} missing")
                results.append(self._result_of(item, method=calls[index][0], request_id=ids[index], index=index))
            return results

        result: list[Any] = await self._measured(label, exchange)
        return result

    # ----------------------------------------------------------------- internals

    async def _measured(self, method: str, exchange: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        outcome: Outcome = "error"
        try:
            result = await exchange()
            outcome = "ok"
            return result
        except RpcTimeoutError:
            outcome = "timeout"
            raise
        except RpcGarbageError:
            outcome = "garbage"
            raise
        except RpcError:
            outcome = "error"
            raise
        except asyncio.CancelledError:
            start = -1.0
            raise
        finally:
            if start >= 0 and self.on_request is not None:
                try:
                    self.on_request(method, self._host, outcome, time.perf_counter() - start)
                except Exception as exc:
                    log.warning("rpc.hook_failed", host=self._host, error=repr(exc))

    async def _post(self, method: str, body: bytes) -> Any:
        """POST `body`; return the decoded JSON reply. Raises RpcTransportError/Timeout/Garbage."""
        session = self._get_session()
        try:
            async with session.post(
                self._url,
                data=body,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,  # a redirect is an endpoint misconfiguration, not a reply
            ) as response:
                if not 200 <= response.status < 300:
                    snippet = await self._read_snippet(response)
                    raise RpcTransportError(
                        f"HTTP {response.status} {response.reason or ''}".rstrip()
                        + (f": {snippet}" if snippet else ""),
                        method=method,
                        host=self._host,
                        chain=self.chain_label,
                        status=response.status,
                        retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                    )
                raw = await self._read_body(method, response)
        except RpcError:
            raise
        except TimeoutError:
            raise RpcTimeoutError(
                f"no complete response within {self.timeout_seconds:g} s",
                method=method,
                host=self._host,
                chain=self.chain_label,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            # `from None`: aiohttp's exception text and chained tracebacks may carry the URL
            raise RpcTransportError(
                f"{type(exc).__name__}: {self._redact(str(exc))}",
                method=method,
                host=self._host,
                chain=self.chain_label,
            ) from None
        try:
            return parse_json(raw, max_bytes=self.max_response_bytes, what="response")
        except MalformedJson as exc:
            if exc.problem == "not_json":
                raise self._garbage(method, f"response is not JSON: {_preview(raw)}") from None
            raise self._garbage(method, f"response {exc.detail}") from None

    async def _read_body(self, method: str, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        limit = _ANSWER_LIMIT.get()
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if limit is not None and size > limit:
                raise RpcAnswerTooLarge(method=method, host=self.host, limit=limit, chain=self.chain_label)
            if size > self.max_response_bytes:
                raise self._garbage(method, f"response larger than {self.max_response_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _read_snippet(self, response: aiohttp.ClientResponse) -> str:
        try:
            raw = await response.content.read(300)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return ""
        return self._redact(_preview(raw, 200))

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def _result_of(self, reply: dict[str, Any], *, method: str, request_id: int | None, index: int | None) -> Any:
        """The `result` of one JSON-RPC response object, or raise its error (JSON-RPC 2.0 s. 5)."""

        def garbage(message: str) -> RpcGarbageError:
            return RpcGarbageError(message, method=method, host=self._host, chain=self.chain_label, index=index)

        if reply.get("jsonrpc") != "2.0":
            raise garbage(f"missing or wrong jsonrpc version {reply.get('jsonrpc')!r}")
        if "error" in reply:
            if "result" in reply:
                raise garbage("response holds both result and error")
            error = reply["error"]
            if not isinstance(error, dict):
                raise garbage(f"error member is {_kind(error)}, not an object")
            code, message = error.get("code"), error.get("message")
            if type(code) is not int or not isinstance(message, str):
                raise garbage(f"error object without int code and string message: {error!r:.200}")
            if request_id is not None and reply.get("id") not in (request_id, None):
                raise garbage(f"error for id {reply.get('id')!r}, expected {request_id}")
            raise RpcResponseError(
                method=method,
                host=self._host,
                chain=self.chain_label,
                code=code,
                message=message,
                data=error.get("data"),
                index=index,
            )
        reply_id = reply.get("id")
        if type(reply_id) is not int or reply_id != request_id:
            raise garbage(f"response id {reply_id!r}, expected {request_id}")
        if "result" not in reply:
            raise garbage("response holds neither result nor error")
        return reply["result"]


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _preview(raw: bytes, limit: int = 120) -> str:
    text = raw[:limit].decode("utf-8", "replace")
    return repr(text) + ("..." if len(raw) > limit else "")
