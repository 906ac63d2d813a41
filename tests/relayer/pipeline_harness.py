"""The committee members' daemons of the pipeline tests (tests/relayer/test_pipeline*.py) and their
fixtures: the stages a test crashes at, the fake clock, the source chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

import relayer.relay.committeeview as committee_view_module
import relayer.relay.propose as propose_module
import relayer.settlement.settler as settlement_module
from relayer.attestation.committee import AttestationExchange
from relayer.attestation.view import Committee
from relayer.config import DestinationConfig, KeySource, PairConfig
from relayer.observability.metrics import Metrics
from relayer.relay import DestinationRelay
from relayer.scheduling.pairs import PairRunner
from relayer.settlement.settler import Settlement
from relayer.storage.store import Store
from tests.relayer.pipeline_destination import Destination
from tests.relayer.pipeline_source import CAROL, DEPOSITS, SETTLEMENT, SLOT, SOURCE_ID, T0, VAULT, A, SourceChain

# --- the pipeline -------------------------------------------------------------------------


class Crash(Exception):
    """The process dies at a checkpoint (kill -9)."""


@dataclass
class Stages:
    """Actions run when the pipeline reaches a stage (`relayer.faults.checkpoint`), once each."""

    actions: dict[str, Callable[[], None]] = field(default_factory=dict)
    reached: list[str] = field(default_factory=list)

    def __call__(self, stage: str) -> None:
        self.reached.append(stage)
        action = self.actions.pop(stage, None)
        if action is not None:
            action()

    def crash_at(self, stage: str) -> None:
        def crash() -> None:
            raise Crash(stage)

        self.actions[stage] = crash


@pytest.fixture
def stages(monkeypatch: pytest.MonkeyPatch) -> Stages:
    hooks = Stages()
    monkeypatch.setattr(propose_module, "checkpoint", hooks)
    monkeypatch.setattr(settlement_module, "checkpoint", hooks)
    return hooks


class Clock:
    """`time` as relayer.relay.committeeview sees it: a monotonic clock the test advances."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return float(T0 + 100)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(committee_view_module, "time", fake)
    return fake


@dataclass
class Member:
    """One committee member's daemon: its relay over the shared fake chains, its store."""

    relay: DestinationRelay
    store: Store
    metrics: Metrics
    settled: list[Settlement]

    def sample(self, name: str, **labels: str) -> float:
        """A metric's value (0 when no sample has these labels yet; a name that is not
        declared fails the test)."""
        value = self.metrics.registry.get_sample_value(name, labels)
        if value is None:
            families = {m.name for m in self.metrics.registry.collect()}
            assert any(name == f or name.startswith(f + "_") for f in families), f"no metric {name}"
        return 0.0 if value is None else value

    def status(self, epoch: int = 1) -> tuple[str, str | None] | None:
        record = self.store.epoch(epoch)
        return None if record is None else (record.status, record.reason)


def destination_config(**overrides: Any) -> DestinationConfig:
    # (epoch_retry_seconds: the fake chains are final far past every epoch's time)
    base = DestinationConfig("destination", SETTLEMENT, KeySource(key_env="X"), max_epoch_attempts=3,
                             epoch_retry_seconds=86_400)  # fmt: skip
    return DestinationConfig(**{**base.__dict__, **overrides})


def member(
    tmp_path: Path,
    source: SourceChain,
    destination: Destination,
    attester: LocalAccount = A,
    *,
    name: str = "a",
    directory: Path | None = None,
    peers: int | None = 0,
    finalized: Callable[[], int] | None = None,
    takeover_seconds: float = 20.0,
) -> Member:
    """A daemon of `attester` (its store `<name>.sqlite` in `tmp_path`: the same name is the same
    store, i.e. a restart)."""
    store = Store(tmp_path / f"{name}.sqlite")
    metrics = Metrics()
    pair_config = PairConfig("source", "destination", VAULT, vault_deploy_block=5, collateral_slot=SLOT,
                             every_blocks=4, accounts=(CAROL,))  # fmt: skip
    pair = PairRunner(pair_config, SOURCE_ID, source, source, store)  # type: ignore[arg-type]
    settled: list[Settlement] = []
    relay = DestinationRelay(
        destination_config(), [pair], destination, attester, store, metrics, finalized=finalized,
        on_settled=settled.append, peers=peers, takeover_seconds=takeover_seconds,
    )  # fmt: skip
    if directory is not None:
        relay.exchange = AttestationExchange(
            store=store, metrics=metrics, peers=(), directory=directory, timeout_seconds=1.0, destination="destination"
        )
    return Member(relay, store, metrics, settled)


def solo() -> Committee:
    return Committee(1, 1, (A.address,))


def key_of(epoch: int, root: bytes, index: int = 0) -> str:
    return f"settle:{epoch}:{root.hex()[:16]}:{index}"


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


@pytest.fixture
def source() -> SourceChain:
    return SourceChain(DEPOSITS)
