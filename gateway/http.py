"""The HTTP adapter: func.HttpRequest in, func.HttpResponse out, errors in ServiceStack's shape.

Nothing here decides what a send means (that is ``service``); this module authenticates,
decodes, calls, and turns every outcome, including storage outages and bugs, into a
structured response.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError
from pydantic import ValidationError

from gateway.errors import ApiError, FieldError, service_unavailable
from gateway.models import SMSSend, WireModel
from gateway.runtime import Gateway, get_gateway
from gateway.wire import decode_request, encode_response

log = logging.getLogger("gateway.http")


def respond(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    body, content_type = encode_response(payload)
    return func.HttpResponse(body=body, status_code=status, headers=dict(headers or {}), mimetype=content_type,
                             charset="utf-8")


def error_response(error: ApiError) -> func.HttpResponse:
    return respond(error.status, error.to_wire(), error.headers)


def _handle(action: Callable[[Gateway], WireModel]) -> func.HttpResponse:
    try:
        gateway = get_gateway()
        return respond(200, action(gateway).to_wire())
    except ApiError as error:
        return error_response(error)
    except AzureError:
        log.warning("storage unavailable", exc_info=True)
        return error_response(service_unavailable())
    except Exception:
        correlation_id = uuid.uuid4().hex
        log.exception("unhandled error, correlation id %s", correlation_id)
        error = ApiError(500, "InternalServerError", "An internal error occurred",
                         meta={"CorrelationId": correlation_id})
        return error_response(error)


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


def send(req: func.HttpRequest, *, immediate: bool) -> func.HttpResponse:
    def action(gateway: Gateway) -> WireModel:
        principal = gateway.authenticator.authenticate(req.headers)
        data = decode_request(req.headers.get("content-type"), req.get_body(), gateway.settings.max_request_bytes)
        request = parse_dto(SMSSend, data)
        return gateway.service.send(principal, request, immediate=immediate)

    return _handle(action)


def status_by_id(req: func.HttpRequest) -> func.HttpResponse:
    def action(gateway: Gateway) -> WireModel:
        principal = gateway.authenticator.authenticate(req.headers)
        return gateway.status.by_id(principal, req.route_params.get("commId", ""))

    return _handle(action)


def status_by_reference(req: func.HttpRequest) -> func.HttpResponse:
    def action(gateway: Gateway) -> WireModel:
        principal = gateway.authenticator.authenticate(req.headers)
        return gateway.status.by_reference(principal, req.route_params.get("reference", ""))

    return _handle(action)


def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        gateway = get_gateway()
        gateway.store.load_header(uuid.UUID(int=0))
        gateway.clients.queue(gateway.settings.queue_name).get_queue_properties()
    except Exception as error:  # any failure to reach storage means "not healthy"
        log.warning("health check failed: %s", error)
        return error_response(ApiError(503, "ServiceUnavailable", "Storage is not answering"))
    return respond(200, {"Status": "Healthy"})
