"""ServiceStack's wire contract: which format a request body is in, which format to answer in,
and how to write it (JSON or JSV, PascalCase or camelCase).

The rules follow ServiceStack (``HttpRequestExtensions.GetResponseContentType``,
``RestPath.CreateRequest``); ``docs/wire.md`` lists them with the places we differ.
"""

from __future__ import annotations

import email.parser
import email.policy
import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from gateway import jsv
from gateway.errors import ApiError


class Format(enum.StrEnum):
    JSON = "json"
    JSV = "jsv"


class Casing(enum.StrEnum):
    PASCAL = "pascal"
    CAMEL = "camel"


AUTO_CASING = "auto"  # SMS_JSON_CASING's default: answer in the casing the request is written in


JSON_TYPES = {"application/json", "text/json"}
JSV_TYPES = {"application/jsv", "text/jsv"}
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
KNOWN_FORMATS = {"json", "jsv", "xml", "csv", "html", "jsonl", "msgpack", "protobuf"}
# Query-string keys that steer the request rather than fill the DTO.
RESERVED_QUERY = {"format", "jsconfig", "callback", "debug", "idempotencykey"}
# The first property name of a JSON object, up to its first letter: the casing a client writes in.
_FIRST_NAME = re.compile(rb'\A(?:\xef\xbb\xbf)?[ \t\r\n]*\{[ \t\r\n]*"([A-Za-z])')
# The charsets a multipart part may name, and the codec that reads each. Only text encodings:
# Python's codec registry also holds unicode_escape, utf-7, base64 and others that turn bytes into
# lone surrogates or into anything at all.
TEXT_CHARSETS = {
    "utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "ascii", "ascii": "ascii",
    "iso-8859-1": "latin-1", "latin1": "latin-1", "latin-1": "latin-1", "windows-1252": "cp1252", "cp1252": "cp1252",
    "utf-16": "utf-16", "utf-16le": "utf-16-le", "utf-16be": "utf-16-be",
}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def format_of(content_type: str | None) -> Format | None:
    kind = media_type(content_type)
    if kind in JSON_TYPES:
        return Format.JSON
    if kind in JSV_TYPES:
        return Format.JSV
    return None


def _format_name(name: str) -> Format:
    try:
        return Format(name.lower())
    except ValueError:
        served = "json or jsv"
        what = "format" if name.lower() in KNOWN_FORMATS else "unknown format"
        raise ApiError(406, "NotAcceptable", f"The {what} '{name}' is not served here; ask for {served}") from None


@dataclass(frozen=True)
class Negotiated:
    """How to answer this request."""

    format: Format = Format.JSON
    casing: Casing = Casing.PASCAL
    content_type: str = "application/json"


DEFAULT = Negotiated()


def negotiate(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    default_casing: Casing | None = Casing.PASCAL,
    body: bytes = b"",
    predefined: str | None = None,
    suffix: str | None = None,
) -> Negotiated:
    """The response format, in ServiceStack's order of precedence, and the casing (``response_casing``).

    1. ``?format=`` (the part before a dot); 2. the predefined route's prefix (``/jsv/reply/...``);
    3. a ``.json``/``.jsv`` suffix on the route; 4. the ``Accept`` header; 5. the request's own
    Content-Type; 6. JSON. A format we do not serve is a 406, not a silent JSON answer.
    """
    casing = response_casing(headers, query, body, default=default_casing, predefined=predefined)
    accept = headers.get("accept") or ""
    chosen: Format | None = None
    spelled: str | None = None
    requested = _query_value(query, "format")
    if requested:
        chosen = _format_name(requested.split(".", 1)[0])
    elif predefined:
        chosen = _format_name(predefined)
    elif suffix:
        chosen = _format_name(suffix)
    else:
        chosen, spelled = _from_accept(accept)
    if chosen is None:
        chosen = format_of(headers.get("content-type")) or Format.JSON
        if chosen is Format.JSV and media_type(headers.get("content-type")) == "text/jsv":
            spelled = "text/jsv"
    if spelled is None and chosen is Format.JSV and "text/jsv" in accept.lower():
        spelled = "text/jsv"
    content_type = spelled or ("application/json" if chosen is Format.JSON else "application/jsv")
    return Negotiated(chosen, casing, content_type)


