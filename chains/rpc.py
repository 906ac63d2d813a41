"""Async JSON-RPC 2.0 client over HTTP (aiohttp) for Ethereum execution-layer nodes.

`RpcClient` makes exactly one HTTP request per `call` or `batch`, validates the JSON-RPC
envelope strictly and turns every failure into a typed `chains.errors.RpcError`:

- `RpcTransportError` - no usable HTTP response (connection, TLS, HTTP status, incl. 429 with
  `retry_after`), `RpcTimeoutError` when `timeout_seconds` ran out;
- `RpcResponseError` - the node's JSON-RPC error object (`code`, `message`, `data`);
- `RpcGarbageError` - not JSON, wrong `id`, neither `result` nor `error`, a result of the wrong
  shape for the method...

There is no retry here: endpoint fallback and backoff wrap this client (subclass
`RpcMethods`, implement `call` and `batch`, and every helper below works unchanged).

Endpoint URLs of hosted providers carry API keys in their path or query, so the URL is kept
private: errors, `repr`, logs and the `on_request` metrics hook only ever see `host`
("host:port"), and transport exception texts are redacted before they are attached.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Generic, Literal, TypeVar, overload

import aiohttp
import structlog
import yarl

from chains.errors import (
    MalformedJson,
    NoOtherEndpoint,
    RpcAnswerTooLarge,
    RpcError,
    RpcGarbageError,
    RpcResponseError,
    RpcTimeoutError,
    RpcTransportError,
)
from chains.jsonparse import parse_json

log = structlog.get_logger(__name__)

T = TypeVar("T")

OnRequest = Callable[[str, str, str, float], None]
"""Metrics hook `on_request(method, host, outcome, seconds)`, called once per HTTP exchange.

