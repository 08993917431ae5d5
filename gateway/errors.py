"""Errors a client can cause or see, in ServiceStack's ``ResponseStatus`` shape.

Every failure that reaches a client is an ``ApiError``: its status code, a top-level
``ErrorCode``/``Message`` and, for validation, one ``FieldError`` per offending field
(the first repeated at the top, as ServiceStack's validation feature does). The body is
built from the ``ErrorResponse`` model, so it is what ``/metadata`` and ``/openapi.json`` document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.models import ErrorResponse, ResponseError, ResponseStatus


@dataclass(frozen=True)
class FieldError:
    field_name: str
    error_code: str
    message: str


@dataclass
class ApiError(Exception):
    status: int
    error_code: str
    message: str
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @classmethod
    def validation(cls, errors: list[FieldError]) -> ApiError:
        first = errors[0]
        return cls(400, first.error_code, first.message, list(errors))

    def to_response(self) -> ErrorResponse:
        return ErrorResponse(ResponseStatus=ResponseStatus(
            ErrorCode=self.error_code,
            Message=self.message,
            Errors=[ResponseError(ErrorCode=error.error_code, FieldName=error.field_name, Message=error.message)
                    for error in self.errors],
            Meta=dict(self.meta) or None,
        ))

    def to_wire(self) -> dict[str, Any]:
        return self.to_response().to_wire()


def unauthorized(message: str = "A valid API key is required") -> ApiError:
    return ApiError(
        401,
        "Unauthorized",
        message,
        headers={"WWW-Authenticate": 'Bearer realm="sms-gateway", Basic realm="sms-gateway"'},
    )


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NotFound", message)


RETRY_AFTER_SECONDS = "5"


def service_unavailable(message: str = "Storage is unavailable; nothing was accepted, try again shortly") -> ApiError:
    """Storage could not be reached before the accepting write: nothing was accepted, so a plain retry is safe."""
    return ApiError(503, "ServiceUnavailable", message, headers={"Retry-After": RETRY_AFTER_SECONDS})


def outcome_unknown(*, with_key: bool) -> ApiError:
    """The write that accepts a send went out and no answer came back: it may have happened."""
    message = "Storage did not answer in time, so whether the send was accepted is unknown. "
    if with_key:
        message += ("Retry with the same Idempotency-Key: if it was accepted you get its original answer, "
                    "and nobody is sent the SMS twice")
    else:
        message += ("A retry without an Idempotency-Key may send it twice; send one, the same on every retry, "
                    "to retry safely")
    return ApiError(503, "OutcomeUnknown", message, headers={"Retry-After": RETRY_AFTER_SECONDS})


def conflict(message: str, retry_after: float) -> ApiError:
    """The request's Idempotency-Key belongs to a request still under way."""
    return ApiError(409, "RequestInProgress", message, headers={"Retry-After": str(max(1, round(retry_after)))})
