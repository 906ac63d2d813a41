"""Fault injection: EIP-1186 proofs and headers through a FallbackClient whose primary endpoint fails.

A real anvil node sits behind two `TamperProxy`s: the primary with an injected fault (HTTP 502,
connection refused, every other request 502, answers slower than the client's timeout, HTTP 429
with Retry-After: 1), the secondary healthy. `fetch_header` + `fetch_proof` must keep returning
proofs that verify against the header's stateRoot (native verifier), and once the fault is
cleared the primary must be preferred again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import native
from chains.anvil import AnvilNode, rpc, start_anvil
from chains.errors import RpcTransportError
from chains.fallback import FallbackClient
from chains.proofs import fetch_header, fetch_proof
from tests.integration.proxy import TamperProxy

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("42" * 20)
SLOTS = {bytes(31) + bytes([i]): 1000 + i for i in range(3)}
MISSING_SLOT = bytes(31) + b"\x09"

EXPECTED_REASONS = {
    "down": {"rpc_transport"},
    "refused": {"rpc_transport"},
    "flapping": {"rpc_transport"},
    "slow": {"rpc_timeout"},
    "rate_limited": {"rpc_transport"},
}


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[AnvilNode, int]]:
    """One anvil node for the module, with a contract holding three storage slots in a mined block."""
    node = start_anvil(CHAIN_ID)
    try:
        address = "0x" + CONTRACT.hex()
        rpc(node.url, "anvil_setCode", [address, "0x00"])
        for slot, value in SLOTS.items():
            rpc(node.url, "anvil_setStorageAt", [address, "0x" + slot.hex(), "0x" + value.to_bytes(32, "big").hex()])
        rpc(node.url, "evm_mine", [])
        number = rpc(node.url, "eth_blockNumber", [])
        assert isinstance(number, str)
        yield node, int(number, 16)
    finally:
        node.stop()


class Retries:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, method: str, host: str, reason: str) -> None:
        self.calls.append((method, host, reason))


async def prove(client: FallbackClient, number: int) -> None:
    """Fetch a header and a proof of 4 slots (2 chunks: a JSON-RPC batch) and verify them."""
    header = await fetch_header(client, number)
    slots = [*SLOTS, MISSING_SLOT]
    proof = await fetch_proof(client, CONTRACT, slots, number, chunk_size=2)
    account = native.verify_account(header.state_root, CONTRACT, proof.account_proof)
    assert account is not None and account.storage_hash == proof.storage_hash
    values = [native.verify_storage(proof.storage_hash, entry.slot, entry.proof) for entry in proof.storage]
    assert values == [*SLOTS.values(), 0]


@pytest.mark.parametrize("mode", list(EXPECTED_REASONS))
async def test_proofs_survive_a_failing_primary(chain: tuple[AnvilNode, int], mode: str) -> None:
    node, number = chain
    primary = TamperProxy(node.url).start()
    secondary = TamperProxy(node.url).start()
    loop = asyncio.get_running_loop()
    try:
        primary.slow_seconds = 1.5
        primary.set_mode(mode)
        retries = Retries()
        async with FallbackClient(
            [primary.url, secondary.url],
            chain_label="source",
            timeout_seconds=0.5,
            backoff_base_seconds=0.02,
            backoff_max_seconds=0.05,
            on_retry=retries,
        ) as client:
            primary_host, secondary_host = client.hosts
            # the primary fails its start check too: logged, not fatal, checked before first use
            await client.check_chain_id(CHAIN_ID)
            rounds = 0
            started = loop.time()
            while rounds < 3 or len(retries.calls) < 2:  # the primary is probed whenever its cooldown ends
                assert loop.time() - started < 8, f"the fault was hit {len(retries.calls)} times"
                await prove(client, number)
                rounds += 1
                await asyncio.sleep(0.06)
            if mode == "flapping":  # the primary answers every other request: each failure fails over
                assert secondary.hits >= len(retries.calls)
            else:  # the primary never answers: every header and proof batch went to the secondary
                assert secondary.hits >= 2 * rounds
            assert {host for _, host, _ in retries.calls} == {primary_host}
            assert {reason for _, _, reason in retries.calls} == EXPECTED_REASONS[mode]

            primary.set_mode("ok")
            recovered_at = loop.time()
            before = primary.hits
            while primary.hits == before:  # the primary's cooldown (<= 1 s Retry-After) runs out
                assert loop.time() - recovered_at < 5, "the primary was never tried again"
                await prove(client, number)
                await asyncio.sleep(0.05)
            secondary_before, retries_before = secondary.hits, len(retries.calls)
            for _ in range(3):
                await prove(client, number)
            assert secondary.hits == secondary_before, "the recovered primary is not preferred"
            assert len(retries.calls) == retries_before
            status = client.endpoints_status()
            assert [s["host"] for s in status] == [primary_host, secondary_host]
            assert status[0]["healthy"] and status[0]["latency_ms"] is not None
            assert client.host == primary_host
    finally:
        primary.stop()
        secondary.stop()


async def test_every_endpoint_down_fails_with_a_typed_error(chain: tuple[AnvilNode, int]) -> None:
    node, number = chain
    first = TamperProxy(node.url).start()
    second = TamperProxy(node.url).start()
    try:
        first.set_mode("down")
        second.set_mode("refused")
        async with FallbackClient(
            [first.url, second.url], attempts=3, backoff_base_seconds=0.01, jitter=False
        ) as client:
            with pytest.raises(RpcTransportError):
                await fetch_header(client, number)
        assert first.hits == 2 and second.hits == 0
        second.set_mode("ok")  # reopens the port
        async with FallbackClient([first.url, second.url], backoff_base_seconds=0.01) as client:
            await prove(client, number)
        assert second.hits >= 2
    finally:
        first.stop()
        second.stop()
