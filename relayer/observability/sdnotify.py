"""systemd service notifications (`sd_notify(3)`) over `$NOTIFY_SOCKET`, stdlib only.

Under a unit with `Type=notify`, systemd passes the path of an AF_UNIX datagram socket in
`$NOTIFY_SOCKET` (a path starting with "@" is in the Linux abstract namespace: "@" stands for
a leading NUL byte). The service sends newline-separated `KEY=VALUE` assignments to it:
`READY=1` once started, `WATCHDOG=1` at least every `WatchdogSec=` (passed as
`$WATCHDOG_USEC`, microseconds, for the process `$WATCHDOG_PID`), `STOPPING=1` when shutting
down, `STATUS=...` free text shown by `systemctl status`.

Outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op returning False, so the daemon can
call these unconditionally. Sending never raises: a failure to notify must not stop the relayer
(systemd then times the service out, which is the intended signal); it returns False instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = [
    "notify",
    "ready",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval_seconds",
]


def _address(value: str) -> str | bytes | None:
    """The socket address named by `$NOTIFY_SOCKET`: a filesystem path, or for "@name" the
    abstract-namespace address b"\\0name". None if the value is unusable."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # systemd only ever passes absolute or abstract addresses (vsock is not handled)


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1\\nSTATUS=relaying") to the socket in `$NOTIFY_SOCKET`.

    `environ` defaults to `os.environ`. Returns True if the datagram was sent; False if
    `$NOTIFY_SOCKET` is unset or not a usable address, or if sending failed (OSError). Never
    raises for those reasons.
    """
    env = os.environ if environ is None else environ
    value = env.get("NOTIFY_SOCKET")
    if not value:
        return False
    address = _address(value)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def ready(environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service has started (`READY=1`): for the relayer, after every chain
    answered with its configured chain id, the keys loaded and the HTTP listener is bound."""
    return notify("READY=1", environ)


def watchdog(environ: Mapping[str, str] | None = None) -> bool:
    """Pet the watchdog (`WATCHDOG=1`). Send it only when the daemon made real progress (its
    chain watchers polled successfully), not from a bare timer."""
    return notify("WATCHDOG=1", environ)


def stopping(environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is shutting down (`STOPPING=1`)."""
    return notify("STOPPING=1", environ)


def status(text: str, environ: Mapping[str, str] | None = None) -> bool:
    """Set the one-line status shown by `systemctl status` (`STATUS=text`; newlines are
    replaced by spaces, as a newline would end the assignment)."""
    return notify("STATUS=" + text.replace("\n", " "), environ)


def watchdog_interval_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd expects for this process, in seconds, or None if there is
    no watchdog: `$WATCHDOG_USEC` (microseconds, > 0) when `$WATCHDOG_PID` is unset or equals
    this process id (as `sd_watchdog_enabled(3)`). Pet at half this interval or more often."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        micros = int(usec)
    except ValueError:
        return None
    if micros <= 0:
        return None
    return micros / 1_000_000
