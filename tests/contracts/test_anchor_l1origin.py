"""The built-in OP Stack anchor path (AnchorPolicies) on real anvil nodes: the `L1Block` predeploy's
address as the adapter of the L1 chain makes every block check read MarginSettlement's own record
of the L1 origin (`recordL1Origin`, permissionless), else the predeploy's live origin; no adapter
contract. The environment is tests/contracts/test_anchors.py's: a Prague destination with the
`L1BlockStandIn` at the predeploy's address fed from a real L1 anvil, and one epoch signed by a
2-of-3 majority holding the real L1 origin block, a fake block of the same number and a later real
block the L2 has not seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.types import TxReceipt

from chains.anchors import L1_BLOCK_ADDRESS, POLICIES, deploy_anchor, feed_l1block, record_l1_origin, set_anchor_policy
from chains.anvil import start_anvil
from chains.bindings import BindingsError, contract, register_vault, transact
from chains.rpc import RpcClient
from relayer.submission.submitter import Submitter
from tests.contracts.conftest import Chain, reverts
from tests.contracts.settlement_env import ZERO32, events
from tests.contracts.test_anchors import DEST_CHAIN, EXPECTED, FAKE_HASH, L1_CHAIN, MAX_AGE, Env, build_env

pytestmark = pytest.mark.integration

BUILTIN = "op-builtin"
OTHER_CHAIN = 1002
ALL_ONES = "0x7f" + "ff" * 32 + "5f5260205ff3"  # PUSH32 2^256-1, MSTORE at 0, RETURN one word
TWO_WORDS = "0x60405ff3"  # RETURN 64 bytes


@pytest.fixture(scope="module")
def env_module(chain_factory: Callable[[int], Chain]) -> Iterator[Env]:
    node = start_anvil(DEST_CHAIN, extra_args=("--hardfork", "prague"))
    dest = Chain(node=node, w3=Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30})))
    try:
        yield build_env(dest, chain_factory(L1_CHAIN))
    finally:
        node.stop()


@pytest.fixture
def env(env_module: Env) -> Iterator[Env]:
    env_module.anchors[BUILTIN] = deploy_anchor(env_module.dest.w3, env_module.owner, "op-l1block-builtin")
    env_module.chains[BUILTIN] = L1_CHAIN
    for case in ("agrees", "disagrees", "unknown"):
        env_module.blocks[(BUILTIN, case)] = env_module.blocks[("op-l1block", case)]
    snapshot = env_module.dest.snapshot()
    try:
        yield env_module
    finally:
        env_module.dest.revert(snapshot)


def use_predeploy(env: Env, policy: str) -> TxReceipt:
    """The L1 chain's `policy` with the predeploy's address as its adapter (under `committee` too)."""
    return set_anchor_policy(env.dest.w3, env.owner, env.settlement.address, L1_CHAIN, policy, L1_BLOCK_ADDRESS)


def record(env: Env) -> TxReceipt:
    return record_l1_origin(env.dest.w3, env.stranger, env.settlement.address)


def feed(env: Env, number: int, block_hash: bytes | None = None, timestamp: int | None = None) -> None:
    """The stand-in's L1 origin set to L1 block `number` (its real hash unless `block_hash`)."""
    header = env.l1.w3.eth.get_block(number)
    time = int(header["timestamp"]) if timestamp is None else timestamp
    feed_l1block(env.dest.w3, number, time, 0, bytes(header["hash"]) if block_hash is None else block_hash)


def move_origin_past(env: Env, number: int) -> None:
    """Mine an L1 block after `number` and make it the origin: `number` is no longer live."""
    env.l1.rpc("evm_mine")
    feed(env, max(number + 1, env.l1.w3.eth.block_number))


def anchored(env: Env, number: int, chain_id: int = L1_CHAIN) -> bytes:
    return bytes(env.settlement.functions.anchoredHash(chain_id, number).call())


@pytest.mark.parametrize("origin", ["live", "recorded"])
@pytest.mark.parametrize("policy", ["prefer-anchor", "require-anchor"])
@pytest.mark.parametrize("case", ["agrees", "disagrees", "unknown"])
def test_the_built_in_op_path_under_each_policy(env: Env, policy: str, case: str, origin: str) -> None:
    """The L1 origin block settles, a fake hash of its number is refused (AnchorMismatch), a block the
    L2 has not seen is refused under require-anchor only: whether the origin is still live in the
    predeploy or only recorded here after it moved on."""
    use_predeploy(env, policy)
    real = env.blocks[(BUILTIN, "agrees")].leaf
    if origin == "recorded":
        record(env)
        move_origin_past(env, env.blocks[(BUILTIN, "unknown")].leaf.block_number)
        assert int(contract(env.dest.w3, "L1BlockStandIn", L1_BLOCK_ADDRESS).functions.number().call()) != (
            real.block_number
        )
    block = env.blocks[(BUILTIN, case)]
    expected = EXPECTED[(policy, case)]
    if expected is None:
        env.settle(block)
        assert env.value(L1_CHAIN) == block.claims[0][1]
        return
    err = reverts(expected, lambda: env.settle(block))
    assert env.value(L1_CHAIN) == 0
    number = block.leaf.block_number
    if expected == "AnchorMismatch":
        assert err.error_args == (L1_CHAIN, number, real.block_hash, FAKE_HASH)
    else:
        assert err.error_args == (L1_CHAIN, number)


