"""Local anvil nodes (from the npm package `@foundry-rs/anvil-linux-amd64`) for the devnet and tests."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ANVIL_PACKAGE_BIN = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")

# anvil's default mnemonic; these keys are public and fund only local test chains.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


class AnvilNotFound(RuntimeError):
    """No anvil binary: run `npm ci` (or `make setup`) in the repository, or set ANVIL_BIN."""


def find_anvil() -> Path:
    """Locate the anvil binary: $ANVIL_BIN, node_modules above the cwd or this package, PATH."""
    env = os.environ.get("ANVIL_BIN")
    if env:
        return Path(env)
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / ANVIL_PACKAGE_BIN
            if candidate.is_file():
                return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise AnvilNotFound(
        "anvil not found: run `make setup` (npm ci installs @foundry-rs/anvil-linux-amd64) or set ANVIL_BIN"
    )


# Ports are handed out from just below the kernel's ephemeral range (ip_local_port_range), where
# neither an outgoing connection's source port nor another program's bind(0) lands, and each one
# is held for PORT_HOLD_SECONDS in a lock-guarded file shared by every process on the machine
# (pytest-xdist workers, `relayer devnet`), so a port picked here and bound later (an anvil, a
# daemon's listener, a proxy) is never handed to anyone else in between.
PORT_SPAN = 12_000
PORT_HOLD_SECONDS = 900.0
PORT_BOOK = Path(tempfile.gettempdir()) / "chains-anvil-free-ports.json"
_RANDOM = random.SystemRandom()  # not the seeded global one (hypothesis seeds it per example)


def _port_range() -> range:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - PORT_SPAN), low)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and handed out by no other call for
    PORT_HOLD_SECONDS (see PORT_BOOK). Raises RuntimeError when none is found."""
    ports = _port_range()
    try:  # no symlink followed: the book sits in the shared temporary folder
        book = os.fdopen(os.open(PORT_BOOK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600), "r+")
    except OSError:  # not ours (another user's book): a port the kernel calls free, held by nobody
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    with book:
        fcntl.flock(book, fcntl.LOCK_EX)
        book.seek(0)
        try:
            held: dict[str, float] = json.loads(book.read() or "{}")
        except ValueError:
            held = {}
        now = time.time()
        held = {port: since for port, since in held.items() if now - since < PORT_HOLD_SECONDS}
        for _ in range(1000):
            port = _RANDOM.choice(ports)
            if str(port) not in held and _bindable(port):
                held[str(port)] = now
                book.seek(0)
                book.truncate()
                book.write(json.dumps(held))
                return port
    raise RuntimeError(f"no free TCP port in {ports.start}-{ports.stop - 1} on 127.0.0.1")


@dataclass
class AnvilNode:
    """A running anvil process. `url` is its HTTP JSON-RPC endpoint."""

    chain_id: int
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    pid: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def rpc(url: str, method: str, params: list[object] | None = None, timeout: float = 10.0) -> object:
    """A blocking JSON-RPC call, for set-up code outside the event loop."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def start_anvil(
    chain_id: int,
    *,
    port: int | None = None,
    block_time: float | None = None,
    accounts: int = 10,
    balance_eth: int = 10_000,
    log_path: Path | None = None,
    detach: bool = False,
    extra_args: tuple[str, ...] = (),
) -> AnvilNode:
    """Start anvil on 127.0.0.1 and wait until it answers `eth_chainId`.

    `block_time` in seconds (None: a block per transaction). `detach` puts anvil in its own
    session so it outlives this process (used by `relayer devnet --no-run`).
    Raises AnvilNotFound, or RuntimeError when it does not come up within 20 s.
    """
    port = port or free_port()
    args = [
        str(find_anvil()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--accounts",
        str(accounts),
        "--balance",
        str(balance_eth),
        "--mnemonic",
        DEV_MNEMONIC,
        *extra_args,
    ]
    if block_time is not None:
        args += ["--block-time", str(block_time)]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=detach)
    node = AnvilNode(chain_id=chain_id, port=port, process=process, pid=process.pid)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"anvil exited with code {process.returncode} (port {port})")
        try:
            if int(str(rpc(node.url, "eth_chainId", timeout=1)), 16) == chain_id:
                return node
        except OSError:
            pass
        time.sleep(0.05)
    node.stop()
    raise RuntimeError(f"anvil did not answer on port {port} within 20 s")
