"""ServiceStack's wire contract over real HTTP: every body format, every negotiation rule, every route."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from urllib.parse import urlencode

import jsonschema
import pytest
import requests

from gateway import jsv
from gateway.routes import DOCUMENTED_ROUTES, ROUTES, Route
from tests.integration.test_http_send import assert_error
from tests.samples import NUMBERS, SEED_REQUEST, send_body
from tests.server import GatewayServer

SEED_PAGE = Path(__file__).parents[1] / "SMSSend-api-reference.txt"  # the metadata page, as the project got it
SEED_JSV = (Path(__file__).parents[1] / "seed_request.jsv").read_text()
ALL_SEND_PATHS = [
    "/api/sendmessage", "/api/send", "/api/sms/send",
    "/api/sendmessage/immediate", "/api/send/immediate", "/api/sms/send/immediate",
    "/api/SMSSend", "/json/reply/SMSSend", "/jsv/reply/SMSSend", "/api/json/reply/SMSSend",
    "/api/jsv/reply/SMSSend",
]


def post(server: GatewayServer, path: str, data: bytes | str, content_type: str | None, key: str,
         accept: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if content_type:
        headers["Content-Type"] = content_type
    if accept:
        headers["Accept"] = accept
    return requests.post(server.url + path, data=data.encode() if isinstance(data, str) else data,
                         headers=headers, timeout=30)


def seed_with_real_numbers() -> str:
    """The seed's JSV sample as printed, with its `String` phone number placeholders given real values."""
    return SEED_JSV.replace("PhoneNumber: String", "PhoneNumber: +447911123456", 2)


def test_the_committed_sample_is_the_seed_pages_text() -> None:
    assert SEED_JSV in SEED_PAGE.read_text()


def test_the_seed_jsv_sample_posted_verbatim_gets_a_jsv_comm_response(server: GatewayServer, key: str) -> None:
    response = post(server, "/api/sendmessage", seed_with_real_numbers(), "text/jsv", key, accept="text/jsv")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/jsv")
    body = jsv.loads(response.text)
    assert set(body) == {"CommId", "Reference", "Status", "Message"}
    assert body["Status"] == "True" and len(body["CommId"]) == 32


def test_the_seed_sample_with_its_placeholders_fails_validation_in_jsv(server: GatewayServer, key: str) -> None:
    response = post(server, "/api/sendmessage", SEED_JSV, "text/jsv", key, accept="text/jsv")
    assert response.status_code == 400
    status = jsv.loads(response.text)["ResponseStatus"]
    assert status["ErrorCode"] == "InvalidPhoneNumber"
    assert [e["FieldName"] for e in status["Errors"]] == ["SMSModel.To[0].PhoneNumber"]


@pytest.mark.parametrize("path", ALL_SEND_PATHS)
@pytest.mark.parametrize("form", ["json", "jsv", "urlencoded", "multipart"])
def test_every_form_of_the_request_through_every_route(server: GatewayServer, key: str, path: str,
                                                       form: str) -> None:
    request = send_body(NUMBERS[0])
    if form == "json":
        response = post(server, path, json.dumps(request), "application/json", key)
    elif form == "jsv":
        response = post(server, path, jsv.dumps(request), "application/jsv", key)
    elif form == "urlencoded":
        response = requests.post(server.url + path, data={"SMSModel": jsv.dumps(request["SMSModel"]),
                                                          "CreateCommunicationReferencesImmediately": "false"},
                                 headers={"Authorization": f"Bearer {key}"}, timeout=30)
    else:
        response = requests.post(server.url + path, files={"SMSModel": (None, jsv.dumps(request["SMSModel"]))},
                                 headers={"Authorization": f"Bearer {key}"}, timeout=30)
    if form == "jsv" and path.endswith("json/reply/SMSSend"):  # predefined routes read their own format
        assert_error(response, 400, "SerializationException")
        return
    assert response.status_code == 200, response.text
    predefined_jsv = path.endswith("jsv/reply/SMSSend")
    if predefined_jsv or (form == "jsv" and "/reply/" not in path):
        assert response.headers["Content-Type"].startswith("application/jsv")
        body = jsv.loads(response.text)
        assert body["Status"] == "True"
    else:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["Status"] is True


