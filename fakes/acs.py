"""A local Azure Communication Services SMS endpoint: HTTPS, HMAC-checked, repeatable, scriptable.

The wire is the one ``azure-communication-sms`` 1.1 speaks (REST API 2021-03-07):
``POST /sms?api-version=2021-03-07`` with a JSON ``SendMessageRequest``
(``from``, ``smsRecipients[{to, repeatabilityRequestId, repeatabilityFirstSent}]``, ``message``,
``smsSendOptions{enableDeliveryReport, tag}``), answered ``202`` with one item per recipient
(``to, messageId, httpStatusCode, repeatabilityResult, successful, errorMessage``).

* TLS with a self-signed certificate made at start for 127.0.0.1 and localhost (the SDK insists
  on https); ``ca_bundle`` is the file a client must trust.
* Authentication as the service does it: ``Authorization: HMAC-SHA256 SignedHeaders=...&Signature=...``
  over ``"<VERB>\\n<path?query>\\n<value;value;...>"`` of the signed headers (the SDK signs
  ``x-ms-date;host;x-ms-content-sha256``), keyed with the base64-decoded access key; the body must
  hash to ``x-ms-content-sha256`` and ``x-ms-date`` must be within 15 minutes. Or ``Bearer`` with a
  token from ``bearer_tokens``, standing in for Entra ID. Anything else: 401.
* A body that is not JSON or does not fit the request schema (the 2021-03-07 description's, with
  unknown properties refused to catch typos): 400 with ``{"error": {"code", "message"}}``.
* Repeatability as documented for ACS: a malformed id or first-sent is ``rejected`` with 400; a
  first-sent older than the tracking window (5 minutes) is ``rejected`` with 412; a known id within
  the window with the same request answers with the first result and ``repeatabilityResult:
  "accepted"`` and sends nothing; a known id with a different request is ``rejected`` with 400.
* Scripted per-recipient answers (``fail_recipient``) and whole-call faults (``push_fault``:
  500, 429 with Retry-After, a delay past the client's time-out, an answer held back after the
  SMS went out, and ``stop``).
* Delivery reports through Event Grid, when given a subscription endpoint (``events_endpoint``, or
  ``subscribe`` once the gateway runs): the validation handshake first, then a
  ``Microsoft.Communication.SMSDeliveryReportReceived`` for every SMS sent with ``enableDeliveryReport``,
  echoing its ``tag``; ``Delivered`` unless ``report_outcome`` scripted the number otherwise. Shaped as
  Microsoft's samples show them: ``from`` without ``+``, ``to`` with or without it, field names in
  camelCase with ``Tag`` capitalised, or all capitalised (``fakes/eventgrid.py`` delivers them: batched,
  shuffled, sometimes twice, retried).
* Inbound messages: ``text(from_, to, message)`` plays a phone texting one of the resource's numbers, and
  publishes the ``Microsoft.Communication.SMSReceived`` event ACS would (``messageId`` ``Incoming_…``,
  ``from``, ``to``, ``message``, ``receivedTimestamp``, ``segmentCount``; numbers without ``+``, names in either
  casing) through the same subscription.

From a shell, ``python -m fakes.acs [--port 8443] [--events-endpoint [URL]]`` runs it until Ctrl-C and
prints the settings that point the gateway at it (``main`` below).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import ipaddress
import json
import random
import re
import secrets
import shutil
import ssl
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.eventgrid import EventGridEvent, SystemEventNames
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match

from fakes.cli import GATEWAY, banner, say, serve, stamp
from fakes.eventgrid import Delivery, EventGridSubscription, event_time
from fakes.server import FakeHandler, FakeService
from fakes.sms_segments import num_segments

API_VERSIONS = frozenset({"2021-03-07"})
TRACKING_SECONDS = 300.0
MAX_CLOCK_SKEW = timedelta(minutes=15)
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
DELIVERY_REPORT_EVENT = SystemEventNames.AcsSmsDeliveryReportReceivedEventName.value
RECEIVED_EVENT = SystemEventNames.AcsSmsReceivedEventName.value
DELIVERED_DETAILS = "No error."

_RECIPIENT = {
    "type": "object",
    "required": ["to"],
    "additionalProperties": False,
    "properties": {
        "to": {"type": "string"},
        "repeatabilityRequestId": {"type": "string"},
        "repeatabilityFirstSent": {"type": "string"},
    },
}
SEND_MESSAGE_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["from", "smsRecipients", "message"],
    "additionalProperties": False,
    "properties": {
        "from": {"type": "string"},
        "smsRecipients": {"type": "array", "minItems": 1, "maxItems": 100, "items": _RECIPIENT},
        "message": {"type": "string", "minLength": 0, "maxLength": 2048},
        "smsSendOptions": {
            "type": "object",
            "required": ["enableDeliveryReport"],
            "additionalProperties": False,
            "properties": {
                "enableDeliveryReport": {"type": "boolean"},
                "tag": {"type": "string"},
                "validityPeriodSeconds": {"type": "integer"},
            },
        },
    },
}
_REQUEST_VALIDATOR = Draft7Validator(SEND_MESSAGE_REQUEST)


def error_body(status: int, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    """ACS's error document (Communication error response)."""
    generic = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests",
               500: "InternalServerError", 503: "ServiceUnavailable"}
    return {"error": {"code": code or generic.get(status, str(status)), "message": message or generic.get(status, "")}}


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, usable as its own CA bundle."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "acs-fake.pem", directory / "acs-fake.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def hmac_signature(access_key: str, string_to_sign: str) -> str:
    digest = hmac.new(base64.b64decode(access_key), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(
    access_key: str, method: str, url: str, body: bytes, *, date: datetime | None = None
) -> dict[str, str]:
    """Headers signing a raw request the way the SDK's HMAC policy does, for tests that bypass the SDK."""
    parts = urlsplit(url)
    path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
    ms_date = format_datetime(date or datetime.now(UTC), usegmt=True)
    digest = content_hash(body)
    signature = hmac_signature(access_key, f"{method.upper()}\n{path_and_query}\n{ms_date};{parts.netloc};{digest}")
    return {
        "x-ms-date": ms_date,
        "x-ms-content-sha256": digest,
        "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}",
        "Content-Type": "application/json",
    }


@dataclass(frozen=True)
class SentSms:
    """One SMS the fake service sent (de-duplicated repeats are not sent again)."""

    message_id: str
    from_: str
    to: str
    message: str
    tag: str | None
    enable_delivery_report: bool | None
    repeatability_request_id: str | None
    repeatability_first_sent: str | None


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    auth_scheme: str | None
    body: bytes
    status: int


@dataclass
class _Tracked:
    first_sent: datetime
    fingerprint: tuple[str, str, str, str]
    item: dict[str, Any]


class _AcsHandler(FakeHandler):
    server: Any

    @property
    def fake(self) -> AcsFake:
        return self.server.owner

    def do_POST(self) -> None:
        self._body = self.read_body()
        self._recorded = False
        status = self._answer()
        if not self._recorded:
            self.before_answer(status)

    def do_GET(self) -> None:
        self._body = self.read_body()
        self._recorded = False
        self.send_json(404, error_body(404))

    def before_answer(self, status: int) -> None:
        self._recorded = True
        authorization = self.headers.get("Authorization") or ""
        scheme = authorization.split(" ", 1)[0] or None
        self.fake.record_request(SeenRequest(self.command, self.path, scheme, self._body, status))

    def _fail(self, status: int, code: str | None = None, message: str | None = None) -> int:
        self.send_json(status, error_body(status, code, message))
        return status

    def _answer(self) -> int:
        fake = self.fake
        fault = fake.next_fault()
        if self.apply_fault(fault, error_body):
            return fault.status or 0 if fault is not None else 0
        parts = urlsplit(self.path)
        if parts.path != "/sms":
            return self._fail(404, message=f"no resource at {parts.path}")
        problem = fake.authentication_problem(self.command, self.path, self.headers, self._body)
        if problem is not None:
            return self._fail(401, message=problem)
        versions = parse_qs(parts.query).get("api-version", [])
        if not versions:
            return self._fail(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
        if versions[0] not in API_VERSIONS:
            return self._fail(400, "UnsupportedApiVersion", f"api-version {versions[0]} is not supported")
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            return self._fail(400, message=f"Content-Type must be application/json, not {media!r}")
        try:
            request = json.loads(self._body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return self._fail(400, message=f"the body is not JSON: {error}")
        error = best_match(_REQUEST_VALIDATOR.iter_errors(request))
        if error is not None:
            # Name the rule, not the value: like the service, never echo the message text back.
            where = "/".join(str(part) for part in error.absolute_path) or "body"
            return self._fail(400, message=f"{where}: fails {error.validator} {error.validator_value!r}")
        items = [fake.process(request, recipient) for recipient in request["smsRecipients"]]
        self.send_json(202, {"value": items})
        return 202


class AcsFake(FakeService):
    """Start with ``with AcsFake() as acs:``; give the SDK ``acs.connection_string`` and ``acs.ca_bundle``."""

    handler = _AcsHandler
    scheme = "https"

    def __init__(
        self,
        *,
        access_key: str | None = None,
        bearer_tokens: set[str] | None = None,
        tracking_seconds: float = TRACKING_SECONDS,
        clock: Callable[[], datetime] | None = None,
        events_endpoint: str | None = None,
        events_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.access_key = access_key or base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self.bearer_tokens = bearer_tokens or set()
        self.tracking_seconds = tracking_seconds
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.sent: list[SentSms] = []
        self.requests: list[SeenRequest] = []
        self.dedupe_hits = 0
        self.on_send: Callable[[SentSms], None] | None = None  # told of every SMS sent
        self.on_dedupe: Callable[[str, dict[str, Any]], None] | None = None  # told of each repeat not sent again
        self._tracked: dict[str, _Tracked] = {}
        self._recipient_failures: dict[str, tuple[int, str]] = {}
        self._directory: Path | None = None
        self.ca_bundle = ""
        self.events: EventGridSubscription | None = None  # the Event Grid subscription reports go to
        self._outcomes: dict[str, tuple[str, str]] = {}
        self._report_shapes = random.Random(events_seed)
        if events_endpoint is not None:
            self.subscribe(events_endpoint, seed=events_seed)

    def tls_context(self) -> ssl.SSLContext:
        self._directory = Path(tempfile.mkdtemp(prefix="acs-fake-"))
        cert, key = make_certificate(self._directory)
        self.ca_bundle = str(cert)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context

    def cleanup(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()

    def stop(self) -> None:
        super().stop()
        if self.events is not None:
            self.events.stop()

    def subscribe(self, endpoint: str, **options: Any) -> EventGridSubscription:
        """Send delivery reports to an Event Grid webhook subscription (options: ``EventGridSubscription``'s).

        The handshake runs before the first report, or now with ``subscribe(...).validate()``.
        """
        if self.events is not None:
            self.events.stop()
        self.events = EventGridSubscription(endpoint, **options)
        return self.events

    def report_outcome(self, to: str, status: str = "Failed",
                       details: str = "Sender blocked for given recipient") -> None:
        """The delivery report for SMS to this number says ``status`` (``Delivered`` or ``Failed``) with ``details``."""
        with self.lock:
            self._outcomes[to] = (status, details)

    def delivery_report(self, sms: SentSms, *, received: datetime | None = None) -> EventGridEvent:
        """The report ACS publishes for a sent SMS, in one of the two shapes Microsoft's samples show."""
        with self.lock:
            status, details = self._outcomes.get(sms.to, ("Delivered", DELIVERED_DETAILS))
            pascal = self._report_shapes.random() < 0.5
            plus_in_to = self._report_shapes.random() < 0.5
        received_at = received or self.clock()
        sender = sms.from_.lstrip("+")
        parts = num_segments(sms.message)
        failed = 0 if status == "Delivered" else parts
        data: dict[str, Any] = {
            "messageId": sms.message_id,
            "from": sender,
            "to": sms.to if plus_in_to else sms.to.lstrip("+"),
            "deliveryStatus": status,
            "deliveryStatusDetails": details,
            "receivedTimestamp": event_time(received_at),
            "deliveryAttempts": [{"timestamp": event_time(received_at), "segmentsSucceeded": parts - failed,
                                  "segmentsFailed": failed}],
        }
        if sms.tag is not None:
            data["Tag"] = sms.tag
        if pascal:
            data = _pascal(data)
        return EventGridEvent(id=sms.message_id, subject=f"/phonenumber/{sender}", event_type=DELIVERY_REPORT_EVENT,
                              data=data, data_version="1.0", event_time=event_time(received_at))

    def text(self, from_: str, to: str, message: str, *, received: datetime | None = None) -> EventGridEvent:
        """A phone at ``from_`` texts ``message`` to our number ``to``: the SMSReceived event, published."""
        if self.events is None:
            raise RuntimeError("subscribe first: inbound messages reach the gateway through Event Grid")
        received_at = received or self.clock()
        message_id = f"Incoming_{received_at:%Y%m%d%H%M%S}{uuid.uuid4()}"
        data: dict[str, Any] = {"messageId": message_id, "from": from_.lstrip("+"), "to": to.lstrip("+"),
                                "message": message, "receivedTimestamp": event_time(received_at),
                                "segmentCount": num_segments(message)}
        with self.lock:
            pascal = self._report_shapes.random() < 0.5
        event = EventGridEvent(id=message_id, subject=f"/phonenumber/{to.lstrip('+')}", event_type=RECEIVED_EVENT,
                               data=_pascal(data) if pascal else data, data_version="1.0",
                               event_time=event_time(received_at))
        self.events.publish(event)
        return event

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.base_url}/;accesskey={self.access_key}"

    def fail_recipient(self, to: str, status: int, message: str) -> None:
        """Answer this recipient with ``httpStatusCode`` = status and ``successful: false``."""
        with self.lock:
            self._recipient_failures[to] = (status, message)

    def record_request(self, seen: SeenRequest) -> None:
        with self.lock:
            self.requests.append(seen)

    def authentication_problem(self, method: str, path: str, headers: Any, body: bytes) -> str | None:
        """None when the request is authenticated; else why not (the fake says why; the service would not)."""
        authorization = headers.get("Authorization") or ""
        if authorization.startswith("Bearer "):
            token = authorization[len("Bearer ") :]
            known = any(hmac.compare_digest(token, candidate) for candidate in self.bearer_tokens)
            return None if known else "unknown bearer token"
        found = re.fullmatch(r"HMAC-SHA256 SignedHeaders=([^&]+)&Signature=(\S+)", authorization)
        if found is None:
            return "no HMAC-SHA256 or Bearer authorization"
        names = [name.strip().lower() for name in found.group(1).split(";")]
        if not {"x-ms-date", "host", "x-ms-content-sha256"} <= set(names):
            return "SignedHeaders must include x-ms-date, host and x-ms-content-sha256"
        values = []
        for name in names:
            value = headers.get(name)
            if value is None:
                return f"signed header {name} is missing"
            values.append(value)
        try:
            sent_at = parsedate_to_datetime(headers["x-ms-date"])
        except (TypeError, ValueError):
            return "x-ms-date is not a date"
        if sent_at.tzinfo is None or abs(self.clock() - sent_at) > MAX_CLOCK_SKEW:
            return "x-ms-date is too far from now"
        if not hmac.compare_digest(headers["x-ms-content-sha256"], content_hash(body)):
            return "x-ms-content-sha256 does not match the body"
        expected = hmac_signature(self.access_key, f"{method.upper()}\n{path}\n" + ";".join(values))
        if not hmac.compare_digest(expected, found.group(2)):
            return "signature does not match"
        return None

    def process(self, request: dict[str, Any], recipient: dict[str, Any]) -> dict[str, Any]:
        """One recipient's answer item, applying repeatability before anything is sent."""
        to = recipient["to"]
        request_id = recipient.get("repeatabilityRequestId")
        first_sent_text = recipient.get("repeatabilityFirstSent")
        if request_id is None and first_sent_text is None:
            return self._send(request, recipient, repeatable=False)
        rejected = {"to": to, "repeatabilityResult": "rejected", "successful": False}
        if request_id is None or not _is_guid(request_id):
            return {**rejected, "httpStatusCode": 400, "errorMessage": "Invalid repeatability request id."}
        first_sent = _imf_fixdate(first_sent_text)
        if first_sent is None:
            return {
                **rejected,
                "httpStatusCode": 400,
                "errorMessage": "Request sent with Invalid DateTime value for repeatability-first-sent. "
                "Expected is DateTime ,RFC1123 pattern.",
            }
        now = self.clock()
        if (now - first_sent).total_seconds() > self.tracking_seconds:
            return {
                **rejected,
                "httpStatusCode": 412,
                "errorMessage": "Repeatability first sent header not within 5 minutes window.",
            }
        fingerprint = (first_sent_text or "", to, request["from"], request["message"])
        with self.lock:
            tracked = self._tracked.get(request_id)
            if tracked is not None and (now - tracked.first_sent).total_seconds() > self.tracking_seconds:
                del self._tracked[request_id]
                tracked = None
            if tracked is not None:
                if tracked.fingerprint != fingerprint:
                    return {
                        **rejected,
                        "httpStatusCode": 400,
                        "errorMessage": "Repeatable request does not match the earlier request with this id.",
                    }
                self.dedupe_hits += 1
                if self.on_dedupe is not None:
                    self.on_dedupe(to, tracked.item)
                return dict(tracked.item)
        item = self._send(request, recipient, repeatable=True)
        if item["httpStatusCode"] < 500:
            with self.lock:
                self._tracked.setdefault(request_id, _Tracked(first_sent, fingerprint, item))
        return item

    def _send(self, request: dict[str, Any], recipient: dict[str, Any], *, repeatable: bool) -> dict[str, Any]:
        to = recipient["to"]
        extra = {"repeatabilityResult": "accepted"} if repeatable else {}
        with self.lock:
            scripted = self._recipient_failures.get(to)
        if scripted is None and not E164.match(to):
            scripted = (400, "Invalid To phone number format.")
        if scripted is not None:
            status, message = scripted
            return {"to": to, "httpStatusCode": status, **extra, "successful": False, "errorMessage": message}
        message_id = f"Outgoing_{self.clock():%Y%m%d%H%M%S}{uuid.uuid4()}_noam"
        options = request.get("smsSendOptions") or {}
        sms = SentSms(
            message_id=message_id,
            from_=request["from"],
            to=to,
            message=request["message"],
            tag=options.get("tag"),
            enable_delivery_report=options.get("enableDeliveryReport"),
            repeatability_request_id=recipient.get("repeatabilityRequestId"),
            repeatability_first_sent=recipient.get("repeatabilityFirstSent"),
        )
        with self.lock:
            self.sent.append(sms)
        if self.on_send is not None:
            self.on_send(sms)
        if self.events is not None and sms.enable_delivery_report:
            self.events.publish(self.delivery_report(sms))
        return {"to": to, "messageId": message_id, "httpStatusCode": 202, **extra, "successful": True}


def _pascal(value: Any) -> Any:
    """Every name capitalised, nested ones too, as the older sample writes a report."""
    if isinstance(value, dict):
        return {name[:1].upper() + name[1:]: _pascal(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_pascal(item) for item in value]
    return value


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")


def _imf_fixdate(value: str | None) -> datetime | None:
    """RFC 1123 / IMF-fixdate in GMT, as ACS wants: ``Tue, 26 Mar 2019 16:06:51 GMT``."""
    if not value or not IMF_FIXDATE.match(value):
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


# --- run from a shell: python -m fakes.acs [--port 8443] ---------------------------------------------

DEV_SENDER = "+18005550199"
EVENTS_PATH = "/api/providers/acs/events"
AUTO_ENDPOINT = "auto"


def events_endpoint(value: str) -> tuple[str, str | None]:
    """The webhook URL and the key it carries: ``auto`` is the local gateway's route with a new key."""
    if value == AUTO_ENDPOINT:
        key = secrets.token_urlsafe(32)
        return f"{GATEWAY}{EVENTS_PATH}?key={key}", key
    keys = parse_qs(urlsplit(value).query).get("key")
    return value, keys[0] if keys else None


def _say_delivery(delivery: Delivery) -> None:
    answer = "no answer" if delivery.status is None else f"HTTP {delivery.status}"
    if delivery.kind == "SubscriptionValidation":
        verdict = "" if delivery.accepted else ": failed, no reports will be delivered (restart the fake to retry)"
        say(f"{stamp()} Event Grid validation handshake: {answer}{verdict}")
        return
    retry = f", attempt {delivery.attempt + 1}" if delivery.attempt else ""
    say(f"{stamp()} Event Grid delivered {len(delivery.event_ids)} report(s){retry}: {answer}")


class _ConsoleAcsFake(AcsFake):
    """The fake with a console: a line per SMS sent, per repeat de-duplicated and per refused request."""

    def record_request(self, seen: SeenRequest) -> None:
        super().record_request(seen)
        if seen.status >= 400:
            say(f"{stamp()} refused {seen.method} {seen.path}: HTTP {seen.status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.acs", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8443, help="port on 127.0.0.1 (default 8443)")
    parser.add_argument("--access-key", help="base64 access key it checks signatures with (default: a new one)")
    parser.add_argument("--sender", default=DEV_SENDER, help="the SMS_DEFAULT_SENDER to print")
    parser.add_argument(
        "--events-endpoint", nargs="?", const=AUTO_ENDPOINT, metavar="URL",
        help="post delivery reports through Event Grid to this webhook, after its validation handshake; "
        f"without a URL, the local gateway's {EVENTS_PATH}?key=<a new key> (SMS_EVENTGRID_KEY is printed)",
    )
    args = parser.parse_args(argv)
    fake = _ConsoleAcsFake(access_key=args.access_key)
    fake.on_send = lambda sms: say(f"{stamp()} sent {sms.message_id} to {sms.to} from {sms.from_}: {sms.message!r}")
    fake.on_dedupe = lambda to, item: say(f"{stamp()} repeat for {to} de-duplicated: {item.get('messageId')}")
    events_key = None
    if args.events_endpoint is not None:
        endpoint, events_key = events_endpoint(args.events_endpoint)
        fake.subscribe(endpoint, on_delivery=_say_delivery)

    def describe(running: AcsFake) -> str:
        env = {
            "SMS_PROVIDER": "acs",
            "ACS_CONNECTION_STRING": running.connection_string,
            "ACS_CA_BUNDLE": running.ca_bundle,
            "SMS_DEFAULT_SENDER": args.sender,
        }
        title = f"ACS fake listening on {running.base_url}, its certificate in {running.ca_bundle}"
        if events_key is not None:
            env["SMS_EVENTGRID_KEY"] = events_key
        if running.events is not None:
            title += (f"; delivery reports go through Event Grid to {running.events.endpoint.split('?')[0]} "
                      "after its validation handshake")
        return banner(title, env, "+14255550100")

    return serve(fake, args.port, describe)


if __name__ == "__main__":
    raise SystemExit(main())