def test_the_record_is_permissionless_and_never_overwritten(env: Env) -> None:
    use_predeploy(env, "require-anchor")
    real = env.blocks[(BUILTIN, "agrees")].leaf
    (event,) = events(env.settlement, "L1OriginRecorded", record(env))  # a stranger records
    assert (event.args.chainId, event.args.number, bytes(event.args.hash)) == (
        L1_CHAIN,
        real.block_number,
        real.block_hash,
    )
    assert events(env.settlement, "L1OriginRecorded", record(env)) == []  # the same again: nothing
    feed(env, real.block_number, FAKE_HASH)  # the predeploy now says another hash for the number
    err = reverts("L1OriginConflict", lambda: record(env))
    assert err.error_args == (real.block_number, real.block_hash, FAKE_HASH)
    assert anchored(env, real.block_number) == real.block_hash  # the record wins over the live answer
    reverts("AnchorMismatch", lambda: env.settle(env.blocks[(BUILTIN, "disagrees")]))
    env.settle(env.blocks[(BUILTIN, "agrees")])


def test_the_record_refuses_what_is_not_an_origin(env: Env) -> None:
    """No chain names the predeploy; a hash of zero; an origin later than this block (beyond the
    future tolerance); a number above 2^64 - 1; an answer of two words; no code: refused, nothing stored."""
    real = env.blocks[(BUILTIN, "agrees")].leaf
    assert reverts("L1OriginRefused", lambda: record(env)).error_args == (0, 0, ZERO32)
    use_predeploy(env, "committee")  # a chain names it (for challenges only): records are kept
    feed(env, real.block_number, ZERO32)
    assert reverts("L1OriginRefused", lambda: record(env)).error_args == (L1_CHAIN, real.block_number, ZERO32)
    feed(env, real.block_number, timestamp=env.dest.latest_timestamp() + 3_600)
    err = reverts("L1OriginRefused", lambda: record(env))
    assert err.error_args == (L1_CHAIN, real.block_number, real.block_hash)
    env.dest.rpc("anvil_setCode", [L1_BLOCK_ADDRESS, ALL_ONES])
    err = reverts("L1OriginRefused", lambda: record(env))
    assert err.error_args == (L1_CHAIN, 2**256 - 1, b"\xff" * 32)
    for code in (TWO_WORDS, "0x"):
        env.dest.rpc("anvil_setCode", [L1_BLOCK_ADDRESS, code])
        err = reverts("AnchorUnavailable", lambda: record(env))
        assert err.error_args == (L1_CHAIN, L1_BLOCK_ADDRESS)
    view = env.settlement.functions.anchoredHash(L1_CHAIN, real.block_number)  # sent to decode its revert
    reverts("AnchorUnavailable", lambda: transact(env.dest.w3, env.stranger, view, what="anchoredHash"))


def test_a_broken_predeploy_refuses_unrecorded_blocks_only(env: Env) -> None:
    """With the predeploy answering garbage, a recorded block still settles (one slot of our own);
    an unrecorded one is refused under prefer-anchor too (the live answer is no answer: fail closed)."""
    use_predeploy(env, "prefer-anchor")
    record(env)
    env.dest.rpc("anvil_setCode", [L1_BLOCK_ADDRESS, TWO_WORDS])
    env.settle(env.blocks[(BUILTIN, "agrees")])
    err = reverts("AnchorUnavailable", lambda: env.settle(env.blocks[(BUILTIN, "unknown")]))
    assert err.error_args == (L1_CHAIN, L1_BLOCK_ADDRESS)


def test_the_predeploy_answers_for_one_l1_only(env: Env) -> None:
    """Not for this chain, not for a second chain while one holds it; records stay with their chain;
    the chain that names it can switch away (or be removed) and then another may take it."""
    f = env.settlement.functions
    owner = env.owner
    other_vault = to_checksum_address(keccak(b"another vault")[:20])
    register_vault(env.dest.w3, owner, env.settlement.address, OTHER_CHAIN, other_vault, 0, 10_000, MAX_AGE)

    def names(chain_id: int, policy: str = "require-anchor") -> Callable[[], TxReceipt]:
        call = f.setAnchorPolicy(chain_id, POLICIES[policy], L1_BLOCK_ADDRESS)
        return lambda: transact(env.dest.w3, owner, call, what="setAnchorPolicy")

    assert reverts("InvalidAnchor", names(DEST_CHAIN)).error_args == (L1_BLOCK_ADDRESS,)
    names(L1_CHAIN)()
    assert f.anchorPolicyOf(L1_CHAIN).call() == [2, L1_BLOCK_ADDRESS]
    for policy in POLICIES:
        assert reverts("InvalidAnchor", names(OTHER_CHAIN, policy)).error_args == (L1_BLOCK_ADDRESS,)
    real = env.blocks[(BUILTIN, "agrees")].leaf
    record(env)
    assert anchored(env, real.block_number) == real.block_hash
    env.policy("op-l1block", "prefer-anchor")  # L1_CHAIN switches to the adapter: the predeploy is free
    assert reverts("L1OriginRefused", lambda: record(env)).error_args == (0, 0, ZERO32)
    names(OTHER_CHAIN)()
    move_origin_past(env, real.block_number)
    record(env)
    assert anchored(env, real.block_number, OTHER_CHAIN) == ZERO32  # L1_CHAIN's record is not its
    transact(env.dest.w3, owner, f.removeChain(OTHER_CHAIN), what="removeChain")
    assert reverts("L1OriginRefused", lambda: record(env)).error_args == (0, 0, ZERO32)
    names(L1_CHAIN)()
    assert anchored(env, real.block_number) == real.block_hash  # its record outlived the switch


