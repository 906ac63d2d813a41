"""New heads pushed by a node: `eth_subscribe("newHeads")` over a WebSocket (aiohttp).

The geth/anvil pub-sub API: a JSON-RPC request `eth_subscribe(["newHeads"])` answered with a
subscription id, then one `eth_subscription` notification per new head (reorgs included) whose
`params.result` is the block header object. Only the fact that a head arrived is used by the
relayer (its watcher then reads head and finalized height over HTTP), so nothing pushed here is
trusted beyond "something changed".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, Final

import aiohttp
import yarl

from chains.errors import MalformedJson, RpcTransportError
from chains.jsonparse import parse_json

MAX_MESSAGE_BYTES: Final = 1 << 20
"""A pushed message larger than this (bytes) ends the connection (aiohttp's `max_msg_size`): a
newHeads notification is about 1 kB."""
MAX_MESSAGE_DEPTH: Final = 8
"""A pushed message nested deeper than this ends the connection: a newHeads notification has 4
levels (`params.result.withdrawals[i]`)."""


def ws_host(url: str) -> str:
    """ "host:port" of a ws(s) URL, for logs (never the URL: it may carry an API key)."""
    parsed = yarl.URL(url)
    return f"{parsed.host}:{parsed.port}"


async def new_heads(
    url: str, *, timeout_seconds: float = 10.0, quiet_seconds: float | None = None, chain: str = ""
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """Connect to `url` (ws:// or wss://), subscribe to new heads and yield each pushed header
    object (a dict as the node sent it), and None after each `quiet_seconds` without one (None:
    wait as long as it takes), until the connection ends or the caller stops.

    Raises RpcTransportError (method "eth_subscribe") when the connection cannot be made, the
    node refuses the subscription or answers garbage, pushes a message that is not JSON or
    exceeds `MAX_MESSAGE_BYTES` or `MAX_MESSAGE_DEPTH` (chains.jsonparse), or the connection
    closes; the caller falls back to polling. Use with `contextlib.aclosing` so that leaving
    closes the socket.
    """
    host = ws_host(url)

    def failure(message: str) -> RpcTransportError:
        return RpcTransportError(message, method="eth_subscribe", host=host, chain=chain)

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=timeout_seconds)) as session,
            session.ws_connect(url, heartbeat=max(timeout_seconds, 1.0), max_msg_size=MAX_MESSAGE_BYTES) as socket,
        ):
            await socket.send_json({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
            reply = await asyncio.wait_for(socket.receive(), timeout_seconds)
            answer = _json(reply)
            if not isinstance(answer, dict) or not isinstance(answer.get("result"), str):
                raise failure(f"subscription refused: {str(answer)[:200]}")
            subscription = answer["result"]
            while True:
                try:
                    message = _json(await socket.receive(timeout=quiet_seconds))
                except TimeoutError:
                    yield None
                    continue
                if not isinstance(message, dict) or message.get("method") != "eth_subscription":
                    continue  # e.g. a late reply to something else: not a head
                params = message.get("params")
                if not isinstance(params, dict) or params.get("subscription") != subscription:
                    continue
                result = params.get("result")
                yield result if isinstance(result, dict) else {}
    except _Closed as exc:
        raise failure(f"websocket closed: {exc}") from None
    except MalformedJson as exc:  # too large, too deep or not JSON: a broken or hostile node
        raise failure(str(exc)) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        text = str(exc).replace(url, host)  # the URL may carry an API key: never shown
        raise failure(f"websocket: {type(exc).__name__}: {text}") from None


class _Closed(Exception):
    pass


def _json(message: aiohttp.WSMessage) -> Any:
    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
        raise _Closed(f"code {message.data}")
    if message.type == aiohttp.WSMsgType.ERROR:
        raise _Closed(str(message.data))
    if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
        return None
    return parse_json(message.data, max_bytes=MAX_MESSAGE_BYTES, max_depth=MAX_MESSAGE_DEPTH, what="WebSocket message")
