"""``X-Twilio-Signature``: how Twilio signs what it sends the gateway, checked without the ``twilio`` package.

Twilio takes the full URL it requested (scheme, host, the port when it wrote one, path, and the query string
exactly as sent), appends every form parameter as name then value (names sorted, a repeated name's values
sorted, an identical repeat once, as Twilio's own validator does), signs that with HMAC-SHA1 keyed with the
account's Auth Token and sends it Base64-encoded. Twilio writes the default port (``:443``, ``:80``) on some
requests and not on others (twilio-python #392, #402), so both spellings are accepted; credentials in the URL
(``user:pass@``) are never part of what it signs. The ``twilio`` package (22 MB with aiohttp) is a
development-only cross-check of this module (tests/unit/test_twilio_signature.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

HEADER = "X-Twilio-Signature"
DEFAULT_PORTS = {"https": "443", "http": "80"}


def compute(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio sends for a request to ``url`` with these form parameters."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def is_valid(token: str | None, url: str, params: Iterable[tuple[str, str]], signature: str | None) -> bool:
    """True when ``signature`` is Twilio's for ``url`` (with or without its default port) and ``params``.

    False without a token or a signature. Every spelling is computed and compared in constant time.
    """
    if not token or not signature:
        return False
    pairs = list(params)
    given = signature.strip().encode("utf-8")
    valid = False
    for spelling in spellings(url):
        valid |= hmac.compare_digest(compute(token, spelling, pairs).encode("ascii"), given)
    return valid


def spellings(url: str) -> list[str]:
    """``url`` as Twilio may have signed it: without credentials, with and without the scheme's default port.

    Only the authority changes; path, query and fragment stay as they were written.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return [url]
    end = min((at for at in (rest.find(c) for c in "/?#") if at >= 0), default=len(rest))
    authority, tail = rest[:end].rpartition("@")[2], rest[end:]
    host, colon, port = authority.rpartition(":")
    if not colon or "]" in port:  # no port (an IPv6 literal's colons are inside its brackets)
        host, port = authority, ""
    default = DEFAULT_PORTS.get(scheme.lower())
    if default is None or port not in ("", default):
        return [f"{scheme}://{authority}{tail}"]
    return [f"{scheme}://{host}{tail}", f"{scheme}://{host}:{default}{tail}"]