def test_challenge_anchor_through_the_built_in_op_path(env: Env) -> None:
    """Under `committee` the predeploy is for challenges only: the fake block settles, and once the
    real origin is recorded (and the predeploy moved on) `challengeAnchor` proves the fake hash false."""
    use_predeploy(env, "committee")
    assert env.settlement.functions.anchorPolicyOf(L1_CHAIN).call() == [0, L1_BLOCK_ADDRESS]
    fake = env.blocks[(BUILTIN, "disagrees")]
    env.settle(fake)
    assert env.value(L1_CHAIN) == fake.claims[0][1]
    record(env)
    move_origin_past(env, env.blocks[(BUILTIN, "unknown")].leaf.block_number)

    def challenge(case: str) -> TxReceipt:
        block = env.blocks[(BUILTIN, case)]
        proof = env.epoch.block_proofs[env.epoch.blocks.index(block)]
        call = env.settlement.functions.challengeAnchor(env.epoch.number, block.leaf.abi(), proof)
        return transact(env.dest.w3, env.stranger, call, what="challengeAnchor")

    reverts("NotALie", lambda: challenge("agrees"))
    reverts("AnchorDoesNotKnow", lambda: challenge("unknown"))
    (event,) = events(env.settlement, "LieProven", challenge("disagrees"))
    real = env.blocks[(BUILTIN, "agrees")].leaf
    assert (bytes(event.args.signed), bytes(event.args.proven)) == (FAKE_HASH, real.block_hash)
    assert env.settlement.functions.chainVoided(L1_CHAIN).call() is True
    assert env.value(L1_CHAIN) == 0


def test_the_built_in_op_path_needs_the_predeploy(env: Env) -> None:
    env.dest.rpc("anvil_setCode", [L1_BLOCK_ADDRESS, "0x"])
    with pytest.raises(BindingsError, match="no L1Block predeploy"):
        deploy_anchor(env.dest.w3, env.owner, "op-l1block-builtin")
    call = env.settlement.functions.setAnchorPolicy(L1_CHAIN, 1, L1_BLOCK_ADDRESS)
    err = reverts("InvalidAnchor", lambda: transact(env.dest.w3, env.owner, call, what="setAnchorPolicy"))
    assert err.error_args == (L1_BLOCK_ADDRESS,)


async def test_the_daemon_reads_the_anchor_as_the_block_check_does(env: Env) -> None:
    """`Submitter.anchor_of` / `anchored_hash` / `recorded_l1_origin` (the daemon's hold before sending, relayer.relay.
    epochflow.waits_for_anchor) on the real contract: the policy, the live origin, a recorded one, an
    unknown block, and an anchor whose call fails (zero: not known, as the check refuses it)."""
    use_predeploy(env, "require-anchor")
    real, later = env.blocks[(BUILTIN, "agrees")].leaf, env.blocks[(BUILTIN, "unknown")].leaf
    async with RpcClient(env.dest.url) as client:
        submitter = Submitter(
            client, None, chain_id=DEST_CHAIN, sender=env.relayer.address,  # type: ignore[arg-type]
            verifier=env.settlement.address, settlement=env.settlement.address,
        )  # fmt: skip
        assert await submitter.anchor_of(L1_CHAIN) == (2, L1_BLOCK_ADDRESS)
        assert await submitter.anchor_of(DEST_CHAIN) == (0, "0x" + "00" * 20)
        assert await submitter.anchored_hash(L1_CHAIN, real.block_number) == real.block_hash  # live
        assert await submitter.recorded_l1_origin(L1_CHAIN, real.block_number) == ZERO32  # live is no record
        assert await submitter.anchored_hash(L1_CHAIN, later.block_number) == ZERO32
        record(env)
        move_origin_past(env, later.block_number)
        assert await submitter.anchored_hash(L1_CHAIN, real.block_number) == real.block_hash  # recorded
        assert await submitter.recorded_l1_origin(L1_CHAIN, real.block_number) == real.block_hash
        env.dest.rpc("anvil_setCode", [L1_BLOCK_ADDRESS, TWO_WORDS])
        assert await submitter.anchored_hash(L1_CHAIN, later.block_number) == ZERO32  # AnchorUnavailable
        assert await submitter.anchored_hash(DEST_CHAIN, 1) == ZERO32  # no anchor