@pytest.mark.parametrize(
    ("path", "query", "accept", "expected"),
    [
        ("/api/sendmessage", "", None, "json"),
        ("/api/sendmessage", "?format=jsv", "application/json", "jsv"),
        ("/api/sendmessage.jsv", "", "application/json", "jsv"),
        ("/api/sms/send/immediate.json", "", "application/jsv", "json"),
        ("/api/send.JSV", "", None, "jsv"),
        ("/api/sendmessage", "", "text/jsv", "jsv"),
        ("/api/sendmessage", "", "application/jsv;q=0.4, application/json", "json"),
        ("/jsv/reply/SMSSend", "", "application/json", "jsv"),
        ("/jsv/reply/SMSSend", "?format=json", None, "json"),
    ],
)
def test_response_format_negotiation_over_http(server: GatewayServer, key: str, path: str, query: str,
                                               accept: str | None, expected: str) -> None:
    body = send_body() if not path.startswith("/jsv/") else None
    data = json.dumps(body) if body else jsv.dumps(send_body())
    response = post(server, path + query, data, "application/json" if body else None, key, accept)
    assert response.status_code == 200, response.text
    if expected == "json":
        assert response.json()["Status"] is True
    else:
        assert jsv.loads(response.text)["Status"] == "True"


def test_unserved_formats_are_406_in_the_error_shape(server: GatewayServer, key: str) -> None:
    for path, accept in [("/api/sendmessage?format=xml", None), ("/api/sendmessage.csv", None),
                         ("/api/sendmessage", "application/xml")]:
        response = post(server, path, json.dumps(send_body()), "application/json", key, accept)
        assert_error(response, 406, "NotAcceptable")


def test_camel_and_pascal_case_round_trips(server: GatewayServer, key: str) -> None:
    camel_request = {"smsModel": {"to": [{"phoneNumber": NUMBERS[0]}], "messageBody": "camel in"}}
    camel = post(server, "/api/sendmessage?jsconfig=tc:cc", json.dumps(camel_request), "application/json", key)
    assert set(camel.json()) == {"commId", "reference", "status", "message"}
    pascal = post(server, "/api/sendmessage?jsconfig=tc:pc", json.dumps(camel_request), "application/json", key)
    assert set(pascal.json()) == {"CommId", "Reference", "Status", "Message"}
    emit = post(server, "/api/sendmessage?jsconfig=EmitCamelCaseNames:true", jsv.dumps(camel_request),
                "application/jsv", key)
    assert set(jsv.loads(emit.text)) == {"commId", "reference", "status", "message"}
    status = server.get(f"/api/sms/{camel.json()['commId']}?jsconfig=tc:cc", key=key).json()
    assert status["commId"] == camel.json()["commId"] and "recipients" in status


def test_by_default_the_answer_is_in_the_casing_of_the_request(server: GatewayServer, key: str) -> None:
    """SMS_JSON_CASING's default (auto): a camelCase JSON body is answered in camelCase, errors included;
    PascalCase, JSV, forms and bodiless requests in PascalCase; ?jsconfig= still wins."""
    camel_request = {"smsModel": {"to": [{"phoneNumber": NUMBERS[0]}], "messageBody": "camel in"}}
    camel = post(server, "/api/sendmessage", json.dumps(camel_request), "application/json", key)
    assert set(camel.json()) == {"commId", "reference", "status", "message"}
    camel_jsv = post(server, "/api/sendmessage", json.dumps(camel_request), "application/json", key, "text/jsv")
    assert set(jsv.loads(camel_jsv.text)) == {"commId", "reference", "status", "message"}
    bad = post(server, "/json/reply/SMSSend", json.dumps({"smsModel": {"to": []}}), "text/plain", key)
    assert bad.status_code == 400 and bad.json()["responseStatus"]["errorCode"] == "NotEmpty"
    assert set(post(server, "/api/sendmessage?jsconfig=tc:pc", json.dumps(camel_request), "application/json",
                    key).json()) == {"CommId", "Reference", "Status", "Message"}

    pascal = post(server, "/api/sendmessage", json.dumps(send_body()), "application/json", key)
    assert set(pascal.json()) == {"CommId", "Reference", "Status", "Message"}
    for data, content_type in ((jsv.dumps(camel_request), "application/jsv"),
                               (urlencode({"smsModel": jsv.dumps(camel_request["smsModel"])}),
                                "application/x-www-form-urlencoded")):
        response = post(server, "/api/sendmessage", data, content_type, key, "application/json")
        assert set(response.json()) == {"CommId", "Reference", "Status", "Message"}, content_type
    assert "CommId" in server.get(f"/api/sms/{camel.json()['commId']}", key=key).json()


