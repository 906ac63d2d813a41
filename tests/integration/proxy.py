"""A JSON-RPC proxy on 127.0.0.1 (or another loopback address, `host`) in front of a real node
that can tamper with responses. `upstream` may be switched to another node at any time.

Runs an aiohttp server in a background thread. `tamper` (one of `TAMPER_MODES`, or None)
forges what the node says, keeping the JSON well-formed:
- "proof_node": one byte flipped in a storage-proof node of every eth_getProof response;
- "account_proof": one byte flipped in the deepest account-proof node of every eth_getProof
  response (the contract's account proof fails: the whole snapshot is rejected);
- "value": the first storage value of every eth_getProof response raised by one;
- "header_field": the stateRoot of every eth_getBlockByNumber(number) response changed;
- "other_block": eth_getBlockByNumber(N) answered with block N-1 (a genuine header, another block).
`tamper_proofs = True` is the same as tamper = "proof_node". `tampered` counts forged replies.

`set_mode(...)` injects endpoint faults (one of `FAULT_MODES`):
- "ok": forward every request;
- "down": answer HTTP 502 without asking the node;
- "refused": stop listening and drop open (kept-alive) connections, so connections are refused
  (the port is reopened by the next mode);
- "flapping": every other request gets HTTP 502, the others are forwarded;
- "slow": wait `slow_seconds` (default 2 s), then forward;
- "rate_limited": HTTP 429 with `Retry-After: <retry_after>` (default "1").
`hits` counts the requests that reached the proxy (refused connections never do).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import aiohttp
from aiohttp import web

from chains.anvil import free_port

FAULT_MODES = ("ok", "down", "refused", "flapping", "slow", "rate_limited")
TAMPER_MODES = ("proof_node", "account_proof", "value", "header_field", "other_block")


def _items(message: Any) -> list[Any]:
    return message if isinstance(message, list) else [message]


def forge_request(mode: str | None, body: bytes) -> bytes:
    """For "other_block": ask the node for block N-1 whenever block N (a number) is requested."""
    if mode != "other_block" or b"eth_getBlockByNumber" not in body:
        return body
    request = json.loads(body)
    for item in _items(request):
        params = item.get("params") or []
        if item.get("method") == "eth_getBlockByNumber" and params and str(params[0]).startswith("0x"):
            params[0] = hex(max(int(params[0], 16) - 1, 0))
    return json.dumps(request).encode()


def forge_reply(mode: str | None, body: bytes, payload: bytes) -> tuple[bytes, int]:
    """Apply a tamper mode to a node's reply; returns the reply and how many results were forged."""
    if mode in (None, "other_block"):
        return payload, 1 if mode and b"eth_getBlockByNumber" in body and b'"0x' in body else 0
    reply = json.loads(payload)
    forged = 0
    for item in _items(reply):
        result = item.get("result") if isinstance(item, dict) else None
        if not isinstance(result, dict):
            continue
        if mode == "proof_node" and "accountProof" in result:
            flip_proof_byte(result)
            forged += 1
        elif mode == "account_proof" and result.get("accountProof"):
            flip_proof_byte({"accountProof": result["accountProof"]})
            forged += 1
        elif mode == "value" and result.get("storageProof"):
            entry = result["storageProof"][0]
            entry["value"] = hex(int(entry["value"], 16) + 1)
            forged += 1
        elif mode == "header_field" and "stateRoot" in result and "transactionsRoot" in result:
            result["stateRoot"] = "0x" + format(int(result["stateRoot"], 16) ^ 1, "064x")
            forged += 1
    return json.dumps(reply).encode(), forged


def flip_proof_byte(result: dict[str, Any]) -> None:
    """Flip a byte in the middle of the deepest node of the first storage proof (or the account proof)."""
    proofs = [p["proof"] for p in result.get("storageProof", []) if p["proof"]] or [result["accountProof"]]
    nodes = proofs[0]
    node = nodes[-1]
    middle = 2 + (len(node) - 2) // 2 // 2 * 2
    flipped = format(int(node[middle : middle + 2], 16) ^ 0x01, "02x")
    nodes[-1] = node[:middle] + flipped + node[middle + 2 :]


class TamperProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = free_port()
        self.tamper: str | None = None
        self.tampered = 0
        self.mode = "ok"
        self.slow_seconds = 2.0
        self.retry_after = "1"
        self.hits = 0
        self._site: web.TCPSite | None = None
        self._runner: web.AppRunner | None = None
        self._upstream: aiohttp.ClientSession | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def tamper_proofs(self) -> bool:
        return self.tamper == "proof_node"

    @tamper_proofs.setter
    def tamper_proofs(self, on: bool) -> None:
        self.tamper = "proof_node" if on else None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> TamperProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            try:  # close the upstream session first (no "Unclosed client session" noise)
                asyncio.run_coroutine_threadsafe(self._close_upstream(), self._loop).result(5)
            except Exception:
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _close_upstream(self) -> None:
        if self._upstream is not None:
            await self._upstream.close()

    def set_mode(self, mode: str) -> None:
        """Switch the fault mode (see the module docstring); blocks until it is in effect."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown proxy mode {mode!r}; use one of {FAULT_MODES}")
        asyncio.run_coroutine_threadsafe(self._apply(mode), self._loop).result(10)

    async def _apply(self, mode: str) -> None:
        if mode == "refused" and self._site is not None:
            await self._site.stop()
            self._site = None
            if self._runner is not None and self._runner.server is not None:
                for connection in self._runner.server.connections:  # kept-alive ones too: refused is refused
                    connection.force_close()
        elif mode != "refused" and self._site is None and self._runner is not None:
            self._site = web.TCPSite(self._runner, self.host, self.port)
            await self._site.start()
        self.mode = mode

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def handle(request: web.Request) -> web.Response:
            session = self._upstream = self._upstream or aiohttp.ClientSession()
            body = await request.read()
            self.hits += 1
            if self.mode == "down" or (self.mode == "flapping" and self.hits % 2 == 1):
                return web.Response(status=502, text="bad gateway (fault injected)")
            if self.mode == "rate_limited":
                return web.Response(status=429, text="rate limited", headers={"Retry-After": self.retry_after})
            if self.mode == "slow":
                await asyncio.sleep(self.slow_seconds)
            mode = self.tamper
            forwarded = forge_request(mode, body)
            async with session.post(self.upstream, data=forwarded, headers={"Content-Type": "application/json"}) as up:
                payload = await up.read()
            payload, forged = forge_reply(mode, body, payload)
            self.tampered += forged
            return web.Response(body=payload, content_type="application/json")

        app = web.Application()
        app.router.add_post("/", handle)
        app.router.add_post("/{path:.+}", handle)  # any path: endpoints carry API keys in it
        runner = self._runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._site = web.TCPSite(runner, self.host, self.port)
        self._loop.run_until_complete(self._site.start())
        self._ready.set()
        self._loop.run_forever()
