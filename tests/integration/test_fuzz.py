"""Fuzzing the send routes over a real socket: whatever arrives, the answer is never a 5xx, and every
error is ServiceStack's ``ResponseStatus`` with ``ErrorCode``, ``Message`` and ``Errors``.

Storage is up throughout, so a 503 would be a failure too. Bodies are JSON-ish documents built
around the SMSSend shape (mostly-valid sends with one field replaced, wrong types, NaN, unpaired
surrogates, stray keys, JSON cut short), and random bytes under random content types. Bounded:
150 examples each. What it found (unpaired surrogates echoed into an error, crashing its encoding)
and what a search this small cannot reach (100,000-deep nesting, 5,000-digit numbers) are fixed
cases below.

When the OpenAPI document (/openapi.json) lands, a schemathesis run against it belongs here too;
it will cover the status routes and check responses against the schema.
"""

from __future__ import annotations

import json
import string
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from gateway import jsv
from gateway.runtime import Gateway
from gateway.settings import Settings
from tests.server import GatewayServer

ROUTES = ["/api/sendmessage", "/api/send", "/api/sms/send", "/api/sendmessage/immediate", "/api/send/immediate",
          "/api/sms/send/immediate"]
FIELDS = ["SMSModel", "CreateCommunicationReferencesImmediately", "From", "To", "Name", "PhoneNumber", "ContactId",
          "MessageBody", "ReplyIsAllowed", "ReplyIsRequired", "Notes", "LinkedObjectId", "SuiteId", "LicenseeId"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any code point, with the awkward ones made likely: unpaired surrogates (a client can send them as
# \uD800 escapes), NUL, line separators, a character outside the BMP, ServiceStack's JSV delimiters.
awkward = st.sampled_from(["\ud800", "\udfff", "\x00", "\u2028", "\U0001f600", "\ufeff", "{", "[", ",", '"'])
# (Joined from a list: st.text() itself all but never yields surrogates, whatever the alphabet.)
text = st.lists(st.characters(codec=None, exclude_categories=()) | awkward, max_size=30).map("".join)
numbers = (st.sampled_from(["+447911123456", "+61412345678", "+14155550123", "+15005550001", "07911 123456",
                            "+1 555", "", " ", "0", "+"]) | st.from_regex(r"\A\+?[0-9 ()\-.]{0,20}\Z") | text
           | st.builds(str.__add__, st.sampled_from(["+44", "+447911", "07911 "]), text))
guids = st.sampled_from(["00000000000000000000000000000000", "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
                         "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}", "not-a-guid"]) | st.uuids().map(str)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**30), max_value=10**30)
           | st.floats() | text | numbers | guids)
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.sampled_from(FIELDS) | text, inner, max_size=5), max_leaves=20)
contact = st.fixed_dictionaries({}, optional={"Name": text | anything, "PhoneNumber": numbers | anything,
                                              "ContactId": guids | anything}) | anything
model = st.fixed_dictionaries({}, optional={
    "From": contact, "To": st.lists(contact, max_size=6) | anything, "MessageBody": text | anything,
    "ReplyIsAllowed": st.booleans() | anything, "ReplyIsRequired": st.booleans() | anything, "Notes": text | anything,
    "LinkedObjectId": guids | anything, "SuiteId": guids | anything, "LicenseeId": guids | anything,
}) | anything
chaotic = st.fixed_dictionaries({}, optional={"SMSModel": model,
                                              "CreateCommunicationReferencesImmediately": st.booleans() | anything})
# Mostly-valid sends, so that examples get past decoding into validation, storage and delivery.
valid_numbers = st.sampled_from(["+447911123456", "+61412345678", "+14155550123", "+33612345678"])
sane_contact = st.fixed_dictionaries({"PhoneNumber": valid_numbers | numbers},
                                     optional={"Name": text, "ContactId": guids})
sane = st.fixed_dictionaries(
    {"SMSModel": st.fixed_dictionaries(
        {"To": st.lists(sane_contact, min_size=1, max_size=4), "MessageBody": st.just("Hello") | text},
        optional={"From": st.fixed_dictionaries({"PhoneNumber": numbers | st.sampled_from(["ACME", "12345"])}),
                  "Notes": text, "ReplyIsAllowed": st.booleans(), "LicenseeId": guids})},
    optional={"CreateCommunicationReferencesImmediately": st.booleans()})


def _replace(document: dict, where: str, field: str, value: Any) -> dict:
    target = document["SMSModel"] if where == "model" else document["SMSModel"]["To"][0]
    target[field] = value
    return document


mutated = st.builds(_replace, sane, st.sampled_from(["model", "recipient"]), st.sampled_from(FIELDS), anything)
documents = sane | mutated | chaotic | anything
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/json", "text/plain",
                                 "application/x-www-form-urlencoded", "application/jsv", "multipart/form-data",
                                 "application/xml", ""]) | st.text(string.ascii_letters + string.digits + "/;=-+. ",
                                                                   max_size=40).map(str.strip)


