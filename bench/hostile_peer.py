"""A hostile committee peer on 127.0.0.1, in front of real members' attestation APIs.

It answers `GET /v1/attestations/{chain_id}/{epoch}` as a member would (`{"attestations":
[...]}`), built from what the real members it fronts serve for that epoch (their
`/v1/attestations`, relayer.observability.api), in this order:

1. the high-s twin of every real signature (r, n - s, v 27 <-> 28): it recovers to the same
   member, but the destination refuses it (OpenZeppelin `ECDSAInvalidSignatureS`);
2. with `equivocator` (a member's attester key, as if that member lied), its signatures over
   `equivocations` other roots for the epoch, signed for committee generation `generation`
   (the EIP-712 domain's salt; 1 on a devnet whose committee never changed);
3. junk up to `flood` items in all: attestations claimed by non-members (random addresses,
   signatures well-formed and canonical, so only a membership check spares their recovery),
   malformed objects and more twins;
4. the real attestations, last.

Served at `/v1/attestations/...` (every upstream's attestations merged: a peer the members
list beside the real ones) and at `/via/{k}/v1/attestations/...` (upstream k's only: a peer URL
`{url}/via/{k}` stands on the path to member k, as anyone on the path of a plain http:// peer
URL can). Runs an aiohttp server in a background thread (`start()`, `stop()`); `answers` counts
the answers given and `items` the attestations in them. Used by
tests/integration/test_committee_hostile.py, and as its own process by bench/committee.py
(`--hostile-peer`), so that its work does not slow the bench's own clock:

    python -m bench.hostile_peer --port P --upstream URL [--upstream URL ...] [--flood N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web
from eth_account.signers.local import LocalAccount

from chains.anvil import free_port
from relayer.attestation.eip712 import sign_epoch

UPSTREAM_TIMEOUT_SECONDS = 1.0
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The secp256k1 group order (SEC 2): an attacker's own constant, not the relayer's."""


