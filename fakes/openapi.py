"""Check HTTP requests and responses against an OpenAPI 3.0 description, for fakes that must not drift.

Only what a form-encoded API like Twilio's needs: route matching on path templates, path
parameters, query parameters, ``application/x-www-form-urlencoded`` bodies decoded the way
OpenAPI's default form style describes them (repeated keys for arrays, scalars coerced by the
schema's type), and JSON responses. Schemas are checked with ``openapi-schema-validator`` (OpenAPI 3.0 dialect).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator

FORM = "application/x-www-form-urlencoded"


class RouteNotFound(LookupError):
    """No path in the description matches."""


class MethodNotAllowed(LookupError):
    """The path exists but has no such operation."""


@dataclass
class RequestProblem(ValueError):
    """The request does not match the description; ``kind`` says which rule it broke."""

    kind: str  # "path-parameter", "content-type", "unknown-parameter", "repeated-parameter", "required", "schema"
    message: str
    parameter: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: Mapping[str, Any]
    path_params: dict[str, str] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", f"{self.method} {self.template}"))


class OpenApiDescription:
    """One loaded description; ``match`` finds an operation, ``check_form`` and ``check_response`` validate."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        if not str(document.get("openapi", "")).startswith("3.0"):
            raise ValueError("only OpenAPI 3.0 descriptions are supported")
        self.document = document
        self._routes: list[tuple[re.Pattern[str], str, Mapping[str, Any]]] = []
        for template, item in document["paths"].items():
            pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            self._routes.append((re.compile(pattern), template, item))

    @classmethod
    def load(cls, path: Path) -> OpenApiDescription:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def match(self, method: str, path: str) -> Operation:
        for pattern, template, item in self._routes:
            found = pattern.match(path)
            if found is None:
                continue
            spec = item.get(method.lower())
            if spec is None:
                raise MethodNotAllowed(f"{method} is not described for {template}")
            operation = Operation(method.upper(), template, spec, dict(found.groupdict()))
            self._check_path_params(operation)
            return operation
        raise RouteNotFound(path)

    def _schema(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """A schema made self-contained: ``#/components/...`` references resolve against the description."""
        return {**schema, "components": self.document.get("components", {})}

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        if not ref:
            return schema
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return self._resolve(node)

    def _check_path_params(self, operation: Operation) -> None:
        for parameter in operation.spec.get("parameters", []):
            if parameter.get("in") != "path":
                continue
            name = parameter["name"]
            value = operation.path_params.get(name)
            if value is None:
                raise RequestProblem("path-parameter", f"path parameter {name} is missing", name)
            self._validate(OAS30WriteValidator, parameter.get("schema", {}), value, "path-parameter", name)

    def check_form(self, operation: Operation, content_type: str | None, body: bytes) -> dict[str, Any]:
        """The body as the typed object its schema describes; RequestProblem when it does not fit."""
        request_body = operation.spec.get("requestBody")
        if request_body is None:
            if body:
                raise RequestProblem("content-type", f"{operation.operation_id} takes no body")
            return {}
        media = (content_type or "").split(";")[0].strip().lower()
        content = request_body.get("content", {})
        if media not in content:
            raise RequestProblem("content-type", f"Content-Type must be one of {', '.join(content)}, not {media!r}")
        if media != FORM:
            raise NotImplementedError(f"this checker decodes {FORM} only")
        schema = self._resolve(content[media]["schema"])
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestProblem("schema", "the form body is not UTF-8") from None
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        except ValueError as error:
            raise RequestProblem("schema", f"the form body is not form-encoded: {error}") from None
        properties: Mapping[str, Any] = schema.get("properties", {})
        grouped: dict[str, list[str]] = {}
        for key, value in pairs:
            grouped.setdefault(key, []).append(value)
        decoded: dict[str, Any] = {}
        for key, values in grouped.items():
            if key not in properties:
                raise RequestProblem("unknown-parameter", f"{key} is not a parameter of {operation.operation_id}", key)
            prop = self._resolve(properties[key])
            if prop.get("type") == "array":
                item = self._resolve(prop.get("items", {}))
                decoded[key] = [_coerce(value, item) for value in values]
            elif len(values) > 1:
                raise RequestProblem("repeated-parameter", f"{key} may be given once", key)
            else:
                decoded[key] = _coerce(values[0], prop)
        for name in schema.get("required", []):
            if name not in decoded:
                raise RequestProblem("required", f"{name} is required", name)
        self._validate(OAS30WriteValidator, schema, decoded, "schema", None)
        return decoded

    def check_query(
        self, operation: Operation, query: str, *, unchecked_formats: Collection[str] = ()
    ) -> dict[str, Any]:
        """The query string's parameters, typed by their schemas; RequestProblem when they do not fit.

        Only parameters the operation describes ``in: query`` are allowed, each at most once (none of
        Twilio's query parameters is an array). ``unchecked_formats`` names formats to leave to the
        caller, for descriptions whose ``format`` contradicts their own text and examples.
        """
        described = {p["name"]: p for p in operation.spec.get("parameters", []) if p.get("in") == "query"}
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError as error:
            raise RequestProblem("schema", f"the query string is not form-encoded: {error}") from None
        decoded: dict[str, Any] = {}
        for key, value in pairs:
            parameter = described.get(key)
            if parameter is None:
                raise RequestProblem("unknown-parameter", f"{key} is not a parameter of {operation.operation_id}", key)
            if key in decoded:
                raise RequestProblem("repeated-parameter", f"{key} may be given once", key)
            schema = self._resolve(parameter.get("schema", {}))
            decoded[key] = _coerce(value, schema)
            self._validate(OAS30WriteValidator, schema, decoded[key], "schema", key, unchecked_formats)
        for name, parameter in described.items():
            if parameter.get("required") and name not in decoded:
                raise RequestProblem("required", f"{name} is required", name)
        return decoded

    def check_response(self, operation: Operation, status: int, payload: Any) -> None:
        """Raise AssertionError when a fake's own answer is not what the description promises."""
        responses = operation.spec.get("responses", {})
        response = responses.get(str(status))
        if response is None:
            raise AssertionError(f"{operation.operation_id} describes no {status} response")
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return
        try:
            self._validate(OAS30ReadValidator, schema, payload, "schema", None)
        except RequestProblem as problem:
            raise AssertionError(f"fake response does not match the description: {problem.message}") from None

    def conditional_groups(self, operation: Operation) -> list[list[str]]:
        """Twilio's ``x-twilio.conditional``: groups of which at least one must be given, as parameter names."""
        request_body = operation.spec.get("requestBody", {})
        schema = self._resolve(request_body.get("content", {}).get(FORM, {}).get("schema", {}))
        by_snake = {_snake(name): name for name in schema.get("properties", {})}
        groups = operation.spec.get("x-twilio", {}).get("conditional", [])
        return [[by_snake.get(name, name) for name in group] for group in groups]

    def _validate(
        self,
        validator_class: Any,
        schema: Mapping[str, Any],
        instance: Any,
        kind: str,
        parameter: str | None,
        unchecked_formats: Collection[str] = (),
    ) -> None:
        format_checker = validator_class.FORMAT_CHECKER
        if unchecked_formats:
            format_checker = copy.copy(format_checker)
            format_checker.checkers = {
                name: check for name, check in format_checker.checkers.items() if name not in unchecked_formats
            }
        validator = validator_class(self._schema(schema), format_checker=format_checker)
        error = best_match(validator.iter_errors(instance))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or parameter or "body"
            raise RequestProblem(kind, f"{where}: {error.message}", parameter or (where if where != "body" else None))


def _coerce(value: str, schema: Mapping[str, Any]) -> Any:
    """Form values are text; turn them into the schema's type when they can be, else leave them to fail."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    if kind == "boolean" and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return value


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
