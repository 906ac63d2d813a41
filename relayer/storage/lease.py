"""The leader lease of a member's hot-standby pair on PostgreSQL, with a fencing token (DESIGN
sections 6 and 7; issue 21).

Two processes of one committee member share one PostgreSQL database; one of them, the leader,
holds the member's lease (Chainlink-style: DEFAULT_LEASE_SECONDS = 10 s, refreshed every
DEFAULT_REFRESH_SECONDS = 1 s) and only the leader acts. One row per member:

    leader_lease(member TEXT PRIMARY KEY, holder TEXT, token BIGINT, expires_at TIMESTAMPTZ)

- `LeaderLease.acquire(holder)` takes the lease when it is free or lapsed and increments the
  fencing `token` (1 for the first holder ever); a live lease of another holder raises LeaseHeld.
- `LeaderLease.refresh()` extends it, only while it is still held, by the same holder with the
  same token and not lapsed; otherwise it raises LeaseLost (the holder must stop acting).
- `fence(conn, ...)`, in the caller's transaction, locks the lease row (`FOR SHARE`) if and only
  if it still carries the caller's holder and token and has not lapsed, and raises StaleLease
  otherwise. Run first in the transaction of every nonce allocation, signed epoch and submission
  record, it makes a write with a stale token fail whole: a takeover cannot commit while a fenced
  transaction is open (the row lock), and no fenced transaction passes after it.

Every "lapsed" is decided by the database's clock (`now()`, `clock_timestamp()`), never by the
caller's: the two processes' clocks may disagree, the database's is the one they share.
Holders must name themselves uniquely per process (e.g. `host:pid:random`): a restarted process
is a new holder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from relayer.config.schema import DEFAULT_LEASE_SECONDS, DEFAULT_REFRESH_SECONDS
from relayer.errors import StoreError

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS leader_lease (
    member TEXT PRIMARY KEY,
    holder TEXT,
    token BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
)"""

# One statement: a first holder inserts token 1; later, the row is taken over only when lapsed
# (its row lock serialises racing takers: the loser sees the winner's live row and gets nothing).
_ACQUIRE = """
INSERT INTO leader_lease AS lease (member, holder, token, expires_at)
VALUES (%(member)s, %(holder)s, 1, now() + make_interval(secs => %(seconds)s))
ON CONFLICT (member) DO UPDATE
    SET holder = EXCLUDED.holder, token = lease.token + 1, expires_at = EXCLUDED.expires_at
    WHERE lease.expires_at <= now()
RETURNING token, expires_at"""

_REFRESH = """
UPDATE leader_lease SET expires_at = now() + make_interval(secs => %(seconds)s)
WHERE member = %(member)s AND holder = %(holder)s AND token = %(token)s AND expires_at > now()
RETURNING token, expires_at"""

_RELEASE = """
UPDATE leader_lease SET expires_at = now()
WHERE member = %(member)s AND holder = %(holder)s AND token = %(token)s AND expires_at > now()"""

_CURRENT = "SELECT holder, token, expires_at, expires_at > now() FROM leader_lease WHERE member = %(member)s"

# clock_timestamp(), not now(): the lease must be live when the check runs, not merely when the
# caller's transaction began.
_FENCE = """
SELECT token FROM leader_lease
WHERE member = %(member)s AND holder = %(holder)s AND token = %(token)s AND expires_at > clock_timestamp()
FOR SHARE"""


class LeaseError(StoreError):
    """The leader lease cannot be taken, kept or used (and the database errors beneath it)."""


class LeaseHeld(LeaseError):
    """Another holder has a live lease: `holder`, its `token` and `expires_at` (database clock)."""

    def __init__(self, member: str, holder: str | None, token: int, expires_at: datetime) -> None:
        super().__init__(f"the lease of member {member!r} is held by {holder!r} (token {token}) until {expires_at}")
        self.member, self.holder, self.token, self.expires_at = member, holder, token, expires_at


class LeaseLost(LeaseError):
    """This holder's lease lapsed or was taken over (`current`: who holds the row now, None if
    the row is gone): stop acting as the leader at once."""

    def __init__(self, grant: LeaseGrant, current: tuple[str | None, int] | None) -> None:
        now = "no lease row" if current is None else f"now {current[0]!r} with token {current[1]}"
        super().__init__(
            f"lease of member {grant.member!r} lost by {grant.holder!r} (token {grant.token}): "
            f"lapsed or taken over; {now}"
        )
        self.grant, self.current = grant, current


class StaleLease(LeaseError):
    """A fenced write carried a token that is not the member's live lease: the writer is no
    longer (or never was) the leader; its transaction must roll back."""

    def __init__(self, member: str, holder: str, token: int) -> None:
        super().__init__(
            f"stale lease for member {member!r}: {holder!r} with token {token} no longer holds a live lease"
        )
        self.member, self.holder, self.token = member, holder, token


@dataclass(frozen=True)
class LeaseGrant:
    """A lease as taken or last refreshed: `token` (the fencing token, 1, 2, ... per member) and
    `expires_at` (timezone-aware, by the database's clock)."""

    member: str
    holder: str
    token: int
    expires_at: datetime