def _from_accept(accept: str) -> tuple[Format | None, str | None]:
    """The first acceptable type we serve; None for none given or */*; 406 if only others are asked for."""
    offers: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        kind, *params = (piece.strip() for piece in part.split(";"))
        if not kind:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            offers.append((-quality, position, kind.lower()))
    if not offers:
        return None, None
    for _, _, kind in sorted(offers):
        if kind in JSON_TYPES:
            return Format.JSON, None
        if kind in JSV_TYPES:
            return Format.JSV, kind
        if kind in {"*/*", "application/*", "text/*"}:
            return None, None
    asked = ", ".join(kind for _, _, kind in sorted(offers))
    raise ApiError(406, "NotAcceptable", f"None of the accepted types ({asked}) is served here; ask for "
                   "application/json or application/jsv")


def _query_value(query: Mapping[str, str], name: str) -> str | None:
    for key, value in query.items():
        if key.lower() == name:
            return value
    return None


def response_casing(headers: Mapping[str, str], query: Mapping[str, str], body: bytes = b"", *,
                    default: Casing | None, predefined: str | None = None) -> Casing:
    """``?jsconfig=`` first, then ``default``; with no default (``SMS_JSON_CASING=auto``), the request's own.

    A request is camelCase when its body is JSON and its first property name starts lower-case:
    the PyPI and npm ServiceStack clients write camelCase and read nothing else, while the .NET
    client and the reference page write PascalCase. JSV, forms and bodiless requests are PascalCase.
    """
    return _casing(query, default or _casing_of_body(headers.get("content-type"), body, predefined))


def _casing_of_body(content_type: str | None, body: bytes, predefined: str | None) -> Casing:
    if media_type(content_type) in FORM_TYPES or _document_format(content_type, predefined) is not Format.JSON:
        return Casing.PASCAL
    first = _FIRST_NAME.match(body)
    return Casing.CAMEL if first and first[1].islower() else Casing.PASCAL


def _casing(query: Mapping[str, str], default: Casing) -> Casing:
    """``?jsconfig=tc:cc`` / ``tc:pc`` / ``EmitCamelCaseNames:true``, comma-separated like ServiceStack's."""
    config = _query_value(query, "jsconfig")
    if not config:
        return default
    casing = default
    for item in config.split(","):
        key, _, value = item.partition(":")
        key, value = key.strip().lower(), value.strip().lower()
        if key in {"tc", "textcase"}:
            if value in {"cc", "camelcase"}:
                casing = Casing.CAMEL
            elif value in {"pc", "pascalcase", "default"}:
                casing = Casing.PASCAL
        elif key in {"emitcamelcasenames", "eccn"} and value in {"true", "1", ""}:
            casing = Casing.CAMEL
        elif key in {"emitcamelcasenames", "eccn"} and value in {"false", "0"}:
            casing = Casing.PASCAL
    return casing


def camel_case(name: str) -> str:
    """ServiceStack's ToCamelCase: lower the leading run of capitals (``SMSModel`` → ``smsModel``)."""
    chars = list(name)
    for index, char in enumerate(chars):
        following = chars[index + 1] if index + 1 < len(chars) else "A"
        if char.isupper() and (following.isupper() or index == 0):
            chars[index] = char.lower()
        else:
            break
    return "".join(chars)


def recase(value: Any, casing: Casing) -> Any:
    if casing is Casing.PASCAL:
        return value
    if isinstance(value, dict):
        return {camel_case(str(key)): recase(item, casing) for key, item in value.items()}
    if isinstance(value, list):
        return [recase(item, casing) for item in value]
    return value


