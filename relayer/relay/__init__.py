"""The relay of one destination (DESIGN section 1, steps 2-7): two parts over one state.

- `propose.py`: the proposing loop (plan the next epoch, prove and verify its snapshots,
  aggregate, sign, store, publish the attestation);
- `epochflow.py`: the epoch state machine, one small step per stage (check, sign, submit,
  accepted, settle, final, failed), resumable from any stored state;
- `committeeview.py`: the committee as this member sees it (membership, readiness, signatures
  to submit with, whose turn it is);
- `state.py`: what the relay holds (its parts, what it remembers about open epochs);
- `destination.py`: `DestinationRelay`, all of the above, run as two loops side by side.
"""

from relayer.relay.destination import DestinationRelay
from relayer.relay.propose import REJECTED

__all__ = ["REJECTED", "DestinationRelay"]
