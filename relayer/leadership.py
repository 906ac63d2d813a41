"""Which process of a member acts: the leader of a hot-standby pair (DESIGN sections 6 and 7;
issue 21), by the member's lease on PostgreSQL (relayer.storage.lease).

With a PostgreSQL store a process starts as a **standby**: it serves /metrics, /healthz and
/readyz but proposes, signs and sends nothing. Every `refresh_seconds` it tries to take the
member's lease on a connection of its own; once it holds it, it is the **leader**: the daemon
fences the store with the grant (`Store.fence_with`) and starts its relays, and `keep()`
refreshes the lease every `refresh_seconds`. The leader stops acting at once, and the daemon
exits non-zero (systemd restarts it, as a standby), when:

- a refresh finds the lease lapsed or taken over (LeaseLost), or a fenced write of the store
  finds its token stale (StaleLease, raised by the store);
- no refresh reached the database for `lease_seconds` (LeaseUnreachable): by then the database
  may have let the lease lapse and a standby may lead.

A SQLite store needs no lease: its one process is `single` (it acts, as before).
The lease calls are blocking psycopg; they run in a thread (`asyncio.to_thread`), each bounded
by the time the lease has left, so a hung connection never holds the event loop or the leader.
"""

from __future__ import annotations

import asyncio
import enum
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import psycopg

from relayer.observability.log import get_logger
from relayer.storage.lease import (
    LeaderLease,
    LeaseError,
    LeaseGrant,
    LeaseHeld,
    LeaseLost,
    LeaseSettings,
    create_lease_table,
)

log = get_logger("relayer.leadership")

T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 5
"""libpq's `connect_timeout` for the lease's own connection, in seconds."""


class Role(enum.StrEnum):
    """A process's role: `single` (SQLite store, no lease: it acts), `standby` (waits for the
    lease, acts on nothing), `leader` (holds the lease and acts)."""

    SINGLE = "single"
    STANDBY = "standby"
    LEADER = "leader"


class LeaseUnreachable(LeaseError):
    """No refresh of the held lease reached the database for `lease_seconds`: the lease may have
    lapsed there and another process may lead; this one must stop acting."""


