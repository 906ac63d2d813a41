"""`Submitter.positions` on a real anvil: the positions of an epoch's claims are read in JSON-RPC
batches a node accepts, however many claims there are (anvil refuses a request body above
2 MiB: one batch of 20 `positionsOf` calls of 2,000 accounts each was already refused)."""

from __future__ import annotations

import pytest
from web3 import Web3

from chains.anvil import AnvilNode
from chains.bindings import deploy_destination
from chains.rpc import RpcClient
from relayer import devnet
from relayer.submission.submitter import Submitter

pytestmark = pytest.mark.integration


async def test_positions_of_100000_accounts_are_read_in_batches_the_node_accepts(anvil: AnvilNode) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    attester = devnet.dev_account(1)
    settlement = deploy_destination(w3, devnet.dev_account(0), [attester.address], 1)
    accounts = [Web3.to_checksum_address(i.to_bytes(20, "big")) for i in range(1, 100_001)]
    async with RpcClient(anvil.url, timeout_seconds=60) as client:
        submitter = Submitter(
            client, None, chain_id=31337, sender=devnet.dev_account(2).address,  # type: ignore[arg-type]
            verifier=settlement, settlement=settlement,
        )  # fmt: skip
        positions = await submitter.positions(devnet.SOURCE_CHAIN_ID, accounts)
    assert len(positions) == len(accounts)
    assert {(p.value, p.block_number, p.timestamp) for p in positions} == {(0, 0, 0)}
