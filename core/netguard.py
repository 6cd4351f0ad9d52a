"""Outbound HTTP to customer URLs without SSRF: an httpx transport that resolves the host once,
refuses loopback, private, link-local, shared, reserved and metadata addresses (unless the host is
allow-listed), and connects to exactly the address it checked, so DNS rebinding cannot slip a
private address in between the check and the connection. Also what a tenant may see of those
connections: errors without addresses, operator URLs without more than scheme and host."""

import asyncio
import ipaddress
import re
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


class AddressRefused(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


# IPv6 prefixes that carry an IPv4 address a gateway may forward to: NAT64 (well-known and
# local-use) and IPv4-compatible addresses (deprecated, still routed by some stacks).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

# Blocks `ipaddress` counts as global (some or all of their addresses) that no webhook needs:
# site-local IPv6 (deprecated, still routed inside some networks), IPv4-translated addresses
# (SIIT, whatever IPv4 address they carry) and the IETF protocol assignments, 192.0.0.9 and
# 192.0.0.10 (anycast PCP and TURN relays) included.
_REFUSED = (
    ipaddress.ip_network("fec0::/10"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
    ipaddress.ip_network("192.0.0.0/24"),
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo server, NAT64,
    IPv4-compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IpAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public(embedded):
            return False
    return (
        ip.is_global
        and not ip.is_multicast
        and ip not in _METADATA
        and not any(ip in net for net in _REFUSED)
    )


async def resolve_public(host: str, port: int) -> str:
    """One public address of `host` (refusing the host if any of its addresses is not public)."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        if not is_public(literal):
            raise AddressRefused(f"{host} is not a public address")
        return str(literal)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise httpx.ConnectError(f"{host} has no address")
    refused = [a for a in addresses if not is_public(a)]
    if refused:
        raise AddressRefused(f"{host} resolves to non-public {refused[0]}")
    return str(addresses[0])


def check_url(url: str, allowed_hosts: Collection[str]) -> None:
    """Registration-time check of a literal address (names are checked again at connect time)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("only http(s) URLs with a host")
    # A trailing dot names the same host ("localhost." is localhost).
    host = parts.hostname.lower().rstrip(".")
    if host in allowed_hosts or parts.hostname.lower() in allowed_hosts:
        return
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        raise AddressRefused(f"{host} is not a public host")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return
    if not is_public(literal):
        raise AddressRefused(f"{host} is not a public address")


_IPV4 = re.compile(r"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9]|\.[0-9])")
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4})(?:%[0-9A-Za-z_.-]+)?"
    r"(?![0-9A-Za-z:]|\.[0-9])"
)
REDACTED_ADDRESS = "[address]"


def _redact_ipv6(match: re.Match[str]) -> str:
    try:
        ipaddress.ip_address(match[0])
    except ValueError:
        return match[0]  # colons that are not an address (a time of day)
    return REDACTED_ADDRESS


def redact_addresses(text: str) -> str:
    """`text` with every IP address in it, public or not, replaced by `[address]`: an error of a
    connection may name the address a host resolved to (inside the platform's network, too)."""
    return _IPV4.sub(REDACTED_ADDRESS, _IPV6.sub(_redact_ipv6, text))


def masked_url(url: str) -> str:
    """An operator's URL as a tenant may see it: scheme and host only (no port, path, query or
    credentials), and `***` for the host unless it is a dotted name under an alphabetic top-level
    domain that `check_url` accepts (so no address literal in any numeric form, no intranet
    single-label name, no `localhost` or `*.internal`). Masking a masked URL changes nothing."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "***"
    labels = parts.hostname.rstrip(".").split(".")
    shown = len(labels) > 1 and labels[-1].isascii() and labels[-1].isalpha()
    if shown:
        try:
            check_url(f"{parts.scheme}://{parts.hostname}/", frozenset())
        except AddressRefused:
            shown = False
    return f"{parts.scheme}://{parts.hostname if shown else '***'}"


class GuardedTransport(httpx.AsyncBaseTransport):
    """Checks every request's host at connect time; allow-listed hosts pass unchecked."""

    def __init__(self, allowed_hosts: Collection[str], **transport_options: object) -> None:
        self.allowed = frozenset(h.lower() for h in allowed_hosts)
        self.inner = httpx.AsyncHTTPTransport(**transport_options)  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host.lower()
        if host not in self.allowed:
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            address = await resolve_public(host, port)
            # The Host header keeps the name; TLS verifies the certificate against it (SNI).
            request.url = request.url.copy_with(host=address)
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def guarded_client(
    allowed_hosts: Collection[str], *, timeout: float, max_connections: int = 200
) -> httpx.AsyncClient:
    """A client that never follows redirects, ignores proxy settings from the environment and
    reaches only public addresses (or allow-listed hosts)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(
            allowed_hosts,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        ),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout),
    )
