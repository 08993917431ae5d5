"""The SMSSend contract: request and response DTOs as the ServiceStack service defines them.

Input is forgiving the way ServiceStack is: property names match case-insensitively,
unknown properties are ignored, Guids arrive in N, D, B or P form. Output is PascalCase
with Guids in N form and null properties omitted (``to_wire``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator

EMPTY_GUID = uuid.UUID(int=0)


def parse_guid(value: Any) -> uuid.UUID | None:
    """Accept a Guid in any of .NET's N, D, B and P forms; the empty string means none."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a Guid")
    text = value.strip()
    if text == "":
        return None
    if len(text) >= 2 and (text[0], text[-1]) in {("{", "}"), ("(", ")")}:
        text = text[1:-1]
    if len(text) not in (32, 36):
        raise ValueError(f"'{value}' is not a valid Guid")
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError(f"'{value}' is not a valid Guid") from None


Guid = Annotated[
    uuid.UUID | None,
    BeforeValidator(parse_guid),
    PlainSerializer(lambda value: value.hex if value is not None else None, return_type=str | None),
]


class WireModel(BaseModel):
    """A DTO: case-insensitive on the way in, PascalCase field names on the way out."""

    # defer_build: a model is compiled on first use, so the status DTOs cost a send-only cold start nothing.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _match_names_case_insensitively(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        by_lower = {name.lower(): name for name in cls.model_fields}
        matched: dict[str, Any] = {}
        for key, value in data.items():
            name = by_lower.get(str(key).lower())
            if name is not None:
                matched[name] = value
        return matched

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict ServiceStack would write: nulls omitted, Guids in N form."""
        return self.model_dump(mode="json", exclude_none=True)


class SMSContact(WireModel):
    Name: str | None = None
    PhoneNumber: str | None = None
    ContactId: Guid = None


class SMSModel(WireModel):
    From: SMSContact | None = None
    To: list[SMSContact | None] | None = None
    MessageBody: str | None = None
    ReplyIsAllowed: bool = False
    ReplyIsRequired: bool = False
    Notes: str | None = None
    LinkedObjectId: Guid = None
    SuiteId: Guid = None
    LicenseeId: Guid = None


_SMSModel = SMSModel  # the field below shares the type's name, as in the ServiceStack DTO


class SMSSend(WireModel):
    SMSModel: _SMSModel | None = None
    CreateCommunicationReferencesImmediately: bool = False


class CommResponse(WireModel):
    CommId: Guid = None
    Reference: str | None = None
    Status: bool = False
    Message: str | None = None


class RecipientStatus(WireModel):
    """One recipient's delivery state: the per-recipient communication reference."""

    RecipientId: Guid = None
    Name: str | None = None
    PhoneNumber: str | None = None
    ContactId: Guid = None
    Status: str | None = None
    ProviderMessageId: str | None = None
    ErrorCode: str | None = None
    ErrorMessage: str | None = None
    Attempts: int = 0
    UpdatedAt: datetime | None = None


class SMSStatusResponse(WireModel):
    """What GET /api/sms/{CommId} and /api/sms/reference/{Reference} answer."""

    CommId: Guid = None
    Reference: str | None = None
    LicenseeId: Guid = None
    Status: str | None = None
    From: SMSContact | None = None
    MessageBody: str | None = None
    ReplyIsAllowed: bool = False
    ReplyIsRequired: bool = False
    Notes: str | None = None
    LinkedObjectId: Guid = None
    SuiteId: Guid = None
    RecipientCount: int = 0
    SentCount: int = 0
    FailedCount: int = 0
    PendingCount: int = 0
    LastError: str | None = None
    CreatedAt: datetime | None = None
    UpdatedAt: datetime | None = None
    Recipients: list[RecipientStatus] = []
