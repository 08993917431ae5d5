"""The HTTP adapter: func.HttpRequest in, func.HttpResponse out, in the format the client negotiated.

Nothing here decides what a send means (that is ``service``): this module negotiates the
format (``wire``), authenticates, decodes, calls, and turns every outcome, including storage
outages and bugs, into a ServiceStack-shaped response.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from azure.core.exceptions import AzureError
from pydantic import ValidationError

from gateway.errors import ApiError, FieldError, not_found, service_unavailable
from gateway.models import SMSSend, WireModel
from gateway.routes import ROUTES, Route
from gateway.runtime import Gateway, get_gateway
from gateway.settings import get_settings
from gateway.wire import DEFAULT, Casing, Negotiated, decode_body, encode, negotiate

log = logging.getLogger("gateway.http")

SUFFIX = re.compile(r"^(?P<value>.*)\.(?P<format>[A-Za-z]+)$")


def respond(status: int, payload: Mapping[str, Any], negotiated: Negotiated = DEFAULT,
            headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        body=encode(payload, negotiated),
        status_code=status,
        headers={"Content-Type": f"{negotiated.content_type}; charset=utf-8", **(headers or {})},
    )


def error_response(error: ApiError, negotiated: Negotiated = DEFAULT) -> func.HttpResponse:
    return respond(error.status, error.to_wire(), negotiated, error.headers)


def _internal_error() -> ApiError:
    correlation_id = uuid.uuid4().hex
    log.exception("unhandled error, correlation id %s", correlation_id)
    return ApiError(500, "InternalServerError", "An internal error occurred; quote the CorrelationId when "
                    "reporting it", meta={"CorrelationId": correlation_id})


Action = Callable[[Gateway, func.HttpRequest, Route, dict[str, str]], WireModel]


def _serve(req: func.HttpRequest, route: Route, action: Action) -> func.HttpResponse:
    route_values = dict(req.route_params or {})
    suffix: str | None = None
    predefined = route_values.get("format") if route.predefined else None
    if not route.predefined and "format" in route_values:
        suffix = route_values["format"]
    else:
        for name in ("commId", "reference"):  # a suffix on a templated value: /api/sms/<id>.jsv
            found = SUFFIX.match(route_values.get(name, ""))
            if found:
                route_values[name], suffix = found["value"], found["format"]
    try:
        negotiated = negotiate(req.headers, req.params, default_casing=Casing(get_settings().json_casing),
                               predefined=predefined, suffix=suffix)
    except ApiError as error:
        return error_response(error)
    try:
        return respond(200, action(get_gateway(), req, route, route_values).to_wire(), negotiated)
    except ApiError as error:
        return error_response(error, negotiated)
    except AzureError:
        log.warning("storage unavailable", exc_info=True)
        return error_response(service_unavailable(), negotiated)
    except Exception:
        return error_response(_internal_error(), negotiated)


def parse_dto(model: type[WireModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ApiError.validation([_field_error(detail) for detail in error.errors()]) from None


def _field_error(detail: Mapping[str, Any]) -> FieldError:
    path = ""
    for part in detail.get("loc", ()):
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith(("function-", "nullable[", "union[")) and not str(part)[0].islower():
            path += f".{part}" if path else str(part)
    message = str(detail.get("msg", "invalid value")).removeprefix("Value error, ")
    return FieldError(path or "Request", "SerializationException", f"'{path}': {message}")


def _send(gateway: Gateway, req: func.HttpRequest, route: Route, values: dict[str, str]) -> WireModel:
    principal = gateway.authenticator.authenticate(req.headers)
    data = decode_body(req.headers, req.get_body(), req.params, max_bytes=gateway.settings.max_request_bytes,
                       predefined=values.get("format") if route.predefined else None)
    return gateway.service.send(principal, parse_dto(SMSSend, data), immediate=route.immediate)


def _status_by_id(gateway: Gateway, req: func.HttpRequest, route: Route, values: dict[str, str]) -> WireModel:
    principal = gateway.authenticator.authenticate(req.headers)
    return gateway.status.by_id(principal, values.get("commId", ""))


def _status_by_reference(gateway: Gateway, req: func.HttpRequest, route: Route,
                         values: dict[str, str]) -> WireModel:
    principal = gateway.authenticator.authenticate(req.headers)
    return gateway.status.by_reference(principal, values.get("reference", ""))


ACTIONS: dict[str, Action] = {
    "SMSSend": _send,
    "SMSStatus": _status_by_id,
    "SMSStatusByReference": _status_by_reference,
}


def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        gateway = get_gateway()
        gateway.store.load_header(uuid.UUID(int=0))
        gateway.queue.ping()
    except Exception as error:  # any failure to reach storage means "not healthy"
        log.warning("health check failed: %s", error)
        return error_response(ApiError(503, "ServiceUnavailable", "Storage is not answering"))
    return respond(200, {"Status": "Healthy"})


def _base_url(req: func.HttpRequest) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}"


def metadata(req: func.HttpRequest) -> func.HttpResponse:
    from gateway.metadata import metadata_html  # built on first use: no cost at cold start

    page = metadata_html(urlsplit(req.url).netloc or None)
    return func.HttpResponse(page, status_code=200, mimetype="text/html", charset="utf-8")


def openapi(req: func.HttpRequest) -> func.HttpResponse:
    from gateway.metadata import openapi_json

    return func.HttpResponse(openapi_json(_base_url(req)), status_code=200, mimetype="application/json",
                             charset="utf-8")


SPECIAL: dict[str, Callable[[func.HttpRequest], func.HttpResponse]] = {
    "Health": health,
    "Metadata": metadata,
    "OpenApi": openapi,
}


def handler(route: Route) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """The function body bound to one route of the table."""
    special = SPECIAL.get(route.operation)
    if special is not None:
        return special
    action = ACTIONS[route.operation]
    return lambda req: _serve(req, route, action)


def unmatched(req: func.HttpRequest) -> func.HttpResponse:
    """Every path no route claims: 405 when the path exists for other methods, else 404."""
    path = "/" + (req.route_params or {}).get("path", "").strip("/")
    try:
        negotiated = negotiate(req.headers, req.params, default_casing=Casing(get_settings().json_casing))
    except ApiError:
        negotiated = DEFAULT
    allowed = sorted({method for route in ROUTES if route.matches(path) for method in route.methods})
    if allowed:
        error = ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on {path}; use "
                         f"{', '.join(allowed)}", headers={"Allow": ", ".join(allowed)})
        return error_response(error, negotiated)
    return error_response(not_found(f"No route matches {req.method} {path}; see /metadata"), negotiated)
