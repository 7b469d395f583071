"""Where a webhook may be sent: public https addresses only, checked after DNS resolution.

A webhook URL comes from configuration, yet the name in it resolves at delivery time, so a
name that resolves (or re-resolves: DNS rebinding) to an internal address must be refused then.
``resolve_target`` parses the URL, resolves the host, checks every address it resolves to, and
returns one checked address; the dispatcher connects to that address (with the name as Host
header and TLS server name, so the certificate is still verified against the name) and never
resolves the name again.

Refused: any scheme but https (http only to loopback, when allowed for local tests), user info
(``https://good@169.254.169.254``), numeric hosts in anything but canonical dotted or IPv6 form
(``2130706433``, ``0x7f.1``, ``0177.0.0.1``), and addresses that are not globally routable:
private, loopback, link-local (the 169.254.169.254 metadata service), CGNAT 100.64/10,
multicast, reserved, unspecified, the EC2 IPv6 metadata address fd00:ec2::254, and IPv6 forms
that embed one of those (IPv4-mapped, NAT64, 6to4, Teredo).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tracking.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

#: What inet_aton reads as an address: 1-4 parts, each decimal, octal (0...) or hex (0x...).
_NUMERIC_HOST = re.compile(r"^(0[xX][0-9a-fA-F]*|\d+)(\.(0[xX][0-9a-fA-F]*|\d+)){0,3}\.?$")
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_DOTTED_QUAD = re.compile(rf"^{_OCTET}(\.{_OCTET}){{3}}$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to ``address``, speak to ``host``."""

    scheme: str
    host: str
    port: int
    address: IPAddress
    #: Path and query, as sent in the request line.
    target: str

    def url(self) -> str:
        """The URL to connect to: the checked address, never the name."""
        shown = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{shown}:{self.port}{self.target}"

    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _embedded_v4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address (nor one embedding a non-public one)."""
    if address in _METADATA:
        return False
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        return all(is_public(inner) for inner in _embedded_v4(address))
    return True


def _is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def parse_url(url: str, *, allow_http_loopback: bool = False) -> tuple[str, str, int, str]:
    """Check a webhook URL's form (no DNS): ``(scheme, host, port, path and query)``.

    Raises:
        InvalidInput: not https (or http when loopback is allowed), user info, no host, a
            non-canonical numeric host, or a bad port.
    """
    if not isinstance(url, str) or len(url) > 2048 or any(c.isspace() for c in url):
        raise InvalidInput("a webhook URL must be an absolute https URL without spaces")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http_loopback):
        raise InvalidInput(f"webhook URLs must use https, not {scheme or 'nothing'!r}")
    if "@" in parts.netloc:
        raise InvalidInput("webhook URLs may not carry user info (user@host)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise InvalidInput("a webhook URL needs a host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise InvalidInput("a webhook URL has an invalid port") from None
    if ":" not in host and _NUMERIC_HOST.fullmatch(host) and not _DOTTED_QUAD.fullmatch(host):
        # inet_aton reads "2130706433", "0x7f.1" and "0177.0.0.1" as 127.0.0.1: refuse the
        # ambiguity instead of guessing which reading a resolver applies.
        raise InvalidInput(f"webhook host {host!r} is a non-canonical numeric address")
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return scheme, host, port, target


def _addresses(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass  # a name: resolve it
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise InvalidInput(f"webhook host {host!r} does not resolve: {error}") from None
    # A scope ("fe80::1%eth0") is dropped for the check; link-local is refused anyway.
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise InvalidInput(f"webhook host {host!r} does not resolve")
    return addresses


def resolve_target(
    url: str,
    *,
    allow_http_loopback: bool = False,
    resolver: Resolver = socket.getaddrinfo,
) -> Target:
    """Parse ``url``, resolve its host and check every address; return one to connect to.

    Raises:
        InvalidInput: the URL is refused (see ``parse_url``), the host does not resolve, or an
            address it resolves to is not public (loopback only with ``allow_http_loopback``).
    """
    scheme, host, port, target = parse_url(url, allow_http_loopback=allow_http_loopback)
    addresses = _addresses(host, port, resolver)
    for address in addresses:
        if is_public(address):
            if scheme == "http":
                raise InvalidInput("plain http is only allowed to a loopback address")
            continue
        if allow_http_loopback and _is_loopback(address):
            continue
        raise InvalidInput(
            f"webhook host {host!r} resolves to {address}, which is not a public address"
        )
    return Target(scheme=scheme, host=host, port=port, address=addresses[0], target=target)