@dataclass(frozen=True)
class LeaseSettings:
    """`lease_seconds`: how long a lease outlives its last refresh; `refresh_seconds`: how often
    the leader refreshes it. Raises ValueError unless 0 < refresh_seconds < lease_seconds."""

    lease_seconds: float = DEFAULT_LEASE_SECONDS
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.refresh_seconds < self.lease_seconds:
            raise ValueError(
                f"lease: need 0 < refresh_seconds ({self.refresh_seconds}) < lease_seconds ({self.lease_seconds})"
            )


def lease_error_first(errors: Sequence[BaseException]) -> BaseException:
    """Which of several errors gathered from concurrent work to raise: the first LeaseError
    (this process must stop leading; another error of the same batch, retried later, must never
    hide it), else the first. `errors` must not be empty."""
    return next((e for e in errors if isinstance(e, LeaseError)), errors[0])


def create_lease_table(conn: psycopg.Connection) -> None:
    """Create `leader_lease` if missing, in its own transaction. Two processes creating it at once
    is fine (the loser's duplicate is ignored). Raises LeaseError on a database error."""
    try:
        with conn.transaction():
            conn.execute(CREATE_TABLE)
    except pg_errors.UniqueViolation:
        pass  # created by a concurrent process between its existence check and ours
    except psycopg.Error as exc:
        raise LeaseError(f"cannot create the leader_lease table: {exc}") from exc


class LeaderLease:
    """The lease of one `member` over a connection of its own (`conn`, autocommit: each call is
    its own transaction; not the store's connection, so a long store transaction never delays a
    refresh). Calls are blocking; from asyncio run them in a thread (`asyncio.to_thread`).
    Database errors raise LeaseError."""

    def __init__(self, conn: psycopg.Connection, member: str, settings: LeaseSettings | None = None) -> None:
        if not conn.autocommit:
            raise ValueError("LeaderLease needs an autocommit connection of its own")
        self.conn = conn
        self.member = member
        self.settings = settings or LeaseSettings()
        self.grant: LeaseGrant | None = None
        """The lease this object holds (None: not acquired, released or lost)."""

    def acquire(self, holder: str) -> LeaseGrant:
        """Take the lease for `holder` when it is free or lapsed (database clock): the token goes
        up by one. Raises LeaseHeld when a live lease exists, this holder's own included."""
        params = {"member": self.member, "holder": holder, "seconds": self.settings.lease_seconds}
        row = self._one(_ACQUIRE, params)
        if row is None:
            current = self._one(_CURRENT, {"member": self.member})
            if current is None:  # deleted under us: nothing to report but a retry
                raise LeaseError(f"the lease row of member {self.member!r} vanished during acquire")
            raise LeaseHeld(self.member, current[0], current[1], current[2])
        self.grant = LeaseGrant(self.member, holder, row[0], row[1])
        return self.grant

    def refresh(self) -> LeaseGrant:
        """Extend the held lease by `lease_seconds` from now (database clock). Raises LeaseLost
        when it lapsed or another holder took it over (this object then holds nothing), and
        LeaseError when nothing was acquired."""
        grant = self._held("refresh")
        row = self._one(_REFRESH, {**self._key(grant), "seconds": self.settings.lease_seconds})
        if row is None:
            self.grant = None
            current = self._one(_CURRENT, {"member": self.member})
            raise LeaseLost(grant, None if current is None else (current[0], current[1]))
        self.grant = LeaseGrant(self.member, grant.holder, row[0], row[1])
        return self.grant

    def release(self) -> None:
        """Let the lease lapse now, if still held (a standby may take it at once); idempotent."""
        if self.grant is not None:
            self._one(_RELEASE, self._key(self.grant))
            self.grant = None

    def _held(self, what: str) -> LeaseGrant:
        if self.grant is None:
            raise LeaseError(f"cannot {what} the lease of member {self.member!r}: not held by this process")
        return self.grant

    @staticmethod
    def _key(grant: LeaseGrant) -> dict[str, object]:
        return {"member": grant.member, "holder": grant.holder, "token": grant.token}

    def _one(self, sql: str, params: dict[str, object]) -> tuple | None:
        try:
            cursor = self.conn.execute(sql, params)
            return cursor.fetchone() if cursor.description is not None else None
        except psycopg.Error as exc:
            raise LeaseError(f"lease of member {self.member!r}: database error: {exc}") from exc


def fence(conn: psycopg.Connection, grant: LeaseGrant) -> None:
    """Check, inside the caller's open transaction on `conn`, that `grant` is still the member's
    live lease, and lock its row (`FOR SHARE`) until that transaction ends, so no takeover
    commits before it. Raises StaleLease (roll the transaction back: nothing of it may commit)
    when the token or holder changed or the lease lapsed, and LeaseError when `conn` is in
    autocommit outside a transaction (the lock would end with the check) or the database fails."""
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        raise LeaseError("fence() outside a transaction guards nothing: call it inside conn.transaction()")
    try:
        row = conn.execute(_FENCE, {"member": grant.member, "holder": grant.holder, "token": grant.token}).fetchone()
    except psycopg.Error as exc:
        raise LeaseError(f"lease of member {grant.member!r}: database error in fence: {exc}") from exc
    if row is None:
        raise StaleLease(grant.member, grant.holder, grant.token)


@contextmanager
def fenced(conn: psycopg.Connection, grant: LeaseGrant) -> Iterator[psycopg.Connection]:
    """A transaction on `conn` that starts with `fence(conn, grant)`: the block's writes commit
    together only while `grant` is the live lease; StaleLease (or any error) rolls them back."""
    with conn.transaction():
        fence(conn, grant)
        yield conn