def holder_name() -> str:
    """A holder name unique to this process: `host:pid:random` (a restarted process is a new
    holder, so it can never resume a lease its previous life held)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leadership:
    """The lease of `member` (e.g. the attester's address) on the database at `conninfo` (a libpq
    connection string or `postgresql://` URL), taken and kept by this process as `holder`.
    `on_role(role)` is called on each change of `role` (metrics, logs)."""

    def __init__(
        self,
        conninfo: str,
        member: str,
        *,
        settings: LeaseSettings | None = None,
        holder: str | None = None,
        on_role: Callable[[Role], None] | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.member = member
        self.settings = settings or LeaseSettings()
        self.holder = holder or holder_name()
        self.on_role = on_role
        self.role = Role.STANDBY
        self.grant: LeaseGrant | None = None
        """The lease held (None while a standby)."""
        self.leader_now: str | None = None
        """The holder of the member's live lease as last seen by this standby (None: unknown or free)."""
        self._lease: LeaderLease | None = None

    def _open(self) -> LeaderLease:
        """The lease over a live connection of its own, reconnecting when there is none (blocking)."""
        if self._lease is not None and not self._lease.conn.closed:
            return self._lease
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.Error as exc:
            raise LeaseError(f"lease of member {self.member!r}: cannot connect to the database: {exc}") from exc
        create_lease_table(conn)
        lease = LeaderLease(conn, self.member, self.settings)
        lease.grant = self.grant  # a reconnect keeps refreshing the grant already held
        self._lease = lease
        return lease

    def _drop(self) -> None:
        """Forget the connection after an error (the next call reconnects); never raises."""
        lease, self._lease = self._lease, None
        if lease is not None:
            try:
                lease.conn.close()
            except Exception:  # a broken connection may fail to close; it is dropped anyway
                pass

    def _set_role(self, role: Role) -> None:
        if role != self.role:
            self.role = role
            if self.on_role is not None:
                self.on_role(role)

    async def _call(self, call: Callable[[LeaderLease], T], seconds: float) -> T:
        """Run `call(lease)` in a thread, for at most `seconds` (LeaseError after)."""

        def work() -> T:
            return call(self._open())

        try:
            return await asyncio.wait_for(asyncio.to_thread(work), timeout=max(seconds, 0.01))
        except TimeoutError as exc:
            self._lease = None  # the thread may still hang on it: never use that connection again
            what = f"lease of member {self.member!r}: no answer from the database in {seconds:.1f} s"
            raise LeaseError(what) from exc

    async def acquire(self, stop: asyncio.Event) -> LeaseGrant | None:
        """Wait as a standby until this process takes the lease (then it is the leader: the grant)
        or `stop` is set (None). A live lease of another holder or an unreachable database is
        retried every `refresh_seconds`."""
        log.info("lease.standby", member=self.member, holder=self.holder)
        unreachable: str | None = None
        while not stop.is_set():
            try:
                grant = await self._call(lambda lease: lease.acquire(self.holder), self.settings.lease_seconds)
            except LeaseHeld as exc:
                if exc.holder != self.leader_now:
                    log.info("lease.held_by", member=self.member, leader=exc.holder, token=exc.token)
                self.leader_now, unreachable = exc.holder, None
            except LeaseError as exc:
                self._drop()
                if str(exc) != unreachable:
                    log.warning("lease.unreachable", member=self.member, error=str(exc))
                unreachable = str(exc)
            else:
                self.grant, self.leader_now = grant, self.holder
                log.info("lease.acquired", member=self.member, holder=self.holder, token=grant.token)
                self._set_role(Role.LEADER)
                return grant
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.refresh_seconds)
            except TimeoutError:
                pass
        return None

    async def keep(self) -> NoReturn:
        """Refresh the held lease every `refresh_seconds` until it cannot be kept, then raise:
        LeaseLost (lapsed or taken over) or LeaseUnreachable (no refresh reached the database
        for `lease_seconds`). Either way the role is back to standby before it raises."""
        grant = self.grant
        if grant is None:
            raise LeaseError(f"lease of member {self.member!r}: keep() without acquire()")
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.refresh_seconds)
            left = self.settings.lease_seconds - (time.monotonic() - last_ok)
            try:
                self.grant = await self._call(lambda lease: lease.refresh(), left)
                last_ok = time.monotonic()
            except LeaseLost as exc:
                self._lose("lease.lost", exc)
                raise
            except LeaseError as exc:
                self._drop()
                if time.monotonic() - last_ok < self.settings.lease_seconds:
                    log.warning("lease.refresh_failed", member=self.member, error=str(exc))
                    continue
                lost = LeaseUnreachable(
                    f"lease of member {self.member!r} (token {grant.token}): no refresh reached the database "
                    f"for {self.settings.lease_seconds:g} s (last: {exc})"
                )
                self._lose("lease.unreachable_too_long", lost)
                raise lost from exc

    def _lose(self, event: str, exc: Exception) -> None:
        log.error(event, member=self.member, holder=self.holder, error=str(exc))
        self.grant = None
        self._set_role(Role.STANDBY)

    def deposed(self, exc: Exception) -> None:
        """The store found this leader's token stale (StaleLease): back to standby (the daemon
        then exits)."""
        if self.role == Role.LEADER:
            self._lose("lease.stale", exc)

    async def close(self) -> None:
        """Let a held lease lapse now (a standby takes over at once, not `lease_seconds` later)
        and close the connection; never raises (a lease not released lapses on its own)."""
        if self.grant is not None:
            try:
                await self._call(lambda lease: lease.release(), self.settings.refresh_seconds * 2)
                log.info("lease.released", member=self.member, holder=self.holder)
            except LeaseError as exc:
                log.warning("lease.release_failed", member=self.member, error=str(exc))
            self.grant = None
            self._set_role(Role.STANDBY)
        self._drop()