def test_errors_come_back_in_the_negotiated_format_and_casing(server: GatewayServer, key: str) -> None:
    response = post(server, "/api/sendmessage.jsv?jsconfig=tc:cc", jsv.dumps({"SMSModel": {"To": []}}),
                    "application/jsv", key)
    assert response.status_code == 400
    status = jsv.loads(response.text)["responseStatus"]
    assert status["errorCode"] == "NotEmpty"
    assert {error["fieldName"] for error in status["errors"]} == {"SMSModel.MessageBody", "SMSModel.To"}
    unauthorized = requests.post(server.url + "/api/sendmessage?format=jsv", data=b"{}", timeout=30)
    assert unauthorized.status_code == 401 and "WWW-Authenticate" in unauthorized.headers
    assert jsv.loads(unauthorized.text)["ResponseStatus"]["ErrorCode"] == "Unauthorized"


def test_unknown_routes_are_404_and_wrong_methods_405(server: GatewayServer, key: str) -> None:
    assert_error(server.get("/api/nothing-here", key=key), 404, "NotFound")
    assert_error(server.post("/no/such/route", {}, key=key), 404, "NotFound")
    wrong = requests.get(server.url + "/api/sendmessage", timeout=30)
    assert_error(wrong, 405, "MethodNotAllowed")
    assert wrong.headers["Allow"] == "POST"
    assert_error(requests.patch(server.url + f"/api/sms/{uuid.uuid4().hex}", timeout=30), 405)
    assert_error(requests.put(server.url + "/json/reply/SMSSend", timeout=30), 405)


def test_query_string_fills_the_dto(server: GatewayServer, gateway, key: str) -> None:
    response = post(server, "/api/sendmessage?CreateCommunicationReferencesImmediately=true",
                    json.dumps(send_body(*NUMBERS[:2])), "application/json", key)
    assert response.status_code == 200
    snapshot = gateway.store.load(uuid.UUID(response.json()["CommId"]))
    assert len(snapshot.stored_recipients) == 2  # created at accept time because the query string said so


def test_status_routes_take_a_format_suffix(server: GatewayServer, key: str) -> None:
    sent = server.post("/api/sendmessage", SEED_REQUEST | {"SMSModel": send_body()["SMSModel"]}, key=key).json()
    response = server.get(f"/api/sms/{sent['CommId']}.jsv", key=key)
    assert response.status_code == 200 and jsv.loads(response.text)["Reference"] == sent["Reference"]
    by_reference = server.get(f"/api/sms/reference/{sent['Reference']}.json", key=key)
    assert by_reference.json()["CommId"] == sent["CommId"]


