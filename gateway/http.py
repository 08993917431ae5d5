"""The HTTP adapter: func.HttpRequest in, func.HttpResponse out, in the format the client negotiated.

Nothing here decides what an operation means (that is its handler, named in ``gateway.routes``):
this module splits the path, negotiates the format (``wire``), authenticates the operations the
table marks, calls the handler, and turns every outcome, including storage outages and bugs,
into a ServiceStack-shaped response. Every route, health and the documents included, goes through
``serve``; a path no route claims goes to ``unmatched``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from gateway.errors import ApiError, not_found, service_unavailable
from gateway.handlers import Call, Document
from gateway.redact import describe, trace
from gateway.routes import ROUTES, Route
from gateway.runtime import get_gateway
from gateway.settings import get_settings
from gateway.wire import AUTO_CASING, DEFAULT, Casing, Negotiated, encode, negotiate, response_casing

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


def _internal_error(error: Exception) -> ApiError:
    correlation_id = uuid.uuid4().hex
    log.error("unhandled error, correlation id %s: %s", correlation_id, trace(error))
    return ApiError(500, "InternalServerError", "An internal error occurred; quote the CorrelationId when "
                    "reporting it", meta={"CorrelationId": correlation_id})


def endpoint(route: Route) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """The function ``function_app.py`` binds to one route of the table."""
    return lambda req: serve(route, req)


def serve(route: Route, req: func.HttpRequest) -> func.HttpResponse:
    operation = route.operation
    negotiated = DEFAULT  # until negotiation succeeds, errors are answered in JSON
    try:
        values, suffix = _path_values(route, req.route_params or {})
        negotiated = _negotiate(req, strict=operation.refuses_unserved_formats,
                                predefined=values.get("format") if route.predefined else None, suffix=suffix)
        principal = get_gateway().authenticator.authenticate(req.headers) if operation.authenticated else None
        result = operation.handler(Call(route, values, req.headers, req.params, req.get_body(), req.url, principal))
        if isinstance(result, Document):
            return func.HttpResponse(result.text or None, status_code=result.status, headers=dict(result.headers),
                                     mimetype=result.media_type or operation.media_type, charset="utf-8")
        return respond(200, result.to_wire(), negotiated)
    except ApiError as error:
        return error_response(error, negotiated)
    except AzureError as error:
        log.warning("storage unavailable: %s", describe(error))
        return error_response(service_unavailable(), negotiated)
    except Exception as error:
        return error_response(_internal_error(error), negotiated)


def _path_values(route: Route, params: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """The path's values and the response format a suffix asks for.

    The suffix is the route's own ``{format}`` (``/api/send.jsv``) or one on a templated value
    (``/api/sms/<id>.jsv``); on a predefined route ``{format}`` names the body's format instead.
    """
    values = dict(params)
    if route.predefined or not route.format_suffix:
        return values, None
    if "format" in values:
        return values, values["format"]
    suffix = None
    for name, value in list(values.items()):
        found = SUFFIX.match(value)
        if found:
            values[name], suffix = found["value"], found["format"]
    return values, suffix


def _negotiate(req: func.HttpRequest, *, strict: bool, predefined: str | None = None,
               suffix: str | None = None) -> Negotiated:
    """The answer's format; when not ``strict``, a format we do not write gets the default instead of a 406."""
    setting = get_settings().json_casing
    default = None if setting == AUTO_CASING else Casing(setting)
    body = req.get_body()
    try:
        return negotiate(req.headers, req.params, default_casing=default, body=body, predefined=predefined,
                         suffix=suffix)
    except ApiError:
        if strict:
            raise
        return Negotiated(casing=response_casing(req.headers, req.params, body, default=default,
                                                 predefined=predefined))


def unmatched(req: func.HttpRequest) -> func.HttpResponse:
    """Every path no route claims: 405 when the path exists for other methods, else 404."""
    path = "/" + (req.route_params or {}).get("path", "").strip("/")
    negotiated = _negotiate(req, strict=False)
    allowed = sorted({method for route in ROUTES if route.matches(path) for method in route.methods})
    if allowed:
        error = ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on {path}; use "
                         f"{', '.join(allowed)}", headers={"Allow": ", ".join(allowed)})
        return error_response(error, negotiated)
    return error_response(not_found(f"No route matches {req.method} {path}; see /metadata"), negotiated)
