"""A token bucket per client for the keeper API (DESIGN section 6: a rate limit per client).

A client is its remote address: an IPv4 address, or the /64 an IPv6 address is in (one host
commonly holds a whole /64, so counting addresses would let it make buckets at will). Each
bucket holds up to `burst` tokens and gains `rate` per second; a request takes one. At most
`max_clients` buckets are kept: the one unused for longest is forgotten first (it had refilled
by then, unless more than `max_clients` clients are all sending at once).

Behind a reverse proxy every client shares the proxy's address: give the keeper API its own
listener facing the keepers, or rate-limit at the proxy.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CLIENTS = 10_000
"""Buckets kept at most (a few hundred bytes each)."""


def client_key(remote: str | None) -> str:
    """The bucket key of a remote address: the IPv4 address, the IPv6 /64 (an IPv4-mapped IPv6
    address counts as its IPv4 address), or the text itself when it is not an IP address (a
    Unix socket: "" for None)."""
    if not remote:
        return ""
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ClientBuckets:
    """Token buckets keyed by client (`client_key`). `rate`: tokens per second, > 0; `burst`:
    bucket size, >= 1; `clock`: monotonic seconds (tests pass their own)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0 or burst < 1 or max_clients < 1:
            raise ValueError(f"rate must be > 0, burst and max_clients >= 1 (got {rate}, {burst}, {max_clients})")
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, remote: str | None) -> float:
        """Take a token for the client at `remote`: 0.0 when it had one, else the seconds until
        it will have one (nothing taken)."""
        key = client_key(remote)
        now = self.clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        """The `Retry-After` header value (whole seconds, at least 1) for a wait in seconds."""
        return str(max(1, math.ceil(wait)))
