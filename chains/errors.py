"""Exceptions for chain access: JSON-RPC transport and responses, block headers, EIP-1186 proofs.

One tree under `ChainError`, the root of chain access: it derives from nothing of the daemon
(`chains` imports nothing from `relayer`); the daemon decides what each error means to it.
Every exception carries typed data (not just a message) so the daemon can count it as a
metric (`reason`) and decide what to do (fall back to another endpoint, reject a snapshot).
No exception message or attribute ever holds an endpoint URL: only `host` ("host:port"),
because URLs of hosted RPC providers carry API keys.

    ChainError
    ├── RpcError                    method, host, chain, index - a JSON-RPC exchange failed
    │   ├── RpcTransportError       status, retry_after - no usable HTTP response
    │   │   └── RpcTimeoutError     the request exceeded its deadline
    │   ├── RpcResponseError        code, message, data - a JSON-RPC error object
    │   └── RpcGarbageError         detail - breaks JSON-RPC 2.0 or the method's shape
    ├── BlockNotFound               number - the node has no block at that height (yet)
    ├── NoOtherEndpoint             host, same_node - no endpoint on another node can confirm `host`
    ├── ChainIdMismatch             expected, actual - endpoints report another chain id (EIP-695)
    ├── EndpointsUnavailable        errors - no endpoint of the chain can be used
    ├── HeaderError
    │   ├── MalformedHeader         field, detail - missing or undecodable header field
    │   └── HeaderMismatch          kind, expected, actual, number - hash or number does not match
    ├── MalformedProof              detail, address - an eth_getProof result of the wrong shape
    ├── MalformedWitness            detail - an EIP-6800 execution witness of the wrong shape
    ├── MalformedJson               (chains.jsonparse) what, problem, limit, detail - JSON from outside refused
    ├── TransactionError            what, detail, tx_hash - a transaction was not built, sent or mined
    │   └── ContractReverted        (chains.bindings) error_name, error_args, revert_data - it reverted
    └── BindingsError               (chains.bindings) a contract artifact or interaction problem
        └── ArtifactMissing         (chains.bindings) name, path - an artifact is absent or unreadable
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ChainError(Exception):
    """Root of every chain-access error."""

    reason: str = "chain_error"
    """A short, stable, label-safe name for metrics (`..._rejected_total{reason=...}`)."""


# --------------------------------------------------------------------------- JSON-RPC


class RpcError(ChainError):
    """A JSON-RPC exchange failed.

    `method`: the JSON-RPC method ("eth_getProof"; "batch" for a batch of mixed methods);
    `host`: "host:port" of the endpoint (never the URL); `chain`: the client's chain label
    ("" when none); `index`: the position of the failing item in a batch, else None.
    """

    reason = "rpc_error"

    def __init__(self, message: str, *, method: str, host: str, chain: str = "", index: int | None = None) -> None:
        self.method = method
        self.host = host
        self.chain = chain
        self.index = index
        self.detail = message
        where = f"{chain} " if chain else ""
        item = f" (batch item {index})" if index is not None else ""
        super().__init__(f"{where}{host} {method}{item}: {message}")


class RpcTransportError(RpcError):
    """No usable HTTP response: connection refused/reset, TLS, timeout, or HTTP status not 2xx.

    `status`: the HTTP status (None when no response arrived); `retry_after`: seconds from a
    `Retry-After` header (HTTP 429/503), None when absent or unparseable.
    """

    reason = "rpc_transport"

    def __init__(
        self,
        message: str,
        *,
        method: str,
        host: str,
        chain: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message, method=method, host=host, chain=chain)


class RpcTimeoutError(RpcTransportError):
    """The request did not complete within the client's `timeout_seconds`."""

    reason = "rpc_timeout"


