"""/readyz reasons computed from the daemon's state, without a network: failing rounds in a row
make a destination unready, and say why."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from relayer.api import ready_problems
from relayer.relay import FAILURES_UNREADY
from relayer.store import Store


def test_rounds_failing_in_a_row_make_the_destination_unready(tmp_path: Path) -> None:
    relay = SimpleNamespace(
        config=SimpleNamespace(chain="l2", min_signer_balance_wei=0),
        consecutive_failures=0,
        last_failure=None,
        balance=None,
    )
    daemon = SimpleNamespace(watchers={}, store=Store(tmp_path / "s.sqlite"), relays=[relay])
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
    relay.consecutive_failures = FAILURES_UNREADY - 1
    relay.last_failure = "settle: reverted"
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
    relay.consecutive_failures = FAILURES_UNREADY
    assert ready_problems(daemon) == [  # type: ignore[arg-type]
        f"destination l2: {FAILURES_UNREADY} rounds failed in a row (last: settle: reverted)"
    ]
    relay.consecutive_failures = 0
    assert ready_problems(daemon) == []  # type: ignore[arg-type]
