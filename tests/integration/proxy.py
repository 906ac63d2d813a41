"""A JSON-RPC proxy on 127.0.0.1 in front of a real node that can tamper with responses.

Runs an aiohttp server in a background thread; `tamper_proofs = True` flips one byte of a
storage-proof node in every eth_getProof response (the hex stays well-formed, the hash breaks).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import aiohttp
from aiohttp import web

from chains.anvil import free_port


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
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        session: aiohttp.ClientSession | None = None

        async def handle(request: web.Request) -> web.Response:
            nonlocal session
            session = session or aiohttp.ClientSession()
            body = await request.read()
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
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
