"""Which webhook URLs we may send to: a public address over HTTPS, unless the operator allows more.

We resolve the host ourselves and judge every address it resolves to: one forbidden address refuses the URL
(a name with a public and a private address could be steered to either). The sender then connects to an
address judged here, never looking the name up a second time, so a DNS answer that changes between the
check and the connection (rebinding) cannot reach the inside. URLs are judged at registration and again
before every attempt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""Looks a host name up: (host, port) -> its addresses. Injected so tests can rebind a name."""

_net = ipaddress.ip_network

FORBIDDEN_NETWORKS: tuple[tuple[str, IPNetwork], ...] = (
    ("cloud metadata", _net("169.254.169.254/32")),
    ("cloud metadata", _net("100.100.100.200/32")),
    ("cloud metadata", _net("fd00:ec2::254/128")),
    ("unspecified", _net("0.0.0.0/8")),
    ("private", _net("10.0.0.0/8")),
    ("carrier-grade NAT", _net("100.64.0.0/10")),
    ("loopback", _net("127.0.0.0/8")),
    ("link-local", _net("169.254.0.0/16")),
    ("private", _net("172.16.0.0/12")),
    ("IETF protocol assignments", _net("192.0.0.0/24")),
    ("documentation", _net("192.0.2.0/24")),
    ("6to4 relay", _net("192.88.99.0/24")),
    ("private", _net("192.168.0.0/16")),
    ("benchmarking", _net("198.18.0.0/15")),
    ("documentation", _net("198.51.100.0/24")),
    ("documentation", _net("203.0.113.0/24")),
    ("multicast", _net("224.0.0.0/4")),
    ("reserved", _net("240.0.0.0/4")),  # and the broadcast address
    ("unspecified", _net("::/128")),
    ("loopback", _net("::1/128")),
    ("IPv4-compatible", _net("::/96")),  # deprecated; Python calls ::127.0.0.1 global
    ("IPv4-translated", _net("::ffff:0:0:0/96")),  # SIIT; likewise
    ("NAT64 local use", _net("64:ff9b:1::/48")),
    ("discard", _net("100::/64")),
    ("IETF protocol assignments", _net("2001::/23")),  # Teredo, ORCHID, benchmarking
    ("documentation", _net("2001:db8::/32")),
    ("6to4", _net("2002::/16")),
    ("documentation", _net("3fff::/20")),
    ("SRv6", _net("5f00::/16")),
    ("unique local", _net("fc00::/7")),
    ("site-local", _net("fec0::/10")),
    ("link-local", _net("fe80::/10")),
    ("multicast", _net("ff00::/8")),
)
"""The special-purpose ranges of the IANA registries that a webhook must never reach."""

_NAT64 = _net("64:ff9b::/96")
MAX_URL_LENGTH = 2048


class UnsafeURL(ValueError):
    """A webhook URL we refuse to send to; the message says why, for the endpoint's owner."""


@dataclass(frozen=True, slots=True)
class URLPolicy:
    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    """Trusted networks (the operator's own, or loopback in tests) exempt from the address rules."""

    @classmethod
    def from_settings(cls, allow_http: bool, allowed_networks: Sequence[str]) -> URLPolicy:
        return cls(allow_http, tuple(ipaddress.ip_network(cidr) for cidr in allowed_networks))


@dataclass(frozen=True, slots=True)
class Target:
    """A URL with the addresses judged safe for it: the sender connects to these and nothing else."""

    url: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) one."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress, policy: URLPolicy) -> str | None:
    """Why `address` may not be reached (e.g. "loopback"), or None when it may."""
    inner = embedded_ipv4(address)
    candidates = (address,) if inner is None else (address, inner)
    if any(candidate in network for candidate in candidates for network in policy.allowed_networks):
        return None
    judged = inner or address
    for reason, network in FORBIDDEN_NETWORKS:
        if judged in network:
            return reason
    if judged.is_reserved:
        return "reserved"
    if not judged.is_global:
        return "not globally reachable"
    return None


async def system_resolver(host: str, port: int) -> Sequence[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def _split(url: str, policy: URLPolicy) -> tuple[str, int]:
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(char <= " " or char == "\x7f" for char in url):
        raise UnsafeURL("the URL holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeURL(f"not a valid URL: {error}") from None
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeURL("the URL must use https" if not policy.allow_http else "the URL must use http(s)")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("the URL must not carry a user name or password")
    host = parts.hostname
    if not host:
        raise UnsafeURL("the URL has no host")
    if any(char in host for char in "[]%\\ ") or not host.isascii():
        # Zone ids and stray brackets have slipped past deny-lists elsewhere; IDNs come punycoded.
        raise UnsafeURL("the URL's host is not a plain name or address")
    return host, port or (443 if parts.scheme == "https" else 80)


async def validate_url(url: str, policy: URLPolicy, resolver: Resolver = system_resolver) -> Target:
    """Judge `url` now: its scheme, its form, and every address its host resolves to."""
    host, port = _split(url, policy)
    try:
        addresses: Sequence[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = await resolver(host, port)
        except (OSError, UnicodeError) as error:  # UnicodeError: a label IDNA cannot encode (too long)
            raise UnsafeURL(f"{host} does not resolve: {error}") from None
    if not addresses:
        raise UnsafeURL(f"{host} does not resolve")
    for address in addresses:
        reason = forbidden_reason(address, policy)
        if reason is not None:
            raise UnsafeURL(f"{host} resolves to {address} ({reason})")
    return Target(url, host, port, tuple(dict.fromkeys(addresses)))
