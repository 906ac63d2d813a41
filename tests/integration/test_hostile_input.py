"""One message, answer or file from outside must not kill or exhaust us (issue 16, attack 3).

As the attacker does it: a WebSocket endpoint standing in for the source node pushes 400 kB of
nested `[` to a real daemon (it used to end with SIGSEGV: the standard json parser recursed under
the 100,000 recursion limit py_ecc sets); `relayer verify` and `relayer keys show` are handed
deeply nested files (exit 139 before); `relayer verify` is handed a 200,000-stem Verkle witness
(~705 MB before) and the worst-shaped file under its size bound, its peak RSS measured; an RPC
endpoint answers a block with a field nested 100 levels deep, which must be garbage to the
fallback client like any other."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from chains.anvil import AnvilNode, free_port
from chains.errors import RpcGarbageError
from chains.fallback import FallbackClient
from chains.rpc import RpcClient
from relayer import devnet
from relayer.proving.scheme import MAX_DOCUMENT_BYTES
from tests.integration.daemon_runs import DaemonRuns
from tests.integration.test_devnet_relay import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NESTED_400_KB = "[" * 200_000 + "]" * 200_000
"""400 kB, 200,000 levels deep: past the C stack at a 100,000 recursion limit, past every bound."""
RSS_BOUND_MB = 256
ZERO = "0x" + bytes(32).hex()


# --------------------------------------------------------------------------- the daemon


class HostileHeadsNode:
    """A WebSocket endpoint on 127.0.0.1 that stands in for the source node's: it grants the
    `eth_subscribe("newHeads")` subscription, then pushes `message`, and keeps the socket open.
    Runs an aiohttp server in a background thread; `connections`, `pushed` and `hung_up` (by the daemon) count."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.port = free_port()
        self.connections = 0
        self.pushed = 0
        self.hung_up = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> HostileHeadsNode:
        self._thread.start()
        assert self._ready.wait(10), "the hostile WebSocket endpoint did not start"
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.connections += 1
        subscribe = json.loads((await socket.receive()).data)
        await socket.send_str(json.dumps({"jsonrpc": "2.0", "id": subscribe["id"], "result": "0xbad"}))
        await socket.send_str(self.message)
        self.pushed += 1
        async for _ in socket:  # until the daemon hangs up
            pass
        self.hung_up += 1
        return socket

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/", self._socket)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()


@pytest.fixture(scope="module")
def hostile_heads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonRuns, HostileHeadsNode]]:
    directory = tmp_path_factory.mktemp("hostile")
    net = devnet.provision(directory, accounts=2, detach=False, progress=False, every_blocks=2)
    node = HostileHeadsNode(NESTED_400_KB).start()
    runs = DaemonRuns(net)
    text = net.config_path.read_text()
    ws_line = f'ws = "ws://{runs.source_rpc.removeprefix("http://")}"'
    assert ws_line in text
    net.config_path.write_text(text.replace(ws_line, f'ws = "{node.url}"'))
    try:
        yield runs, node
    finally:
        try:
            runs.stop()
        finally:
            node.stop()
            devnet.stop(directory)


def test_a_deeply_nested_websocket_message_does_not_kill_the_daemon(
    hostile_heads: tuple[DaemonRuns, HostileHeadsNode],
) -> None:
    """The daemon subscribes to new heads at the hostile endpoint, which pushes 400 kB of `[`.
    The daemon keeps running, says why it dropped the subscription, keeps following the source
    by polling (a deposit made after the push is settled on the destination), subscribes again
    later and survives the same push again, and stops cleanly."""
    runs, node = hostile_heads
    process = runs.start()
    wait_for("the hostile endpoint to push its message", lambda: node.pushed >= 1 or process.poll() is not None, 60)
    wait_for("the daemon to log the refused message", lambda: bool(runs.events("chain.subscription_failed"))
             or process.poll() is not None, 30)  # fmt: skip
    assert process.poll() is None, f"the daemon exited with {process.returncode} after one WebSocket message"
    failed = runs.events("chain.subscription_failed")[0]
    assert failed["chain"] == "source" and failed["host"] == f"127.0.0.1:{node.port}"
    # refused by its width before any parsing (200,000 arrays in 400 kB; chains/jsonparse.py)
    assert "WebSocket message: more arrays and objects (200000) than the limit of" in failed["error"], failed
    assert failed["then"].startswith("polling every")

    account = runs.accounts[0]
    tx = runs.vault.functions.deposit().transact({"from": account, "value": 10**15})
    runs.src.eth.wait_for_transaction_receipt(tx)
    wait_for("the deposit to be settled by polling", runs.all_settled_as_source_says, 90)
    assert runs.settled(account) > 0

    # every WS_RETRY_SECONDS it subscribes again, is pushed the same again and hangs up again
    wait_for("the daemon to refuse a second push", lambda: node.hung_up >= 2 or process.poll() is not None, 60)
    assert process.poll() is None, f"the daemon exited with {process.returncode} after the second push"
    runs.stop()  # SIGTERM: exit 0


