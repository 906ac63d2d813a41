"""A lease error is never retried as a passing store error (issue 21): where the relay treats a
StoreError as "retry later" (the pruning pass after a settlement, the transaction manager's
resume of a restarted leader's keys), a StaleLease or LeaseLost means this process no longer
leads; it reaches the daemon, which stops acting and exits 1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chains.anvil import AnvilNode, start_anvil
from chains.rpc import RpcClient
from relayer.storage.lease import LeaderLease, StaleLease
from relayer.storage.store import Store
from tests.integration.pair_runs import PairProcess, count_doubles, failover_devnet, pair_config, store_url, wait_until
from tests.integration.test_crash_recovery import ACCOUNTS, Activity
from tests.integration.test_txmanager import KEY0, TO, call, manager, wait_pending
from tests.relayer.test_store_fencing import steal_the_lease_when_an_epoch_settles

pytestmark = pytest.mark.integration


@pytest.fixture
def node() -> Iterator[AnvilNode]:
    anvil = start_anvil(31337)
    try:
        yield anvil
    finally:
        anvil.stop()


async def test_a_stale_lease_while_resuming_a_key_is_raised_not_logged(node: AnvilNode, postgres_store: str) -> None:
    """A restarted leader resumes its live keys and logs each key's failure; a StaleLease is no
    key's failure (the lease was taken over meanwhile): `resume` raises it."""
    sender: LocalAccount = Account.from_key(KEY0)
    await call(node.url, "evm_setAutomine", [False])
    with psycopg.connect(postgres_store, autocommit=True) as lease_conn:
        store = Store(postgres_store)
        store.fence_with(LeaderLease(lease_conn, "member-0").acquire("host-a:1"))
        async with RpcClient(node.url, chain_label="destination") as client:
            first = manager(client, sender, store)
            sending = asyncio.create_task(first.send("epoch:1", TO, "0x", gas=21_000, kind="epoch"))
            await wait_pending(node.url, sender.address, 1)
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            await first.close()
            await call(node.url, "evm_mine")  # mined while "down": resuming records it (a fenced write)
            lease_conn.execute(
                "UPDATE leader_lease SET holder = 'host-b:2', token = token + 1, expires_at = now() + interval '1 hour'"
            )
            with pytest.raises(StaleLease):
                await manager(client, sender, store).resume()
            intent = first.intent("epoch:1")
            assert intent is not None and intent.state != "mined"  # nothing of the stale write committed
        store.close()


def test_a_stale_lease_in_the_pruning_pass_ends_the_daemon_s_leadership(
    tmp_path_factory: pytest.TempPathFactory, postgres: str
) -> None:
    """The lease is taken over as an epoch settles (tests/relayer/test_store_fencing.py's
    trigger): the pruning pass right after finds the token stale; the daemon stops at once and
    exits 1, never logging it as a pruning to retry. The refresh is slow (5 s, lease 30 s), so
    it is the stale write that ends it, not the refresh."""
    with failover_devnet(tmp_path_factory.mktemp("stale"), ACCOUNTS) as net:
        leader = PairProcess("a", pair_config(net, "a", store_url(postgres), "lease_seconds = 30\nrefresh_seconds = 5"))
        try:
            leader.start()
            wait_until("a leads", lambda: leader.role() == "leader", timeout=60)
            steal_the_lease_when_an_epoch_settles(postgres)
            with Activity(net):
                assert leader.process is not None and leader.process.wait(timeout=180) == 1
        finally:
            leader.stop()
        failed = leader.events("daemon.failed")
        assert failed and "stale lease" in failed[0]["error"], leader.logs[-1]
        assert leader.events("lease.stale") and not leader.events("store.prune_failed")
        assert not leader.events("lease.lost")  # the refresh had not noticed yet
        doubles = count_doubles(net, postgres)
        assert doubles.total == 0 and doubles.checked > 0, doubles.details
