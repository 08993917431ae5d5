"""The OpenAPI 3.1 document ``/openapi.json`` serves, generated from the route table and the DTOs.

Each operation's responses are exactly the error statuses its table entry declares (which
``gateway.routes`` checks against what the adapter does), so the document promises no answer
the gateway cannot give.
"""

from __future__ import annotations

import json
import typing
import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from gateway import jsv
from gateway.metadata.about import API_VERSION, CONTENT_TYPE_NOTE, ERROR_DESCRIPTIONS, TITLE
from gateway.metadata.dtos import dotnet_type, example, is_model, unwrap_optional
from gateway.metadata.table import openapi_path, routes_by_operation
from gateway.models import GUID_PATTERN, ErrorResponse
from gateway.routes import DOCUMENTED_ROUTES, FORMAT, Operation, PathParameter, RequestParameter, Route

_SCHEMA_REF = "#/components/schemas/{model}"
_GUID_REF = "#/components/schemas/Guid"

JSV_TYPES = ("application/jsv",)  # text/jsv is accepted too; the descriptions say so
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
SECURITY = [{"bearerAuth": []}, {"basicAuth": []}, {"apiKeyHeader": []}]
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again", "required": True,
                                 "schema": {"type": "integer"}}}
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "The schemes the gateway accepts: Bearer and Basic",
                               "required": True, "schema": {"type": "string"}}},
    409: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


def openapi_json(server_url: str | None = None) -> str:
    """The document as the text ``/openapi.json`` serves; built once per server URL."""
    return _openapi_json(server_url or None)


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The document for the gateway's route table; a fresh copy, so callers may change it freely."""
    result: dict[str, Any] = json.loads(openapi_json(server_url))
    return result


@lru_cache(maxsize=16)
def _openapi_json(server_url: str | None) -> str:
    return json.dumps(build_openapi(DOCUMENTED_ROUTES, server_url), ensure_ascii=False, indent=2)


