"""Test hook for crash-recovery tests: die with SIGKILL at a named stage of the pipeline.

`RELAYER_TEST_DIE_AT="stage"` (or "stage:N", the N-th time the stage is reached, default 1)
makes `checkpoint(stage)` kill the process on the spot, as a power cut or `kill -9` would.
Unset (always, in production) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get("RELAYER_TEST_DIE_AT")
    if not spec:
        return None
    stage, _, nth = spec.partition(":")
    return stage, int(nth) if nth else 1


_TARGET = _target()


def checkpoint(stage: str) -> None:
    """Mark that the pipeline reached `stage`; dies here when the test hook names it."""
    if _TARGET is None or _TARGET[0] != stage:
        return
    _counts[stage] = _counts.get(stage, 0) + 1
    if _counts[stage] >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
