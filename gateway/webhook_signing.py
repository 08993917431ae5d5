"""Standard Webhooks signatures (standardwebhooks.com): the three headers every webhook request carries.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256>`` of ``"<webhook-id>.<webhook-timestamp>.<body>"``, keyed with
the bytes the secret's base64 (after ``whsec_``) decodes to. Right after a rotation the previous secret signs too,
space-separated, so a receiver still configured with the old secret verifies events sent meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime

from gateway.webhook_events import Endpoint

SECRET_PREFIX = "whsec_"


class BadSecret(ValueError):
    """A secret that is not ``whsec_`` and base64: a registration bug, never a receiver's fault."""


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_…`` secret stands for."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)  # padding may be left off
    except binascii.Error:
        raise BadSecret("a webhook secret is whsec_ and base64") from None
    if not key:
        raise BadSecret("a webhook secret is not empty")
    return key


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as ``event_id`` at ``timestamp`` (Unix seconds)."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signing_secrets(endpoint: Endpoint, now: datetime) -> list[str]:
    """The endpoint's secret, and its previous one while that is still valid at ``now``."""
    found = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_until is not None and now < endpoint.previous_until:
        found.append(endpoint.previous_secret)
    return found


def webhook_headers(endpoint: Endpoint, event_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """The request's headers: the id (the same on every attempt), this attempt's time, one signature per secret."""
    timestamp = int(now.timestamp())
    signatures = " ".join(sign(secret, event_id, timestamp, body) for secret in signing_secrets(endpoint, now))
    return {"webhook-id": event_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures,
            "Content-Type": "application/json"}
