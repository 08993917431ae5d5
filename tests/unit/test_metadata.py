"""The metadata page and the OpenAPI document: valid, complete by construction, and honest samples.

Completeness is checked against the code, not against lists kept here: every route in ``ROUTES``
and every field of every pydantic model in ``gateway.models`` must appear, so adding either
without the documents following is impossible.
"""

from __future__ import annotations

import html
import json
import re
import tomllib
import typing
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from pydantic import BaseModel

from gateway import jsv, models
from gateway.errors import ApiError, FieldError, forbidden, not_found, service_unavailable, unauthorized
from gateway.metadata.dtos import example, json_sample, jsv_sample
from gateway.metadata.html import build_page, metadata_html
from gateway.metadata.openapi import build_openapi, openapi_document, openapi_json
from gateway.models import (
    CommResponse,
    ErrorResponse,
    HealthResponse,
    OptOut,
    OptOutRequest,
    OptOutsResponse,
    RecipientStatus,
    SMSCancelResponse,
    SMSContact,
    SMSLogResponse,
    SMSSend,
    SMSStatusResponse,
    Webhook,
    WebhookEventEntry,
    WebhookEventsResponse,
    WebhookRegistration,
    WebhookRequest,
    WireModel,
)
from gateway.routes import DOCUMENTED_ROUTES, ROUTES, SEND, Operation, Route
from tests.unit.test_jsv import SEED_REQUEST, SEED_RESPONSE

ROOT = Path(__file__).resolve().parents[2]
REAL_COMM_ID = "3f2504e04f8911d39a0c0305e82c3301"
ERROR_CODES = {400, 401, 403, 404, 406, 409, 413, 415, 422, 500, 503}  # 405 answers methods no operation has
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def wire_models() -> list[type[BaseModel]]:
    """Every DTO ``gateway.models`` defines (found by walking the module, not listed by hand)."""
    found = [
        value for value in vars(models).values()
        if isinstance(value, type) and issubclass(value, models.WireModel) and value is not models.WireModel
        and value.__module__ == models.__name__
    ]
    assert {model.__name__ for model in found} >= {"SMSSend", "SMSModel", "SMSContact", "CommResponse",
                                                   "HealthResponse", "ErrorResponse", "ResponseStatus",
                                                   "ResponseError"}
    return found


def documented_models() -> list[type[BaseModel]]:
    return wire_models()


def openapi_path(template: str) -> str:
    return "/" + re.sub(r"\{(\w+):[^}]*\}", r"{\1}", template)


