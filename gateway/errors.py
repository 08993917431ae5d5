"""Errors a client can cause or see, in ServiceStack's ``ResponseStatus`` shape.

Every failure that reaches a client is an ``ApiError``: its status code, a top-level
``ErrorCode``/``Message`` and, for validation, one ``FieldError`` per offending field
(the first repeated at the top, as ServiceStack's validation feature does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    field_name: str
    error_code: str
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"ErrorCode": self.error_code, "FieldName": self.field_name, "Message": self.message}


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

    def to_wire(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "ErrorCode": self.error_code,
            "Message": self.message,
            "Errors": [error.to_wire() for error in self.errors],
        }
        if self.meta:
            status["Meta"] = dict(self.meta)
        return {"ResponseStatus": status}


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


def service_unavailable(message: str = "Storage is unavailable; nothing was accepted, try again shortly") -> ApiError:
    return ApiError(503, "ServiceUnavailable", message, headers={"Retry-After": "5"})
