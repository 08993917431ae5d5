"""Which webhook URLs the gateway may post to: absolute http(s), and only to public addresses.

A webhook URL is chosen by a licensee, and the gateway then makes requests to it from inside its own network:
without a check, ``http://169.254.169.254/`` (the cloud's instance metadata), ``http://localhost:10000`` or a
private address would let a licensee make the gateway call them (server-side request forgery). So the host is
resolved and the URL refused if ANY address it resolves to is not a public unicast one: loopback, private,
link-local, multicast, reserved, unspecified, shared (100.64/10), documentation, and the IPv4 addresses carried
inside IPv6 (IPv4-mapped, NAT64, 6to4) are looked at as what they carry. A literal IP is checked the same
way. Registration checks once and the dispatcher checks again before each send, so a name that resolved to a
public address then and a private one now (DNS rebinding) is refused at send. ``SMS_WEBHOOK_ALLOW_PRIVATE`` turns
the address check off, for local development against a receiver on the same machine.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
RESOLVE_SECONDS = 3.0  # within the request path's budget (a few seconds), as long as a healthy resolver ever takes
_LOOKUPS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix: the last 32 bits are an IPv4 address

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""Every address a host name resolves to, as text (``host``, ``port``)."""


class RefusedUrl(ValueError):
    """The URL may not be a webhook's; the message says why, naming no secret (a URL carries none we accept)."""


class UnresolvableHost(RefusedUrl):
    """The host name did not resolve: at registration a typo, at send possibly a passing DNS failure."""


def resolve_host(host: str, port: int, *, timeout: float = RESOLVE_SECONDS) -> list[str]:
    """Every address the system resolver gives for ``host`` (IPv4 and IPv6), waiting at most ``timeout``.

    ``getaddrinfo`` has no time-out of its own and a slow name server would hold a request or a send for as long
    as it likes, so the look-up runs on a small pool of threads and a late answer counts as none.
    """
    lookup = _LOOKUPS.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        found = lookup.result(timeout=timeout)
    except FutureTimeout:
        raise UnresolvableHost(f"the host {host!r} did not resolve within {timeout:g} s") from None
    except (socket.gaierror, UnicodeError) as error:
        raise UnresolvableHost(f"the host {host!r} does not resolve ({error.__class__.__name__})") from None
    return [str(info[4][0]) for info in found]


def check_url(url: str, *, allow_private: bool, require_https: bool, resolve: Resolver = resolve_host) -> None:
    """Raise ``RefusedUrl`` unless events may be posted to ``url``.

    ``require_https``: the scheme must be https (in Azure, and for any real storage account). ``allow_private``:
    skip the address check (``SMS_WEBHOOK_ALLOW_PRIVATE``). ``resolve`` is the system resolver unless a test
    gives another.
    """
    checked_addresses(url, allow_private=allow_private, require_https=require_https, resolve=resolve)


def checked_addresses(url: str, *, allow_private: bool, require_https: bool,
                      resolve: Resolver = resolve_host) -> tuple[str, ...]:
    """``check_url``, answering the addresses it checked (none when ``allow_private`` skipped the look-up), so a
    sender can connect to exactly those and leave no second look-up for DNS rebinding to answer differently."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(character.isspace() or not character.isprintable() for character in url):
        raise RefusedUrl("the URL holds a space or a control character")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RefusedUrl("the URL must be absolute, starting https:// (or http:// for local development)")
    if require_https and scheme != "https":
        raise RefusedUrl("the URL must start https://")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("the URL must not carry a user name or password; the signature authenticates the gateway")
    host = parts.hostname
    if not host:
        raise RefusedUrl("the URL has no host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise RefusedUrl("the URL's port is not a number from 1 to 65535")
    port = port or (443 if scheme == "https" else 80)
    if allow_private:
        return ()
    literal = _literal(host)
    addresses = [str(literal)] if literal is not None else list(resolve(host, port))
    if not addresses:
        raise UnresolvableHost(f"the host {host!r} resolves to no address")
    for text in addresses:
        address = ipaddress.ip_address(text.partition("%")[0])  # an IPv6 zone (fe80::1%eth0) is not the address
        why = not_public(address)
        if why is not None:
            shown = host if literal is not None else f"{host} ({address})"
            raise RefusedUrl(f"{shown} is {why}: events go to public addresses only (SMS_WEBHOOK_ALLOW_PRIVATE "
                             "allows others for local development)")
    return tuple(addresses)


def not_public(address: IpAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = _carried_ipv4(address)
        if carried is not None:
            why = not_public(carried)
            return None if why is None else f"{why} (inside an IPv6 address)"
    for test, why in ((address.is_unspecified, "the unspecified address"), (address.is_loopback, "a loopback address"),
                      (address.is_link_local, "a link-local address"), (address.is_multicast, "a multicast address"),
                      (address.is_reserved, "a reserved address"), (address.is_private, "a private address")):
        if test:
            return why
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if not address.is_global:  # shared address space, documentation and benchmarking ranges, and the like
        return "not a public address"
    return None


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and a connection to it would reach, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(address.packed[-4:])
    return address.sixtofour  # Teredo (2001::/32) needs no look inside: it is never a global address


def _literal(host: str) -> IpAddress | None:
    """The host as an IP address when it is written as one (``[::1]`` arrives without brackets), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # what the resolver would read as IPv4 too: 2130706433, 0x7f.1, 127.1
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, UnicodeError):
        return None
