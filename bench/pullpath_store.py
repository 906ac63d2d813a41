"""The store and destination of ``python -m bench.pullpath``: a real MarginSettlement on anvil with a
committee of one, and epochs made and stored as the relay makes them (``aggregate_epoch``,
``Store.create_epoch`` with the claims trees), each submitted on the destination.

Also used by tests/pullpath/test_index.py and tests/relayer/test_pruning.py.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3

from chains.anvil import DEV_MNEMONIC, start_anvil
from chains.bindings import deploy_destination, register_vault
from chains.fallback import FallbackClient
from chains.headers import VerifiedHeader
from chains.types import Hash32
from relayer.aggregation.aggregator import aggregate_epoch
from relayer.attestation.eip712 import sign_epoch
from relayer.epoch import (
    EPOCH_FORMAT,
    Claim,
    Snapshot,
    snapshot_to_json,
)
from relayer.pullpath.proofs import tree_rows
from relayer.storage.store import Store
from relayer.submission.submitter import Submitter
from relayer.submission.txmanager import TxManager

DESTINATION_CHAIN_ID = 31337
FIRST_SOURCE_CHAIN_ID = 1001
MAX_AGE = 30 * 86_400

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


# ------------------------------------------------------------------------------ the destination


@dataclass
class Destination:
    """A real MarginSettlement (its own EpochVerifier) on anvil with a committee of one, and the
    relay's Submitter for it."""

    node: Any
    settlement: str
    attester: LocalAccount
    submitter: Submitter
    client: FallbackClient

    async def close(self) -> None:
        await self.client.close()
        self.node.stop()


async def open_destination(store: Store, source_chains: Sequence[int]) -> Destination:
    """Start anvil, deploy MarginSettlement (committee: dev account 1, threshold 1), register one
    vault per source chain (max age 30 days), and build the Submitter (sender: dev account 2)."""
    node = start_anvil(DESTINATION_CHAIN_ID)
    w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
    deployer, attester, sender = dev_account(0), dev_account(1), dev_account(2)
    settlement = deploy_destination(w3, deployer, [attester.address], 1)
    for chain_id in source_chains:
        vault = to_checksum_address(chain_id.to_bytes(20, "big"))
        register_vault(w3, deployer, settlement, chain_id, vault, 0, 10_000, MAX_AGE)
    client = FallbackClient([node.url], chain_label="destination")
    await client.__aenter__()
    txm = TxManager(client, chain_id=DESTINATION_CHAIN_ID, sender=sender, store=store, poll_seconds=0.02)
    submitter = Submitter(
        client, txm, chain_id=DESTINATION_CHAIN_ID, sender=sender.address, verifier=settlement, settlement=settlement
    )
    return Destination(node, settlement, attester, submitter, client)


def vault_of(chain_id: int) -> str:
    return to_checksum_address(chain_id.to_bytes(20, "big"))


def population(size: int, rng: random.Random) -> list[str]:
    return [to_checksum_address(rng.randbytes(20)) for _ in range(size)]


def make_snapshots(
    epoch: int, chains: Sequence[int], accounts: Sequence[Sequence[str]], now: int, rng: random.Random
) -> list[Snapshot]:
    """One snapshot per source chain with `accounts[i]` as its claims (random values), a header of
    random hashes at block 1,000 x epoch stamped `now` (fresh on the destination)."""
    out = []
    for chain_id, chain_accounts in zip(chains, accounts, strict=True):
        header = VerifiedHeader(
            number=1_000 * epoch + chain_id % 1_000,
            hash=Hash32(rng.randbytes(32)),
            parent_hash=Hash32(rng.randbytes(32)),
            state_root=Hash32(rng.randbytes(32)),
            timestamp=now,
            rlp=b"",
        )
        claims = tuple(Claim(a, rng.randrange(1, 10**21)) for a in chain_accounts)
        out.append(Snapshot(chain_id, vault_of(chain_id), header, claims, 0.0))
    return out


async def store_epoch(
    store: Store,
    destination: Destination,
    epoch: int,
    snapshots: Sequence[Snapshot],
    previous: bytes,
    status: str = "settled",
) -> bytes:
    """Store an epoch as the relay does (content, claims, trees), submit it on the destination,
    and mark it `status` (`settled`: the claims it supersedes are pruned; `confirmed` keeps
    every epoch's claims, as the old scan path needs); returns its root."""
    aggregate = aggregate_epoch(snapshots)
    signature = sign_epoch(
        destination.attester,
        DESTINATION_CHAIN_ID,
        destination.settlement,
        epoch,
        aggregate.root,
        previous,
        generation=1,  # the bench's committee never changes
    )
    content = {
        "format": EPOCH_FORMAT,
        "plan": {"time": 0, "why": "bench", "heights": {str(s.chain_id): s.header.number for s in snapshots}},
        "snapshots": [snapshot_to_json(s) for s in snapshots],
        "previous": "0x" + previous.hex(),
        "signatures": [[destination.attester.address, "0x" + signature.hex()]],
    }
    claims = ((b, i, c.account, c.value) for b, s in enumerate(snapshots) for i, c in enumerate(s.claims))
    store.create_epoch(epoch, aggregate.root, content, {}, claims, tree_rows(aggregate))
    await destination.submitter.submit_epoch(f"bench-epoch:{epoch}", epoch, aggregate.root, previous, [signature])
    store.set_epoch_status(epoch, status)
    return aggregate.root
