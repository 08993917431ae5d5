"""A local Twilio Messages API: the real wire, checked against Twilio's own OpenAPI description.

Every request is matched against ``twilio-messages-openapi.json`` (the Messages resource of
Twilio's ``twilio_api_v2010`` description, MIT License, Copyright (C) 2023 Twilio, Inc.; copied
here from the project's shared reference so the tests need nothing outside the repository):
path and path parameters, form body, parameter types and patterns, the required ``To`` and the
``x-twilio.conditional`` groups (``From`` or ``MessagingServiceSid``; ``Body``, ``MediaUrl`` or
``ContentSid``). Every answer it makes for a create is checked against the described 201 schema.

It also serves ListMessage (``GET .../Messages.json``), which the provider uses to reconcile a send
whose answer was lost: the query checked against the described query parameters (``To``, ``From``,
``DateSent``, ``DateSent<``, ``DateSent>``, ``PageSize``, ``Page``, ``PageToken``; nothing else),
the filters applied to the Messages it created, newest first, in pages shaped and checked as the
described 200 answer (``messages``, ``page``, ``page_size``, ``start``, ``end``, ``uri``,
``first_page_uri``, ``next_page_uri`` (null on the last page), ``previous_page_uri``). The fake
sends at once: a create answers ``queued`` as Twilio does, and from then on the Message reads as
``sent`` with a ``date_sent``, the field the DateSent filters compare. A date it cannot read is
400 with code 20001 ("Invalid date value.", as Twilio answers).

Errors carry Twilio's JSON shape ``{"code", "message", "more_info", "status"}`` and its codes:
20003 (401, bad credentials), 21604 (no To), 21603 (no From/MessagingServiceSid), 21602 (no
Body/MediaUrl/ContentSid), 21211 (To not a phone number), 21617 (body over 1600 characters),
21606 (From not one of the account's senders, when ``senders`` is given), and Twilio's test
"magic numbers" (+15005550001 invalid, +15005550002 unreachable, +15005550003 region not enabled,
+15005550004 unsubscribed, +15005550009 not a mobile). A request that breaks the description in
any other way gets 400 with code 70002 ("Bad request"). Deliberately stricter than Twilio:
parameters the description does not name are refused, so a misspelt parameter fails a test
instead of being ignored.

Status callbacks, as Twilio sends them: a create with a ``StatusCallback`` (checked as Twilio checks it: an
absolute http(s) URL with a host name without underscores, at most 4000 characters, else 400 with code 21609)
gets, from a background thread once the create is answered, one signed form POST per status its recipient's
``Fate`` lists (by default ``sending``, ``sent``, ``delivered``; ``fate`` marks a number ``undelivered`` with
30003 or ``failed`` with 30008, say). Each carries Twilio's fields (``MessageSid``, ``SmsSid``,
``MessageStatus``, ``SmsStatus``, ``AccountSid``, ``From``, ``To``, ``ApiVersion``, ``ErrorCode`` on a failure,
``RawDlrDoneDate`` on a final carrier status, ``MessagingServiceSid`` with a service) and an
``X-Twilio-Signature`` computed by Twilio's own ``twilio`` package over the URL exactly as given.
``callback_plan`` reorders them, repeats them, spaces them, or posts them before the create is answered (a
receipt that arrives before the gateway recorded the sid). A callback that fails is logged and recorded in
``callbacks``, never retried, as Twilio does. A fetch (``GET .../Messages/{Sid}.json``) reads the Message's
current status: the furthest its posted callbacks got, or its fate's last status when no callback was asked for
and its number has a fate of its own.

Inbound messages, as Twilio sends them: ``text(from_, to, body)`` plays a phone texting one of the account's
numbers, POSTing to ``inbound_url`` (what the number's "A message comes in" webhook is set to) the fields Twilio
sends (``MessageSid``, ``SmsSid``, ``SmsMessageSid``, ``AccountSid``, ``From``, ``To``, ``Body``, ``NumSegments``,
``NumMedia``, ``SmsStatus=received``, ``ApiVersion`` and the geo fields), signed like a status callback; the
answer is returned (Twilio reads it as TwiML) and kept in ``inbound``. Twilio does not retry; ``again`` reposts
one exactly, as an at-least-once delivery would. Like Twilio's default keyword handling, a text that is only an
opt-out keyword (``STOP``, ``STOPALL``, ``UNSUBSCRIBE``, ``CANCEL``, ``END``, ``QUIT``, ``REVOKE``, ``OPTOUT``;
trimmed, any case) unsubscribes the phone from that number, and ``START``, ``YES`` or ``UNSTOP`` subscribes it
again: from then on a Message from that number to that phone is refused with 21610 (``unsubscribe`` does the
same without a text).

From a shell, ``python -m fakes.twilio [--port 8081]`` runs it until Ctrl-C and prints the
settings that point the gateway at it (``main`` below).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import logging
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

from fakes.cli import banner, say, serve, stamp
from fakes.openapi import MethodNotAllowed, OpenApiDescription, Operation, RequestProblem, RouteNotFound
from fakes.server import FakeHandler, FakeService
from fakes.sms_segments import num_segments

SPEC_PATH = Path(__file__).with_name("twilio-messages-openapi.json")
CREATE_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
FETCH_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
MAX_BODY = 1600
DEFAULT_PAGE_SIZE = 50
DATE_FILTERS = ("DateSent", "DateSent<", "DateSent>")
LIST_KEYS = ("To", "From", *DATE_FILTERS, "PageSize")  # the filters a page's URIs repeat, in Twilio's order
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
CHANNEL_ADDRESS = re.compile(r"^[a-z]+:\+[1-9]\d{1,14}$")
MAX_CALLBACK_URL = 4000
CALLBACK_TIMEOUT_SECONDS = 15.0  # Twilio's default webhook time-out
# How far along its life a status is: a Message's current status never goes back to an earlier one.
PROGRESS = {"accepted": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4, "undelivered": 4, "failed": 4}

log = logging.getLogger(__name__)

# Twilio's default keywords (long codes and toll-free): the whole message, trimmed, any case.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
UNSUBSCRIBED = (21610, "Attempt to send to unsubscribed recipient")

# Twilio's test credentials answer these To numbers with these errors; the fake does the same by default.
MAGIC_NUMBERS: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: +15005550002, is not currently reachable using the 'From' "
                     "phone number via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region indicated by the "
                     "'To' number: +15005550003."),
    "+15005550004": UNSUBSCRIBED,
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


def error_body(status: int, code: int | None = None, message: str | None = None) -> dict[str, Any]:
    """Twilio's error document; without a code, the generic one Twilio uses for the status."""
    generic = {401: (20003, "Authenticate"), 404: (20404, "The requested resource was not found"),
               405: (20004, "Method not allowed"), 429: (20429, "Too Many Requests"),
               500: (20500, "Internal Server Error"), 503: (20503, "Service Unavailable")}
    default_code, default_message = generic.get(status, (70002, "Bad request"))
    code = default_code if code is None else code
    return {
        "code": code,
        "message": message or default_message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass(frozen=True)
class ReceivedMessage:
    """A Message the fake created: what a real account would have sent."""

    sid: str
    to: str
    from_: str | None
    body: str | None
    messaging_service_sid: str | None
    status_callback: str | None
    auth_user: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Fate:
    """What becomes of a Message: the statuses its callbacks report, in the order they happen, and the error
    code the failing one carries."""

    statuses: tuple[str, ...] = ("sending", "sent", "delivered")
    error_code: int | None = None

    @classmethod
    def undelivered(cls, error_code: int = 30003) -> Fate:
        """The carrier could not deliver it (30003: the handset is unreachable)."""
        return cls(("sending", "sent", "undelivered"), error_code)

    @classmethod
    def failed(cls, error_code: int = 30008) -> Fate:
        """Twilio could not send it at all (30008: unknown error)."""
        return cls(("sending", "failed"), error_code)


@dataclass(frozen=True)
class CallbackPlan:
    """How a Message's callbacks are posted: the order, repeats, spacing, and whether before its create is
    answered (from the background thread all the same; the create's answer waits for them)."""

    order: str = "in order"  # or "reversed", or "shuffled"
    duplicates: int = 0  # every callback is posted this many more times
    interval: float = 0.0  # seconds before each callback
    before_answer: bool = False
    seed: int | None = None  # for "shuffled": the same seed, the same order

    def __post_init__(self) -> None:
        if self.order not in ("in order", "reversed", "shuffled"):
            raise ValueError(f"order is 'in order', 'reversed' or 'shuffled', not {self.order!r}")


@dataclass(frozen=True)
class PostedCallback:
    """One status callback the fake posted, and what became of it: the status answered, or the error."""

    sid: str
    status: str
    url: str
    form: dict[str, str]
    answered: int | None
    error: str | None = None


@dataclass(frozen=True)
class PostedInbound:
    """One inbound message the fake posted, and the gateway's answer."""

    url: str
    form: dict[str, str]
    answered: int
    content_type: str
    text: str

    @property
    def sid(self) -> str:
        return self.form["MessageSid"]


@dataclass(frozen=True)
class SeenRequest:
    """Every request, whatever became of it."""

    method: str
    path: str
    content_type: str | None
    body: bytes
    auth_user: str | None
    status: int


@dataclass
class _Rejection:
    code: int
    message: str
    status: int = 400


class _TwilioHandler(FakeHandler):
    server: Any

    @property
    def fake(self) -> TwilioFake:
        return self.server.owner

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        self._body = self.read_body()
        self._recorded = False
        status = self._answer(self.fake, self._body, self._auth_user())
        if not self._recorded:  # a delay fault that ended without an answer
            self.before_answer(status)

    def before_answer(self, status: int) -> None:
        self._recorded = True
        seen = SeenRequest(
            self.command, self.path, self.headers.get("Content-Type"), self._body, self._auth_user(), status
        )
        self.fake.record_request(seen)

    def _auth_user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, _ = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user

    def _fail(self, status: int, code: int | None = None, message: str | None = None) -> int:
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
        self.send_json(status, error_body(status, code, message), headers)
        return status

    def _answer(self, fake: TwilioFake, body: bytes, auth_user: str | None) -> int:
        fault = fake.next_fault()
        if self.apply_fault(fault, error_body):
            return fault.status or 0 if fault is not None else 0
        path = urlsplit(self.path).path
        try:
            operation = fake.description.match(self.command, path)
        except RouteNotFound:
            return self._fail(404, message=f"The requested resource {path} was not found")
        except MethodNotAllowed:
            return self._fail(405)
        except RequestProblem:
            # A malformed AccountSid can belong to no one: Twilio answers it as an authentication failure.
            return self._fail(401)
        if not fake.authorised(self.headers.get("Authorization"), operation.path_params.get("AccountSid")):
            return self._fail(401)
        if operation.template == FETCH_PATH and self.command == "GET":
            return self._fetch(fake, operation.path_params["Sid"])
        if operation.template == CREATE_PATH and self.command == "GET":
            return self._list(fake, operation)
        if operation.template != CREATE_PATH or self.command != "POST":
            return self._fail(405, message=f"the fake does not implement {operation.operation_id}")
        try:
            params = fake.description.check_form(operation, self.headers.get("Content-Type"), body)
        except RequestProblem as problem:
            if problem.kind == "required" and problem.parameter == "To":
                return self._fail(400, 21604, "A 'To' phone number is required.")
            if problem.parameter == "StatusCallback":
                return self._fail(400, 21609, INVALID_CALLBACK)
            return self._fail(400, 70002, problem.message)
        for group in fake.description.conditional_groups(operation):
            if not any(params.get(name) not in (None, "", []) for name in group):
                if "From" in group:
                    return self._fail(400, 21603, "A 'From' phone number is required.")
                if "Body" in group:
                    return self._fail(400, 21602, "Message body is required.")
                return self._fail(400, 70002, f"one of {', '.join(group)} is required")
        rejection = fake.rejection_for(params)
        if rejection is not None:
            return self._fail(rejection.status, rejection.code, rejection.message)
        resource = fake.create(params, auth_user or "")
        fake.description.check_response(operation, 201, resource)
        callbacks = fake.start_callbacks(resource["sid"])
        if callbacks is not None and fake.callback_plan.before_answer:
            callbacks.join()
        self.send_json(201, resource, {"Twilio-Request-Id": "RQ" + uuid.uuid4().hex})
        return 201

    def _list(self, fake: TwilioFake, operation: Operation) -> int:
        """ListMessage: the account's Messages that pass the filters, newest first, one page of them."""
        if self._body:
            return self._fail(400, 70002, f"{operation.operation_id} takes no body")
        try:
            # The description types the DateSent filters as date-time, but its text, its own examples and
            # Twilio's helper libraries use YYYY-MM-DD (and a few other forms): _date_filter reads those.
            query = fake.description.check_query(operation, urlsplit(self.path).query, unchecked_formats={"date-time"})
            filters = {name: _date_filter(query[name]) for name in DATE_FILTERS if name in query}
        except RequestProblem as problem:
            return self._fail(400, 70002, problem.message)
        except ValueError:
            return self._fail(400, 20001, "Invalid date value.")
        page = fake.page(query, filters)
        if page is None:
            return self._fail(400, 20001, "Invalid PageToken.")
        fake.description.check_response(operation, 200, page)
        self.send_json(200, page)
        return 200

    def _fetch(self, fake: TwilioFake, sid: str) -> int:
        resource = fake.resources.get(sid)
        if resource is None:
            return self._fail(404, message=f"The requested resource {self.path} was not found")
        self.send_json(200, resource)
        return 200


class TwilioFake(FakeService):
    """Start with ``with TwilioFake() as fake:``; point the provider at ``fake.base_url``."""

    handler = _TwilioHandler

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        api_key_sid: str | None = None,
        api_key_secret: str | None = None,
        senders: set[str] | None = None,
    ) -> None:
        super().__init__()
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.api_key_sid = api_key_sid or "SK" + secrets.token_hex(16)
        self.api_key_secret = api_key_secret or secrets.token_urlsafe(24)
        self.senders = senders
        self.description = OpenApiDescription.load(SPEC_PATH)
        self.messages: list[ReceivedMessage] = []
        self.on_create: Callable[[ReceivedMessage], None] | None = None  # told of every Message created
        self.requests: list[SeenRequest] = []
        self.resources: dict[str, dict[str, Any]] = {}
        self._rejections: dict[str, _Rejection] = {
            number: _Rejection(code, message) for number, (code, message) in MAGIC_NUMBERS.items()
        }
        self.default_fate = Fate()
        self._fates: dict[str, Fate] = {}
        self.callback_plan = CallbackPlan()
        self.callbacks: list[PostedCallback] = []  # every status callback posted, in the order they were answered
        self.on_callback: Callable[[PostedCallback], None] | None = None  # told of every callback posted
        self._posting: list[threading.Thread] = []
        self.inbound_url: str | None = None  # the number's "A message comes in" webhook
        self.inbound: list[PostedInbound] = []  # every inbound message posted, with its answer
        self._unsubscribed: set[tuple[str, str]] = set()  # (account number, phone) pairs that texted STOP

    def fate(self, number: str, fate: Fate) -> None:
        """What becomes of every Message to ``number`` from now on."""
        with self.lock:
            self._fates[number] = fate

    def wait_for_callbacks(self, timeout: float = 30.0) -> None:
        """Until every callback planned so far has been posted (and answered, or failed)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            threads = list(self._posting)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise TimeoutError(f"status callbacks still being posted after {timeout} s")

    def reject(self, number: str, code: int, message: str, status: int = 400) -> None:
        """Answer any Message to ``number`` with this Twilio error."""
        with self.lock:
            self._rejections[number] = _Rejection(code, message, status)

    def stop_rejecting(self, number: str) -> None:
        """Answer Messages to ``number`` as to any other again (undoes ``reject``, and a magic number's error)."""
        with self.lock:
            self._rejections.pop(number, None)

    def unsubscribe(self, phone: str, sender: str, *, subscribed: bool = False) -> None:
        """``phone`` opts out of (or, ``subscribed``, back into) messages from the account's number ``sender``."""
        with self.lock:
            if subscribed:
                self._unsubscribed.discard((sender, phone))
            else:
                self._unsubscribed.add((sender, phone))

    def authorised(self, header: str | None, account_sid: str | None) -> bool:
        if not header or not header.startswith("Basic ") or account_sid != self.account_sid:
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        pairs = ((self.account_sid, self.auth_token), (self.api_key_sid, self.api_key_secret))
        return any(hmac.compare_digest(user, u) and hmac.compare_digest(password, p) for u, p in pairs)

    def rejection_for(self, params: dict[str, Any]) -> _Rejection | None:
        to = str(params["To"])
        with self.lock:
            scripted = self._rejections.get(to)
        if scripted is not None:
            return scripted
        with self.lock:
            # A Messaging Service sends from its pool: the fake's pool is its one number.
            unsubscribed = (str(params.get("From") or DEV_SENDER), to) in self._unsubscribed
        if unsubscribed:
            return _Rejection(*UNSUBSCRIBED)
        if not (E164.match(to) or CHANNEL_ADDRESS.match(to)):
            return _Rejection(21211, f"The 'To' number {to} is not a valid phone number.")
        sender = params.get("From")
        if sender and self.senders is not None and sender not in self.senders:
            return _Rejection(
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone number or short code "
                "for your account.",
            )
        if len(str(params.get("Body") or "")) > MAX_BODY:
            return _Rejection(21617, "The concatenated message body exceeds the 1600 character limit.")
        callback = params.get("StatusCallback")
        if callback is not None and not _valid_callback(str(callback)):
            return _Rejection(21609, INVALID_CALLBACK)
        return None

    def create(self, params: dict[str, Any], auth_user: str) -> dict[str, Any]:
        """The Message resource as Twilio returns it on create, and a record of the send."""
        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC))
        body = params.get("Body")
        service = params.get("MessagingServiceSid")
        sender = params.get("From")
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": str(len(params.get("MediaUrl", []))),
            "num_segments": "0" if service and not sender else str(num_segments(body or "")),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # With only a Messaging Service, Twilio accepts first and picks a sender later.
            "status": "accepted" if service and not sender else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": params["To"],
            "uri": uri,
        }
        message = ReceivedMessage(
            sid=sid,
            to=params["To"],
            from_=sender,
            body=body,
            messaging_service_sid=service,
            status_callback=params.get("StatusCallback"),
            auth_user=auth_user,
            params=dict(params),
        )
        # The fake sends at once: from now on the stored Message reads as sent (the create answer says queued,
        # as Twilio's does). ListMessage's DateSent filters work on date_sent, so a sent date is what they see.
        sent = {**resource, "status": "sent", "date_sent": now, "date_updated": now}
        with self.lock:
            fate = self._fates.get(message.to)
            if fate is not None and message.status_callback is None:
                sent = _settled(sent, fate, fate.statuses[-1])  # no callbacks to wait for: its fate is known now
            self.messages.append(message)
            self.resources[sid] = sent
        if self.on_create is not None:
            self.on_create(message)
        return resource

    def start_callbacks(self, sid: str) -> threading.Thread | None:
        """Start posting the status callbacks of a Message just created, in a thread of their own (returned);
        None when its create gave no ``StatusCallback``."""
        with self.lock:
            message = next(message for message in reversed(self.messages) if message.sid == sid)
            fate = self._fates.get(message.to, self.default_fate)
            plan = self.callback_plan
        if message.status_callback is None:
            return None
        thread = threading.Thread(target=self._post_callbacks, args=(message, fate, plan),
                                  name=f"twilio-callbacks-{sid}", daemon=True)
        with self.lock:
            self._posting.append(thread)
        thread.start()
        return thread

    def _post_callbacks(self, message: ReceivedMessage, fate: Fate, plan: CallbackPlan) -> None:
        """Post the Message's callbacks as the plan says; each failure logged and recorded, none retried."""
        statuses = [status for status in fate.statuses for _ in range(1 + plan.duplicates)]
        if plan.order == "reversed":
            statuses.reverse()
        elif plan.order == "shuffled":
            random.Random(plan.seed).shuffle(statuses)
        url = str(message.status_callback)
        with requests.Session() as session:
            for status in statuses:
                if plan.interval and self._stopping(plan.interval):
                    return
                form = self.callback_form(message, status, fate)
                signature = RequestValidator(self.auth_token).compute_signature(url, form)
                headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1",
                           "I-Twilio-Idempotency-Token": str(uuid.uuid4())}
                try:
                    answer = session.post(url, data=form, headers=headers, timeout=CALLBACK_TIMEOUT_SECONDS,
                                          allow_redirects=False)
                    posted = PostedCallback(message.sid, status, url, form, answer.status_code)
                except requests.RequestException as error:
                    posted = PostedCallback(message.sid, status, url, form, None, type(error).__name__)
                if posted.answered is None or posted.answered >= 400:
                    log.warning("twilio fake: the %s callback for %s failed (%s); not retried", status, message.sid,
                                posted.error or f"HTTP {posted.answered}")
                with self.lock:
                    self.callbacks.append(posted)
                    resource = self.resources[message.sid]
                    if PROGRESS.get(status, 0) > PROGRESS.get(resource["status"], 0):
                        self.resources[message.sid] = _settled(resource, fate, status)
                if self.on_callback is not None:
                    self.on_callback(posted)

    def text(self, from_: str, to: str, body: str) -> PostedInbound:
        """A phone at ``from_`` texts ``body`` to the account's number ``to``: posted, signed, to ``inbound_url``."""
        if self.inbound_url is None:
            raise RuntimeError("set inbound_url first: the webhook Twilio calls when a message comes in")
        keyword = body.strip().upper()
        if keyword in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS:
            self.unsubscribe(from_, to, subscribed=keyword in OPT_IN_KEYWORDS)
        sid = "SM" + secrets.token_hex(16)
        form = {"ToCountry": "US", "ToState": "", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "", "FromZip": "",
                "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": body,
                "FromCountry": "", "To": to, "ToZip": "", "NumSegments": str(num_segments(body)), "MessageSid": sid,
                "AccountSid": self.account_sid, "From": from_, "ApiVersion": "2010-04-01"}
        return self.again(PostedInbound(self.inbound_url, form, 0, "", ""))

    def again(self, earlier: PostedInbound) -> PostedInbound:
        """Post an inbound message once more, exactly as before (its sid included), and return the new answer."""
        signature = RequestValidator(self.auth_token).compute_signature(earlier.url, earlier.form)
        answer = requests.post(earlier.url, data=earlier.form, timeout=CALLBACK_TIMEOUT_SECONDS, allow_redirects=False,
                               headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1",
                                        "I-Twilio-Idempotency-Token": str(uuid.uuid4())})
        posted = PostedInbound(earlier.url, earlier.form, answer.status_code, answer.headers.get("Content-Type", ""),
                               answer.text)
        with self.lock:
            self.inbound.append(posted)
        return posted

    def callback_form(self, message: ReceivedMessage, status: str, fate: Fate) -> dict[str, str]:
        """The fields Twilio posts to a StatusCallback for this status."""
        form = {
            "ApiVersion": "2010-04-01",
            "AccountSid": self.account_sid,
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message.to,
            "From": message.from_ or DEV_SENDER,  # with a Messaging Service, the sender it picked
        }
        if message.messaging_service_sid:
            form["MessagingServiceSid"] = message.messaging_service_sid
        if status in ("undelivered", "failed") and fate.error_code is not None:
            form["ErrorCode"] = str(fate.error_code)
        if status in ("delivered", "undelivered"):
            form["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
        return form

    def _stopping(self, seconds: float) -> bool:
        """Wait ``seconds``; True when the fake stopped meanwhile (its callbacks stop too)."""
        server = self._server
        return server is None or server.stopping.wait(seconds)

    def page(self, query: dict[str, Any], filters: dict[str, _DateFilter]) -> dict[str, Any] | None:
        """One ListMessage page as Twilio shapes it; None when the PageToken names no Message in the list."""
        with self.lock:
            newest_first = [self.resources[message.sid] for message in reversed(self.messages)]
        matching = [
            resource
            for resource in newest_first
            if query.get("To") in (None, resource["to"])
            and query.get("From") in (None, resource["from"])
            and all(_date_passes(name, condition, resource["date_sent"]) for name, condition in filters.items())
        ]
        size = int(query.get("PageSize", DEFAULT_PAGE_SIZE))
        number = int(query.get("Page", 0))
        token = query.get("PageToken")
        if token is None:
            start = number * size
        else:
            # Twilio's page token says where the previous page ended: "PA" + the sid of its last Message.
            sids = [resource["sid"] for resource in matching]
            if not token.startswith("PA") or token[2:] not in sids:
                return None
            start = sids.index(token[2:]) + 1
        items = matching[start : start + size]
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        kept = [(key, str(query[key])) for key in LIST_KEYS if key in query and key != "PageSize"]

        def uri(page_number: int, page_token: str | None = None) -> str:
            pairs = [*kept, ("PageSize", str(size)), ("Page", str(page_number))]
            if page_token is not None:
                pairs.append(("PageToken", page_token))
            return f"{base}?{urlencode(pairs)}"

        more = start + size < len(matching)
        return {
            "end": start + max(len(items) - 1, 0),
            "first_page_uri": uri(0),
            "next_page_uri": uri(number + 1, "PA" + items[-1]["sid"]) if more and items else None,
            "page": number,
            "page_size": size,
            "previous_page_uri": uri(number - 1) if number > 0 else None,
            "messages": items,
            "start": start,
            "uri": uri(number, token),
        }

    def record_request(self, seen: SeenRequest) -> None:
        with self.lock:
            self.requests.append(seen)

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"


INVALID_CALLBACK = "The StatusCallback URL is not a valid URL."
# The error_message a Message reads with each error code (Twilio's error dictionary).
ERROR_MESSAGES = {30003: "Unreachable destination handset", 30005: "Unknown destination handset",
                  30006: "Landline or unreachable carrier", 30007: "Message filtered", 30008: "Unknown error"}


def _valid_callback(url: str) -> bool:
    """As Twilio checks a StatusCallback: absolute http(s), a host without underscores, at most 4000 characters."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    host = parts.hostname or ""
    return (parts.scheme.lower() in ("http", "https") and bool(host) and "_" not in host
            and len(url) <= MAX_CALLBACK_URL and not any(c.isspace() for c in url))


def _settled(resource: dict[str, Any], fate: Fate, status: str) -> dict[str, Any]:
    """The Message at ``status``: the fate's error code once it failed."""
    failing = status in ("undelivered", "failed") and fate.error_code is not None
    return {**resource, "status": status, "date_updated": format_datetime(datetime.now(UTC)),
            "error_code": fate.error_code if failing else None,
            "error_message": ERROR_MESSAGES.get(fate.error_code or 0, "Unknown error") if failing else None}


@dataclass(frozen=True)
class _DateFilter:
    value: date | datetime  # a day (YYYY-MM-DD) compares with the day a Message was sent, a time with the time


def _date_filter(text: str) -> _DateFilter:
    """A DateSent filter value: YYYY-MM-DD as documented, or a full timestamp (ISO 8601 or RFC 2822)."""
    text = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return _DateFilter(date.fromisoformat(text))
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"not a date: {text!r}") from None
    return _DateFilter(when if when.tzinfo else when.replace(tzinfo=UTC))


