"""bench/gas_challenges.py, the mainnet-depth rows: on a real anvil node (Prague) with the real
contracts, a claim challenge against the real mainnet WETH9 proof of tests/vectors (9 account and 7
storage nodes), for a present slot and for an absent one (an exclusion proof), proves the lie within
the challenge target, and the truth at that depth is refused."""

from __future__ import annotations

import random

import pytest
from web3 import Web3

from bench.gas_challenges import TARGET, measure_mainnet_depth
from bench.gas_stacks import CHAIN_ID, Ctx, compile_bench_contracts, dev_account
from chains.anvil import start_anvil

pytestmark = pytest.mark.integration


def test_a_mainnet_depth_claim_challenge_fits_the_target() -> None:
    node = start_anvil(CHAIN_ID, extra_args=("--hardfork", "prague", "--gas-limit", "30000000"))
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 120}))
        result = measure_mainnet_depth(Ctx(node, w3, dev_account(0), compile_bench_contracts(), random.Random(9)))
    finally:
        node.stop()
    assert set(result["rows"]) == {"claim, mainnet (present slot)", "claim, mainnet (absent slot)"}  # both proven
    assert result["truth"] == ["NotALie", "NotALie"]  # the honest claims at that depth are not voided
    assert max(result["rows"].values()) <= TARGET, result["rows"]
    check = result["storage_check"]
    assert check["MptProofs"]["execution"] < check["OpenZeppelin TrieProof"]["execution"]