def encode(document: Any) -> bytes:
    """JSON text as a client library would send it (NaN and Infinity included, as Python writes them)."""
    try:
        return json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # unpaired surrogates: only expressible as \u escapes
        return json.dumps(document).encode("ascii")


@pytest.fixture(scope="module")
def target(storage_connection: str) -> Iterator[tuple[GatewayServer, str]]:
    suffix = uuid.uuid4().hex[:10]
    env = {"AzureWebJobsStorage": storage_connection, "SMS_TABLE_PREFIX": f"F{suffix}",
           "SMS_QUEUE_NAME": f"f{suffix}", "SMS_PROVIDER": "outbox", "SMS_SWEEP_SCHEDULE": "0 0 0 1 1 *",
           "SMS_RECEIPT_CHECK_SCHEDULE": "0 0 0 1 1 *", "SMS_RETENTION_SCHEDULE": "0 0 0 1 1 *",
           "SMS_DEFAULT_SENDER": "+15005550006"}
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    key = gateway.keys.create(uuid.uuid4(), "fuzz")[1]
    server = GatewayServer.start(env, "--no-queues", "--no-timers")
    yield server, key
    server.stop()


def parsed(response: requests.Response) -> dict:
    """The body in whichever format the gateway negotiated: JSON, or JSV for a JSV request."""
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith(("application/json", "application/jsv")), response.text[:300]
    return jsv.loads(response.text) if content_type.startswith("application/jsv") else response.json()


def check(response: requests.Response, *, record: bool = True) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    answer = parsed(response)
    # SMS_JSON_CASING=auto answers a body whose first key starts in lower case (``{"a": null}``) in camelCase.
    camel = not any(key[:1].isupper() for key in answer)
    name = (lambda pascal: pascal[0].lower() + pascal[1:]) if camel else (lambda pascal: pascal)
    if response.status_code == 200:
        assert set(answer) == {name("CommId"), name("Reference"), name("Status"), name("Message")}
        if record:
            event("200")
        return
    status = answer[name("ResponseStatus")]
    assert isinstance(status[name("ErrorCode")], str) and status[name("ErrorCode")]
    assert isinstance(status[name("Message")], str) and status[name("Message")]
    assert isinstance(status[name("Errors")], list)
    for error in status[name("Errors")]:
        assert set(error) >= {name("ErrorCode"), name("FieldName"), name("Message")}
    if record:
        event(f"{response.status_code} {status[name('ErrorCode')]}")  # --hypothesis-show-statistics shows the spread


def post(target: tuple[GatewayServer, str], route: str, body: bytes, content_type: str | None,
         auth: str) -> requests.Response:
    server, key = target
    headers = {"Content-Type": content_type} if content_type is not None else {}
    if auth == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif auth == "x-api-key":
        headers["X-Api-Key"] = key
    elif auth == "wrong":
        headers["Authorization"] = "Bearer sgk_" + uuid.uuid4().hex
    return requests.post(server.url + route, data=body, headers=headers, timeout=30)


@SETTINGS
@given(route=st.sampled_from(ROUTES), document=documents,
       content_type=st.sampled_from(["application/json", "text/json", "application/json; charset=utf-8", None]),
       auth=st.sampled_from(["bearer"] * 8 + ["x-api-key", "none", "wrong"]), cut=st.none() | st.integers(0, 200))
@example(route=ROUTES[0], document=None, content_type="application/json", auth="bearer", cut=None)
def test_json_ish_bodies_never_cause_a_server_error(target, route: str, document: Any, content_type: str | None,
                                                    auth: str, cut: int | None) -> None:
    body = encode(document)
    if cut is not None:  # sometimes the JSON text breaks off
        body = body[:cut]
    check(post(target, route, body, content_type, auth))


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"SMSModel": {"To": [{"PhoneNumber": ' + b"9" * 5000 + b'}], "MessageBody": "x"}}',
    b'{"SMSModel": {"To": [{"PhoneNumber": "\\ud800"}], "MessageBody": "x"}}',
    b'{"SMSModel": {"To": [{"PhoneNumber": "+447911123456", "Name": "\\udfff"}], "MessageBody": "x"}}',
    b'{"SMSModel": {"To": [{"PhoneNumber": NaN}], "MessageBody": Infinity}}',
], ids=["deep", "huge-number", "surrogate-number", "surrogate-name", "nan"])
@pytest.mark.parametrize("route", [ROUTES[0], ROUTES[3]])
def test_bodies_the_fuzzer_found(target, route: str, body: bytes) -> None:
    response = post(target, route, body, "application/json", "bearer")
    check(response, record=False)
    assert response.status_code == 400


@SETTINGS
@given(route=st.sampled_from(ROUTES), body=st.binary(max_size=2000) | text.map(lambda t: t.encode("utf-8", "replace")),
       content_type=content_types, auth=st.sampled_from(["bearer", "bearer", "none"]))
def test_random_bytes_under_random_content_types_never_cause_a_server_error(target, route: str, body: bytes,
                                                                            content_type: str, auth: str) -> None:
    check(post(target, route, body, content_type, auth))
