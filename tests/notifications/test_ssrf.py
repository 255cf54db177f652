"""Which URLs and addresses a webhook may reach; the resolver is injected, no DNS is asked."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import pytest

from notifications.ssrf import IPAddress, URLPolicy, forbidden_reason, validate_url

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"

REFUSED = [
    ("0.0.0.0", "unspecified"),  # noqa: S104 (a refused address, not a bind)
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.10", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.100.100.200", "cloud metadata"),
    ("100.100.100.201", "carrier-grade NAT"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.0.1", "link-local"),
    ("192.0.0.170", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("192.88.99.1", "6to4 relay"),
    ("198.18.0.1", "benchmarking"),
    ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique local"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fd00:ec2::253", "unique local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    ("2001::1", "IETF protocol assignments"),  # Teredo
    ("2002:7f00:1::", "6to4"),
    ("5f00::1", "SRv6"),
    ("64:ff9b:1::a00:1", "NAT64 local use"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::169.254.169.254", "IPv4-compatible"),
    ("::ffff:0:127.0.0.1", "IPv4-translated"),
    ("::ffff:0:8.8.8.8", "IPv4-translated"),
    ("4000::1", "reserved"),  # outside 2000::/3, where every global unicast address lies
    # IPv4-mapped and NAT64 forms are judged by the IPv4 address inside.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::ffff:169.254.1.1", "link-local"),
    ("::ffff:100.64.0.1", "carrier-grade NAT"),
    ("64:ff9b::127.0.0.1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # 169.254.169.254
    ("64:ff9b::192.168.0.1", "private"),
]


def static_resolver(*answers: str):
    calls: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address(answer) for answer in answers]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_every_special_purpose_address_is_refused(address, reason):
    assert forbidden_reason(ipaddress.ip_address(address), URLPolicy()) == reason


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, "8.8.8.8", "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert forbidden_reason(ipaddress.ip_address(address), URLPolicy()) is None


@pytest.mark.parametrize(("address", "reason"), REFUSED)
async def test_a_url_naming_a_refused_address_is_refused(address, reason):
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(ValueError, match=re.escape(f"({reason})")):
        await validate_url(f"https://{host}/hook", URLPolicy(), static_resolver(PUBLIC_V4))


@pytest.mark.parametrize(("address", "reason"), REFUSED)
async def test_a_host_resolving_to_a_refused_address_is_refused(address, reason):
    with pytest.raises(ValueError, match=rf"hooks\.example\.com resolves to \S+ {re.escape(f'({reason})')}"):
        await validate_url("https://hooks.example.com/hook", URLPolicy(), static_resolver(address))


async def test_one_refused_address_among_public_ones_refuses_the_host():
    resolver = static_resolver(PUBLIC_V4, PUBLIC_V6, "10.1.2.3")
    with pytest.raises(ValueError, match="private"):
        await validate_url("https://hooks.example.com/", URLPolicy(), resolver)


async def test_a_public_host_gives_its_checked_addresses():
    resolver = static_resolver(PUBLIC_V4, PUBLIC_V6, PUBLIC_V4)
    target = await validate_url("https://Hooks.Example.com:8443/in?x=1", URLPolicy(), resolver)
    assert (target.host, target.port) == ("hooks.example.com", 8443)
    assert target.addresses == (ipaddress.ip_address(PUBLIC_V4), ipaddress.ip_address(PUBLIC_V6))
    assert resolver.calls == ["hooks.example.com"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/", "must use https"),
        ("ftp://hooks.example.com/", "must use https"),
        ("hooks.example.com/path", "must use https"),
        ("https:///path", "no host"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com:99999/", "not a valid URL"),
        ("https://[fe80::1%25eth0]/", "not a plain name"),
        ("https://[hooks.example.com]/", "not a valid URL|not a plain name"),
        ("https://hooks.exämple.com/", "not a plain name"),
        ("https://hooks.example.com/a b", "spaces or control characters"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "spaces or control characters"),
        ("https://hooks.example.com/\x00", "spaces or control characters"),
        ("https://hooks.example.com/" + "a" * 2048, "longer than 2048"),
    ],
)
async def test_malformed_or_plain_http_urls_are_refused(url, message):
    with pytest.raises(ValueError, match=message):
        await validate_url(url, URLPolicy(), static_resolver(PUBLIC_V4))


async def test_plain_http_is_allowed_only_when_the_operator_says_so():
    target = await validate_url(
        "http://hooks.example.com/", URLPolicy(allow_http=True), static_resolver(PUBLIC_V4)
    )
    assert target.port == 80
    with pytest.raises(ValueError, match="must use http"):
        await validate_url(
            "gopher://hooks.example.com/", URLPolicy(allow_http=True), static_resolver(PUBLIC_V4)
        )


async def test_an_unresolvable_host_is_refused():
    async def failing(host: str, port: int) -> Sequence[IPAddress]:
        raise OSError("Name or service not known")

    with pytest.raises(ValueError, match="does not resolve"):
        await validate_url("https://nowhere.example.com/", URLPolicy(), failing)
    with pytest.raises(ValueError, match="does not resolve"):
        await validate_url("https://nowhere.example.com/", URLPolicy(), static_resolver())


async def test_a_host_name_with_a_label_too_long_to_look_up_is_refused():
    # The system resolver refuses it while encoding the name, before any lookup.
    with pytest.raises(ValueError, match="does not resolve"):
        await validate_url(f"https://{'a' * 64}.example.com/hook", URLPolicy())


async def test_the_allow_list_opens_only_its_networks():
    policy = URLPolicy.from_settings(allow_http=True, allowed_networks=["127.0.0.0/8", "10.20.0.0/16"])
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "10.20.3.4"):
        assert forbidden_reason(ipaddress.ip_address(address), policy) is None
    assert forbidden_reason(ipaddress.ip_address("10.21.0.1"), policy) == "private"
    assert forbidden_reason(ipaddress.ip_address("::1"), policy) == "loopback"
    target = await validate_url("http://127.0.0.1:8080/hook", policy)
    assert target.addresses == (ipaddress.ip_address("127.0.0.1"),)


async def test_the_system_resolver_is_used_by_default_and_localhost_is_refused():
    with pytest.raises(ValueError, match="loopback"):
        await validate_url("https://localhost/hook", URLPolicy())


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "017700000001", "127.1", "0177.0.0.1"])
async def test_numeric_spellings_of_loopback_are_judged_by_what_they_resolve_to(host):
    with pytest.raises(ValueError, match=r"resolves to 127\.0\.0\.1 \(loopback\)"):
        await validate_url(f"https://{host}/hook", URLPolicy())
