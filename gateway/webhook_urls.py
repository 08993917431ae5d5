"""Which webhook URLs the gateway will post to (part A's module; this minimal version stands in until it merges).

A licensee's URL is resolved and refused when ANY of its addresses is not a public one, so a webhook cannot be
pointed at the gateway's own network; the dispatcher checks again before every send, after DNS may have changed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class RefusedUrl(ValueError):
    """The URL cannot be a webhook endpoint; the message says why."""


def check_url(url: str, *, allow_private: bool, require_https: bool) -> None:
    """Raise ``RefusedUrl`` unless ``url`` is an absolute http(s) URL whose every address may be posted to."""
    parts = urlsplit(url)
    schemes = ("https",) if require_https else ("http", "https")
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise RefusedUrl(f"must be an absolute {' or '.join(schemes)} URL")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise RefusedUrl(f"the host {parts.hostname!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_global or (mapped or address).is_multicast:
            raise RefusedUrl(f"the host {parts.hostname!r} resolves to a private or reserved address")
