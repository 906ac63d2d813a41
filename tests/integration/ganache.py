"""A local ganache node (npm package `ganache`, built on ethereumjs): a second EVM node
implementation to check the relayer against, besides anvil (reth's EVM)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from chains.anvil import DEV_MNEMONIC, free_port, rpc

REPO = Path(__file__).resolve().parents[2]
GANACHE_BIN = REPO / "node_modules" / ".bin" / "ganache"


@dataclass
class GanacheNode:
    chain_id: int
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_ganache(
    chain_id: int, *, block_time: float = 1.0, accounts: int = 10, log_path: Path | None = None
) -> GanacheNode:
    """Start ganache on 127.0.0.1 with the dev mnemonic, a block every `block_time` seconds.
    Raises RuntimeError when `make setup` has not installed it or it does not come up in 60 s."""
    if not GANACHE_BIN.exists():
        raise RuntimeError(f"{GANACHE_BIN} missing: run `make setup` (npm ci installs ganache)")
    port = free_port()
    args = [
        str(GANACHE_BIN),
        "--server.host", "127.0.0.1",
        "--server.port", str(port),
        "--chain.chainId", str(chain_id),
        "--wallet.mnemonic", DEV_MNEMONIC,
        "--wallet.totalAccounts", str(accounts),
        "--wallet.defaultBalance", "10000",
        "--miner.blockTime", str(block_time),
        "--logging.quiet",
    ]  # fmt: skip
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    node = GanacheNode(chain_id, port, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ganache exited with code {process.returncode}")
        try:
            if int(str(rpc(node.url, "eth_chainId", timeout=1)), 16) == chain_id:
                return node
        except OSError:
            pass
        time.sleep(0.2)
    node.stop()
    raise RuntimeError(f"ganache did not answer on port {port} within 60 s")
