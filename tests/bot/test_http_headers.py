"""The client's address behind trusted reverse proxies (X-Forwarded-For)."""

from __future__ import annotations

from unittest import mock

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from bot.http_headers import client_address


def request(peer: str, *forwarded: str) -> object:
    headers = CIMultiDict(("X-Forwarded-For", value) for value in forwarded)
    transport = mock.Mock()
    transport.get_extra_info.return_value = (peer, 40000)
    return make_mocked_request("GET", "/", headers=headers, transport=transport)


def test_without_trusted_proxies_the_peer_counts() -> None:
    assert client_address(request("203.0.113.9", "198.51.100.1"), []) == "203.0.113.9"  # type: ignore[arg-type]


def test_the_nearest_untrusted_hop_counts() -> None:
    proxies = ["10.0.0.0/8", "::1"]
    cases = {
        ("10.0.0.2", "1.1.1.1, 198.51.100.7"): "198.51.100.7",
        ("10.0.0.2", "198.51.100.7, 10.0.0.3"): "198.51.100.7",  # two proxies
        ("10.0.0.2", "198.51.100.7:5678"): "198.51.100.7",  # with a port
        ("10.0.0.2", "[2001:db8::7]:443"): "2001:db8::7",
        ("::1", "2001:db8::8"): "2001:db8::8",
        ("::ffff:10.0.0.2", "198.51.100.9"): "198.51.100.9",  # an IPv4-mapped proxy address
        ("10.0.0.2", "not-an-address"): "10.0.0.2",  # garbled: the proxy counts
        ("10.0.0.2", "10.0.0.4"): "10.0.0.2",  # nothing but proxies
        ("203.0.113.9", "198.51.100.7"): "203.0.113.9",  # not from a proxy: ignored
    }
    for (peer, forwarded), expected in cases.items():
        got = client_address(request(peer, forwarded), proxies)  # type: ignore[arg-type]
        assert got == expected, (peer, forwarded)
    # Several headers are one list, in order.
    two = request("10.0.0.2", "198.51.100.1", "198.51.100.2")
    assert client_address(two, proxies) == "198.51.100.2"  # type: ignore[arg-type]