def twin(signature: bytes) -> bytes:
    """The other valid ECDSA signature of the same message and key: (r, n - s, v 27 <-> 28)."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


def twin_json(att: dict[str, Any]) -> dict[str, Any]:
    """An attestation JSON object with its signature replaced by the high-s twin."""
    return dict(att, signature="0x" + twin(bytes.fromhex(str(att["signature"])[2:])).hex())


def _random_canonical_signature() -> bytes:
    r = int.from_bytes(os.urandom(32), "big") % (SECP256K1_N - 1) + 1
    s = int.from_bytes(os.urandom(32), "big") % (SECP256K1_N // 2) + 1
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27])


def junk(template: dict[str, Any], count: int) -> list[object]:
    """`count` junk items in the shape of attestation `template` (its chain id, verifier and
    epoch): mostly non-members' attestations (a random signer, a random canonical signature),
    every 16th a malformed object, every 16th (offset 8) a twin of the template."""
    out: list[object] = []
    for i in range(count):
        if i % 16 == 0:
            out.append({"chain_id": template["chain_id"], "epoch": template["epoch"], "junk": i})
        elif i % 16 == 8:
            out.append(twin_json(template))
        else:
            out.append(
                dict(
                    template,
                    signer="0x" + os.urandom(20).hex(),
                    root="0x" + os.urandom(32).hex(),
                    signature="0x" + _random_canonical_signature().hex(),
                )
            )
    return out


class HostilePeer:
    """The hostile peer (see the module docstring), fronting the member APIs `upstreams`."""

    def __init__(
        self,
        upstreams: Sequence[str],
        *,
        flood: int = 1024,
        twins: bool = True,
        equivocator: LocalAccount | None = None,
        equivocations: int = 0,
        generation: int = 1,
        port: int | None = None,
    ) -> None:
        self.upstreams = [u.rstrip("/") for u in upstreams]
        self.flood = flood
        self.twins = twins
        self.equivocator = equivocator
        self.equivocations = equivocations
        self.generation = generation
        self.port = port or free_port()
        self.answers = 0
        self.items = 0
        self._lies: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self._junk: dict[tuple[int, int, int], list[object]] = {}  # made once per epoch, as an attacker would
        self._session: aiohttp.ClientSession | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def via(self, k: int) -> str:
        """The peer URL that stands on the path to upstream `k`."""
        return f"{self.url}/via/{k}"

    def start(self) -> HostilePeer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the hostile peer did not start")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch(self, upstream: str, chain_id: str, epoch: str) -> list[dict[str, Any]]:
        session = self._session = self._session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_SECONDS)
        )
        try:
            async with session.get(f"{upstream}/v1/attestations/{chain_id}/{epoch}") as answer:
                if answer.status != 200:
                    return []
                document = await answer.json()
        except (aiohttp.ClientError, OSError, ValueError, TimeoutError):
            return []
        items = document.get("attestations") if isinstance(document, dict) else None
        return [a for a in items if isinstance(a, dict)] if isinstance(items, list) else []

    def _equivocate(self, real: dict[str, Any]) -> list[dict[str, Any]]:
        account = self.equivocator
        if account is None or not self.equivocations:
            return []
        key = (int(real["chain_id"]), int(real["epoch"]))
        if key not in self._lies:
            previous = bytes.fromhex(str(real["previous"])[2:])
            lies = []
            for _ in range(self.equivocations):
                root = os.urandom(32)
                signature = sign_epoch(
                    account, key[0], str(real["verifier"]), key[1], root, previous, generation=self.generation
                )
                lies.append(
                    dict(real, root="0x" + root.hex(), signer=account.address, signature="0x" + signature.hex())
                )
            self._lies[key] = lies
        return self._lies[key]

    async def answer(self, upstreams: Sequence[str], chain_id: str, epoch: str) -> list[object]:
        """The hostile answer for an epoch (see the module docstring)."""
        real: list[dict[str, Any]] = []
        for items in await asyncio.gather(*(self._fetch(u, chain_id, epoch) for u in upstreams)):
            real += [a for a in items if a not in real]
        if not real:
            return []
        head: list[object] = [twin_json(a) for a in real] if self.twins else []
        head += self._equivocate(real[0])
        count = max(0, self.flood - len(head) - len(real))
        key = (int(real[0]["chain_id"]), int(real[0]["epoch"]), count)
        if key not in self._junk:
            if len(self._junk) > 64:
                self._junk.clear()
            self._junk[key] = junk(real[0], count)
        return head + self._junk[key] + list(real)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve(request: web.Request, upstreams: Sequence[str]) -> web.Response:
            items = await self.answer(upstreams, request.match_info["chain_id"], request.match_info["epoch"])
            self.answers += 1
            self.items += len(items)
            return web.json_response({"attestations": items})

        async def merged(request: web.Request) -> web.Response:
            return await serve(request, self.upstreams)

        async def via(request: web.Request) -> web.Response:
            k = request.match_info["k"]
            if not (k.isdigit() and int(k) < len(self.upstreams)):
                return web.json_response({"error": "no such upstream"}, status=404)
            return await serve(request, [self.upstreams[int(k)]])

        app = web.Application()
        app.router.add_get("/v1/attestations/{chain_id}/{epoch}", merged)
        app.router.add_get("/via/{k}/v1/attestations/{chain_id}/{epoch}", via)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()


def main(argv: list[str] | None = None) -> int:
    """Serve as a process until SIGTERM or SIGINT (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_peer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", action="append", required=True, help="a real member's API base URL")
    parser.add_argument("--flood", type=int, default=1024, help="items per answer (default 1024)")
    args = parser.parse_args(argv)
    peer = HostilePeer(args.upstream, flood=args.flood, port=args.port).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"hostile peer at {peer.url} in front of {len(args.upstream)} member(s)", flush=True)
    stop.wait()
    peer.stop()
    print(f"hostile peer: {peer.answers} answers, {peer.items} items", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
