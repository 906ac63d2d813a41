"""A JSON-RPC proxy on 127.0.0.1 in front of a real node that can tamper with responses.

Runs an aiohttp server in a background thread; `tamper_proofs = True` flips one byte of a
storage-proof node in every eth_getProof response (the hex stays well-formed, the hash breaks).

`set_mode(...)` injects endpoint faults (one of `FAULT_MODES`):
- "ok": forward every request;
- "down": answer HTTP 502 without asking the node;
- "refused": stop listening, so connections are refused (the port is reopened by the next mode);
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


def flip_proof_byte(result: dict[str, Any]) -> None:
    """Flip a byte in the middle of the deepest node of the first storage proof (or the account proof)."""
    proofs = [p["proof"] for p in result.get("storageProof", []) if p["proof"]] or [result["accountProof"]]
    nodes = proofs[0]
    node = nodes[-1]
    middle = 2 + (len(node) - 2) // 2 // 2 * 2
    flipped = format(int(node[middle : middle + 2], 16) ^ 0x01, "02x")
    nodes[-1] = node[:middle] + flipped + node[middle + 2 :]


class TamperProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.tamper_proofs = False
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
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
        elif mode != "refused" and self._site is None and self._runner is not None:
            self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
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
            async with session.post(self.upstream, data=body, headers={"Content-Type": "application/json"}) as up:
                payload = await up.read()
            if self.tamper_proofs and b"eth_getProof" in body:
                reply = json.loads(payload)
                for item in reply if isinstance(reply, list) else [reply]:
                    if isinstance(item.get("result"), dict) and "accountProof" in item["result"]:
                        flip_proof_byte(item["result"])
                        self.tampered += 1
                payload = json.dumps(reply).encode()
            return web.Response(body=payload, content_type="application/json")

        app = web.Application()
        app.router.add_post("/", handle)
        runner = self._runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._site = web.TCPSite(runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(self._site.start())
        self._ready.set()
        self._loop.run_forever()