def _date_passes(name: str, condition: _DateFilter, date_sent: str | None) -> bool:
    """``DateSent`` on that day (or at that time), ``DateSent>`` on or after, ``DateSent<`` on or before."""
    if date_sent is None:
        return False  # a filter on the sent date passes only Messages that have one
    sent = parsedate_to_datetime(date_sent).astimezone(UTC)
    mine: date | datetime = sent.date() if type(condition.value) is date else sent
    if name == "DateSent>":
        return mine >= condition.value  # type: ignore[operator]
    if name == "DateSent<":
        return mine <= condition.value  # type: ignore[operator]
    return mine == condition.value


# --- run from a shell: python -m fakes.twilio [--port 8081] ------------------------------------------

DEV_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEV_AUTH_TOKEN = "local-fake-twilio-token"
DEV_SENDER = "+15005550006"  # Twilio's test "From" that always works
LOCAL_INBOUND_URL = "http://127.0.0.1:7071/api/providers/twilio/inbound"  # the local host's (scripts/run.sh)


class _ConsoleTwilioFake(TwilioFake):
    """The fake with a console: a line per Message created, per status callback and per refused request."""

    def record_request(self, seen: SeenRequest) -> None:
        super().record_request(seen)
        if seen.status >= 400:
            say(f"{stamp()} refused {seen.method} {urlsplit(seen.path).path}: HTTP {seen.status}")


