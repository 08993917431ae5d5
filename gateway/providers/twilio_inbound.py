"""Twilio's inbound messages: what a phone texts to one of our numbers, as Twilio POSTs it to the inbound URL.

The URL to configure on a Twilio number or Messaging Service is ``{SMS_PUBLIC_BASE_URL}/api/providers/twilio/inbound``.
Twilio POSTs a form (``MessageSid``, ``AccountSid``, ``MessagingServiceSid``, ``From``, ``To``, ``Body``,
``NumSegments``, ``NumMedia``, geo fields, and fields it adds without notice) signed exactly like a status
callback, so ``read_inbound`` checks ``X-Twilio-Signature`` the same way (``twilio_callbacks.signed_url``) before
reading anything. Twilio expects TwiML back: an empty ``<Response/>`` as ``text/xml`` sends no reply (an empty
non-XML 200 shows as errors 11200/12200 in the customer's Twilio debugger).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from gateway.inbound import InboundMessage
from gateway.providers import twilio_signature
from gateway.providers.acs_events import normalise_number
from gateway.providers.twilio_callbacks import ForgedCallback, MalformedCallback, signed_url

PATH = "/api/providers/twilio/inbound"
PROVIDER = "twilio"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
TWIML_MEDIA_TYPE = "text/xml"


def read_inbound(
    *, request_url: str, public_base_url: str | None, auth_token: str | None, signature: str | None, body: bytes
) -> InboundMessage:
    """The message an inbound webhook carries, once its signature is Twilio's; raises Forged or Malformed."""
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ForgedCallback("the body is not UTF-8, so it cannot be what Twilio signed") from None
    if not twilio_signature.is_valid(auth_token, signed_url(request_url, public_base_url), form, signature):
        raise ForgedCallback("no Auth Token to check it with" if not auth_token else "the signature does not match")
    return message_from(form)


def message_from(form: list[tuple[str, str]]) -> InboundMessage:
    """A checked form as an InboundMessage; unknown fields ignored, numbers normalised to E.164."""
    fields: dict[str, str] = {}
    for name, value in form:
        fields.setdefault(name, value)
    sid = (fields.get("MessageSid") or fields.get("SmsSid") or "").strip()
    if not sid:
        raise MalformedCallback("MessageSid")
    sender, to = normalise_number(fields.get("From")), normalise_number(fields.get("To"))
    if sender is None:
        raise MalformedCallback("From")
    if to is None:
        raise MalformedCallback("To")
    return InboundMessage(provider=PROVIDER, message_id=sid, sender=sender, to=to, body=fields.get("Body", ""))
