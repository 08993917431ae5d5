"""The wire rules in isolation: negotiation order, casing, body formats and precedence."""

import json

import pytest

from gateway import jsv
from gateway.errors import ApiError
from gateway.wire import Casing, Format, camel_case, decode_body, encode, negotiate, recase

MAX = 1 << 20


@pytest.mark.parametrize(
    ("headers", "query", "predefined", "suffix", "expected"),
    [
        ({}, {}, None, None, Format.JSON),  # 6. the default
        ({"content-type": "text/jsv"}, {}, None, None, Format.JSV),  # 5. the request's own format
        ({"content-type": "text/jsv", "accept": "*/*"}, {}, None, None, Format.JSV),
        ({"content-type": "text/jsv", "accept": "application/json"}, {}, None, None, Format.JSON),  # 4. Accept
        ({"accept": "text/html;q=0.9, application/jsv"}, {}, None, None, Format.JSV),
        ({"accept": "application/json;q=0.5, text/jsv;q=0.8"}, {}, None, None, Format.JSV),
        ({"accept": "application/jsv"}, {}, None, "json", Format.JSON),  # 3. suffix beats Accept
        ({}, {}, "jsv", None, Format.JSV),  # 2. predefined prefix
        ({"accept": "application/jsv"}, {"format": "json"}, "jsv", None, Format.JSON),  # 1. ?format= wins
        ({}, {"FORMAT": "jsv.pretty"}, None, "json", Format.JSV),  # only the part before a dot counts
    ],
)
def test_response_format_follows_servicestack_precedence(headers, query, predefined, suffix, expected) -> None:
    assert negotiate(headers, query, predefined=predefined, suffix=suffix).format is expected


@pytest.mark.parametrize(
    ("headers", "query", "suffix"),
    [({}, {"format": "xml"}, None), ({}, {"format": "csv"}, None), ({}, {}, "xml"),
     ({"accept": "application/xml"}, {}, None), ({}, {"format": "bogus"}, None)],
)
def test_formats_we_do_not_serve_are_406(headers, query, suffix) -> None:
    with pytest.raises(ApiError) as caught:
        negotiate(headers, query, suffix=suffix)
    assert caught.value.status == 406 and caught.value.error_code == "NotAcceptable"


def test_jsv_content_type_echoes_the_spelling_the_client_used() -> None:
    assert negotiate({"accept": "text/jsv"}, {}).content_type == "text/jsv"
    assert negotiate({"accept": "application/jsv"}, {}).content_type == "application/jsv"
    assert negotiate({}, {"format": "jsv"}).content_type == "application/jsv"


@pytest.mark.parametrize(
    ("config", "default", "expected"),
    [("tc:cc", Casing.PASCAL, Casing.CAMEL), ("TC:PC", Casing.CAMEL, Casing.PASCAL),
     ("EmitCamelCaseNames:true", Casing.PASCAL, Casing.CAMEL), ("emitcamelcasenames:false", Casing.CAMEL,
                                                                  Casing.PASCAL),
     ("ExcludeDefaultValues:true,tc:cc", Casing.PASCAL, Casing.CAMEL), (None, Casing.CAMEL, Casing.CAMEL)],
)
def test_casing_per_request(config, default, expected) -> None:
    query = {"jsconfig": config} if config else {}
    assert negotiate({}, query, default_casing=default).casing is expected


@pytest.mark.parametrize(
    ("name", "camel"),
    [("SMSModel", "smsModel"), ("CommId", "commId"), ("ResponseStatus", "responseStatus"), ("To", "to"),
     ("ID", "id"), ("LicenseeId", "licenseeId"), ("already", "already")],
)
def test_camel_case_matches_servicestack(name: str, camel: str) -> None:
    assert camel_case(name) == camel


def test_recase_touches_keys_not_values() -> None:
    payload = {"ResponseStatus": {"ErrorCode": "NotEmpty", "Errors": [{"FieldName": "SMSModel.To"}]}}
    assert recase(payload, Casing.CAMEL) == {
        "responseStatus": {"errorCode": "NotEmpty", "errors": [{"fieldName": "SMSModel.To"}]}
    }


def test_encode_jsv_like_servicestack() -> None:
    negotiated = negotiate({"accept": "text/jsv"}, {})
    payload = {"CommId": "3f2504e04f8911d39a0c0305e82c3301", "Reference": "ABC", "Status": True,
               "Message": "Sent to 1 of 1 recipient; 0 failed"}
    assert encode(payload, negotiated) == (
        b"{CommId:3f2504e04f8911d39a0c0305e82c3301,Reference:ABC,Status:True,Message:Sent to 1 of 1 recipient; 0 "
        b"failed}"
    )


