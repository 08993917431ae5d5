"""Input the gateway must refuse before storing it, over real HTTP against Azurite.

Each of these was once accepted: text no response could encode (a lone UTF-16 surrogate, smuggled
in through a JSON escape or a multipart part naming a codec), control characters in the text that is
stored and sent, and Guids that Python's ``uuid.UUID`` reads but ServiceStack does not. Each case
checks the answer, that nothing was stored, and that every stored communication still reads back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import requests

from gateway import jsv
from gateway.runtime import Gateway
from tests.http_fixtures import LICENSEE
from tests.integration.test_http_send import assert_error
from tests.samples import NUMBERS, send_body
from tests.server import GatewayServer

GOOD = uuid.UUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
SMS_MODEL_JSV = "{To:[{PhoneNumber:+447911123456}],MessageBody:%s}"


@pytest.fixture(scope="module")
def host(quiet_server: tuple[GatewayServer, Gateway]) -> Iterator[tuple[GatewayServer, Gateway, str]]:
    server, gateway = quiet_server
    yield server, gateway, gateway.keys.create(LICENSEE, "input")[1]


def stored(gateway: Gateway) -> list[str]:
    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
    return [entity["PartitionKey"] for entity in table.query_entities("RowKey eq 'comm'")]


def assert_every_communication_reads_back(server: GatewayServer, gateway: Gateway, key: str) -> None:
    for comm_id in stored(gateway):
        response = server.get(f"/api/sms/{comm_id}", key=key)
        assert response.status_code == 200, (comm_id, response.text)


def multipart(name: str, payload: bytes, charset: str) -> tuple[bytes, str]:
    head = f'--XyZ\r\nContent-Disposition: form-data; name="{name}"\r\nContent-Type: text/plain; charset={charset}'
    return (head.encode() + b"\r\n\r\n" + payload + b"\r\n--XyZ--\r\n"), "multipart/form-data; boundary=XyZ"


LONE_SURROGATES = {
    "json-escape": (b'{"SMSModel":{"To":[{"PhoneNumber":"+447911123456"}],"MessageBody":"hi \\ud800"}}',
                    "application/json", 400),
    "json-escape-in-a-name": (b'{"SMSModel":{"To":[{"PhoneNumber":"+447911123456","Name":"\\udc00\\ud800"}],'
                              b'"MessageBody":"hi"}}', "application/json", 400),
    "jsv-encoded-surrogate": (b"{SMSModel:" + (SMS_MODEL_JSV % "hi ").encode()[:-1] + b"\xed\xa0\x80}}",
                              "application/jsv", 400),
    "urlencoded-percent-escape": (b"SMSModel=" + (SMS_MODEL_JSV % "hi%ED%A0%80").replace("+", "%2B").encode(),
                                  "application/x-www-form-urlencoded", 400),
    "multipart-utf8-encoded-surrogate": (*multipart("SMSModel", (SMS_MODEL_JSV % "hi \udfff").encode(
        "utf-8", "surrogatepass"), "utf-8"), 400),
    "multipart-utf16-lone-half": (*multipart("SMSModel", (SMS_MODEL_JSV % "hi \ud800").encode(
        "utf-16-le", "surrogatepass"), "utf-16le"), 400),
    "multipart-unicode-escape": (*multipart("SMSModel", (SMS_MODEL_JSV % "hi \\ud800").encode(),
                                            "unicode_escape"), 415),
    "multipart-utf7": (*multipart("SMSModel", (SMS_MODEL_JSV % "hi +2AA-").encode(), "utf-7"), 415),
}


@pytest.mark.parametrize("case", LONE_SURROGATES, ids=list(LONE_SURROGATES))
def test_a_lone_surrogate_in_any_wire_format_is_refused_and_nothing_is_stored(host, case: str) -> None:
    server, gateway, key = host
    body, content_type, status = LONE_SURROGATES[case]
    before = stored(gateway)
    response = requests.post(server.url + "/api/sendmessage", data=body, timeout=30, headers={
        "Authorization": f"Bearer {key}", "Content-Type": content_type, "Accept": "application/json"})
    error = assert_error(response, status)
    assert error["ErrorCode"] in {"SerializationException", "UnsupportedMediaType"}
    if status == 415:
        assert "charset" in error["Message"] and "SMSModel" in error["Message"]
    assert stored(gateway) == before
    assert_every_communication_reads_back(server, gateway, key)


def test_a_query_string_cannot_carry_a_lone_surrogate(host) -> None:
    """The host decodes the query string itself and replaces bytes that are not UTF-8 (U+FFFD):
    what reaches the gateway is text, and what is stored reads back."""
    server, gateway, key = host
    query = "SMSModel=" + (SMS_MODEL_JSV % "hi%ED%A0%80").replace("+", "%2B")
    response = server.post(f"/api/sendmessage?{query}", key=key)
    assert response.status_code == 200, response.text
    status = server.get(f"/api/sms/{response.json()['CommId']}", key=key)
    assert status.status_code == 200 and status.json()["MessageBody"] == "hi\ufffd\ufffd\ufffd"
    assert_every_communication_reads_back(server, gateway, key)


def test_surrogate_pairs_and_text_charsets_are_accepted_and_read_back(host) -> None:
    server, _, key = host
    json_pair = server.post("/api/sendmessage", send_body(body="smile \U0001f600"), key=key)  # sent as \ud83d\ude00
    body, content_type = multipart("SMSModel", (SMS_MODEL_JSV % "caf\u00e9 \u20ac").encode("cp1252"), "windows-1252")
    latin = requests.post(server.url + "/api/sendmessage", data=body, timeout=30,
                          headers={"Authorization": f"Bearer {key}", "Content-Type": content_type})
    for response, text in ((json_pair, "smile \U0001f600"), (latin, "caf\u00e9 \u20ac")):
        assert response.status_code == 200, response.text
        assert server.get(f"/api/sms/{response.json()['CommId']}", key=key).json()["MessageBody"] == text


@pytest.mark.parametrize("field", ["LicenseeId", "LinkedObjectId", "SuiteId", "From.ContactId", "To[0].ContactId"])
@pytest.mark.parametrize("text", [
    "0x3f2504e04f8911d39a0c0305e82c33",
    "0x3f2504e04f8911d39a0c0305e82c----",
    "\u0661" * 32,
    "3-f-2-5-04e04f8911d39a0c0305e82c3301",
    "{3f2504e04f8911d39a0c0305e82c3301}",
    "\uff13f2504e04f8911d39a0c0305e82c3301",
], ids=["0x-prefix", "0x-and-hyphens", "arabic-indic-digits", "hyphens-anywhere", "braced-n-form",
        "fullwidth-digit"])
def test_a_malformed_guid_is_400_naming_the_field_never_403(host, field: str, text: str) -> None:
    server, gateway, key = host
    body = send_body()
    target = body["SMSModel"]
    *parents, name = field.replace("[0]", "").split(".")
    for parent in parents:
        target = target[parent][0] if parent == "To" else target[parent]
    target[name] = text
    before = stored(gateway)
    error = assert_error(server.post("/api/sendmessage", body, key=key), 400, "SerializationException",
                         f"SMSModel.{field}")
    assert text not in error["Message"]
    assert stored(gateway) == before


@pytest.mark.parametrize("text", [GOOD.hex, GOOD.hex.upper(), str(GOOD), f"{{{GOOD}}}", f"({GOOD})", f" {GOOD}\t"])
def test_every_servicestack_guid_form_is_read(host, text: str) -> None:
    server, _, key = host
    body = send_body(LinkedObjectId=text)
    response = server.post("/api/sendmessage", body, key=key)
    assert response.status_code == 200, response.text
    assert server.get(f"/api/sms/{response.json()['CommId']}", key=key).json()["LinkedObjectId"] == GOOD.hex


CONTROL_FIELDS = {
    "SMSModel.MessageBody": lambda model, text: model.__setitem__("MessageBody", f"Hello{text}"),
    "SMSModel.From.Name": lambda model, text: model["From"].__setitem__("Name", f"Front{text}desk"),
    "SMSModel.To[0].Name": lambda model, text: model["To"][0].__setitem__("Name", f"{text}Alex"),
    "SMSModel.Notes": lambda model, text: model.__setitem__("Notes", f"note{text}"),
}


@pytest.mark.parametrize("field", CONTROL_FIELDS)
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85"], ids=["NUL", "ESC", "DEL", "C1-NEL"])
@pytest.mark.parametrize("wire", ["json", "jsv"])
def test_control_characters_are_400_naming_the_field(host, field: str, char: str, wire: str) -> None:
    server, gateway, key = host
    body = send_body()
    CONTROL_FIELDS[field](body["SMSModel"], char)
    before = stored(gateway)
    data = json.dumps(body) if wire == "json" else jsv.dumps(body)
    response = requests.post(server.url + "/api/sendmessage", data=data.encode(), timeout=30,
                             headers={"Authorization": f"Bearer {key}", "Content-Type": f"application/{wire}",
                                      "Accept": "application/json"})
    error = assert_error(response, 400, "InvalidCharacters", field)
    assert f"U+{ord(char):04X}" in error["Message"]
    assert stored(gateway) == before


def test_tab_line_feed_and_carriage_return_are_text(host) -> None:
    server, _, key = host
    text = "Line one\r\nLine two\tend"
    body = send_body(NUMBERS[0], body=text, Notes=text)
    body["SMSModel"]["To"][0]["Name"] = "Alex\tB"
    response = server.post("/api/sendmessage", body, key=key)
    assert response.status_code == 200, response.text
    status = server.get(f"/api/sms/{response.json()['CommId']}", key=key).json()
    assert (status["Notes"], status["Recipients"][0]["Name"]) == (text, "Alex\tB")
    # GSM-7 has no tab: smart encoding (docs/messages.md) sends the body's as a space, so it stays GSM-7.
    assert (status["MessageBody"], status["SmartEncoded"]) == (text.replace("\t", " "), True)
