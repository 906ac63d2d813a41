"""The relayer's own aggregate (relayer.aggregation.aggregator, trees and multiproofs built in C) checked by
MarginSettlement on anvil: the epoch root it signs is accepted, each block settlement it builds
settles, and any changed byte (a claim's value or account, a proof hash, a flag, the block
leaf) is refused before anything is written."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from eth_utils import to_checksum_address

from chains.bindings import ContractReverted, contract, deploy_destination, register_vault, transact
from chains.headers import VerifiedHeader
from chains.types import Hash32
from relayer.aggregation.aggregator import aggregate_epoch
from relayer.attestation.eip712 import sign_epoch
from relayer.epoch import Claim, Snapshot
from tests.contracts.conftest import Chain, dev_account

pytestmark = pytest.mark.integration

CHAINS = (1001, 1002)
CLAIMS = 40


def test_c_built_epoch_settles_and_a_changed_byte_does_not(chain_factory: Callable[[int], Chain]) -> None:
    chain = chain_factory(31337)
    owner, member = dev_account(0), dev_account(5)
    settlement_address = deploy_destination(chain.w3, owner, [member.address], 1)
    settlement = contract(chain.w3, "MarginSettlement", settlement_address)
    rng = random.Random(9)
    now = chain.latest_timestamp()
    snapshots = []
    for chain_id in CHAINS:
        vault = to_checksum_address(rng.randbytes(20))
        register_vault(chain.w3, owner, settlement_address, chain_id, vault, 0, 10_000, 3_600)
        header = VerifiedHeader(500 + chain_id, Hash32(rng.randbytes(32)), Hash32(rng.randbytes(32)),
                                Hash32(rng.randbytes(32)), now, b"")  # fmt: skip
        claims = tuple(Claim(to_checksum_address(rng.randbytes(20)), rng.randrange(1, 10**24)) for _ in range(CLAIMS))
        snapshots.append(Snapshot(chain_id, vault, header, claims, 0.0))
    aggregate = aggregate_epoch(snapshots)
    signature = sign_epoch(member, chain.chain_id, settlement_address, 1, aggregate.root, bytes(32), generation=1)
    chosen = rng.sample(range(CLAIMS), 13)
    first = aggregate.block_settlement(1, 0, chosen)
    transact(
        chain.w3, owner,
        settlement.functions.submitAndSettle(1, aggregate.root, bytes(32), [signature], [list(first)]),
        what="submitAndSettle",
    )  # fmt: skip
    block = snapshots[0]
    for i in chosen:
        claim = block.claims[i]
        assert settlement.functions.lastSettledBlock(claim.account, block.chain_id).call() == block.header.number
        assert settlement.functions.collateralOf(claim.account).call() == claim.value

    second = list(aggregate.block_settlement(1, 1, list(range(CLAIMS))))

    def refused(item: list[object], error: str) -> None:
        with pytest.raises(ContractReverted) as info:
            transact(chain.w3, owner, settlement.functions.settle(item), what="settle")
        assert info.value.error_name == error

    epoch, leaf, block_proof, claims, proof, flags = second
    assert isinstance(claims, list) and isinstance(proof, list) and isinstance(flags, list)
    assert isinstance(leaf, tuple) and isinstance(block_proof, list)
    account, value = claims[5]
    refused([epoch, leaf, block_proof, [*claims[:5], (account, value + 1), *claims[6:]], proof, flags],
            "ClaimsNotInBlock")  # fmt: skip
    other = to_checksum_address(bytes.fromhex(account[2:])[:-1] + b"\x00")
    refused([epoch, leaf, block_proof, [*claims[:5], (other, value), *claims[6:]], proof, flags], "ClaimsNotInBlock")
    if proof:
        flipped = bytes([proof[0][0] ^ 1]) + proof[0][1:]
        refused([epoch, leaf, block_proof, claims, [flipped, *proof[1:]], flags], "ClaimsNotInBlock")
    else:  # every claim of the tree: the multiproof is flags alone
        refused([epoch, leaf, block_proof, claims[1:], proof, flags[1:]], "ClaimsNotInBlock")
    refused([epoch, leaf, block_proof, claims, proof, [not flags[0], *flags[1:]]], "ClaimsNotInBlock")
    changed_leaf = (*leaf[:7], int(leaf[7]) + 1)  # claimCount
    refused([epoch, changed_leaf, block_proof, claims, proof, flags], "BlockNotInEpoch")
    # and the genuine one settles every claim of the second block
    transact(chain.w3, owner, settlement.functions.settle(second), what="settle")
    for claim in snapshots[1].claims:
        assert settlement.functions.positionOf(claim.account, snapshots[1].chain_id).call()[0] == claim.value
