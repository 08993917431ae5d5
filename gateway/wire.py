"""Wire formats: request bodies in, response bodies out, as ServiceStack clients expect."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from gateway.errors import ApiError

JSON_TYPES = {"application/json", "text/json"}
# A \uD800-\uDFFF escape: the only way a lone surrogate gets into a string decoded from UTF-8 JSON.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


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
    except RecursionError:
        raise ApiError(400, "SerializationException", "The request body is nested too deeply") from None
    except ValueError as error:  # bad UTF-8, bad JSON, or a number Python refuses to convert (over 4,300 digits)
        raise ApiError(400, "SerializationException", f"The request body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "SerializationException", "The request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(body) and not _is_unicode(value):
        # Accepted, it could never be delivered: no provider can encode half a UTF-16 pair.
        raise ApiError(400, "SerializationException",
                       "The request body has a string with an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF)")
    return value


def _is_unicode(value: Any) -> bool:
    """True when every string (key or value) in the decoded JSON can be encoded as UTF-8."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def encode_response(payload: Mapping[str, Any]) -> tuple[bytes, str]:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), "application/json"