def schema_for(document: dict[str, Any], name: str) -> dict[str, Any]:
    """A Draft 2020-12 schema for one component: the document's components ride along, so refs resolve."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{name}",
        "components": document["components"],
    }


def check(document: dict[str, Any], name: str, instance: Any) -> None:
    validator = jsonschema.Draft202012Validator(
        schema_for(document, name), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(instance)


def is_valid(document: dict[str, Any], name: str, instance: Any) -> bool:
    try:
        check(document, name, instance)
    except jsonschema.ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


@pytest.fixture(scope="module")
def page() -> str:
    return metadata_html()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


# --------------------------------------------------------------------------------------------------
# OpenAPI: valid and complete


@pytest.mark.parametrize("server_url", [None, "https://sms.example.net"])
def test_document_is_valid_openapi_3_1(server_url: str | None) -> None:
    document = openapi_document(server_url)
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)
    if server_url:
        assert document["servers"] == [{"url": server_url}]
    else:
        assert "servers" not in document


def test_info_names_the_service_and_the_projects_version(document: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert document["info"]["title"] == "SMS Gateway API"
    assert document["info"]["version"] == project["version"]
    assert document["info"]["description"]


def test_every_route_appears_with_its_methods_and_nothing_else(document: dict[str, Any]) -> None:
    expected = {(openapi_path(route.path), method.lower()): route for route in DOCUMENTED_ROUTES
                for method in route.methods}
    found = {(path, method): operation for path, method, operation in operations(document)}
    assert set(found) == set(expected)
    for key, route in expected.items():
        assert found[key]["operationId"] == route.name
    operation_ids = [operation["operationId"] for *_, operation in operations(document)]
    assert len(operation_ids) == len(set(operation_ids))


def test_route_constraints_become_a_format_enum(document: dict[str, Any]) -> None:
    assert "/api/sendmessage.{format}" in document["paths"]
    assert "/{format}/reply/SMSSend" in document["paths"]
    assert "/api/{format}/reply/SMSSend" in document["paths"]
    assert not any(":" in path or "{*" in path for path in document["paths"])
    path_format = document["components"]["parameters"]["path_format"]
    assert path_format["in"] == "path" and path_format["schema"]["enum"] == ["json", "jsv"]
    for path, _, operation in operations(document):
        refs = [parameter["$ref"] for parameter in operation["parameters"]]
        assert ("#/components/parameters/path_format" in refs) == ("{format}" in path)


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_operation_takes_format_and_jsconfig(document: dict[str, Any]) -> None:
    for _, _, operation in operations(document):
        query = {(p["name"], p["in"]) for p in (resolve(document, ref) for ref in operation["parameters"])}
        assert {("format", "query"), ("jsconfig", "query")} <= query
    assert document["components"]["parameters"]["format"]["schema"]["enum"] == ["json", "jsv"]


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    for path, _, operation in operations(document):
        declared = {p["name"] for p in map(lambda ref: resolve(document, ref), operation["parameters"])
                    if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path))


BODY_MODELS = {"/api/optouts": OptOutRequest, "/api/webhook": WebhookRequest}
"""The request DTO of each path whose POST or PUT is not a send."""
ROUTE_BY_NAME = {route.name: route for route in ROUTES}


def test_post_and_put_bodies_accept_json_jsv_and_forms(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        if method not in ("post", "put"):
            assert "requestBody" not in operation
            continue
        if path.startswith("/api/providers/"):  # a provider's callback: its body is the provider's, not a DTO
            assert "requestBody" not in operation
            continue
        if ROUTE_BY_NAME[operation["operationId"]].operation.request is None:  # a POST that reads no body (retry)
            assert "requestBody" not in operation
            continue
        content = operation["requestBody"]["content"]
        assert set(content) == {"application/json", "application/jsv", "application/x-www-form-urlencoded",
                                "multipart/form-data"}, path
        model = BODY_MODELS.get(path, SMSSend)
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert content["application/jsv"]["schema"]["type"] == "string"
        form = content["application/x-www-form-urlencoded"]["schema"]["properties"]
        assert set(form) == set(model.model_fields)
        if model is SMSSend:
            assert form["SMSModel"]["type"] == "string"  # a complex field travels as JSV
        assert model.model_validate(jsv.loads(content["application/jsv"]["example"]))


def test_success_responses_name_the_right_dto(document: dict[str, Any]) -> None:
    expected = {"SMSSend": "CommResponse", "SMSResend": "CommResponse", "SMSStatus": "SMSStatusResponse",
                "SMSStatusByReference": "SMSStatusResponse", "Health": "HealthResponse",
                "OptOutList": "OptOutsResponse", "OptOutAdd": "OptOut", "OptOutRemove": "OptOut",
                "WebhookSet": "WebhookRegistration", "WebhookShow": "Webhook", "WebhookDelete": "Webhook",
                "WebhookEventList": "WebhookEventsResponse", "WebhookEventRetry": "WebhookEventEntry",
                "SMSCancel": "SMSCancelResponse", "SMSLog": "SMSLogResponse",
                "SMSWebhookEvents": "WebhookEventsResponse"}
    by_id = {operation["operationId"]: operation for *_, operation in operations(document)}
    for route in DOCUMENTED_ROUTES:
        if route.operation.name == "TwilioStatusCallback":  # Twilio is answered an empty 204
            assert by_id[route.name]["responses"]["204"] == {"description": "Done; no content"}
            continue
        ok = by_id[route.name]["responses"]["200"]["content"]
        if route.operation.name in expected:
            assert ok["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{expected[route.operation.name]}"}
            assert ok["application/jsv"]["schema"]["type"] == "string"
        elif route.operation.name == "Metadata":
            assert set(ok) == {"text/html"}
        elif route.operation.name == "AcsEvents":
            assert set(ok) == {"application/json"}  # Event Grid's handshake answer, or the delivery's counts
        elif route.operation.name == "TwilioInbound":
            assert set(ok) == {"text/xml"}  # an empty TwiML <Response/>: no automatic reply
        else:
            assert route.operation.name == "OpenApi"
            assert set(ok) == {"application/json"}


def test_error_responses_use_the_response_status_shape(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    assert {int(code) for code in responses} == ERROR_CODES
    for response in responses.values():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert "Retry-After" in responses["503"]["headers"]


def test_each_operation_lists_exactly_the_errors_its_table_entry_declares(document: dict[str, Any]) -> None:
    by_id = {operation["operationId"]: operation for *_, operation in operations(document)}
    for route in DOCUMENTED_ROUTES:
        listed = by_id[route.name]["responses"]
        success = str(route.operation.success)
        assert {int(code) for code in listed if code != success} == set(route.operation.errors), route.name
        for code in route.operation.errors:
            assert listed[str(code)] == {"$ref": f"#/components/responses/{code}"}
    codes = {route.operation.name: {int(code) for code in by_id[route.name]["responses"]}
             for route in DOCUMENTED_ROUTES}
    assert codes["Health"] == {200, 500, 503}  # no 406: a probe is answered whatever it accepts; no 401
    assert codes["SMSSend"] == {200, 400, 401, 403, 406, 409, 413, 415, 422, 500, 503}
    assert codes["SMSStatus"] == codes["SMSStatusByReference"] == {200, 401, 404, 406, 500, 503}
    assert codes["Metadata"] == codes["OpenApi"] == {200, 500}
    assert codes["TwilioStatusCallback"] == {204, 400, 403, 500, 503}  # 403: Twilio's signature, not an API key
    assert codes["AcsEvents"] == {200, 400, 401, 404, 413, 500, 503}  # 401: Event Grid's key, not an API key


def test_authenticated_routes_take_any_of_the_three_key_schemes(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["basicAuth"] == {**schemes["basicAuth"], "type": "http", "scheme": "basic"}
    assert schemes["apiKeyHeader"] == {**schemes["apiKeyHeader"], "type": "apiKey", "in": "header",
                                       "name": "X-Api-Key"}
    assert "security" not in document  # no global default: each operation says
    by_id = {operation["operationId"]: operation for *_, operation in operations(document)}
    for route in DOCUMENTED_ROUTES:
        operation = by_id[route.name]
        if route.operation.authenticated:
            assert operation["security"] == [{"bearerAuth": []}, {"basicAuth": []}, {"apiKeyHeader": []}]
            assert "401" in operation["responses"]
        else:
            assert operation["security"] == []
            checks_its_own_key = route.operation.name == "AcsEvents"  # Event Grid's key in the query
            assert ("401" in operation["responses"]) == checks_its_own_key


def test_every_field_of_every_dto_is_in_components(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for model in documented_models():
        assert model.__name__ in schemas, model.__name__
        schema = schemas[model.__name__]
        assert list(schema["properties"]) == list(model.model_fields), model.__name__
        required = [name for name, info in model.model_fields.items() if info.is_required()]
        assert schema.get("required", []) == required


def test_every_documented_field_has_a_description(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for model in documented_models():
        for name, schema in schemas[model.__name__]["properties"].items():
            assert schema.get("description"), f"{model.__name__}.{name} has no description"


def refers_to_guid(annotation: Any) -> bool:
    """A Guid field, or a list of Guids."""
    return annotation is uuid.UUID or any(refers_to_guid(arg) for arg in typing.get_args(annotation))


def test_guid_fields_refer_to_the_guid_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    guid_fields = 0
    for model in documented_models():
        for name, info in model.model_fields.items():
            is_guid = refers_to_guid(info.annotation)
            text = json.dumps(schemas[model.__name__]["properties"][name])
            assert ('"#/components/schemas/Guid"' in text) == is_guid, f"{model.__name__}.{name}"
            guid_fields += is_guid
    assert guid_fields >= 10
    assert "format" not in schemas["Guid"]


def test_guid_schema_takes_the_forms_the_gateway_reads(document: dict[str, Any]) -> None:
    value = uuid.UUID(REAL_COMM_ID)
    for text in (value.hex, value.hex.upper(), str(value), "{" + str(value) + "}", "(" + str(value) + ")"):
        assert is_valid(document, "Guid", text), text
        assert models.parse_guid(text) == value
    for text in ("", "3f2504e0", "not-a-guid", REAL_COMM_ID + "0", "{" + REAL_COMM_ID + "}", 42):
        assert not is_valid(document, "Guid", text), text


def test_format_uuid_would_have_rejected_the_n_form() -> None:
    """Why the Guid schema is a pattern: a validator asserting ``format: uuid`` refuses what we write."""
    strict = jsonschema.Draft202012Validator(
        {"type": "string", "format": "uuid"}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert not strict.is_valid(REAL_COMM_ID)
    assert strict.is_valid(str(uuid.UUID(REAL_COMM_ID)))


# --------------------------------------------------------------------------------------------------
# OpenAPI schemas against real bodies


def test_a_real_comm_response_validates(document: dict[str, Any]) -> None:
    body = CommResponse(CommId=uuid.UUID(REAL_COMM_ID), Reference="7358D4A4PA", Status=True,
                        Message="Queued for delivery to 1 recipient").to_wire()
    assert body["CommId"] == REAL_COMM_ID
    check(document, "CommResponse", body)
    check(document, "CommResponse", example(CommResponse).to_wire())
    assert not is_valid(document, "CommResponse", {**body, "CommId": "not-a-guid"})
    assert not is_valid(document, "CommResponse", {**body, "Status": "yes"})


def test_a_real_status_response_validates(document: dict[str, Any]) -> None:
    when = datetime(2024, 5, 1, 9, 30, 15, 250000, tzinfo=UTC)
    body = SMSStatusResponse(
        CommId=uuid.UUID(REAL_COMM_ID), Reference="7358D4A4PA", LicenseeId=uuid.uuid4(), Status="PartiallySent",
        From=SMSContact(PhoneNumber="+61412345678"), MessageBody="Hi", RecipientCount=2, SentCount=1,
        FailedCount=1, CreatedAt=when, UpdatedAt=when,
        Recipients=[
            RecipientStatus(RecipientId=uuid.uuid4(), PhoneNumber="+447911123456", Status="Sent",
                            ProviderMessageId="SM123", Attempts=1, UpdatedAt=when),
            RecipientStatus(RecipientId=uuid.uuid4(), PhoneNumber="+14155550123", Status="Failed",
                            ErrorCode="21211", ErrorMessage="Invalid 'To' number", Attempts=1),
        ],
    ).to_wire()
    check(document, "SMSStatusResponse", body)


def test_a_real_request_validates(document: dict[str, Any]) -> None:
    from tests.samples import send_body

    check(document, "SMSSend", send_body())
    check(document, "SMSSend", SMSSend.model_validate(send_body()).to_wire())


@pytest.mark.parametrize(
    "error",
    [
        ApiError.validation([FieldError("SMSModel.MessageBody", "NotEmpty", "'MessageBody' must not be empty."),
                             FieldError("SMSModel.To[1].PhoneNumber", "InvalidPhoneNumber", "not a number")]),
        unauthorized(),
        forbidden("This API key may not act for another licensee"),
        not_found("No communication with that id exists for this licensee"),
        service_unavailable(),
        ApiError(500, "InternalServerError", "An internal error occurred", meta={"CorrelationId": uuid.uuid4().hex}),
    ],
    ids=lambda error: str(error.status),
)
def test_error_bodies_validate_against_the_error_schema(document: dict[str, Any], error: ApiError) -> None:
    body = error.to_wire()
    check(document, "ErrorResponse", body)
    status = document["components"]["schemas"]["ResponseStatus"]["properties"]
    assert set(body["ResponseStatus"]) <= set(status)  # nothing errors.py writes goes undocumented
    assert str(error.status) in document["components"]["responses"]


def test_an_error_body_missing_its_parts_does_not_validate(document: dict[str, Any]) -> None:
    assert not is_valid(document, "ErrorResponse", {"ResponseStatus": {"ErrorCode": "X", "Message": "m"}})
    assert not is_valid(document, "ErrorResponse", {"ErrorCode": "X", "Message": "m", "Errors": []})


# --------------------------------------------------------------------------------------------------
# Caching


def test_the_document_is_built_once_and_copies_are_independent() -> None:
    first = openapi_document()
    first["info"]["title"] = "changed"
    first["paths"].clear()
    second = openapi_document()
    assert second["info"]["title"] == "SMS Gateway API" and second["paths"]
    assert openapi_json() is openapi_json()  # cached text
    assert json.loads(openapi_json("https://a.example")) == openapi_document("https://a.example")
    assert metadata_html() is metadata_html()


# --------------------------------------------------------------------------------------------------
# The HTML page


class _Page(HTMLParser):
    """Collects text per element and checks that tags nest."""

    VOID: typing.ClassVar[set[str]] = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.pre: list[tuple[str, str]] = []
        self.headings: list[str] = []
        self.cells: list[str] = []
        self._text: list[str] = []
        self._class = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)
            self._text = []
            self._class = dict(attrs).get("class") or ""

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        text = "".join(self._text)
        if tag == "pre":
            self.pre.append((self._class, text))
        elif tag == "h3":
            self.headings.append(text)
        elif tag in ("td", "code"):
            self.cells.append(text)

    def handle_data(self, data: str) -> None:
        self._text.append(data)


@pytest.fixture(scope="module")
def parsed(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.stack == []
    return parser


def test_page_is_self_contained_html(page: str, parsed: _Page) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>SMS Gateway API</title>" in page
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert "<style>" in page
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_page_describes_the_operation_and_authentication(page: str) -> None:
    assert "Saves the specified SMS and sends it for background processing" in page
    assert "Requires Authentication" in page
    assert "Authorization: Bearer &lt;key&gt;" in page
    assert "key as user name and an empty password" in page
    assert "X-Api-Key: &lt;key&gt;" in page
    assert ("To override the Content-type in your clients, use the HTTP Accept Header, append the .jsv suffix "
            "or ?format=jsv") in page
    for operation in ("SMSSend", "SMSStatus", "SMSStatusByReference", "Health", "Metadata", "OpenApi"):
        assert f"<h2>{operation}</h2>" in page


def test_page_lists_every_route(parsed: _Page) -> None:
    cells = set(parsed.cells)
    for route in DOCUMENTED_ROUTES:
        path = openapi_path(route.path)
        if path.endswith(".{format}"):
            expected = [path.removesuffix(".{format}") + ".json|.jsv"]
        elif "{format}" in path:
            expected = [path.replace("{format}", "json"), path.replace("{format}", "jsv")]
        else:
            expected = [path]
        for text in expected:
            assert text in cells, text
    assert "/json/reply/SMSSend" in cells and "/api/jsv/reply/SMSSend" in cells


def test_page_has_a_table_for_every_dto_with_every_field(page: str, parsed: _Page) -> None:
    headings = set(parsed.headings)
    cells = set(parsed.cells)
    for model in documented_models():
        assert f"{model.__name__} Parameters:" in headings, model.__name__
        for name in model.model_fields:
            assert name in cells, f"{model.__name__}.{name}"
    assert "BaseLicenseeEnforcedServiceModel Parameters:" in headings
    assert "List&lt;SMSContact&gt;" in page and "List<SMSContact>" not in page
    for spelling in ("string", "bool", "Guid", "int", "DateTime", "SMSContact", "List<RecipientStatus>"):
        assert spelling in cells, spelling


def test_every_dto_table_row_fills_its_description_column(page: str) -> None:
    rows = re.findall(r"<tr><td>([^<]*)</td><td>(?:body|form|path)</td><td>[^<]*</td><td>(?:Yes|No)</td>"
                      r"<td>([^<]*)</td></tr>", page)
    assert len(rows) >= sum(len(model.model_fields) for model in documented_models())
    assert [name for name, description in rows if not description.strip()] == []


def test_seed_tables_come_out_as_the_seed_shows_them(page: str) -> None:
    """The seed's tables, row for row: Name, Parameter, Data Type, Required."""
    seed = {
        "SMSSend": [("SMSModel", "body", "SMSModel"), ("CreateCommunicationReferencesImmediately", "body", "bool")],
        "SMSModel": [("From", "form", "SMSContact"), ("To", "form", "List<SMSContact>"),
                     ("MessageBody", "form", "string"), ("ReplyIsAllowed", "form", "bool"),
                     ("ReplyIsRequired", "form", "bool"), ("Notes", "form", "string"),
                     ("LinkedObjectId", "form", "Guid"), ("SuiteId", "form", "Guid")],
        "BaseLicenseeEnforcedServiceModel": [("LicenseeId", "form", "Guid")],
        "SMSContact": [("Name", "form", "string"), ("PhoneNumber", "form", "string"), ("ContactId", "form", "Guid")],
        "CommResponse": [("CommId", "form", "Guid"), ("Reference", "form", "string"), ("Status", "form", "bool"),
                         ("Message", "form", "string")],
    }
    added = {"SMSSend": [("SendAt", "body", "DateTime"), ("ValidUntil", "body", "DateTime")]}  # issue 16: after
    section = page[page.index('<section id="op-SMSSend">'):page.index('<section id="op-SMSStatus">')]
    for title, rows in seed.items():
        table = section[section.index(f"<h3 id=\"SMSSend-{title}\">"):]
        table = table[:table.index("</table>")]
        found = [tuple(html.unescape(cell) for cell in row[:3])
                 for row in re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(No|Yes)</td>", table)]
        assert found == rows + added.get(title, []), title


def without_offsets(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_offsets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_offsets(item) for item in value]
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


def samples(parsed: _Page, kind: str) -> list[str]:
    return [text for cls, text in parsed.pre if cls == f"sample-{kind}"]


def bodies(sample: str) -> tuple[str, str]:
    """The request body and the response body of one HTTP sample."""
    request, response = sample.split("HTTP/1.1 200 OK\n")
    return request.split("\n\n", 1)[1].rstrip("\n"), response.split("\n\n", 1)[1]


def test_jsv_request_sample_is_the_seeds_to_the_byte(parsed: _Page) -> None:
    request, response = bodies(samples(parsed, "jsv")[0])
    # The seed's request, then the fields added after it (issue 16), as ServiceStack samples a DateTime?.
    assert request == SEED_REQUEST.rstrip("\n")[:-2] + ",\n\tSendAt: 0001-01-01,\n\tValidUntil: 0001-01-01\n}"
    assert request == jsv_sample(SMSSend)
    assert response == SEED_RESPONSE == jsv_sample(CommResponse)
    assert samples(parsed, "jsv")[0].startswith("POST /api/sendmessage HTTP/1.1 \n")


def test_jsv_samples_parse_back_into_the_dtos(parsed: _Page) -> None:
    request, response = bodies(samples(parsed, "jsv")[0])
    parsed_request = SMSSend.model_validate(jsv.loads(request))
    assert parsed_request == example(SMSSend)
    assert parsed_request.SMSModel is not None and parsed_request.SMSModel.To
    assert CommResponse.model_validate(jsv.loads(response)) == example(CommResponse)
    compact = jsv.dumps(example(SMSSend).model_dump(mode="python", exclude_none=True))
    assert jsv.loads(compact) == jsv.loads(request)


def test_json_samples_parse_back_into_the_dtos(parsed: _Page, document: dict[str, Any]) -> None:
    request, response = bodies(samples(parsed, "json")[0])
    assert SMSSend.model_validate(json.loads(request)) == example(SMSSend)
    assert json.loads(request) == json.loads(json_sample(SMSSend))
    check(document, "SMSSend", json.loads(request))
    check(document, "CommResponse", json.loads(response))


def _sample_response_model(sample: str) -> type[WireModel]:
    """The DTO a sample other than SMSSend's answers, by its request line."""
    line = sample.split("\n", 1)[0]
    if line.startswith("POST /api/sms/"):  # SMSResend: the new communication
        return CommResponse
    if "/api/webhook/events" in line:
        return WebhookEventsResponse if line.startswith("GET ") else WebhookEventEntry
    if line.startswith("GET /api/sms/") and "/events " in line:  # SMSWebhookEvents: one communication's
        return WebhookEventsResponse
    if "/api/optouts" in line:
        return OptOutsResponse if line.startswith("GET ") else OptOut
    if "/api/webhook" in line:
        return WebhookRegistration if line.startswith("PUT ") else Webhook
    if line.startswith("DELETE /api/sms/"):
        return SMSCancelResponse
    if line.startswith("GET /api/sms "):
        return SMSLogResponse
    return SMSStatusResponse if "/api/sms/" in line else HealthResponse


def test_every_dto_operation_has_both_samples_and_they_parse(parsed: _Page, document: dict[str, Any]) -> None:
    json_samples, jsv_samples = samples(parsed, "json"), samples(parsed, "jsv")
    # SMSSend, SMSStatus, SMSStatusByReference, Health, OptOutList, OptOutAdd, OptOutRemove, WebhookSet,
    # WebhookShow, WebhookDelete, WebhookEventList, WebhookEventRetry, SMSResend, SMSCancel, SMSLog, SMSWebhookEvents
    assert len(json_samples) == len(jsv_samples) == 16
    for sample in json_samples[1:]:
        assert sample.startswith(("GET /api/", "POST /api/optouts", "DELETE /api/optouts/", "DELETE /api/sms/",
                                  "PUT /api/webhook", "DELETE /api/webhook", "POST /api/webhook/events/",
                                  "POST /api/sms/"))
        request, response = bodies(sample)
        if sample.startswith("POST /api/optouts"):
            assert OptOutRequest.model_validate(json.loads(request)) == example(OptOutRequest)
        if sample.startswith("PUT "):
            assert WebhookRequest.model_validate(json.loads(request)) == example(WebhookRequest)
        model = _sample_response_model(sample)
        assert model.model_validate(json.loads(response)) == example(model)
        check(document, model.__name__, json.loads(response))
    for sample in jsv_samples[1:]:
        _, response = bodies(sample)
        model = _sample_response_model(sample)
        # JSV writes a midnight as a bare date (ServiceStack's shortest form), so the UTC offset is lost.
        assert without_offsets(model.model_validate(jsv.loads(response)).model_dump()) == without_offsets(
            example(model).model_dump())
    error = json.loads(samples(parsed, "error")[0])
    check(document, "ErrorResponse", error)
    assert ErrorResponse.model_validate(error) == example(ErrorResponse)


def test_page_escapes_what_it_shows(page: str) -> None:
    assert "&quot;SMSModel&quot;" in page  # JSON samples are escaped
    assert "ServiceStack&#x27;s" in page
    assert not re.search(r"<(?!/?(html|head|meta|title|style|body|h[1-3]|p|nav|ul|li|a|section|table|tr|th|td|"
                         r"code|pre|em)\b)[A-Za-z]", page)


def test_host_in_the_samples_is_the_callers_and_escaped() -> None:
    page = metadata_html("sms.example.net")
    assert "Host: sms.example.net \n" in page
    assert "Host: a&lt;b \n" in metadata_html("a<b")


# --------------------------------------------------------------------------------------------------
# Completeness by construction: what the code gains, both documents gain, with no other edit


class Extra(models.WireModel):
    Tag: str | None = None
    ExtraId: models.Guid = None


class SMSSendPlus(SMSSend):
    Priority: int = 0
    Extras: list[Extra] | None = None


def test_a_new_field_and_model_appear_in_both_documents() -> None:
    plus = Operation("SMSSendPlus", "d", SEND.handler, errors=(400, 401, 500), request=SMSSendPlus,
                     response=CommResponse)
    routes = [*ROUTES, Route("send_plus", "api/send/plus", ("POST",), plus)]
    document = build_openapi(routes)
    validate(document, cls=OpenAPIV31SpecValidator)
    schemas = document["components"]["schemas"]
    assert {"Priority", "Extras"} <= set(schemas["SMSSendPlus"]["properties"])
    assert schemas["Extra"]["properties"]["ExtraId"]["anyOf"][0] == {"$ref": "#/components/schemas/Guid"}
    assert {int(code) for code in document["paths"]["/api/send/plus"]["post"]["responses"]} == {200, 400, 401, 500}
    page = build_page(routes)
    for text in ("SMSSendPlus Parameters:", "Extra Parameters:", "<td>Priority</td>", "<td>ExtraId</td>",
                 "List&lt;Extra&gt;", '<h2>SMSSendPlus</h2>'):
        assert text in page, text


def test_a_new_route_appears_in_both_documents() -> None:
    routes = (*ROUTES, Route("v2_send", "api/v2/sms/send", ("POST",), SEND, summary="v2"))
    assert build_openapi(routes)["paths"]["/api/v2/sms/send"]["post"]["operationId"] == "v2_send"
    assert "<code>/api/v2/sms/send</code>" in build_page(routes)


def test_an_undescribed_error_status_fails_loudly() -> None:
    teapot = Operation("Teapot", "d", SEND.handler, errors=(418, 500), response=CommResponse, authenticated=False)
    with pytest.raises(KeyError, match="error status 418"):
        build_openapi([Route("teapot", "api/teapot", ("GET",), teapot)])


def test_two_operations_with_one_name_fail_loudly() -> None:
    other = Operation(SEND.name, "another", SEND.handler, errors=(500,), response=CommResponse, authenticated=False)
    with pytest.raises(ValueError, match="both named 'SMSSend'"):
        build_openapi([*ROUTES, Route("other", "api/other", ("POST",), other)])


def test_the_message_log_documents_its_phone_number_filter(document: dict[str, Any], page: str) -> None:
    """GET /api/sms takes PhoneNumber (issue 17: the index by recipient): both documents say what it filters."""
    refs = [each["$ref"] for each in document["paths"]["/api/sms"]["get"]["parameters"]]
    assert "#/components/parameters/query_PhoneNumber" in refs
    described = document["components"]["parameters"]["query_PhoneNumber"]["description"]
    assert "sent to this recipient" in described and "not supported" not in described.lower()
    assert "Only communications sent to this recipient" in page