def _print_message(message: ReceivedMessage) -> None:
    sender = message.from_ or f"service {message.messaging_service_sid}"
    say(f"{stamp()} received {message.sid} to {message.to} from {sender}: {message.body!r}")


def _print_callback(posted: PostedCallback) -> None:
    answer = posted.error or f"HTTP {posted.answered}"
    say(f"{stamp()} status callback {posted.sid} {posted.status}: {answer}")


def _replying(fake: TwilioFake, text: str) -> Callable[[PostedCallback], None]:
    """``--reply``: each message the fake delivers is answered, once, by its recipient texting ``text`` back to the
    number it came from (a Messaging Service send, with no number, is not)."""
    replied: set[str] = set()

    def on_callback(posted: PostedCallback) -> None:
        _print_callback(posted)
        recipient, sender = posted.form.get("To"), posted.form.get("From")
        if posted.status != "delivered" or not recipient or not sender or posted.sid in replied:
            return
        replied.add(posted.sid)
        answer = fake.text(from_=recipient, to=sender, body=text)
        say(f"{stamp()} reply to {posted.sid} posted to {answer.url}: HTTP {answer.answered}")

    return on_callback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.twilio", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8081, help="port on 127.0.0.1 (default 8081)")
    parser.add_argument("--account-sid", default=DEV_ACCOUNT_SID, help="Account SID it answers to (AC + 32 hex)")
    parser.add_argument("--auth-token", default=DEV_AUTH_TOKEN, help="that account's Auth Token")
    parser.add_argument("--sender", default=DEV_SENDER, help="the SMS_DEFAULT_SENDER to print")
    parser.add_argument("--undelivered", action="append", default=[], metavar="NUMBER",
                        help="messages to this number end undelivered with 30003 (repeatable)")
    parser.add_argument("--failed", action="append", default=[], metavar="NUMBER",
                        help="messages to this number end failed with 30008 (repeatable)")
    parser.add_argument("--order", choices=["in order", "reversed", "shuffled"], default="in order",
                        help="the order a message's status callbacks are posted in")
    parser.add_argument("--duplicates", type=int, default=0, help="post every status callback this many more times")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds before each status callback (1)")
    parser.add_argument("--reply", metavar="TEXT",
                        help="each delivered message's recipient texts TEXT back, posted signed to --inbound-url")
    parser.add_argument("--inbound-url", default=LOCAL_INBOUND_URL,
                        help=f"the number's 'A message comes in' webhook (default {LOCAL_INBOUND_URL})")
    args = parser.parse_args(argv)
    fake = _ConsoleTwilioFake(account_sid=args.account_sid, auth_token=args.auth_token)
    fake.on_create = _print_message
    fake.on_callback = _print_callback
    if args.reply:
        fake.inbound_url = args.inbound_url
        fake.on_callback = _replying(fake, args.reply)
    fake.callback_plan = CallbackPlan(order=args.order, duplicates=args.duplicates, interval=args.interval)
    for number in args.undelivered:
        fake.fate(number, Fate.undelivered())
    for number in args.failed:
        fake.fate(number, Fate.failed())

    def describe(running: TwilioFake) -> str:
        env = {
            "SMS_PROVIDER": "twilio",
            "TWILIO_ACCOUNT_SID": running.account_sid,
            "TWILIO_AUTH_TOKEN": running.auth_token,
            "TWILIO_BASE_URL": running.base_url,
            "SMS_DEFAULT_SENDER": args.sender,
        }
        return banner(f"Twilio fake listening on {running.base_url}", env, "+14155550100")

    return serve(fake, args.port, describe)


if __name__ == "__main__":
    raise SystemExit(main())