def test_bodies_by_content_type() -> None:
    expected = {"SMSModel": {"MessageBody": "Hi, there"}}
    assert decode_body({"content-type": "application/json"}, b'{"SMSModel":{"MessageBody":"Hi, there"}}', {},
                       max_bytes=MAX) == expected
    assert decode_body({"content-type": "text/jsv"}, b'{SMSModel:{MessageBody:"Hi, there"}}', {},
                       max_bytes=MAX) == expected
    form = b"SMSModel=%7BMessageBody%3A%22Hi%2C+there%22%7D&CreateCommunicationReferencesImmediately=true"
    assert decode_body({"content-type": "application/x-www-form-urlencoded"}, form, {}, max_bytes=MAX) == {
        **expected, "CreateCommunicationReferencesImmediately": "true"}


def test_multipart_form_fields() -> None:
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="smsmodel"\r\n\r\n{MessageBody:Hello}\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="CreateCommunicationReferencesImmediately"\r\n\r\n'
            b'True\r\n--XyZ--\r\n')
    fields = decode_body({"content-type": "multipart/form-data; boundary=XyZ"}, body, {}, max_bytes=MAX)
    assert fields == {"smsmodel": {"MessageBody": "Hello"}, "CreateCommunicationReferencesImmediately": "True"}


def test_predefined_routes_read_their_own_format_unless_a_form_is_posted() -> None:
    jsv_body = b"{SMSModel:{MessageBody:Hi}}"
    assert decode_body({"content-type": "application/json"}, jsv_body, {}, max_bytes=MAX, predefined="jsv") == {
        "SMSModel": {"MessageBody": "Hi"}}
    form = b"SMSModel={MessageBody:Hi}"
    assert decode_body({"content-type": "application/x-www-form-urlencoded"}, form, {}, max_bytes=MAX,
                       predefined="json") == {"SMSModel": {"MessageBody": "Hi"}}


def test_query_string_fills_and_overrides_body_and_form_overrides_query() -> None:
    fields = decode_body({"content-type": "application/json"},
                         b'{"CreateCommunicationReferencesImmediately": false}',
                         {"createcommunicationreferencesimmediately": "true", "format": "jsv",
                          "SMSModel": "{MessageBody:FromQuery}"}, max_bytes=MAX)
    assert fields == {"createcommunicationreferencesimmediately": "true", "SMSModel": {"MessageBody": "FromQuery"}}
    fields = decode_body({"content-type": "application/x-www-form-urlencoded"}, b"SMSModel={MessageBody:FromForm}",
                         {"SMSModel": "{MessageBody:FromQuery}"}, max_bytes=MAX)
    assert fields == {"SMSModel": {"MessageBody": "FromForm"}}


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [("application/json", b"{", 400), ("application/json", b"[]", 400), ("text/jsv", b"{A:", 400),
     ("text/jsv", b"plain", 400), ("text/plain", b"hi", 415), ("application/xml", b"<a/>", 415),
     ("application/json", b"\xff\xfe", 400), ("multipart/form-data; boundary=nope", b"garbage", 400),
     ("application/x-www-form-urlencoded", b"SMSModel={unclosed", 400)],
)
def test_bad_bodies_are_client_errors(content_type: str, body: bytes, status: int) -> None:
    with pytest.raises(ApiError) as caught:
        decode_body({"content-type": content_type}, body, {}, max_bytes=MAX)
    assert caught.value.status == status


def test_oversize_bodies_are_413() -> None:
    with pytest.raises(ApiError) as caught:
        decode_body({"content-type": "application/json"}, b"{}" + b" " * 100, {}, max_bytes=50)
    assert caught.value.status == 413


def test_jsv_round_trip_of_an_error_body() -> None:
    body = {"ResponseStatus": {"ErrorCode": "NotEmpty", "Message": "'To' must not be empty.", "Errors": []}}
    assert jsv.loads(encode(body, negotiate({"accept": "application/jsv"}, {})).decode()) == body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        (b'{"CreateCommunicationReferencesImmediately": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (json.dumps({"SMSModel": {"MessageBody": "half a pair \ud800"}}).encode(), "surrogate"),
        (json.dumps({"\udfff": 1}).encode(), "surrogate"),
        (b'{"a": "\\uDC00\\uD800"}', "surrogate"),  # a pair in the wrong order is two lone halves
        (b"\xff\xfe{}", "not UTF-8"),
    ],
    ids=["deep-array", "deep-object", "huge-integer", "lone-surrogate", "lone-surrogate-key", "reversed-pair",
         "not-utf8"],
)
def test_undecodable_json_bodies_are_serialization_errors(body: bytes, message: str) -> None:
    with pytest.raises(ApiError) as raised:
        decode_body({"content-type": "application/json"}, body, {}, max_bytes=10 * MAX)
    assert raised.value.status == 400
    assert raised.value.error_code == "SerializationException"
    assert message in raised.value.message


def test_escaped_surrogate_pairs_are_ordinary_text() -> None:
    body = json.dumps({"SMSModel": {"MessageBody": "smile \U0001f600"}}).encode()  # json.dumps escapes it as a pair
    assert b"\\ud83d\\ude00" in body
    fields = decode_body({"content-type": "application/json"}, body, {}, max_bytes=MAX)
    assert fields["SMSModel"]["MessageBody"] == "smile \U0001f600"
