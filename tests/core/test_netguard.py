"""The SSRF guard: refused addresses at registration and at connect time (DNS rebinding)."""

import ipaddress

import httpx
import pytest

from core import netguard
from core.netguard import AddressRefused, GuardedTransport
from tests.receivers import Receiver


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.100.100.200",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        # IPv6 forms that carry a private IPv4 address a gateway would forward to.
        "::127.0.0.1",
        "::169.254.169.254",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "2002:c0a8:101::1",
        # Site-local IPv6 (deprecated, still routed inside some networks).
        "fec0::1",
        "feff:ffff::1",
        # IPv4-translated addresses (SIIT, ::ffff:0:0:0/96), whatever IPv4 address they carry.
        "::ffff:0:7f00:1",
        "::ffff:0:a00:1",
        "::ffff:0:5db8:d822",
        # IETF protocol assignments, including the ones Python counts as global.
        "192.0.0.1",
        "192.0.0.9",
        "192.0.0.10",
        "192.0.0.255",
        "::ffff:192.0.0.9",
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not netguard.is_public(ipaddress.ip_address(address))


def test_public_addresses() -> None:
    assert netguard.is_public(ipaddress.ip_address("93.184.216.34"))
    assert netguard.is_public(ipaddress.ip_address("2606:4700::1111"))
    # The same IPv6 forms around a public IPv4 address stay public.
    assert netguard.is_public(ipaddress.ip_address("64:ff9b::5db8:d822"))
    assert netguard.is_public(ipaddress.ip_address("2002:5db8:d822::1"))
    # Just outside the refused blocks around them.
    assert netguard.is_public(ipaddress.ip_address("192.0.1.1"))
    assert netguard.is_public(ipaddress.ip_address("191.255.255.255"))
    assert netguard.is_public(ipaddress.ip_address("2001:4860::8888"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://[::1]/x",
        "http://localhost:8080/",
        "http://metadata.google.internal/",
        "http://169.254.169.254/latest",
        "ftp://example.com/",
        "http://localhost./",
        "http://LOCALHOST/",
        "http://hooks.localhost./",
        "http://metadata.google.internal./",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/latest",
        "http://[2002:7f00:1::]/",
        "http://[fec0::1]/",
        "http://[::ffff:0:a00:1]/",
        "http://192.0.0.9/",
    ],
)
def test_registration_refuses_private_literals(url: str) -> None:
    with pytest.raises(AddressRefused):
        netguard.check_url(url, frozenset())


def test_allow_list_exempts_a_host() -> None:
    netguard.check_url("http://127.0.0.1:9000/hook", frozenset({"127.0.0.1"}))
    netguard.check_url("https://hooks.example.com/x", frozenset())


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name that passed registration but now resolves privately (DNS rebinding) is refused
    before any connection is made."""

    async def rebinding(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    import asyncio

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebinding)
    async with httpx.AsyncClient(transport=GuardedTransport(frozenset())) as client:
        with pytest.raises(AddressRefused):
            await client.post("http://rebind.example.com/hook", content=b"{}")


@pytest.mark.parametrize(
    ("family", "address"),
    [(10, "fec0::1"), (10, "::ffff:0:a00:1"), (2, "192.0.0.9")],
)
async def test_site_local_translated_and_protocol_addresses_are_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch, family: int, address: str
) -> None:
    async def resolving(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        return [(family, 1, 6, "", (address, port))]

    import asyncio

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolving)
    async with httpx.AsyncClient(transport=GuardedTransport(frozenset())) as client:
        with pytest.raises(AddressRefused):
            await client.post("http://hooks.example.com/hook", content=b"{}")


async def test_connects_to_the_checked_address_with_the_original_host_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[httpx.Request] = []

    async def public(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        return [(2, 1, 6, "", ("93.184.216.34", port))]

    import asyncio

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", public)
    transport = GuardedTransport(frozenset())

    async def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    transport.inner = httpx.MockTransport(record)  # type: ignore[assignment]
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.post("https://hooks.example.com/a", content=b"{}")).status_code == 204
    assert seen[0].url.host == "93.184.216.34"
    assert seen[0].headers["host"] == "hooks.example.com"
    assert seen[0].extensions["sni_hostname"] == "hooks.example.com"


async def test_redirects_are_not_followed() -> None:
    """A public endpoint that redirects to a metadata address gets its 3xx back as the answer
    (a failed delivery), and nothing follows it."""
    receiver = await Receiver(
        respond=lambda _: (302, {"Location": "http://169.254.169.254/latest/meta-data/"})
    ).start()
    try:
        async with netguard.guarded_client(frozenset({"127.0.0.1"}), timeout=5) as client:
            response = await client.post(receiver.url, content=b"{}")
        assert response.status_code == 302
        assert receiver.hits == 1
    finally:
        await receiver.stop()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "refused: hooks.example.com resolves to non-public 10.1.2.3",
            "refused: hooks.example.com resolves to non-public [address]",
        ),
        (
            "ConnectError: [Errno 111] Connect call failed ('127.0.0.1', 8080)",
            "ConnectError: [Errno 111] Connect call failed ('[address]', 8080)",
        ),
        ("ConnectError: 192.168.0.7:443 unreachable.", "ConnectError: [address]:443 unreachable."),
        (
            "refused: fd00:ec2::254 is not a public address",
            "refused: [address] is not a public address",
        ),
        ("refused: [::1] is not a public address", "refused: [[address]] is not a public address"),
        ("mapped ::ffff:10.0.0.1 and fe80::1%eth0", "mapped [address] and [address]"),
        ("at 2001:db8::8a2e:370:7334.", "at [address]."),
        # Not addresses: kept.
        ("HTTP 503", "HTTP 503"),
        ("timeout", "timeout"),
        ("ReadTimeout: read 12:30:45 v1.2.3", "ReadTimeout: read 12:30:45 v1.2.3"),
    ],
)
def test_addresses_are_redacted_from_text(text: str, shown: str) -> None:
    assert netguard.redact_addresses(text) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.operator.example:8443/in/s3cret?token=abc#x",
            "https://hooks.operator.example",
        ),
        ("https://user:pass@hooks.operator.example/in", "https://hooks.operator.example"),
        ("http://10.0.0.5:8080/hooks/s3cret", "http://***"),
        ("http://127.0.0.1/hook", "http://***"),
        ("http://[fd00::5]/hook", "http://***"),
        ("https://93.184.216.34/hook", "https://***"),
        ("http://hooks.internal/x", "http://***"),
        ("http://localhost:9000/x", "http://***"),
        ("http://0x7f.1/x", "http://***"),
        ("http://2130706433/x", "http://***"),
        ("http://hookbox:8080/x", "http://***"),
        ("not a url", "***"),
        # Masking what is already masked changes nothing.
        ("https://hooks.operator.example", "https://hooks.operator.example"),
        ("http://***", "http://***"),
    ],
)
def test_an_operator_url_shows_only_its_scheme_and_public_host(url: str, shown: str) -> None:
    assert netguard.masked_url(url) == shown
