"""The service's self-description: the ``/metadata`` HTML page and the ``/openapi.json`` document.

Both are generated from the route table (``gateway.routes.ROUTES``) and the pydantic DTOs, never
from hand-kept lists of fields, so a route or field added to the code shows up in both with no
second edit. What the code cannot say (an operation's description, which errors it answers, the
types of path parameters) sits in the small tables below; a route whose operation or path
parameter is missing from them fails the build, and the tests, instead of silently vanishing.

The module only reads ``gateway.models``, ``gateway.routes`` and ``gateway.jsv``: it needs no
storage, settings or Functions runtime, so the documents can be built anywhere (tests, CLI, CI).
"""

from __future__ import annotations

import copy
import datetime as _dt
import enum
import html
import json
import re
import types
import typing
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo

from gateway import jsv
from gateway.models import EMPTY_GUID, CommResponse, SMSSend, SMSStatusResponse, WireModel
from gateway.routes import FORMAT_SUFFIX, ROUTES, Route

__all__ = [
    "API_VERSION",
    "GUID_PATTERN",
    "OPERATIONS",
    "PATH_PARAMETERS",
    "TITLE",
    "ErrorResponse",
    "HealthResponse",
    "Operation",
    "ResponseError",
    "ResponseStatus",
    "dotnet_type",
    "example",
    "json_sample",
    "jsv_sample",
    "metadata_html",
    "models_reachable",
    "openapi_document",
    "openapi_json",
    "openapi_path",
    "route_display_paths",
]

TITLE = "SMS Gateway API"
API_VERSION = "0.1.0"  # the project's version (pyproject.toml); a test keeps the two equal
FORMATS = ("json", "jsv")
DEFAULT_HOST = "your-function-app.azurewebsites.net"

_SCHEMA_REF = "#/components/schemas/{model}"
_GUID_REF = "#/components/schemas/Guid"
_HEX = "[0-9A-Fa-f]"
_DASHED = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
GUID_PATTERN = rf"^(?:{_HEX}{{32}}|{_DASHED}|\{{{_DASHED}\}}|\({_DASHED}\))$"
"""N, D, B or P form. Not ``format: uuid``: JSON Schema's uuid format is the dashed form only, so a
validator that asserts formats would reject the N form every response carries."""

JSV_TYPES = ("application/jsv",)  # text/jsv is accepted too; the descriptions say so
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CONTENT_TYPE_NOTE = (
    "To override the Content-type in your clients, use the HTTP Accept Header, append the .jsv suffix or ?format=jsv"
)
SAMPLE_NOTE = (
    "The following are sample HTTP requests and responses. "
    "The placeholders shown need to be replaced with actual values."
)


# --------------------------------------------------------------------------------------------------
# Shapes the service writes that are not request DTOs: documented as models so that the schema,
# the tables and the samples come from one place like every other DTO.


class HealthResponse(WireModel):
    """What GET /api/health answers with 200 (``gateway.http.health`` writes it as a literal dict)."""

    Status: Literal["Healthy"] = Field("Healthy", description="Always Healthy: an unhealthy gateway answers 503")


class ResponseError(WireModel):
    """One offending field of a request, as ServiceStack's validation feature reports it."""

    ErrorCode: str = Field(description="What is wrong, e.g. NotEmpty, SerializationException")
    FieldName: str = Field(description="The field's path in the request, e.g. SMSModel.To[1].PhoneNumber")
    Message: str = Field(description="What is wrong, for people")


class ResponseStatus(WireModel):
    """ServiceStack's error description; for validation errors it repeats the first field error."""

    ErrorCode: str = Field(description="e.g. Unauthorized, Forbidden, NotFound, NotEmpty, ServiceUnavailable")
    Message: str = Field(description="What went wrong, for people")
    Errors: list[ResponseError] = Field(description="One entry per offending field; empty for other errors")
    Meta: dict[str, str] | None = Field(None, description="Extra facts, e.g. the CorrelationId of a 500 in the logs")


_ResponseStatus = ResponseStatus  # the field below shares the type's name, as in ServiceStack


class ErrorResponse(WireModel):
    """The body of every error response (4xx and 5xx)."""

    ResponseStatus: _ResponseStatus = Field(description="What went wrong")


