"""The execution API as typed verbs over any JSON-RPC transport: `RpcMethods` and its answers.

`RpcMethods` declares `call` and `batch` (one endpoint: `chains.rpc.RpcClient`; several, with
fallback and retries: `chains.fallback.FallbackClient`) and builds every typed helper on them
(`chain_id`, `get_block`, `get_logs`, `eth_call`, `mined_receipts`, ...). A result of the wrong
shape for its method raises `RpcGarbageError`, through the `decode` argument of `call`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from chains.errors import NoOtherEndpoint, RpcGarbageError
from chains.hexcodec import block_param, hex_to_bytes, hex_to_int

T = TypeVar("T")


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
