"""Twilio's status callbacks: the URL the gateway gives Twilio with each message, and what a callback says.

Each create names ``{SMS_PUBLIC_BASE_URL}/api/providers/twilio/status?CommId=<N-form>&Index=<n>``, so a callback
finds its recipient with a point read even when it arrives before delivery recorded the sid; a callback without
that query (one a Messaging Service sends to its own URL) is found by its ``MessageSid``. Twilio POSTs a form
(``MessageSid``, ``MessageStatus``, ``ErrorCode``, ``To``… and fields it adds without notice, all of them
signed); ``read_callback`` checks the signature over the URL Twilio called before reading anything, and turns
the form into a ``Receipt`` for the receipt book. Only ``sent``, ``delivered``, ``undelivered`` and ``failed``
say something of the recipient; every other status (``queued``, ``sending``, ``accepted``, ``scheduled``,
``canceled``, ``read``, and any Twilio adds) is recorded with no state.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlencode

from gateway.providers import twilio_signature
from gateway.receipts import Receipt, ReceiptState

PATH = "/api/providers/twilio/status"
COMM_ID = "CommId"
INDEX = "Index"
STATES = {
    "sent": ReceiptState.SENT,
    "delivered": ReceiptState.DELIVERED,
    "undelivered": ReceiptState.UNDELIVERED,
    "failed": ReceiptState.FAILED,
}
E164 = re.compile(r"\+[1-9]\d{1,14}")
MAX_INDEX = 10_000  # far beyond any communication's recipients (SMS_MAX_RECIPIENTS is at most 1000)


class ForgedCallback(Exception):
    """The request is not signed by the account's Auth Token for the URL it was sent to (or there is no token)."""


class MalformedCallback(ValueError):
    """Signed by Twilio, but without what every status callback carries; ``field`` names what is missing."""

    def __init__(self, field: str) -> None:
        super().__init__(f"a status callback carries {field}")
        self.field = field


def callback_url(public_base_url: str, comm_id: uuid.UUID, index: int | None) -> str:
    """The ``StatusCallback`` for one recipient: the route, plus the query that finds its row."""
    query = {COMM_ID: comm_id.hex} | ({INDEX: str(index)} if index is not None else {})
    return f"{public_base_url}{PATH}?{urlencode(query)}"


def signed_url(request_url: str, public_base_url: str | None) -> str:
    """The URL Twilio signed: the public base URL, then the request's path and query exactly as sent.

    Behind TLS termination (Azure's front ends) the request's own scheme and host are not the ones Twilio
    called. Without ``SMS_PUBLIC_BASE_URL`` (local development) the request's own URL is used as it is.
    """
    if not public_base_url:
        return request_url
    _, separator, rest = request_url.partition("://")
    if not separator:
        return public_base_url + request_url
    start = min((at for at in (rest.find(c) for c in "/?") if at >= 0), default=len(rest))
    return public_base_url + rest[start:]


def read_callback(
    *, request_url: str, public_base_url: str | None, auth_token: str | None, signature: str | None, body: bytes
) -> Receipt:
    """The receipt a status callback carries, once its signature is Twilio's; raises Forged or Malformed."""
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ForgedCallback("the body is not UTF-8, so it cannot be what Twilio signed") from None
    url = signed_url(request_url, public_base_url)
    if not twilio_signature.is_valid(auth_token, url, form, signature):
        raise ForgedCallback("no Auth Token to check it with" if not auth_token else "the signature does not match")
    query = dict(parse_qsl(url.partition("?")[2].partition("#")[0], keep_blank_values=True))
    return receipt_from(form, query)


def receipt_from(form: Sequence[tuple[str, str]], query: Mapping[str, str]) -> Receipt:
    """A checked callback's form (and the query the gateway put in its URL) as a Receipt; unknown fields ignored."""
    fields: dict[str, str] = {}
    for name, value in form:
        fields.setdefault(name, value.strip())
    sid = fields.get("MessageSid") or fields.get("SmsSid")
    if not sid:
        raise MalformedCallback("MessageSid")
    status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").lower()
    if not status:
        raise MalformedCallback("MessageStatus")
    to = fields.get("To", "")
    return Receipt(
        provider="twilio",
        message_id=sid,
        provider_status=status,
        state=state_of(status),
        error_code=fields.get("ErrorCode") or None,
        comm_id=_comm_id(query.get(COMM_ID)),
        index=_index(query.get(INDEX)),
        to=to if E164.fullmatch(to) else None,
        sender=fields.get("From") or None,
    )


def state_of(status: str) -> ReceiptState | None:
    """What a Twilio message status means for the recipient; None for the statuses recorded but not shown."""
    return STATES.get(status.lower())


def _comm_id(text: str | None) -> uuid.UUID | None:
    """The CommId the gateway put in the URL; anything else (a URL configured by hand) finds by sid instead."""
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


def _index(text: str | None) -> int | None:
    if not text or len(text) > len(str(MAX_INDEX)) or not (text.isascii() and text.isdigit()):
        return None
    return int(text) if int(text) < MAX_INDEX else None
