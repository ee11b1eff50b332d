"""Security headers for every response of the gateway (pages, widget files, APIs, errors).

Registered as an ``on_response_prepare`` signal, so error pages get them too. HTML pages may run
only the gateway's own scripts and styles (no inline code) and may not be framed; nothing is
MIME-sniffed; no referrer leaves; the ``Server`` header names no versions.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from aiohttp import web

SERVER_NAME = "csbot"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Server"] = SERVER_NAME
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if response.content_type == "text/html":
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a header or the peer: "1.2.3.4", "1.2.3.4:5678", "[::1]:5678", "::1";
    an IPv4-mapped IPv6 address as the IPv4 one."""
    text = value.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@functools.cache
def _networks(proxies: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The settings' proxies, parsed once (they were checked when the settings loaded)."""
    return [ipaddress.ip_network(p, strict=False) for p in proxies]


def client_address(request: web.BaseRequest, trusted_proxies: Sequence[str]) -> str:
    """The client's address: the peer's, or, when the peer is a trusted reverse proxy, the
    nearest address in X-Forwarded-For that is not one of the trusted proxies."""
    peer = request.remote or "unknown"
    if not trusted_proxies:
        return peer
    networks = _networks(tuple(trusted_proxies))

    def trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return ip is not None and any(ip.version == n.version and ip in n for n in networks)

    if not trusted(_ip(peer)):
        return peer
    hops = [h for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h.strip()]):
        ip = _ip(hop)
        if ip is None:
            return peer  # a garbled header: count the proxy rather than trust it
        if not trusted(ip):
            return str(ip)
    return peer