def build_openapi(routes: Sequence[Route], server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routes``."""
    operations = list(routes_by_operation(routes))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
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
                "in JSON (N-form Guids, null properties omitted) or JSV, answered in the request's casing: "
                "camelCase for a camelCase JSON body, PascalCase otherwise (unless the host sets SMS_JSON_CASING). "
                + CONTENT_TYPE_NOTE + ". Errors answer ServiceStack's ResponseStatus shape."
            ),
        },
        "tags": [{"name": op.name, "description": op.description} for op in operations],
        "paths": paths,
        "components": {
            "schemas": _component_schemas(operations),
            "parameters": _parameters(routes),
            "responses": _error_responses(sorted({code for op in operations for code in op.errors})),
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
    return document


def _operation_object(route: Route) -> dict[str, Any]:
    op = route.operation
    parameters = [{"$ref": f"#/components/parameters/path_{parameter.name}"} for parameter in route.parameters]
    parameters += [{"$ref": f"#/components/parameters/{_parameter_key(parameter)}"} for parameter in op.parameters]
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
    operation["responses"] = {str(op.success): _success_response(route)} | {
        str(code): {"$ref": f"#/components/responses/{code}"} for code in sorted(op.errors)
    }
    operation["security"] = SECURITY if op.authenticated else []
    return operation


# --------------------------------------------------------------------------------------------------
# Schemas


def _component_schemas(operations: list[Operation]) -> dict[str, Any]:
    """Every DTO's JSON Schema with ``$defs`` hoisted, Guids pointing at the ``Guid`` schema."""
    roots: list[type[BaseModel]] = [ErrorResponse]
    for op in operations:
        roots.extend(model for model in (op.request, op.response) if model is not None)
    schemas: dict[str, Any] = {}
    for root in roots:
        schema = root.model_json_schema(ref_template=_SCHEMA_REF, mode="validation")
        for name, definition in {**schema.pop("$defs", {}), root.__name__: schema}.items():
            definition = _tidy(definition)
            if schemas.setdefault(name, definition) != definition:
                raise ValueError(f"two different models are both named {name!r}")
    # The pattern parse_guid reads, not ``format: uuid``: JSON Schema's uuid format is the dashed form
    # only, so a validator that asserts formats would reject the N form every response carries.
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


# --------------------------------------------------------------------------------------------------
# Bodies and responses


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
        annotation = unwrap_optional(info.annotation)
        if is_model(annotation) or typing.get_origin(annotation) in (list, tuple, set, frozenset, dict):
            properties[name] = {
                "type": "string",
                "description": f"{dotnet_type(info.annotation)} written as JSV. {info.description or ''}".strip(),
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
    op = route.operation
    if op.success == 204:
        return {"description": "Done; no content"}
    if op.response is None:
        return {"description": op.description, "content": {str(op.media_type): {"schema": _document_schema(route)}}}
    return {"description": op.response.__name__, "content": _dto_content(op.response)}


def _document_schema(route: Route) -> dict[str, Any]:
    """What a Document answer is, as far as a schema can say: an HTML page is a string, JSON an object."""
    return {"type": "object"} if route.operation.media_type == "application/json" else {"type": "string"}


def _error_responses(codes: list[int]) -> dict[str, Any]:
    error_example = {
        "ResponseStatus": {
            "ErrorCode": "NotEmpty", "Message": "'MessageBody' must not be empty.",
            "Errors": [{"ErrorCode": "NotEmpty", "FieldName": "SMSModel.MessageBody",
                        "Message": "'MessageBody' must not be empty."}],
        }
    }
    content = {
        "application/json": {"schema": _ref(ErrorResponse.__name__), "example": error_example},
        **{media: {"schema": {"type": "string", "description": "ErrorResponse written as JSV"}} for media in JSV_TYPES},
    }
    responses = {}
    for code in codes:
        if code not in ERROR_DESCRIPTIONS:
            raise KeyError(f"error status {code} is not described in ERROR_DESCRIPTIONS")
        response: dict[str, Any] = {"description": ERROR_DESCRIPTIONS[code], "content": content}
        if code in ERROR_HEADERS:
            response["headers"] = ERROR_HEADERS[code]
        responses[str(code)] = response
    return responses


# --------------------------------------------------------------------------------------------------
# Parameters


def _parameters(routes: Sequence[Route]) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "format": {
            "name": "format", "in": "query", "required": False,
            "description": "The response format; wins over a .json/.jsv suffix and the Accept header",
            "schema": {"type": "string", "enum": list(FORMAT.choices)},
        },
        "jsconfig": {
            "name": "jsconfig", "in": "query", "required": False,
            "description": "ServiceStack's per-request JSON settings: tc:cc for camelCase names, tc:pc for "
                           "PascalCase, or EmitCamelCaseNames:true; wins over the request's own casing",
            "schema": {"type": "string", "examples": ["tc:cc", "tc:pc", "EmitCamelCaseNames:true"]},
        },
    }
    seen: dict[str, PathParameter] = {}
    for route in routes:
        for parameter in route.parameters:
            if seen.setdefault(parameter.name, parameter) != parameter:
                raise ValueError(f"two different path parameters are both named {parameter.name!r}")
    for name, parameter in sorted(seen.items()):
        parameters[f"path_{name}"] = {
            "name": name, "in": "path", "required": True, "description": parameter.description,
            "schema": _parameter_schema(parameter),
        }
    for route in routes:
        for request_parameter in route.operation.parameters:
            parameters[_parameter_key(request_parameter)] = {
                "name": request_parameter.name, "in": request_parameter.location, "required": False,
                "description": request_parameter.description, "schema": {"type": "string", "minLength": 1},
            }
    return parameters


def _parameter_key(parameter: RequestParameter) -> str:
    return f"{parameter.location}_{parameter.name}"


def _parameter_schema(parameter: PathParameter) -> dict[str, Any]:
    if parameter.type is uuid.UUID:
        return {"$ref": _GUID_REF}
    if parameter.type is not str:
        raise TypeError(f"path parameter {parameter.name!r}: no schema for {parameter.type!r}; teach "
                        "gateway.metadata.openapi._parameter_schema")
    schema: dict[str, Any] = {"type": "string"}
    if parameter.choices:
        schema["enum"] = list(parameter.choices)
    return schema
