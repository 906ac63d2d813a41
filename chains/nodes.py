"""Which RPC endpoints are one node: hosts compared as resolved addresses, not as strings.

Two endpoints confirm each other only when they are two nodes (DESIGN section 2: one endpoint is
never the truth). `127.0.0.1:8545`, `localhost:8545` and `[::1]:8545` are three strings for one
node; so are two DNS names of one server. An endpoint is identified here by the set of
(address, port) pairs its host resolves to (`getaddrinfo`, TCP); two endpoints are one node when
those sets share a pair. IPv4-mapped IPv6 addresses count as their IPv4 address.

What this cannot see: one server listening on several addresses (127.0.0.1 and 127.0.0.2 of one
process, a load balancer in front of one node). Independence beyond the network address is the
operator's to choose (two providers); this only catches what the addresses already tell.

`resolve` runs `getaddrinfo` in the event loop's executor (never on the loop);
`resolve_blocking` is for command-line checks. Both raise `OSError` (`socket.gaierror`) when the
name does not resolve. Hosts are "host:port" as the RPC clients label them ("[v6]:port" for an
IPv6 literal), never URLs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any, NewType

NodeAddress = NewType("NodeAddress", tuple[str, int])
"""One (IP address, TCP port) pair an endpoint's host resolves to, the address in its canonical
text form ("127.0.0.1", "::1")."""


def split_host(host: str) -> tuple[str, int]:
    """A "host:port" (or "[v6]:port") label as (hostname, port). Raises ValueError when it has
    no numeric port."""
    name, sep, port = host.rpartition(":")
    if not sep or not port.isdigit() or not name:
        raise ValueError(f"not a host:port: {host!r}")
    return name.removeprefix("[").removesuffix("]"), int(port)


def _addresses(infos: Iterable[tuple[Any, ...]], port: int) -> frozenset[NodeAddress]:
    out = set()
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        out.add(NodeAddress((str(address), port)))
    return frozenset(out)


async def resolve(host: str) -> frozenset[NodeAddress]:
    """The (address, port) pairs of a "host:port", resolved off the event loop. Raises OSError
    when the name does not resolve, ValueError for a label without a port."""
    name, port = split_host(host)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return _addresses(infos, port)


def resolve_blocking(host: str) -> frozenset[NodeAddress]:
    """`resolve` for synchronous callers (`relayer check-config`)."""
    name, port = split_host(host)
    return _addresses(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM), port)


def describe(addresses: Iterable[NodeAddress]) -> str:
    """ "127.0.0.1 port 8545" (several addresses joined with ", "), for messages."""
    return ", ".join(f"{address} port {port}" for address, port in sorted(addresses))
