"""Request bodies the JSON decoder refuses as a 400, never as an unhandled error."""

from __future__ import annotations

import json

import pytest

from gateway.errors import ApiError
from gateway.wire import decode_request

LIMIT = 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        (b'{"CreateCommunicationReferencesImmediately": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (json.dumps({"SMSModel": {"MessageBody": "half a pair \ud800"}}).encode(), "surrogate"),
        (json.dumps({"\udfff": 1}).encode(), "surrogate"),
        (b'{"a": "\\uDC00\\uD800"}', "surrogate"),  # a pair in the wrong order is two lone halves
        (b"\xff\xfe{}", "not valid JSON"),
    ],
    ids=["deep-array", "deep-object", "huge-integer", "lone-surrogate", "lone-surrogate-key", "reversed-pair",
         "not-utf8"],
)
def test_undecodable_bodies_are_serialization_errors(body: bytes, message: str) -> None:
    with pytest.raises(ApiError) as raised:
        decode_request("application/json", body, LIMIT)
    assert raised.value.status == 400
    assert raised.value.error_code == "SerializationException"
    assert message in raised.value.message


def test_escaped_surrogate_pairs_are_ordinary_text() -> None:
    body = json.dumps({"SMSModel": {"MessageBody": "smile \U0001f600"}}).encode()  # json.dumps escapes it as a pair
    assert b"\\ud83d\\ude00" in body
    assert decode_request("application/json", body, LIMIT)["SMSModel"]["MessageBody"] == "smile \U0001f600"
