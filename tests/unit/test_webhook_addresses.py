"""The webhook address guard: the SSRF corpus is refused, before and after DNS resolution."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tracking.errors import InvalidInput
from tracking.events.addresses import is_public, parse_url, resolve_target


def _resolver(*addresses: str) -> Any:
    calls: list[str] = []

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


PUBLIC = _resolver("93.184.216.34")

REFUSED = [
    # schemes and forms
    "http://example.com/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    "https://",
    "https:///path",
    "//example.com/hook",
    "example.com/hook",
    "https://exa mple.com/",
    "https://example.com:99999/",
    # user info tricks
    "https://good@169.254.169.254/",
    "https://good.example.com@169.254.169.254/latest/meta-data/",
    "https://user:pass@example.com/",
    "https://169.254.169.254\\@good.example.com/",
    # metadata, link-local, private, loopback, CGNAT, multicast, unspecified, reserved
    "https://169.254.169.254/latest/meta-data/",
    "https://169.254.0.1/",
    "https://[fd00:ec2::254]/",
    "https://[fe80::1]/",
    "https://10.0.0.1/",
    "https://172.16.5.4/",
    "https://192.168.1.1/",
    "https://127.0.0.1/",
    "https://127.255.255.254/",
    "https://[::1]/",
    "https://100.64.0.1/",
    "https://100.127.255.254/",
    "https://224.0.0.1/",
    "https://239.255.255.250/",
    "https://[ff02::1]/",
    "https://0.0.0.0/",
    "https://[::]/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://192.0.0.1/",
    "https://198.18.0.1/",
    "https://[fc00::1]/",
    # IPv6 forms embedding an internal IPv4 address
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:a9fe:a9fe]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[2002:a9fe:a9fe::1]/",
    "https://[2002:7f00:1::]/",
    # non-canonical numeric hosts (inet_aton reads them as internal addresses)
    "https://2130706433/",
    "https://2852039166/",
    "https://0x7f000001/",
    "https://0x7f.0.0.1/",
    "https://0177.0.0.1/",
    "https://017700000001/",
    "https://127.1/",
    "https://0/",
    "https://0251.0376.0251.0376/",
    "https://169.254.43518/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_the_ssrf_corpus_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        resolve_target(url, resolver=PUBLIC)


@pytest.mark.parametrize("url", ["https://localhost/", "https://LOCALHOST./hook"])
def test_localhost_is_refused_after_resolution(url: str) -> None:
    with pytest.raises(InvalidInput, match="not a public address"):
        resolve_target(url)  # the real resolver: localhost is loopback


@pytest.mark.parametrize(
    "answers",
    [
        ("169.254.169.254",),
        ("10.1.2.3",),
        ("93.184.216.34", "169.254.169.254"),  # one bad address among good ones
        ("::ffff:169.254.169.254",),
        ("fd00:ec2::254",),
        ("100.64.0.7",),
        ("0.0.0.0",),
    ],
)
def test_a_public_name_resolving_inside_is_refused(answers: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInput, match="not a public address"):
        resolve_target("https://hooks.example.com/x", resolver=_resolver(*answers))


def test_a_public_name_is_pinned_to_its_checked_address() -> None:
    resolver = _resolver("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    target = resolve_target("https://Hooks.Example.com:8443/in?x=1", resolver=resolver)
    assert resolver.calls == ["hooks.example.com"]
    assert target.url() == "https://93.184.216.34:8443/in?x=1"
    assert target.host_header() == "hooks.example.com:8443"
    six = resolve_target("https://[2606:2800:220:1:248:1893:25c8:1946]/", resolver=resolver)
    assert six.url() == "https://[2606:2800:220:1:248:1893:25c8:1946]:443/"
    assert six.host_header() == "[2606:2800:220:1:248:1893:25c8:1946]"


def test_http_only_to_loopback_and_only_when_allowed() -> None:
    with pytest.raises(InvalidInput):
        resolve_target("http://127.0.0.1:8080/")
    target = resolve_target("http://127.0.0.1:8080/h", allow_http_loopback=True)
    assert target.url() == "http://127.0.0.1:8080/h"
    assert (
        resolve_target("http://[::1]:8080/", allow_http_loopback=True)
        .url()
        .startswith("http://[::1]")
    )
    # The setting opens loopback only: never private, metadata or public-over-http.
    for url in ("http://169.254.169.254/", "http://10.0.0.1/", "http://93.184.216.34/"):
        with pytest.raises(InvalidInput):
            resolve_target(url, allow_http_loopback=True, resolver=PUBLIC)
    with pytest.raises(InvalidInput):
        resolve_target("http://hooks.example.com/", allow_http_loopback=True, resolver=PUBLIC)


def test_public_addresses() -> None:
    import ipaddress

    assert is_public(ipaddress.ip_address("93.184.216.34"))
    assert is_public(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))
    assert not is_public(ipaddress.ip_address("169.254.169.254"))


def test_form_only_parse_keeps_names() -> None:
    assert parse_url("https://cafe.de/hook") == ("https", "cafe.de", 443, "/hook")
    assert parse_url("https://123.example/") == ("https", "123.example", 443, "/")