class RpcResponseError(RpcError):
    """The node answered with a JSON-RPC error object (JSON-RPC 2.0 section 5.1).

    `code` (int), `message` (str) and `data` (any JSON value, or None) as the node sent them.
    For a batch, `index` is the position of the failing call in the request.
    """

    reason = "rpc_response"

    def __init__(
        self,
        *,
        method: str,
        host: str,
        code: int,
        message: str,
        data: Any = None,
        chain: str = "",
        index: int | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(
            f"JSON-RPC error {code}: {message[:300]}",
            method=method,
            host=host,
            chain=chain,
            index=index,
        )


class RpcAnswerTooLarge(RpcResponseError):
    """An answer larger than the caller allowed (`chains.rpc.answer_limit`): the node answered,
    so it is not retried elsewhere; the caller asks for less (a smaller eth_getLogs range).
    `code` -32005, "limit exceeded" (EIP-1474), as providers refuse a too-large eth_getLogs.
    `limit`: the bound in bytes."""

    def __init__(self, *, method: str, host: str, limit: int, chain: str = "") -> None:
        self.limit = limit
        super().__init__(
            method=method, host=host, code=-32005, message=f"answer larger than {limit} bytes", chain=chain
        )


class RpcGarbageError(RpcError):
    """The response is not valid JSON-RPC 2.0 or not the shape the method returns.

    Examples: not JSON, JSON nested beyond `chains.jsonparse`'s limit, a non-object reply, wrong
    or missing `id`, neither `result` nor `error`, a batch reply of the wrong length, a quantity
    that is not 0x-hex.
    `detail` says which.
    """

    reason = "rpc_garbage"


# --------------------------------------------------------------------------- blocks


class BlockNotFound(ChainError):
    """`eth_getBlockByNumber` returned null: the node has no block `number` (or tag) yet."""

    reason = "block_not_found"

    def __init__(self, number: int | str, *, host: str = "") -> None:
        self.number = number
        self.host = host
        at = f" at {host}" if host else ""
        super().__init__(f"block {number} not found{at}")


class NoOtherEndpoint(ChainError):
    """`call_elsewhere` was asked for an endpoint on another node than `host`, and the chain has
    none: nothing can confirm what `host` said. `same_node`: {other host: the shared "address
    port"} for endpoints configured under another name that resolve to the same node as `host`
    (empty when every endpoint has the host string `host`)."""

    reason = "no_other_endpoint"

    def __init__(self, host: str, *, chain: str = "", same_node: dict[str, str] | None = None) -> None:
        self.host = host
        self.chain = chain
        self.same_node = dict(same_node or {})
        where = f"chain {chain}: " if chain else ""
        if self.same_node:
            names = ", ".join(f"{other} ({shared})" for other, shared in self.same_node.items())
            message = f"no endpoint on another node than {host}: {names} resolve to the same node"
        else:
            message = f"no endpoint other than {host} is configured"
        super().__init__(f"{where}{message}")


class ChainIdMismatch(ChainError):
    """Endpoints report another chain id (EIP-695 `eth_chainId`) than the configured one.

    `expected`: the configured chain id; `actual`: {host: reported chain id} for every
    endpoint that disagrees; `chain`: the client's chain label. Hosts only, never URLs.
    """

    reason = "chain_id_mismatch"

    def __init__(self, *, expected: int, actual: Mapping[str, int], chain: str = "") -> None:
        self.expected = expected
        self.actual = dict(actual)
        self.chain = chain
        where = f"chain {chain}: " if chain else ""
        found = ", ".join(f"{host} reports {chain_id}" for host, chain_id in self.actual.items())
        super().__init__(f"{where}expected chain id {expected}, but {found}")


class EndpointsUnavailable(ChainError):
    """No endpoint of the chain can be used: none answered, or all were disabled.

    `errors`: {host: why} for every endpoint (the error text, which never holds a URL);
    `chain`: the client's chain label.
    """

    reason = "endpoints_unavailable"

    def __init__(self, message: str, *, errors: Mapping[str, str], chain: str = "") -> None:
        self.errors = dict(errors)
        self.chain = chain
        where = f"chain {chain}: " if chain else ""
        details = "; ".join(f"{host}: {why}" for host, why in self.errors.items())
        super().__init__(f"{where}{message}" + (f" ({details})" if details else ""))


class HeaderError(ChainError):
    """A block header from RPC cannot be trusted."""

    reason = "header_error"


class MalformedHeader(HeaderError):
    """A header field is missing or not decodable (`field` is its JSON-RPC name, "" for the whole).

    Raised for RPC garbage: a non-object block, a field that is absent, not 0x-hex, of the
    wrong byte length, or fork fields out of order (e.g. blobGasUsed without withdrawalsRoot).
    """

    reason = "malformed_header"

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        prefix = f"header field {field!r}" if field else "header"
        super().__init__(f"{prefix}: {detail}")


class HeaderMismatch(HeaderError):
    """A header does not hash to, or is not at, what was claimed or expected.

    `kind`:
      - "hash": keccak256(rlp(header)) (`actual`) differs from the block's own `hash` field
        (`expected`) - the fields were altered or the node lies;
      - "expected_hash": the block's hash (`actual`) differs from the caller's (`expected`);
      - "number": the block's number (`actual`) differs from the requested one (`expected`).
    `expected`/`actual` are 32-byte hashes for the hash kinds and ints for "number";
    `number` is the block number the header claims.
    """

    reason = "header_mismatch"

    def __init__(self, kind: str, *, expected: bytes | int, actual: bytes | int, number: int | None) -> None:
        self.kind = kind
        self.expected = expected
        self.actual = actual
        self.number = number

        def show(value: bytes | int) -> str:
            return "0x" + value.hex() if isinstance(value, bytes) else str(value)

        super().__init__(f"header {kind} mismatch at block {number}: expected {show(expected)}, got {show(actual)}")


# --------------------------------------------------------------------------- proofs


class MalformedProof(ChainError):
    """An `eth_getProof` (EIP-1186) result of the wrong shape, or not what was requested.

    `detail` says which field and why; `address` is the requested account (20 bytes) when known.
    """

    reason = "malformed_proof"

    def __init__(self, detail: str, *, address: bytes | None = None) -> None:
        self.detail = detail
        self.address = address
        who = f" for 0x{address.hex()}" if address is not None else ""
        super().__init__(f"malformed eth_getProof result{who}: {detail}")


class MalformedWitness(ChainError):
    """An EIP-6800 execution witness (``stateDiff`` + ``verkleProof``) of the wrong JSON shape.

    `detail` says which field and why (a JSON path such as ``verkleProof.ipaProof.cl[3]``).
    """

    reason = "malformed_witness"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"malformed execution witness: {detail}")