# --------------------------------------------------------------------------- relayer verify / keys


MEASURE = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""
"""Runs a command and writes its peak RSS (KiB) to a file: from a small fresh interpreter, because
a child's ru_maxrss starts from what its parent held when it forked (the test process, holding
a 30 MB witness it just wrote, would count)."""


def run_measured(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run `relayer ARGS`; its result and its peak RSS in MB (getrusage(RUSAGE_CHILDREN) of a
    wrapper that ran only it)."""
    figure = tmp_path / "maxrss"
    command = [sys.executable, "-c", MEASURE, str(figure), sys.executable, "-m", "relayer.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL, timeout=300)
    return done, int(figure.read_text()) / 1024  # Linux: KiB


def test_verify_refuses_a_deeply_nested_file(tmp_path: Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text('{"executionWitness": ' + NESTED_400_KB + "}")
    done, _ = run_measured(tmp_path, "verify", str(path), "--root", ZERO)
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr[-300:]}"
    assert done.stderr.strip().startswith(f"relayer: refused {path}: more arrays and objects (200001) than the limit")
    path.write_text('{"executionWitness": ' + "[" * 100 + "]" * 100 + "}")
    done, _ = run_measured(tmp_path, "verify", str(path), "--root", ZERO)
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr[-300:]}"
    assert done.stderr.strip() == f"relayer: refused {path}: nested deeper than the limit of 16 levels"


def test_keys_show_refuses_a_deeply_nested_keystore(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    path.write_text(NESTED_400_KB)
    path.chmod(0o600)  # a key file open to others is refused before it is read
    done, _ = run_measured(tmp_path, "keys", "show", str(path))
    assert done.returncode == 1, f"exit {done.returncode}: {done.stderr[-300:]}"
    assert done.stderr.strip() == f"relayer keys: keystore {path}: larger than the limit of 65536 bytes (400000 bytes)"
    path.write_text('{"crypto": ' + "[" * 100 + "]" * 100 + "}")
    done, _ = run_measured(tmp_path, "keys", "show", str(path))
    assert done.returncode == 1
    assert done.stderr.strip() == f"relayer keys: keystore {path}: nested deeper than the limit of 8 levels"


def _witness(stems: int, *, filled: bool = False) -> dict[str, Any]:
    """A Verkle witness against the empty tree proving `stems` stems absent (the shape of
    tests/relayer/test_proofscheme.py's, scaled up). `filled`: two suffixes per stem with
    values, and a commitment per stem, as a witness of touched accounts has (then not valid
    against the empty tree)."""
    suffixes = (0, 1) if filled else (0,)
    diffs = [
        {
            "stem": "0x" + i.to_bytes(31, "big").hex(),
            "suffixDiffs": [
                {"suffix": s, "currentValue": "0x" + (2 * i + s).to_bytes(32, "big").hex() if filled else None,
                 "newValue": None}
                for s in suffixes
            ],
        }
        for i in range(stems)
    ]  # fmt: skip
    commitments = ["0x" + i.to_bytes(32, "big").hex() for i in range(stems)] if filled else []
    extensions = "0x" + ("0a" if filled else "08") * stems
    proof = {"otherStems": [], "depthExtensionPresent": extensions, "commitmentsByPath": commitments, "d": ZERO,
             "ipaProof": {"cl": [ZERO] * 8, "cr": [ZERO] * 8, "finalEvaluation": ZERO}}  # fmt: skip
    return {"stateDiff": diffs, "verkleProof": proof, "preStateRoot": ZERO}


def test_verify_stays_under_256_mb_on_an_oversized_witness(tmp_path: Path) -> None:
    """A filled 200,000-stem witness (81 MB; 432 MB of RSS before) is refused with the bound named; the
    worst-shaped file just under the bound (empty objects: ~47 bytes of Python objects per byte)
    and a real-shaped 10,000-stem witness are read and answered, all within 256 MB. The
    empty objects are refused by their width before parsing; the densest shape the width bound
    accepts (a number every 8 bytes) is read and answered."""
    big = tmp_path / "witness-200k.json"
    big.write_text(json.dumps(_witness(200_000, filled=True)))
    done, peak = run_measured(tmp_path, "verify", str(big))
    print(f"verify 200,000-stem witness ({big.stat().st_size} bytes): exit {done.returncode}, peak RSS {peak:.0f} MB")
    assert peak < RSS_BOUND_MB, f"peak RSS {peak:.0f} MB"
    assert done.returncode == 2, done.stderr[-300:]
    assert done.stderr.strip() == f"relayer: refused {big}: larger than the limit of {MAX_DOCUMENT_BYTES} bytes"

    worst = tmp_path / "empty-objects.json"
    count = (MAX_DOCUMENT_BYTES - len('{"stateDiff":[],"verkleProof":{}}')) // 3
    worst.write_text('{"stateDiff":[' + ",".join(["{}"] * count) + '],"verkleProof":{}}')
    assert MAX_DOCUMENT_BYTES - 3 <= worst.stat().st_size <= MAX_DOCUMENT_BYTES
    done, peak = run_measured(tmp_path, "verify", str(worst), "--root", ZERO)
    print(f"verify {worst.stat().st_size} bytes of empty objects: exit {done.returncode}, peak RSS {peak:.0f} MB")
    assert done.returncode == 2 and "more arrays and objects" in done.stderr, done.stderr[-300:]
    assert peak < RSS_BOUND_MB

    dense = tmp_path / "dense-numbers.json"
    count = (MAX_DOCUMENT_BYTES - 64) // 8
    dense.write_text('{"stateDiff":[' + ",".join(["1234567"] * count) + '],"verkleProof":{}}')
    done, peak = run_measured(tmp_path, "verify", str(dense), "--root", ZERO)
    print(f"verify {dense.stat().st_size} bytes of numbers: exit {done.returncode}, peak RSS {peak:.0f} MB")
    assert done.returncode == 1 and done.stdout.startswith("INVALID: malformed execution witness"), done.stdout
    assert peak < RSS_BOUND_MB

    fits = tmp_path / "witness-10k.json"
    fits.write_text(json.dumps(_witness(10_000)))
    done, peak = run_measured(tmp_path, "verify", str(fits))
    print(f"verify 10,000-stem witness ({fits.stat().st_size} bytes): exit {done.returncode}, peak RSS {peak:.0f} MB")
    assert done.returncode == 0, done.stdout[-300:] + done.stderr[-300:]
    assert peak < RSS_BOUND_MB


# --------------------------------------------------------------------------- RPC answers


def _nested_value(depth: int) -> Any:
    value: Any = "0x1"
    for _ in range(depth):
        value = [value]
    return value


async def test_an_rpc_answer_nested_too_deep_is_garbage_to_the_fallback_client(anvil: AnvilNode) -> None:
    """The primary endpoint relays anvil's real block with one extra field nested 100 levels
    deep (orjson alone takes up to 1024). The client refuses the answer as garbage, naming the
    limit; the fallback client retries it like garbage and answers anvil's block from the
    second endpoint."""

    async def lying(request: web.Request) -> web.Response:
        body = await request.json()
        async with aiohttp.ClientSession() as session, session.post(anvil.url, json=body) as answer:
            reply = await answer.json()
        if body.get("method") == "eth_getBlockByNumber" and isinstance(reply.get("result"), dict):
            reply["result"]["extraData2"] = _nested_value(100)
        return web.json_response(reply)

    app = web.Application()
    app.router.add_post("/", lying)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    primary = f"http://127.0.0.1:{server.port}/"
    retries: list[tuple[str, str, str]] = []
    try:
        async with RpcClient(primary) as direct:
            with pytest.raises(RpcGarbageError) as info:
                await direct.get_block("latest")
        assert "response nested deeper than the limit of 64 levels" in str(info.value)
        assert info.value.reason == "rpc_garbage"

        async with FallbackClient(
            [primary, anvil.url], chain_label="source", jitter=False, on_retry=lambda *a: retries.append(a)
        ) as client:
            answered = await client.get_block_answered("latest")
        assert answered.result is not None and "extraData2" not in answered.result
        assert answered.host == f"127.0.0.1:{anvil.port}"
        assert retries == [("eth_getBlockByNumber", f"127.0.0.1:{server.port}", "rpc_garbage")]
    finally:
        await server.close()
