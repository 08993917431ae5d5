"""Validation and authentication guarantees a mutation run once found unguarded, over real HTTP.

Each test fails with its mutant applied (docs/testing.md lists them, ``scripts/mutation.py`` applies them):
the gateway runs as users run it, ``python -m devhost`` over a real socket, against a real Azurite.
"""

from __future__ import annotations

import base64

import pytest

from tests.http_fixtures import LICENSEE
from tests.samples import NUMBERS, send_body


def assert_field_error(response, field: str, code: str) -> None:
    assert response.status_code == 400, response.text
    errors = [(error["FieldName"], error["ErrorCode"]) for error in response.json()["ResponseStatus"]["Errors"]]
    assert (field, code) in errors, errors


@pytest.fixture(scope="module")
def http(quiet_server):
    """The gateway over a real socket (no queue workers) and a key of its licensee."""
    server, gateway = quiet_server
    return server, gateway.keys.create(LICENSEE, "guarantees")[1]


@pytest.mark.parametrize("sender", ["+44 12", "+1 555 0100 0000", "not a number!"])
def test_an_invalid_from_number_is_a_400_naming_it(http, sender: str) -> None:
    server, key = http
    body = send_body(*NUMBERS[:1])
    body["SMSModel"]["From"] = {"PhoneNumber": sender}
    assert_field_error(server.post("/api/sendmessage", body, key=key), "SMSModel.From.PhoneNumber",
                       "InvalidPhoneNumber")


def test_a_valid_from_number_is_stored_in_e164(http) -> None:
    server, key = http
    body = send_body(*NUMBERS[:1])
    body["SMSModel"]["From"] = {"PhoneNumber": "+44 7911 123-456"}
    accepted = server.post("/api/sendmessage", body, key=key)
    assert accepted.status_code == 200, accepted.text
    status = server.get(f"/api/sms/{accepted.json()['CommId']}", key=key)
    assert status.json()["From"]["PhoneNumber"] == "+447911123456"


def _with_from_name(body: dict, text: str) -> None:
    body["SMSModel"]["From"]["Name"] = text


def _with_recipient_name(body: dict, text: str) -> None:
    body["SMSModel"]["To"][0]["Name"] = text


def _with_notes(body: dict, text: str) -> None:
    body["SMSModel"]["Notes"] = text


@pytest.mark.parametrize(("field", "limit", "fill"), [
    ("SMSModel.From.Name", 256, _with_from_name),
    ("SMSModel.To[0].Name", 256, _with_recipient_name),
    ("SMSModel.Notes", 4000, _with_notes),
])
def test_length_limits_accept_the_limit_and_refuse_one_more(http, field: str, limit: int, fill) -> None:
    server, key = http
    at_limit, over = send_body(*NUMBERS[:1]), send_body(*NUMBERS[:1])
    fill(at_limit, "n" * limit)
    fill(over, "n" * (limit + 1))
    accepted = server.post("/api/sendmessage", at_limit, key=key)
    assert accepted.status_code == 200, accepted.text
    assert_field_error(server.post("/api/sendmessage", over, key=key), field, "MaximumLength")


def test_only_the_bearer_and_basic_schemes_carry_a_key(http) -> None:
    server, key = http
    encoded = base64.b64encode(f"{key}:".encode()).decode()
    basic = server.post("/api/sendmessage", send_body(), headers={"Authorization": f"Basic {encoded}"})
    assert basic.status_code == 200, basic.text
    for header in (f"Foo {encoded}", f"Foo {key}", encoded, f"Basic {key}"):
        response = server.post("/api/sendmessage", send_body(), headers={"Authorization": header})
        assert response.status_code == 401, header
