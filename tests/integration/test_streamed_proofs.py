"""`relayer.proving.mpt.prove_snapshot` streams a vault's proof from a real anvil: each eth_getProof
chunk verified as it arrives (a bounded number in flight), with the outcomes of verifying the
whole proof at once, and a forged chunk still caught (DESIGN section 7)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from chains.anvil import DEV_MNEMONIC, AnvilNode, start_anvil
from chains.bindings import contract, deploy_vault, transact
from chains.proofs import fetch_proof
from chains.rpc import RpcClient, RpcMethods
from relayer.errors import SnapshotRejected
from relayer.proving.mpt import prove_snapshot, verify_snapshot
from relayer.proving.prover import collateral_storage_key

pytestmark = pytest.mark.integration

DEPOSITORS = 6
STRANGERS = 5  # never deposited: exclusion proofs
CHUNK = 3


class Vault:
    def __init__(self, node: AnvilNode) -> None:
        Account.enable_unaudited_hdwallet_features()
        keys = [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(DEPOSITORS)]
        w3 = Web3(Web3.HTTPProvider(node.url))
        self.url = node.url
        self.address = deploy_vault(w3, keys[0], 60)
        vault = contract(w3, "CollateralVault", self.address)
        self.slot = int(vault.functions.collateralSlot().call())
        for i, key in enumerate(keys):
            transact(w3, key, vault.functions.deposit(), value=(i + 1) * 10**15, what="deposit")
        strangers = ["0x" + f"{i + 1:040x}" for i in range(STRANGERS)]
        self.accounts = [k.address for k in keys[:3]] + strangers + [k.address for k in keys[3:]]
        self.values = [(i + 1) * 10**15 for i in range(3)] + [0] * STRANGERS + [(i + 4) * 10**15 for i in range(3)]
        self.block = int(w3.eth.block_number)


@pytest.fixture(scope="module")
def vault() -> Iterator[Vault]:
    node = start_anvil(31337)
    try:
        yield Vault(node)
    finally:
        node.stop()


class Forging(RpcMethods):
    """A real endpoint whose eth_getProof replies go through `forge(chunk_index, result)`;
    counts the calls in flight at once."""

    def __init__(self, client: RpcClient, forge: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        self.client = client
        self.forge = forge
        self.proof_calls = 0
        self.in_flight = 0
        self.most_in_flight = 0

    @property
    def host(self) -> str:
        return self.client.host

    async def call(self, method: str, params: Sequence[Any] = (), *, decode: Any = None) -> Any:
        if method != "eth_getProof":
            return (
                await self.client.call(method, params, decode=decode)
                if decode
                else await self.client.call(method, params)
            )
        index = self.proof_calls
        self.proof_calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            result = await self.client.call(method, params)
            await asyncio.sleep(0.01)  # keep it in flight a little, so overlaps show
        finally:
            self.in_flight -= 1
        if self.forge is not None:
            self.forge(index, result)
        return result

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        return await self.client.batch(calls)


def flip(node: str) -> str:
    middle = 2 + (len(node) - 2) // 4 * 2
    return node[:middle] + format(int(node[middle : middle + 2], 16) ^ 1, "02x") + node[middle + 2 :]


async def prove(vault: Vault, client: RpcMethods, **kwargs: Any) -> Any:
    return await prove_snapshot(
        client, chain_id=31337, vault=vault.address, accounts=vault.accounts, mapping_slot=vault.slot,
        block_number=vault.block, chunk_size=CHUNK, **kwargs,
    )  # fmt: skip


async def test_streamed_snapshot_equals_whole_proof_verification(vault: Vault) -> None:
    async with RpcClient(vault.url) as client:
        counting = Forging(client)
        snapshot = await prove(vault, counting, chunks_in_flight=2)
        keys = [collateral_storage_key(a, vault.slot) for a in vault.accounts]
        whole = await fetch_proof(client, bytes.fromhex(vault.address[2:]), keys, vault.block)
        reference = verify_snapshot(31337, vault.address, snapshot.header, whole, vault.accounts, vault.slot)
    assert counting.proof_calls == 4  # 11 accounts in chunks of 3
    assert counting.most_in_flight == 2
    assert [(c.account, c.value) for c in snapshot.claims] == list(zip(vault.accounts, vault.values, strict=True))
    assert snapshot.claims == reference.claims and snapshot.excluded == ()
    assert snapshot.value_words == reference.value_words
    assert snapshot.header_host == client.host


@pytest.mark.parametrize("in_flight", [1, 3])
async def test_chunks_in_flight_bound(vault: Vault, in_flight: int) -> None:
    async with RpcClient(vault.url) as client:
        counting = Forging(client)
        snapshot = await prove(vault, counting, chunks_in_flight=in_flight)
    assert counting.most_in_flight == in_flight and len(snapshot.claims) == len(vault.accounts)


async def test_forged_storage_node_in_one_chunk_excludes_only_its_account(vault: Vault) -> None:
    def forge(index: int, result: dict[str, Any]) -> None:
        if index == 2:  # accounts 6..8: the second of them
            entry = result["storageProof"][1]
            entry["proof"][-1] = flip(entry["proof"][-1])

    async with RpcClient(vault.url) as client:
        snapshot = await prove(vault, Forging(client, forge))
    ((victim, reason),) = snapshot.excluded
    assert victim == vault.accounts[7] and reason.startswith("proof:")
    assert [c.account for c in snapshot.claims] == [a for a in vault.accounts if a != victim]
    assert snapshot.value_words is None


async def test_forged_value_in_the_last_chunk_is_a_value_mismatch(vault: Vault) -> None:
    def forge(index: int, result: dict[str, Any]) -> None:
        if index == 3:
            entry = result["storageProof"][0]
            entry["value"] = hex(int(entry["value"], 16) + 1)

    async with RpcClient(vault.url) as client:
        snapshot = await prove(vault, Forging(client, forge))
    assert snapshot.excluded == ((vault.accounts[9], "value_mismatch"),)


async def test_account_proof_differing_in_a_later_chunk_rejects_the_snapshot(vault: Vault) -> None:
    def forge(index: int, result: dict[str, Any]) -> None:
        if index == 2:
            result["accountProof"][-1] = flip(result["accountProof"][-1])

    async with RpcClient(vault.url) as client:
        with pytest.raises(SnapshotRejected) as info:
            await prove(vault, Forging(client, forge))
    assert info.value.reason == "malformed_proof" and "chunk 2" in str(info.value)


async def test_account_proof_forged_in_every_chunk_fails_native_verification(vault: Vault) -> None:
    def forge(index: int, result: dict[str, Any]) -> None:
        result["accountProof"][-1] = flip(result["accountProof"][-1])

    async with RpcClient(vault.url) as client:
        with pytest.raises(SnapshotRejected) as info:
            await prove(vault, Forging(client, forge))
    assert info.value.reason.startswith("proof:")


async def test_a_failing_chunk_cancels_the_calls_still_in_flight(vault: Vault) -> None:
    def forge(index: int, result: dict[str, Any]) -> None:
        if index == 0:
            result["address"] = "0x" + "00" * 20

    async with RpcClient(vault.url) as client:
        forging = Forging(client, forge)
        with pytest.raises(SnapshotRejected, match="address"):
            await prove(vault, forging, chunks_in_flight=3)
        await asyncio.sleep(0.05)
        assert forging.in_flight == 0
        assert forging.proof_calls <= 3  # nothing was asked after the bad chunk