class MalformedJson(ChainError):
    """JSON from outside refused by ``chains.jsonparse.parse_json`` before anything used it.

    `what` names the input ("WebSocket message", "file"); `problem` is "too_large" (more bytes
    than `limit`), "too_wide" (more values or containers than `limit` for its size), "too_deep"
    (nested deeper than `limit` levels) or "not_json" (not strict
    RFC 8259 JSON; `limit` None); `detail` says which and where, without the input's name.
    """

    reason = "malformed_json"

    def __init__(self, what: str, problem: str, detail: str, *, limit: int | None = None) -> None:
        self.what = what
        self.problem = problem
        self.limit = limit
        self.detail = detail
        super().__init__(f"{what}: {detail}")


# --------------------------------------------------------------------------- transactions


class TransactionError(ChainError):
    """A transaction could not be built or sent, or no receipt came in time.

    `what` names the transaction ("deploy EpochVerifier", "settle:5:0"), `detail` says what went
    wrong, `tx_hash` is its 0x-hex hash once it has one. A revert is the subclass
    `chains.bindings.ContractReverted` (with the decoded custom error).
    """

    reason = "transaction_failed"

    def __init__(self, what: str, detail: str, tx_hash: str | None = None) -> None:
        super().__init__(f"{what}: {detail}" + (f" (tx {tx_hash})" if tx_hash else ""))
        self.what = what
        self.detail = detail
        self.tx_hash = tx_hash