# --------------------------------------------------------------------------------------------------
# What the route table and the models cannot say


@dataclass(frozen=True)
class Operation:
    name: str
    description: str
    request: type[BaseModel] | None  # the body DTO of a POST
    response: type[BaseModel] | None  # None: not a DTO (HTML, the OpenAPI document)
    response_media: Literal["dto", "html", "openapi"]
    errors: tuple[int, ...]  # besides 401 (authenticated routes), 405 and 500 (every route)


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("SMSSend", "Saves the specified SMS and sends it for background processing",
                  SMSSend, CommResponse, "dto", (400, 403, 406, 413, 415, 503)),
        Operation("SMSStatus",
                  "A communication's status, its counts and every recipient's status, provider message id and "
                  "error, found by the CommId SMSSend returned. Another licensee's communication answers 404.",
                  None, SMSStatusResponse, "dto", (404, 406, 503)),
        Operation("SMSStatusByReference",
                  "The same as SMSStatus, found by the short Reference SMSSend returned.",
                  None, SMSStatusResponse, "dto", (404, 406, 503)),
        Operation("Health", "Answers 200 when storage answers and 503 when it does not; needs no API key.",
                  None, HealthResponse, "dto", (406, 503)),
        Operation("Metadata", "This page: every operation, route and DTO, for people.", None, None, "html", ()),
        Operation("OpenApi", "An OpenAPI 3.1 description of every route, for code generators and API tools.",
                  None, None, "openapi", ()),
    )
}


@dataclass(frozen=True)
class PathParameter:
    dotnet_type: str
    schema: Mapping[str, Any]
    description: str


PATH_PARAMETERS: dict[str, PathParameter] = {
    "commId": PathParameter("Guid", {"$ref": _GUID_REF}, "The CommId SMSSend returned, in N, D, B or P form"),
    "reference": PathParameter("string", {"type": "string"}, "The Reference SMSSend returned (case-insensitive)"),
    "format": PathParameter("string", {"type": "string", "enum": list(FORMATS)},
                            "The response format (and, on the reply routes, the body's format): json or jsv"),
}

# ServiceStack's SMSModel inherits LicenseeId from a base class and its page shows that class's own
# table; our model is flat (its field order is the wire order), so the page regroups those fields.
BASE_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "SMSModel": ("BaseLicenseeEnforcedServiceModel", ("LicenseeId",)),
}

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request is malformed or invalid: every offending field is listed in Errors",
    401: "No API key, or an unknown or revoked one",
    403: "The API key may not act for the licensee the request names",
    404: "No such resource for this licensee",
    405: "The path exists but does not answer this method",
    406: "None of the formats the Accept header names can be produced (json and jsv can)",
    413: "The request body is larger than SMS_MAX_REQUEST_BYTES",
    415: "The request's Content-Type is not one this route reads",
    500: "An unexpected error; Meta.CorrelationId finds it in the logs",
    503: "Storage is not answering; try again shortly (a send that answers 503 was not accepted)",
}

_SIMPLE_DOTNET_TYPES: dict[Any, str] = {
    str: "string",
    bool: "bool",
    int: "int",
    float: "double",
    Decimal: "decimal",
    uuid.UUID: "Guid",
    _dt.datetime: "DateTime",
    _dt.date: "DateTime",
    bytes: "byte[]",
}


# --------------------------------------------------------------------------------------------------
# Routes


def _strip_constraints(path: str) -> str:
    """``{format:alpha}`` -> ``{format}``: the Functions route constraint means nothing to clients."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def _documented_routes() -> Iterator[Route]:
    """Every route but a catch-all (``{*path}``), which serves 404s, not an operation."""
    return (route for route in ROUTES if "{*" not in route.path)


def openapi_path(route: Route) -> str:
    """The route's template as an OpenAPI path: leading slash, constraints stripped."""
    return "/" + _strip_constraints(route.path)


def route_display_paths(route: Route) -> list[str]:
    """How the page shows a route: ``/api/send.json|.jsv`` for a suffix, one line per reply format."""
    path = openapi_path(route)
    suffix = "." + _strip_constraints(FORMAT_SUFFIX)
    if path.endswith(suffix):
        return [path.removesuffix(suffix) + "|".join(f".{fmt}" for fmt in FORMATS)]
    if "{format}" in path:
        return [path.replace("{format}", fmt) for fmt in FORMATS]
    return [path]


