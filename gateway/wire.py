"""Wire formats: request bodies in, response bodies out, as ServiceStack clients expect."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.errors import ApiError

JSON_TYPES = {"application/json", "text/json"}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_request(content_type: str | None, body: bytes, max_bytes: int) -> dict[str, Any]:
    """The request DTO as a dict, or an ApiError (413, 415, 400) in ServiceStack's shape."""
    if len(body) > max_bytes:
        raise ApiError(413, "RequestEntityTooLarge", f"The request body is larger than {max_bytes} bytes")
    kind = media_type(content_type)
    if not body.strip():
        return {}
    if kind and kind not in JSON_TYPES:
        raise ApiError(415, "UnsupportedMediaType", f"Content-Type '{kind}' is not supported; send application/json")
    try:
        value = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "SerializationException", f"The request body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "SerializationException", "The request body must be a JSON object")
    return value


def encode_response(payload: Mapping[str, Any]) -> tuple[bytes, str]:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), "application/json"
