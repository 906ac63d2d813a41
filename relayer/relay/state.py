"""What a destination's relay holds while it runs (`RelayState`): its parts (submitter, store,
settler, schedule, the attestation exchange), the committee as last read, and what this process
remembers about each open epoch; and the two things every part does with it: fail an epoch
(`_fail`) and forget one that is done (`_forget`).

The proposing loop (relayer.relay.propose), the committee view (relayer.relay.committeeview) and
the epoch state machine (relayer.relay.epochflow) are layers over this state; `DestinationRelay`
(relayer.relay.destination) is all of them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from eth_account.signers.local import LocalAccount

from relayer.attestation.committee import AttestationExchange
from relayer.attestation.view import Committee
from relayer.config import DestinationConfig
from relayer.epoch import EpochAggregate, EpochState, FailureReason
from relayer.observability.log import get_logger
from relayer.observability.metrics import Metrics
from relayer.pullpath.proofs import ProofServer
from relayer.scheduling.pairs import PairRunner
from relayer.scheduling.schedule import EpochSchedule
from relayer.scheduling.watcher import ChainWatcher
from relayer.settlement.settler import Settlement, Settler
from relayer.storage.store import Store
from relayer.submission.submitter import Submitter

log = get_logger("relayer.relay")

GIVEN_UP_PAUSE_SECONDS = 60.0
"""After an epoch is given up, the same plan is not proven and signed again for this long."""

PLANNED_AGAIN_AT_ONCE = frozenset(
    {
        FailureReason.REORG,
        FailureReason.SUPERSEDED,
        FailureReason.LOST_ON_DESTINATION,
        FailureReason.REVOKED,
        FailureReason.OLD_FORMAT,
        FailureReason.CORRUPT,
        FailureReason.RETRIED,
    }
)
"""Failures after which the next plan differs (or must be rebuilt now): no pause."""


class RelayState:
    """One destination's relay: its parts and what it remembers (see the module doc)."""

    def __init__(
        self,
        config: DestinationConfig,
        pairs: list[PairRunner],
        submitter: Submitter,
        attester: LocalAccount,
        store: Store,
        metrics: Metrics,
        *,
        finalized: Callable[[], int] | None = None,
        on_settled: Callable[[Settlement], None] | None = None,
        idle_seconds: float = 0.5,
        committee_refresh_seconds: float = 2.0,
        peers: int | None = 0,
        takeover_seconds: float = 20.0,
    ) -> None:
        """`finalized()`: the destination's final height (its watcher), None when the head is
        final; `on_settled` is called for each account settled; the committee is read again
        every `committee_refresh_seconds` while idle, and before every round with work due.
        `peers`: how many other members this daemon exchanges attestations with (`[committee]`;
        None: unknown, a shared directory);
        `takeover_seconds`: how long a member waits for each member before it in an epoch's
        submission order before it submits (and settles) the epoch itself."""
        self.config = config
        self.pairs = pairs
        self.sources = {p.chain_id: p for p in pairs}
        self.submitter = submitter
        self.attester = attester
        self.store = store
        self.metrics = metrics
        self.idle_seconds = idle_seconds
        self.settler = Settler(
            config, submitter, store, metrics, finalized=finalized, chain_label=self._chain_label, on_settled=on_settled
        )
        self.proof_server = ProofServer(store, submitter)
        self.schedule = EpochSchedule(
            pairs,
            submitter,
            store,
            max_age=self.settler.max_age,
            refresh_before_expiry_seconds=config.refresh_before_expiry_seconds,
            finalized_destination=finalized,
            min_change_wei=config.min_change_wei,
            retry_seconds=config.epoch_retry_seconds,
        )
        self.exchange: AttestationExchange | None = None  # set by the daemon (`[committee]`)
        self.wake_watchers: list[ChainWatcher] = []  # besides the sources': the destination's (set by the daemon)
        self.peers = peers
        self.takeover_seconds = takeover_seconds
        self.committee_refresh_seconds = committee_refresh_seconds
        self._init_memory()

    def _init_memory(self) -> None:
        """What this process remembers (none of it durable: a restart rebuilds it)."""
        self.backlog = 0
        self.balance: int | None = None
        self.consecutive_failures = 0
        self.last_failure: str | None = None
        self.committee: Committee | None = None
        self._committee_read_at = -math.inf
        self._committee_noted: tuple[str, ...] = ()
        self._held: set[int] = set()
        self._anchor_wait: dict[int, float] = {}  # epoch -> since when it waits for the anchor (epochflow)
        self._confirmation_held: dict[str, tuple[str, str]] = {}  # source chain -> (cause, error)
        self._turn_since: dict[int, float] = {}  # epoch -> when this member was first ready to send it
        self._taken_over: dict[int, bytes] = {}
        self._awaiting_noted: dict[int, int] = {}
        self._short: dict[int, tuple[int, float]] = {}  # epoch -> (signatures missing, since when)
        self._signed_for: dict[tuple[int, int], bytes] = {}  # (epoch, generation) -> own signature
        self._given_up: dict[int, tuple[float, str]] = {}  # epoch -> (when, why)
        self._aggregates: dict[tuple[int, bytes], EpochAggregate] = {}
        """The aggregate of each open epoch (epoch, root) being processed: rebuilt from the store
        once (a restart), not at every loop; dropped when the epoch is settled or failed."""
        self._created = asyncio.Event()  # set when an epoch is created (wakes the settling loop)
        self._failures = {"proving": 0, "settling": 0}  # failures in a row, per loop of `run`

    def _chain_label(self, chain_id: int) -> str:
        source = self.sources.get(chain_id)
        return source.config.source if source else str(chain_id)

    async def refresh_balance(self) -> int:
        """Read the sender's balance (wei) into the metric and `self.balance`."""
        self.balance = await self.submitter.balance()
        self.metrics.signer_balance.labels(self.config.chain).set(self.balance)
        return self.balance

    def _given_up_recently(self) -> str | None:
        """Why the next epoch waits: one given up less than GIVEN_UP_PAUSE_SECONDS ago."""
        now = time.monotonic()
        for epoch, (since, reason) in sorted(self._given_up.items()):
            if now - since < GIVEN_UP_PAUSE_SECONDS:
                wait = GIVEN_UP_PAUSE_SECONDS - (now - since)
                return f"epoch {epoch} was given up ({reason}); it is planned again in {wait:.0f} s"
        return None

    def _fail(self, epoch: int, reason: str, **details: object) -> None:
        """Store `epoch` as failed for `reason` (a FailureReason or a contract's error name),
        counted and logged; given up for GIVEN_UP_PAUSE_SECONDS unless PLANNED_AGAIN_AT_ONCE."""
        self._forget(epoch)
        if reason not in PLANNED_AGAIN_AT_ONCE:
            self._given_up[epoch] = (time.monotonic(), reason)
        record = self.store.epoch(epoch)
        self.store.set_epoch_status(epoch, EpochState.FAILED, reason=reason)
        self.metrics.epochs_failed.labels(reason).inc()
        log.error("epoch.failed", epoch=epoch, root=record.root if record else None, reason=reason, **details)

    def _forget(self, epoch: int) -> None:
        """Drop what this process kept about an epoch it is done with."""
        for kept in (self._turn_since, self._taken_over, self._awaiting_noted, self._short, self._anchor_wait):
            kept.pop(epoch, None)
        for signed in [k for k in self._signed_for if k[0] == epoch]:
            del self._signed_for[signed]
        for key in [k for k in self._aggregates if k[0] == epoch]:
            del self._aggregates[key]