def _path_parameter_names(route: Route) -> list[str]:
    return re.findall(r"\{(\w+)\}", _strip_constraints(route.path))


def _operation(route: Route) -> Operation:
    try:
        return OPERATIONS[route.operation]
    except KeyError:
        raise KeyError(f"route {route.name!r}: operation {route.operation!r} is not described in OPERATIONS") from None


def _path_parameter(route: Route, name: str) -> PathParameter:
    try:
        return PATH_PARAMETERS[name]
    except KeyError:
        raise KeyError(f"route {route.name!r}: path parameter {name!r} is not described in PATH_PARAMETERS") from None


def _error_codes(route: Route) -> list[int]:
    codes = set(_operation(route).errors) | {405, 500}
    if route.authenticated:
        codes.add(401)
    return sorted(codes)


# --------------------------------------------------------------------------------------------------
# Walking the models


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def dotnet_type(annotation: Any) -> str:
    """The type as the .NET DTO spells it (``List<SMSContact>``, ``Guid``), for the page's tables."""
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return dotnet_type(args[0])
    if origin in (list, tuple, set, frozenset):
        return f"List<{dotnet_type(args[0])}>"
    if origin is dict:
        return f"Dictionary<{dotnet_type(args[0])},{dotnet_type(args[1])}>"
    if origin is Literal:
        return dotnet_type(type(args[0]))
    if annotation in _SIMPLE_DOTNET_TYPES:
        return _SIMPLE_DOTNET_TYPES[annotation]
    if _is_model(annotation) or (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        return annotation.__name__
    raise TypeError(f"no .NET spelling for {annotation!r}; teach gateway.metadata.dotnet_type")


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    annotation = _unwrap_optional(annotation)
    if _is_model(annotation):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def models_reachable(root: type[BaseModel]) -> list[type[BaseModel]]:
    """``root`` and every model its fields use, depth first in field order (the seed page's order)."""
    seen: list[type[BaseModel]] = []

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for info in model.model_fields.values():
            for nested in _models_in(info.annotation):
                visit(nested)

    visit(root)
    return seen


def _example_value(annotation: Any, stack: tuple[type[BaseModel], ...]) -> Any:
    """A placeholder like ServiceStack's: ``String``, ``False``, ``0``, the empty Guid, one list item.

    Times are UTC, as the gateway writes them; a naive one would not be an RFC 3339 ``date-time``.
    """
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _example_value(args[0], stack)
    if origin in (list, tuple, set, frozenset):
        item = _example_value(args[0], stack)
        return [] if item is None else [item]
    if origin is dict:
        return {"String": "String"}
    if origin is Literal:
        return args[0]
    if _is_model(annotation):
        return None if annotation in stack else example(annotation, stack)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    placeholders: dict[Any, Any] = {
        str: "String", bool: False, int: 0, float: 0.0, Decimal: Decimal(0), uuid.UUID: EMPTY_GUID,
        _dt.datetime: _dt.datetime(1, 1, 1, tzinfo=_dt.UTC), _dt.date: _dt.date(1, 1, 1), bytes: b"",
    }
    if annotation in placeholders:
        return placeholders[annotation]
    raise TypeError(f"no placeholder for {annotation!r}; teach gateway.metadata._example_value")


def example(model: type[BaseModel], _stack: tuple[type[BaseModel], ...] = ()) -> Any:
    """An instance of ``model`` with every field set to a placeholder, for samples and examples."""
    values = {
        name: _example_value(info.annotation, (*_stack, model)) for name, info in model.model_fields.items()
    }
    return model.model_validate(values)


def json_sample(model: type[BaseModel]) -> str:
    """The example as the gateway writes it in JSON (PascalCase, N-form Guids), indented."""
    return json.dumps(example(model).model_dump(mode="json", exclude_none=True), indent=2, ensure_ascii=False)


def jsv_sample(model: type[BaseModel]) -> str:
    """The example in JSV, laid out like the seed page's sample (tabs, one property a line)."""
    return _pretty_jsv(example(model).model_dump(mode="python", exclude_none=True), 0)


def _pretty_jsv(value: Any, depth: int) -> str:
    """Indent JSV the way ServiceStack's metadata page does; every token is written by ``jsv.dumps``."""
    inner = "\t" * (depth + 1)
    if isinstance(value, Mapping):
        items = [(key, item) for key, item in value.items() if item is not None]
        if not items:
            return "{}"
        lines = []
        for key, item in items:
            text = _pretty_jsv(item, depth + 1)
            separator = f" \n{inner}" if text[:1] in "{[" and text not in ("{}", "[]") else " "
            lines.append(f"{inner}{jsv.dumps(str(key))}:{separator}{text}")
        return "{\n" + ",\n".join(lines) + "\n" + "\t" * depth + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        lines = [inner + ("" if item is None else _pretty_jsv(item, depth + 1)) for item in value]
        return "[\n" + ",\n".join(lines) + "\n" + "\t" * depth + "]"
    return jsv.dumps(value)


# --------------------------------------------------------------------------------------------------
# OpenAPI


def _component_schemas() -> dict[str, Any]:
    """Every DTO's JSON Schema with ``$defs`` hoisted, Guids pointing at the ``Guid`` schema."""
    roots: list[type[BaseModel]] = [ErrorResponse]
    for op in OPERATIONS.values():
        roots.extend(model for model in (op.request, op.response) if model is not None)
    schemas: dict[str, Any] = {}
    for root in roots:
        schema = root.model_json_schema(ref_template=_SCHEMA_REF, mode="validation")
        for name, definition in {**schema.pop("$defs", {}), root.__name__: schema}.items():
            definition = _tidy(definition)
            if schemas.setdefault(name, definition) != definition:
                raise ValueError(f"two different models are both named {name!r}")
    schemas["Guid"] = {
        "type": "string",
        "pattern": GUID_PATTERN,
        "description": (
            "A .NET Guid. Written in N form, 32 hex digits without dashes (3f2504e04f8911d39a0c0305e82c3301); "
            "read in N, D (dashed), B ({dashed}) or P ((dashed)) form. The empty Guid (32 zeros) means none, "
            "and so does an empty string on input."
        ),
        "examples": ["3f2504e04f8911d39a0c0305e82c3301"],
    }
    return dict(sorted(schemas.items()))


def _tidy(schema: Any) -> Any:
    """Guid fields -> ``$ref Guid``; drop pydantic's per-property titles (``Phonenumber``), which mislead."""
    if isinstance(schema, list):
        return [_tidy(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "string" and schema.get("format") == "uuid":
        rest = {key: value for key, value in schema.items() if key not in ("type", "format")}
        return {"$ref": _GUID_REF, **_tidy(rest)}
    tidied = {key: _tidy(value) for key, value in schema.items()}
    if isinstance(tidied.get("properties"), dict):
        tidied["properties"] = {
            name: {key: value for key, value in prop.items() if key != "title"}
            for name, prop in tidied["properties"].items()
        }
    return tidied


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _SCHEMA_REF.format(model=name)}


def _jsv_media(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "schema": {
            "type": "string",
            "description": f"The {model.__name__} DTO written as JSV (text/jsv is accepted as this type's alias); "
                           f"its fields are those of the {model.__name__} schema",
        },
        "example": jsv.dumps(example(model).model_dump(mode="python", exclude_none=True)),
    }


def _dto_content(model: type[BaseModel]) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": _ref(model.__name__), "example": example(model).to_wire()},
    }
    content.update({media: _jsv_media(model) for media in JSV_TYPES})
    return content


def _form_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Form fields hold scalars as text and complex values (DTOs, lists) as JSV, as ServiceStack reads them."""
    sample = example(model).model_dump(mode="python", exclude_none=True)
    plain = _tidy(model.model_json_schema(ref_template=_SCHEMA_REF, mode="validation"))["properties"]
    properties: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = _unwrap_optional(info.annotation)
        if _is_model(annotation) or typing.get_origin(annotation) in (list, tuple, set, frozenset, dict):
            properties[name] = {
                "type": "string",
                "description": f"{dotnet_type(info.annotation)} written as JSV",
                "examples": [jsv.dumps(sample.get(name))],
            }
        else:
            properties[name] = plain[name]
    return {"type": "object", "properties": properties}


def _request_body(model: type[BaseModel], route: Route) -> dict[str, Any]:
    content = _dto_content(model)
    for media in FORM_TYPES:
        content[media] = {"schema": _form_schema(model)}
    note = (
        " On this route the body is read in the format the path names, whatever the Content-Type, unless it is a form."
        if route.predefined else ""
    )
    return {
        "required": True,
        "description": f"The {model.__name__} request: JSON, JSV, or form fields (complex fields as JSV).{note}",
        "content": content,
    }


def _success_response(route: Route) -> dict[str, Any]:
    op = _operation(route)
    if op.response_media == "html":
        return {"description": "The metadata page", "content": {"text/html": {"schema": {"type": "string"}}}}
    if op.response_media == "openapi":
        return {
            "description": "This OpenAPI 3.1 document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    assert op.response is not None
    return {"description": op.response.__name__, "content": _dto_content(op.response)}


def _error_responses() -> dict[str, Any]:
    error_example = {
        "ResponseStatus": {
            "ErrorCode": "NotEmpty", "Message": "'MessageBody' must not be empty.",
            "Errors": [{"ErrorCode": "NotEmpty", "FieldName": "SMSModel.MessageBody",
                        "Message": "'MessageBody' must not be empty."}],
        }
    }
    content = {
        "application/json": {"schema": _ref("ErrorResponse"), "example": error_example},
        **{media: {"schema": {"type": "string", "description": "ErrorResponse written as JSV"}} for media in JSV_TYPES},
    }
    headers: dict[int, dict[str, Any]] = {
        401: {"WWW-Authenticate": {"description": "The schemes the gateway accepts: Bearer and Basic",
                                   "required": True, "schema": {"type": "string"}}},
        405: {"Allow": {"description": "The methods this path answers", "schema": {"type": "string"}}},
        503: {"Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}},
    }
    responses = {}
    for code, description in ERROR_DESCRIPTIONS.items():
        response: dict[str, Any] = {"description": description, "content": content}
        if code in headers:
            response["headers"] = headers[code]
        responses[str(code)] = response
    return responses


def _parameters() -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "format": {
            "name": "format", "in": "query", "required": False,
            "description": "The response format; wins over a .json/.jsv suffix and the Accept header",
            "schema": {"type": "string", "enum": list(FORMATS)},
        },
        "jsconfig": {
            "name": "jsconfig", "in": "query", "required": False,
            "description": "ServiceStack's per-request JSON settings: tc:cc for camelCase names, tc:pc for "
                           "PascalCase (the default), or EmitCamelCaseNames:true",
            "schema": {"type": "string", "examples": ["tc:cc", "tc:pc", "EmitCamelCaseNames:true"]},
        },
    }
    for name, parameter in PATH_PARAMETERS.items():
        parameters[f"path_{name}"] = {
            "name": name, "in": "path", "required": True, "description": parameter.description,
            "schema": dict(parameter.schema),
        }
    return parameters


def _operation_object(route: Route) -> dict[str, Any]:
    op = _operation(route)
    for name in _path_parameter_names(route):
        _path_parameter(route, name)  # fail loudly on an undescribed one
    parameters = [{"$ref": f"#/components/parameters/path_{name}"} for name in _path_parameter_names(route)]
    parameters += [{"$ref": "#/components/parameters/format"}, {"$ref": "#/components/parameters/jsconfig"}]
    operation: dict[str, Any] = {
        "operationId": route.name,
        "tags": [op.name],
        "summary": route.summary or op.description,
        "description": op.description,
        "parameters": parameters,
    }
    if op.request is not None:
        operation["requestBody"] = _request_body(op.request, route)
    operation["responses"] = {"200": _success_response(route)} | {
        str(code): {"$ref": f"#/components/responses/{code}"} for code in _error_codes(route)
    }
    operation["security"] = [{"bearerAuth": []}, {"basicAuth": []}, {"apiKeyHeader": []}] if route.authenticated else []
    return operation


@lru_cache(maxsize=16)
def _build_openapi(server_url: str | None) -> str:
    paths: dict[str, dict[str, Any]] = {}
    for route in _documented_routes():
        item = paths.setdefault(openapi_path(route), {})
        for method in route.methods:
            if method.lower() in item:
                raise ValueError(f"two routes answer {method} {openapi_path(route)}")
            item[method.lower()] = _operation_object(route)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": API_VERSION,
            "summary": "A drop-in replacement for the ServiceStack SMSSend service",
            "description": (
                "Send SMS and follow their delivery. Requests and responses are the ServiceStack service's DTOs, "
                "in JSON (PascalCase names, N-form Guids, null properties omitted) or JSV. "
                + CONTENT_TYPE_NOTE + ". Errors answer ServiceStack's ResponseStatus shape."
            ),
        },
        "tags": [{"name": op.name, "description": op.description} for op in OPERATIONS.values()],
        "paths": paths,
        "components": {
            "schemas": _component_schemas(),
            "parameters": _parameters(),
            "responses": _error_responses(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
                "basicAuth": {"type": "http", "scheme": "basic",
                              "description": "HTTP Basic with the API key as user name and an empty password"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                                 "description": "X-Api-Key: <API key>"},
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return json.dumps(document, ensure_ascii=False, indent=2)


def openapi_json(server_url: str | None = None) -> str:
    """The OpenAPI document as the text ``/openapi.json`` serves; built once per server URL."""
    return _build_openapi(server_url or None)


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route; a fresh copy, so callers may change it freely."""
    return copy.deepcopy(_openapi_dict(server_url or None))


@lru_cache(maxsize=16)
def _openapi_dict(server_url: str | None) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_build_openapi(server_url))
    return result


