"""Reading a request body the way the Functions front end does: within a size limit, never more.

Azure Functions refuses a request longer than 100 MB (104,857,600 bytes) before the app sees it
(the HTTP trigger's documented limits); the app's own, smaller limit (``SMS_MAX_REQUEST_BYTES``) then
applies to what gets through. A declared ``Content-Length`` is judged before a byte of the body is
read; a chunked body is counted as it arrives and abandoned at the limit.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import BinaryIO

MAX_REQUEST_BYTES = 104_857_600  # the Functions host's limit
_DIGITS = re.compile(r"[0-9]+")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_LINE_LIMIT = 8192  # a chunk-size or trailer line longer than this is not HTTP any client sends


class BodyRefused(Exception):
    """The body cannot be read: ``status`` is the answer (400, 413 or 501), the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def declared_length(headers: Message, limit: int) -> int | None:
    """The body's length from the headers: None when chunked, 0 when there is none.

    Raises ``BodyRefused`` for what cannot be read: an unknown transfer coding, a Content-Length that
    is not one decimal number, or a length over ``limit``.
    """
    codings = [part.strip().lower() for part in ",".join(headers.get_all("Transfer-Encoding") or []).split(",")]
    codings = [coding for coding in codings if coding]
    if codings:
        if codings != ["chunked"]:
            raise BodyRefused(501, "only the chunked transfer coding is supported")
        return None
    values = {value.strip() for value in headers.get_all("Content-Length") or []}
    if not values:
        return 0
    if len(values) > 1 or not _DIGITS.fullmatch(next(iter(values))):
        raise BodyRefused(400, "Content-Length must be one decimal number")
    length = int(next(iter(values)))
    if length > limit:
        raise BodyRefused(413, f"the request body is longer than this host's {limit}-byte limit")
    return length


def read_body(headers: Message, stream: BinaryIO, limit: int) -> bytes:
    """The whole body, read from ``stream`` only as far as ``limit`` allows."""
    length = declared_length(headers, limit)
    if length is None:
        return _read_chunked(stream, limit)
    body = stream.read(length) if length else b""
    if len(body) < length:
        raise ConnectionError("the client closed the connection before sending the whole body")
    return body


def _read_chunked(stream: BinaryIO, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_text = _line(stream).split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise BodyRefused(400, "malformed chunked body")
        size = int(size_text, 16)
        if size == 0:
            while _line(stream) not in (b"\r\n", b"\n"):
                pass  # trailer fields: not passed on, as the Functions host does not
            return b"".join(chunks)
        total += size
        if total > limit:
            raise BodyRefused(413, f"the request body is longer than this host's {limit}-byte limit")
        chunk = stream.read(size)
        if len(chunk) < size:
            raise ConnectionError("the client closed the connection inside a chunk")
        chunks.append(chunk)
        if _line(stream) not in (b"\r\n", b"\n"):
            raise BodyRefused(400, "malformed chunked body")


def _line(stream: BinaryIO) -> bytes:
    line = stream.readline(_LINE_LIMIT + 1)
    if not line:
        raise ConnectionError("the client closed the connection inside a chunked body")
    if len(line) > _LINE_LIMIT:
        raise BodyRefused(400, "malformed chunked body")
    return line