def encode(payload: Mapping[str, Any], negotiated: Negotiated) -> bytes:
    """The payload as UTF-8 JSON or JSV.

    A lone surrogate cannot be UTF-8, so it is written as its ``\\udXXX`` escape: in JSON that is the
    same string, in JSV six characters. Requests cannot store one (``models``); this keeps an answer
    that quotes one, or a row stored before that check, readable instead of a 500.
    """
    value = recase(dict(payload), negotiated.casing)
    if negotiated.format is Format.JSV:
        return jsv.dumps(value).encode("utf-8", "backslashreplace")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def decode_body(
    headers: Mapping[str, str],
    body: bytes,
    query: Mapping[str, str],
    *,
    max_bytes: int,
    predefined: str | None = None,
) -> dict[str, Any]:
    """The request DTO's fields from body, query string and form, with ServiceStack's precedence.

    The body (JSON or JSV by Content-Type; a predefined route's own format unless it is a
    form post) comes first; query-string values then fill or override top-level fields, and
    form fields last. Form and query values holding a complex type are JSV.
    """
    if len(body) > max_bytes:
        raise ApiError(413, "RequestEntityTooLarge", f"The request body is larger than {max_bytes} bytes")
    content_type = headers.get("content-type")
    kind = media_type(content_type)
    fields: dict[str, Any] = {}
    form: dict[str, Any] = {}
    if kind in FORM_TYPES:
        form = _form_fields(content_type or "", body)
    elif body.strip():
        body_format = _document_format(content_type, predefined)
        if body_format is None:
            raise ApiError(415, "UnsupportedMediaType", f"Content-Type '{kind}' is not supported; send "
                           "application/json, application/jsv, application/x-www-form-urlencoded or "
                           "multipart/form-data")
        fields = _parse_document(body, body_format)
    for key, value in query.items():
        if key.lower() not in RESERVED_QUERY:
            _set_field(fields, key, _scalar_or_jsv(value))
    for key, value in form.items():
        _set_field(fields, key, value)
    return fields


def _document_format(content_type: str | None, predefined: str | None) -> Format | None:
    """What a body that is not a form is written in: the predefined route's format, the Content-Type's,
    JSON when there is no Content-Type; None for a type we do not read."""
    if predefined in {"json", "jsv"}:
        return Format(predefined)
    return format_of(content_type) if media_type(content_type) else Format.JSON


def _parse_document(body: bytes, body_format: Format) -> dict[str, Any]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "SerializationException", "The request body is not UTF-8 text") from None
    try:
        value = json.loads(text) if body_format is Format.JSON else jsv.loads(text)
    except jsv.JsvDecodeError as error:
        raise ApiError(400, "SerializationException", f"The request body is not valid JSV: {error}") from None
    except RecursionError:
        raise ApiError(400, "SerializationException", "The request body is nested too deeply") from None
    except ValueError as error:  # bad JSON, or a number Python refuses to convert (over 4,300 digits)
        raise ApiError(400, "SerializationException", f"The request body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        name = "JSON" if body_format is Format.JSON else "JSV"
        raise ApiError(400, "SerializationException", f"The request body must be a {name} object")
    return value


def _scalar_or_jsv(value: str) -> Any:
    text = value.strip()
    if text.startswith(("{", "[")):
        try:
            return jsv.loads(text)
        except jsv.JsvDecodeError as error:
            raise ApiError(400, "SerializationException", f"A complex field is not valid JSV: {error}") from None
    return value


def _set_field(fields: dict[str, Any], key: str, value: Any) -> None:
    for existing in list(fields):
        if existing.lower() == key.lower():
            del fields[existing]
    fields[key] = value


def _form_fields(content_type: str, body: bytes) -> dict[str, Any]:
    if media_type(content_type) == "application/x-www-form-urlencoded":
        try:  # strict: a %-escape that is not UTF-8 (%ED%A0%80, half a surrogate pair) is refused, not replaced
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise ApiError(400, "SerializationException", "The form body is not UTF-8 text") from None
        return {key: _scalar_or_jsv(value) for key, value in pairs}
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ApiError(400, "SerializationException", "The multipart body has no parts (is the boundary right?)")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        codec = _text_codec(part.get_content_charset() or "utf-8", str(name))
        try:
            fields[str(name)] = _scalar_or_jsv(payload.decode(codec))
        except UnicodeDecodeError:
            raise ApiError(400, "SerializationException", f"The form field '{name}' is not {codec} text") from None
    return fields


def _text_codec(charset: str, field: str) -> str:
    codec = TEXT_CHARSETS.get(charset.strip().lower())
    if codec is None:
        raise ApiError(415, "UnsupportedMediaType", f"The form field '{field}' names the charset '{charset}'; send "
                       "utf-8, us-ascii, iso-8859-1, windows-1252 or utf-16")
    return codec