# --------------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;
color:#222;line-height:1.4}
h1{border-bottom:2px solid #36c;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0 1.2em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f2f4f8}code,pre{font-family:ui-monospace,Consolas,monospace}
pre{background:#f6f8fa;border:1px solid #ddd;padding:.8em;overflow:auto;tab-size:4}
.auth{color:#a33;font-weight:600}.open{color:#363;font-weight:600}.method{font-weight:700}
nav ul{columns:2}
""".strip()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _dto_table(section: str, title: str, rows: list[tuple[str, str, str, bool, str]]) -> str:
    body = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(where)}</td><td>{_e(kind)}</td><td>{'Yes' if required else 'No'}</td>"
        f"<td>{_e(description)}</td></tr>"
        for name, where, kind, required, description in rows
    )
    return (
        f'<h3 id="{_e(section)}-{_e(title)}">{_e(title)} Parameters:</h3>\n<table class="dto">'
        "<tr><th>Name</th><th>Parameter</th><th>Data Type</th><th>Required</th><th>Description</th></tr>"
        f"{body}</table>\n"
    )


def _model_tables(section: str, model: type[BaseModel], where: str) -> str:
    """The model's table, then its base class's (``BASE_TABLES``), as the seed page lays them out."""
    base_name, base_fields = BASE_TABLES.get(model.__name__, ("", ()))
    missing = [name for name in base_fields if name not in model.model_fields]
    if missing:
        raise KeyError(f"BASE_TABLES names fields {model.__name__} does not have: {missing}")

    def row(name: str, info: FieldInfo) -> tuple[str, str, str, bool, str]:
        return name, where, dotnet_type(info.annotation), info.is_required(), info.description or ""

    own = [row(name, info) for name, info in model.model_fields.items() if name not in base_fields]
    out = _dto_table(section, model.__name__, own)
    if base_fields:
        out += _dto_table(section, base_name, [row(name, model.model_fields[name]) for name in base_fields])
    return out


def _http_sample(route: Route, op: Operation, host: str, fmt: str) -> str:
    media = {"json": "application/json", "jsv": "text/jsv"}[fmt]
    render = json_sample if fmt == "json" else jsv_sample
    method = route.methods[0]
    lines = [f"{method} {route_display_paths(route)[0]} HTTP/1.1 ", f"Host: {host} ", f"Accept: {media}"]
    if op.request is not None:
        lines += [f"Content-Type: {media}", "Content-Length: length", "", render(op.request)]
    else:
        lines.append("")
    assert op.response is not None
    lines += ["HTTP/1.1 200 OK", f"Content-Type: {media}", "Content-Length: length", "", render(op.response)]
    return "\n".join(lines)


def _operation_section(name: str, routes: list[Route], host: str) -> str:
    op = OPERATIONS[name]
    authenticated = any(route.authenticated for route in routes)
    out = [f'<section id="op-{_e(name)}">\n<h2>{_e(name)}</h2>\n<p class="description">{_e(op.description)}</p>\n']
    out.append('<p class="auth">Requires Authentication</p>\n' if authenticated
               else '<p class="open">No authentication required</p>\n')
    out.append("<p>The following routes are available for this service:</p>\n<table class=\"routes\">"
               "<tr><th>Method</th><th>Route</th><th>Description</th></tr>")
    for route in routes:
        for path in route_display_paths(route):
            out.append(f'<tr><td class="method">{_e(", ".join(route.methods))}</td><td><code>{_e(path)}</code></td>'
                       f"<td>{_e(route.summary)}</td></tr>")
    out.append("</table>\n")
    path_names = list(dict.fromkeys(name for route in routes for name in _path_parameter_names(route)))
    if op.request is None and path_names and op.response_media == "dto":
        rows = []
        for param in path_names:
            spec = _path_parameter(routes[0], param)
            rows.append((param, "path", spec.dotnet_type, True, spec.description))
        out.append(_dto_table(name, name, rows))
    if op.request is not None:
        for index, model in enumerate(models_reachable(op.request)):
            out.append(_model_tables(name, model, "body" if index == 0 else "form"))
    if op.response is not None:
        for model in models_reachable(op.response):
            out.append(_model_tables(name, model, "form"))
        out.append(f"<p>{_e(CONTENT_TYPE_NOTE)}</p>\n")
        for fmt, label in (("json", "HTTP + JSON"), ("jsv", "HTTP + JSV")):
            out.append(f'<h3>{_e(label)}</h3>\n<p>{_e(SAMPLE_NOTE)}</p>\n'
                       f'<pre class="sample-{fmt}">{_e(_http_sample(routes[0], op, host, fmt))}</pre>\n')
    out.append("</section>\n")
    return "".join(out)


def _auth_section() -> str:
    return (
        '<section id="authentication">\n<h2>Authentication</h2>\n'
        "<p>Operations marked <em>Requires Authentication</em> need an API key, sent in any one of three ways:</p>\n"
        "<ul><li><code>Authorization: Bearer &lt;key&gt;</code></li>"
        "<li>HTTP Basic, with the key as user name and an empty password "
        "(<code>Authorization: Basic base64(&lt;key&gt;:)</code>)</li>"
        "<li><code>X-Api-Key: &lt;key&gt;</code></li></ul>\n"
        "<p>A missing, unknown or revoked key answers 401 with a <code>WWW-Authenticate</code> header. "
        "A key acts for one licensee: a request naming another licensee answers 403.</p>\n</section>\n"
    )


def _errors_section() -> str:
    codes = "".join(f"<tr><td>{code}</td><td>{_e(text)}</td></tr>" for code, text in ERROR_DESCRIPTIONS.items())
    tables = "".join(_model_tables("errors", model, "form") for model in models_reachable(ErrorResponse))
    sample = _e(json_sample(ErrorResponse))
    return (
        '<section id="errors">\n<h2>Errors</h2>\n<p>Every error answers ServiceStack\'s ResponseStatus shape, '
        "in the response format the request asked for.</p>\n"
        f"<table><tr><th>Status</th><th>When</th></tr>{codes}</table>\n{tables}"
        f'<pre class="sample-error">{sample}</pre>\n</section>\n'
    )


@lru_cache(maxsize=16)
def metadata_html(host: str | None = None) -> str:
    """The ``/metadata`` page: operations, routes, DTO tables and samples, like ServiceStack's."""
    host = host or DEFAULT_HOST
    by_operation: dict[str, list[Route]] = {}
    for route in _documented_routes():
        _operation(route)
        by_operation.setdefault(route.operation, []).append(route)
    names = [name for name in OPERATIONS if name in by_operation]
    nav = "".join(f'<li><a href="#op-{_e(name)}">{_e(name)}</a></li>' for name in names)
    sections = "".join(_operation_section(name, by_operation[name], host) for name in names)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(TITLE)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        f"<h1>{_e(TITLE)}</h1>\n<p>Version {_e(API_VERSION)}. The same description for machines: "
        '<a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>\n'
        f"<nav><h2>Operations</h2><ul>{nav}</ul></nav>\n"
        f"{_auth_section()}{sections}{_errors_section()}</body>\n</html>\n"
    )