def test_metadata_and_openapi_are_served_without_authentication(server: GatewayServer) -> None:
    from openapi_spec_validator import validate

    page = requests.get(server.url + "/metadata", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for text in ("SMSSend", "/api/sendmessage", "/json/reply/SMSSend", "CommResponse", "MessageBody",
                 "LicenseeId", "ReplyIsRequired"):
        assert text in page.text
    document = requests.get(server.url + "/openapi.json", timeout=30)
    assert document.status_code == 200 and document.headers["Content-Type"].startswith("application/json")
    spec = document.json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert spec["servers"][0]["url"] == server.url
    assert len(spec["paths"]) == len({route.path for route in DOCUMENTED_ROUTES})


# --------------------------------------------------------------------------------------------------
# The operation table against what the adapter does, route by route


def concrete(route: Route) -> str:
    """A path the route serves: its template with a value for every parameter."""
    values = {"format": "json", "commId": uuid.uuid4().hex, "reference": "ABCDEFGHJK", "phoneNumber": "%2B14155550123",
              "eventId": "evt_" + uuid.uuid4().hex, "file": "app.js"}
    return "/" + re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda found: values[found[1]], route.path)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_every_route_answers_406_and_401_exactly_as_its_operation_declares(server: GatewayServer,
                                                                           route: Route) -> None:
    url = server.url + concrete(route)
    method = route.methods[0]
    body = json.dumps(send_body()).encode() if method == "POST" else None
    unserved = requests.request(method, url + "?format=xml", data=body, headers={"Accept": "application/xml"},
                                timeout=30)
    keyless = requests.request(method, url, data=body, timeout=30)
    if route.name in ("twilio_status", "twilio_inbound"):  # check Twilio's signature: unsigned, 403 whatever is asked
        for answer in (unserved, keyless):
            assert_error(answer, 403, "Forbidden")
        return
    if route.name == "acs_events":  # checks Event Grid's key itself; without SMS_EVENTGRID_KEY it does not exist
        for answer in (unserved, keyless):
            assert_error(answer, 404, "NotFound")
        return
    if 406 in route.operation.errors:
        assert_error(unserved, 406, "NotAcceptable")
    else:
        assert unserved.status_code == 200, unserved.text
    if route.operation.authenticated:
        assert_error(keyless, 401, "Unauthorized")
    else:
        assert keyless.status_code == 200, keyless.text


@pytest.mark.parametrize(
    ("headers", "query"),
    [({"Accept": "application/xml"}, ""), ({}, "?format=xml"), ({"Accept": "text/csv"}, "?format=csv.x"),
     ({"Accept": "application/xml, text/html"}, "")],
)
def test_health_never_answers_406(server: GatewayServer, headers: dict[str, str], query: str) -> None:
    response = requests.get(server.url + "/api/health" + query, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"Status": "Healthy", "Provider": "outbox"}


def test_health_answers_in_a_format_it_is_asked_for(server: GatewayServer) -> None:
    """Health negotiates like every DTO answer; it only never refuses."""
    response = requests.get(server.url + "/api/health", headers={"Accept": "text/jsv"}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/jsv")
    assert jsv.loads(response.text) == {"Status": "Healthy", "Provider": "outbox"}
    camel = requests.get(server.url + "/api/health?jsconfig=tc:cc", timeout=30)
    assert camel.json() == {"status": "Healthy", "provider": "outbox"}


def test_real_error_bodies_are_what_the_served_document_describes(server: GatewayServer, key: str) -> None:
    """Each error is provoked over HTTP; its body fits the ErrorResponse schema and its operation lists it."""
    document = requests.get(server.url + "/openapi.json", timeout=30).json()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$ref": "#/components/schemas/ErrorResponse", "components": document["components"]}
    auth = {"Authorization": f"Bearer {key}"}
    send = server.url + "/api/sendmessage"
    provoked = {
        400: ("/api/sendmessage", requests.post(send, json={"SMSModel": {"To": []}}, headers=auth, timeout=30)),
        401: ("/api/sendmessage", requests.post(send, json=send_body(), timeout=30)),
        403: ("/api/sendmessage", requests.post(send, json=send_body(LicenseeId=uuid.uuid4().hex), headers=auth,
                                                timeout=30)),
        404: ("/api/sms/{commId}", requests.get(f"{server.url}/api/sms/{uuid.uuid4().hex}", headers=auth, timeout=30)),
        406: ("/api/sms/{commId}", requests.get(f"{server.url}/api/sms/{uuid.uuid4().hex}?format=xml", headers=auth,
                                                timeout=30)),
        415: ("/api/sendmessage", requests.post(send, data=b"hi", headers={**auth, "Content-Type": "text/plain"},
                                                timeout=30)),
    }
    for status, (path, response) in provoked.items():
        assert response.status_code == status, response.text
        jsonschema.Draft202012Validator(schema).validate(response.json())
        assert str(status) in document["paths"][path]["post" if path.endswith("sendmessage") else "get"]["responses"]
