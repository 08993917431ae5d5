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
    ("content_type", "body", "predefined", "expected"),
    [("application/json", b'{"smsModel":{}}', None, Casing.CAMEL),
     (None, b'\xef\xbb\xbf \r\n{ "createCommunicationReferencesImmediately": true}', None, Casing.CAMEL),
     ("text/plain", b'{"smsModel":{}}', "json", Casing.CAMEL),
     ("application/json", b'{"SMSModel":{}}', None, Casing.PASCAL),
     ("application/json", b'{"_x":1,"smsModel":{}}', None, Casing.PASCAL),
     ("application/json", b"", None, Casing.PASCAL),
     ("application/jsv", b'{smsModel:{}}', None, Casing.PASCAL),
     ("application/json", b'{"smsModel":{}}', "jsv", Casing.PASCAL),
     ("application/x-www-form-urlencoded", b'{"smsModel":1}', None, Casing.PASCAL)],
)
def test_without_a_configured_casing_the_answer_follows_the_request(content_type, body, predefined,
                                                                     expected) -> None:
    headers = {"content-type": content_type} if content_type else {}
    negotiated = negotiate(headers, {}, default_casing=None, body=body, predefined=predefined)
    assert negotiated.casing is expected


def test_a_configured_casing_and_jsconfig_win_over_the_request() -> None:
    camel_body = b'{"smsModel":{}}'
    headers = {"content-type": "application/json"}
    assert negotiate(headers, {}, default_casing=Casing.PASCAL, body=camel_body).casing is Casing.PASCAL
    assert negotiate(headers, {"jsconfig": "tc:pc"}, default_casing=None, body=camel_body).casing is Casing.PASCAL
    assert negotiate(headers, {"jsconfig": "tc:cc"}, default_casing=None, body=b'{"SMSModel":1}').casing is (
        Casing.CAMEL)


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


@pytest.mark.parametrize(
    ("charset", "payload"),
    [("utf-8", "caf\u00e9".encode()), ("UTF8", "caf\u00e9".encode()), ("us-ascii", b"cafe"),
     ("iso-8859-1", b"caf\xe9"), ("windows-1252", b"caf\xe9 \x80"), ("utf-16", "caf\u00e9".encode("utf-16")),
     ("utf-16le", "caf\u00e9".encode("utf-16-le")), ("utf-16be", "caf\u00e9".encode("utf-16-be"))],
)
def test_multipart_parts_in_text_charsets_are_decoded(charset: str, payload: bytes) -> None:
    fields = decode_body(*multipart("MessageBody", payload, charset), {}, max_bytes=MAX)
    assert fields["MessageBody"] in {"caf\u00e9", "cafe", "caf\u00e9 \u20ac"}


@pytest.mark.parametrize("charset", ["unicode_escape", "raw-unicode-escape", "utf-7", "base64", "rot13", "idna",
                                     "no-such-charset"])
def test_multipart_parts_naming_a_codec_that_is_not_a_text_charset_are_415(charset: str) -> None:
    with pytest.raises(ApiError) as raised:
        decode_body(*multipart("MessageBody", b"hi \\ud800", charset), {}, max_bytes=MAX)
    assert raised.value.status == 415
    assert f"'{charset}'" in raised.value.message and "'MessageBody'" in raised.value.message


def test_percent_escapes_that_are_not_utf8_are_400_not_replaced() -> None:
    with pytest.raises(ApiError) as raised:
        decode_body({"content-type": "application/x-www-form-urlencoded"}, b"MessageBody=hi%ED%A0%80", {},
                    max_bytes=MAX)
    assert raised.value.status == 400 and "not UTF-8" in raised.value.message


def test_a_lone_surrogate_in_an_answer_is_written_as_its_escape() -> None:
    """Nothing stores one any more; an answer quoting one must still encode rather than fail with a 500."""
    payload = {"Message": "half \ud800 pair"}
    assert json.loads(encode(payload, negotiate({}, {}))) == payload
    assert encode(payload, negotiate({"accept": "text/jsv"}, {})) == b"{Message:half \\ud800 pair}"


def multipart(name: str, payload: bytes, charset: str) -> tuple[dict[str, str], bytes]:
    body = (f'--XyZ\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: text/plain; charset={charset}\r\n\r\n").encode() + payload + b"\r\n--XyZ--\r\n"
    return {"content-type": "multipart/form-data; boundary=XyZ"}, body


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
        (b"\xff\xfe{}", "not UTF-8"),
    ],
    ids=["deep-array", "deep-object", "huge-integer", "not-utf8"],
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