`outcome` is "ok", "error" (transport failure, HTTP status, JSON-RPC error object),
"timeout" or "garbage"; `seconds` is the wall time of the exchange. For a batch, `method` is
the common method of its calls, or "batch" when they differ. Not called for cancelled
requests. Exceptions raised by the hook are logged and swallowed.
"""

Outcome = Literal["ok", "error", "timeout", "garbage"]

BLOCK_TAGS: Final = frozenset({"latest", "safe", "finalized", "earliest", "pending"})
"""Block tags of the execution API (`eth_getBlockByNumber`, `eth_getProof`, ...)."""

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
"""The largest answer read (bytes): an eth_getProof of 1,024 keys (the providers' cap, and ours)
is about 10 MB, a window of 4,000 logs a few MB. Every byte read is also parsed into Python
objects (chains.jsonparse bounds how many), so this is a memory bound per answer too."""

_HEX_DIGITS = re.compile(r"0x[0-9a-fA-F]*\Z")


# --------------------------------------------------------------------------- hex codec


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


class HexDecodeError(ValueError):
    """A JSON-RPC hex value is malformed. Callers turn it into their own typed error."""


def hex_to_int(value: object, *, max_bits: int = 256) -> int:
    """Decode a JSON-RPC QUANTITY ("0x1a") to an int in [0, 2**max_bits).

    Tolerates leading zeros ("0x0384", as in ethereum/tests fixtures); rejects "0x", missing
    prefix, non-hex characters (Python's `int()` would accept "_" and spaces) and non-strings.
    Raises HexDecodeError.
    """
    if not isinstance(value, str):
        raise HexDecodeError(f"expected a 0x-hex quantity string, got {type(value).__name__}")
    if _HEX_DIGITS.match(value) is None or len(value) < 3:
        raise HexDecodeError(f"not a 0x-hex quantity: {value[:80]!r}")
    digits = value[2:].lstrip("0")
    if len(digits) * 4 > max_bits + 3:
        raise HexDecodeError(f"quantity wider than {max_bits} bits: {value[:80]!r}")
    number = int(digits or "0", 16)
    if number >> max_bits:
        raise HexDecodeError(f"quantity wider than {max_bits} bits: {value[:80]!r}")
    return number


def hex_to_bytes(value: object, *, size: int | None = None) -> bytes:
    """Decode JSON-RPC DATA ("0x" + an even number of hex digits) to bytes.

    `size`: the exact byte length required (20 for an address, 32 for a hash), or None.
    Raises HexDecodeError.
    """
    if not isinstance(value, str):
        raise HexDecodeError(f"expected a 0x-hex data string, got {type(value).__name__}")
    if _HEX_DIGITS.match(value) is None:
        raise HexDecodeError(f"not 0x-hex data: {value[:80]!r}")
    if len(value) % 2:
        raise HexDecodeError(f"odd number of hex digits: {value[:80]!r}")
    raw = bytes.fromhex(value[2:])
    if size is not None and len(raw) != size:
        raise HexDecodeError(f"expected {size} bytes, got {len(raw)}: {value[:80]!r}")
    return raw


def int_to_hex(number: int) -> str:
    """Encode a non-negative int as a JSON-RPC QUANTITY ("0x0", "0x1a")."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"a quantity must be a non-negative int, got {number!r}")
    return hex(number)


def block_param(block: int | str) -> str:
    """A block number (int >= 0) or tag ("latest", "safe", "finalized", ...) as a JSON-RPC param.

    Raises ValueError for anything else.
    """
    if isinstance(block, str):
        if block not in BLOCK_TAGS:
            raise ValueError(f"unknown block tag {block!r}; use one of {sorted(BLOCK_TAGS)}")
        return block
    return int_to_hex(block)


# --------------------------------------------------------------------------- interface


@dataclass(frozen=True, slots=True)
class Answered(Generic[T]):
    """A JSON-RPC `result` with the endpoint that gave it (`host`, "host:port", never a URL)."""

    result: T
    host: str


@dataclass(frozen=True, slots=True)
class MinedReceipt:
    """`eth_getTransactionReceipt` of a mined transaction: its hash (0x-hex), block number,
    gas used, effective gas price (wei per gas; 0 when the node omits it) and status (1 success,
    0 reverted; EIP-658)."""

    tx_hash: str
    block_number: int
    gas_used: int
    effective_gas_price: int
    status: int


def _mined_receipt_or_none(result: Any) -> MinedReceipt | None:
    """A receipt object, None for null or a receipt without a block (not mined). Raises
    TypeError / HexDecodeError for anything else."""
    if result is None:
        return None
    if not isinstance(result, dict):
        raise TypeError(f"expected a receipt object or null, got {type(result).__name__}")
    if not result.get("blockNumber"):
        return None
    tx_hash = hex_to_bytes(result.get("transactionHash"), size=32)
    return MinedReceipt(
        "0x" + tx_hash.hex(),
        hex_to_int(result.get("blockNumber"), max_bits=64),
        hex_to_int(result.get("gasUsed"), max_bits=64),
        hex_to_int(result.get("effectiveGasPrice", "0x0")),
        hex_to_int(result.get("status", "0x1"), max_bits=8),
    )


class RpcMethods(ABC):
    """What chain access needs from a JSON-RPC endpoint: `call`, `batch` and typed helpers.

    `RpcClient` talks to one endpoint; a fallback/backoff client for several endpoints can
    subclass this, implement `call`/`batch` (and `host`), and inherit the helpers.
    """

    chain_label: str = ""

    @property
    @abstractmethod
    def host(self) -> str:
        """The endpoint as "host:port" (for errors, logs and metric labels; never the URL)."""

    @overload
    async def call(self, method: str, params: Sequence[Any] = ()) -> Any: ...

    @overload
    async def call(self, method: str, params: Sequence[Any] = (), *, decode: Callable[[Any], T]) -> T: ...

    @abstractmethod
    async def call(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        decode: Callable[[Any], Any] | None = None,
    ) -> Any:
        """One JSON-RPC call; returns its `result` (or `decode(result)`).

        `decode` checks and converts the result; a ValueError (incl. HexDecodeError) or
        TypeError from it becomes RpcGarbageError and counts as outcome "garbage".
        Raises RpcTransportError, RpcTimeoutError, RpcResponseError, RpcGarbageError.
        """

    @abstractmethod
    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several JSON-RPC calls in one HTTP request (a JSON array); results in call order.

        Raises like `call`; a JSON-RPC error of one item raises RpcResponseError with
        `index` set to that item's position (the first failing item when several fail).
        """

    async def call_answered(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        decode: Callable[[Any], Any] | None = None,
    ) -> Answered[Any]:
        """Like `call`, and say which endpoint answered. One endpoint: always `host`; a client
        over several endpoints (`chains.fallback.FallbackClient`) names the one that did."""
        if decode is None:
            return Answered(await self.call(method, params), self.host)
        return Answered(await self.call(method, params, decode=decode), self.host)

    def hosts_other_than(self, host: str) -> list[str]:
        """The hosts `call_elsewhere(host, ...)` may ask, in preference order: none here (one
        endpoint); `FallbackClient` lists its endpoints on another host."""
        return []

    async def call_elsewhere(
        self,
        host: str,
        method: str,
        params: Sequence[Any] = (),
        *,
        decode: Callable[[Any], Any] | None = None,
    ) -> Answered[Any]:
        """One call answered by an endpoint on another host than `host` (to confirm what `host`
        said). Raises NoOtherEndpoint here: a single endpoint has no other."""
        raise NoOtherEndpoint(host, chain=self.chain_label)

    async def get_block_answered(self, block: int | str, full: bool = False) -> Answered[dict[str, Any] | None]:
        """`get_block`, with the host that answered."""
        answer: Answered[dict[str, Any] | None] = await self.call_answered(
            "eth_getBlockByNumber", [block_param(block), bool(full)], decode=_object_or_none
        )
        return answer

    def _garbage(self, method: str, message: str) -> RpcGarbageError:
        return RpcGarbageError(message, method=method, host=self.host, chain=self.chain_label)

    async def chain_id(self) -> int:
        """`eth_chainId` (EIP-695) as an int."""
        return await self.call("eth_chainId", [], decode=lambda r: hex_to_int(r, max_bits=64))

    async def block_number(self) -> int:
        """`eth_blockNumber`: the node's head height."""
        return await self.call("eth_blockNumber", [], decode=lambda r: hex_to_int(r, max_bits=64))

    async def get_block(self, block: int | str, full: bool = False) -> dict[str, Any] | None:
        """`eth_getBlockByNumber(block, full)`: the block object, or None if the node has none.

        `block`: a height (int >= 0) or a tag "latest" / "safe" / "finalized" / "earliest" /
        "pending". `full`: full transaction objects instead of hashes. The header fields are
        not checked here: pass the result to `chains.headers.verify_header`.
        """
        return await self.call("eth_getBlockByNumber", [block_param(block), bool(full)], decode=_object_or_none)

    async def get_logs(self, log_filter: Mapping[str, Any]) -> list[dict[str, Any]]:
        """`eth_getLogs(filter)`: the matching log objects, as the node returned them.

        `fromBlock` / `toBlock` may be ints (encoded here) or tags; other filter keys
        (`address`, `topics`, `blockHash`) are passed through unchanged.
        """
        params = dict(log_filter)
        for key in ("fromBlock", "toBlock"):
            if key in params:
                params[key] = block_param(params[key])
        return await self.call("eth_getLogs", [params], decode=_list_of_objects)

    async def eth_call(self, call: Mapping[str, Any], block: int | str = "latest") -> bytes:
        """`eth_call(call, block)`: the returned bytes (a revert raises RpcResponseError, its
        `data` holding the revert reason). `call`: {"to", "data", optionally "from", ...}."""
        return await self.call("eth_call", [dict(call), block_param(block)], decode=hex_to_bytes)

    async def get_balance(self, address: str, block: int | str = "latest") -> int:
        """`eth_getBalance(address, block)` in wei."""
        return await self.call("eth_getBalance", [address, block_param(block)], decode=hex_to_int)

    async def estimate_gas(self, call: Mapping[str, Any]) -> int:
        """`eth_estimateGas(call)`: gas units (a revert raises RpcResponseError, see `eth_call`)."""
        return await self.call("eth_estimateGas", [dict(call)], decode=lambda r: hex_to_int(r, max_bits=64))

    async def transaction_count(self, address: str, block: int | str = "latest") -> int:
        """`eth_getTransactionCount(address, block)`: the account's nonce at `block` ("pending"
        counts the node's pool)."""
        return await self.call(
            "eth_getTransactionCount", [address, block_param(block)], decode=lambda r: hex_to_int(r, max_bits=64)
        )

    async def max_priority_fee(self) -> int:
        """`eth_maxPriorityFeePerGas`: the node's suggested tip, wei per gas (not every node
        implements it: RpcResponseError)."""
        return await self.call("eth_maxPriorityFeePerGas", [], decode=hex_to_int)

    async def get_transaction(self, tx_hash: str) -> dict[str, Any] | None:
        """`eth_getTransactionByHash`: the transaction object (its `blockNumber` null while
        pending), or None when the node does not know the hash."""
        return await self.call("eth_getTransactionByHash", [tx_hash], decode=_object_or_none)

    async def send_raw_transaction(self, raw: str) -> str:
        """`eth_sendRawTransaction(raw)` (0x-hex of a signed transaction): the hash the node
        returned (a refusal raises RpcResponseError with the node's message)."""
        return await self.call("eth_sendRawTransaction", [raw], decode=lambda r: "0x" + hex_to_bytes(r, size=32).hex())

    async def mined_receipts(self, tx_hashes: Sequence[str]) -> list[MinedReceipt | None]:
        """`eth_getTransactionReceipt` of each hash, in one batch: the receipt of a mined one,
        None for one not mined (or unknown). Raises RpcGarbageError for a malformed receipt."""
        method = "eth_getTransactionReceipt"
        results = await self.batch([(method, [h]) for h in tx_hashes])
        try:
            return [_mined_receipt_or_none(r) for r in results]
        except (TypeError, ValueError) as exc:
            raise self._garbage(method, f"malformed receipt: {exc}") from None


def _object_or_none(result: Any) -> dict[str, Any] | None:
    if result is None or isinstance(result, dict):
        return result
    raise TypeError(f"expected a block object or null, got {type(result).__name__}")


def _list_of_objects(result: Any) -> list[dict[str, Any]]:
    if not isinstance(result, list):
        raise TypeError(f"expected a list of log objects, got {type(result).__name__}")
    for index, item in enumerate(result):
        if not isinstance(item, dict):
            raise TypeError(f"log {index} is a {type(item).__name__}, not an object")
    return result


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
