"""JSV, ServiceStack's "JSON + CSV" text format: a writer and a forgiving reader.

Clients that speak ``text/jsv`` (and form posts whose fields hold complex types) send and expect
JSV, so the gateway has to read and write it the way ServiceStack.Text does. This module depends on
nothing else in the gateway: it turns Python values into JSV text and JSV text into plain ``dict``,
``list`` and ``str`` values, leaving types to the consumer (a pydantic model).

Grammar, as ServiceStack writes it (``Jsv/JsvTypeSerializer.cs``, ``Common/JsWriter.cs``)::

    value  := map | list | quoted | bare | (nothing)
    map    := '{' [ key ':' value { ',' key ':' value } ] '}'
    list   := '[' [ value { ',' value } ] ']'
    quoted := '"' { any char but '"' | '""' } '"'     CSV style: a '"' inside is doubled
    bare   := chars up to the next ',' '}' or ']'      (':' is allowed: dates are written bare)

Writing (``dumps``) matches ServiceStack byte for byte, with one deliberate difference: see
``_encode_string``. Reading (``loads``) accepts everything ServiceStack writes plus whitespace
(space, tab, CR, LF) between tokens, so hand-written, pretty-printed bodies such as the sample on
the service's reference page parse; ServiceStack's own reader does not skip whitespace.

Decisions (documented here because JSV has no specification):

* A missing value (``{A:,B:1}``, ``{A:}``, ``[a,,b]``) reads as ``None``. ServiceStack's
  ``EatValue`` returns null there and leaves the property unset, and ServiceStack writes a null list
  element as nothing between the separators. ``[]`` is the empty list, so ``[None]`` cannot
  round-trip (it is written ``[]``, as ServiceStack does).
* ``None`` dict values are omitted (ServiceStack omits null properties); top-level ``None`` is ``""``
  and ``loads("")`` (or whitespace only) is ``None``.
* A top-level scalar follows the same token rules as a nested one: ``loads("hello world")`` is
  ``"hello world"`` but ``loads("a,b")`` is an error (trailing garbage). Quote it: ``"a,b"``.
* An unquoted key runs up to ``:``; meeting ``,`` ``{`` ``}`` ``[`` ``]`` first is a missing-colon
  error. Keys may also be quoted (ServiceStack quotes dictionary keys that need it). A trailing
  comma in a map (``{A:1,}``) is an error; a repeated key keeps the last value.
* Dates follow ``DateTimeSerializer.ToShortestXsdDateTimeString``: midnight is ``yyyy-MM-dd``;
  UTC is ``yyyy-MM-ddTHH:mm:ssZ`` or ``...ss.FFFFFFFZ`` (trailing zeros trimmed); another offset is
  ``yyyy-MM-ddTHH:mm:ss+hh:mm`` or ``...ss.fffffff+hh:mm``. A naive datetime (.NET "Unspecified")
  is written without an offset, since the server's zone that .NET would print is unknown.
"""

from __future__ import annotations

import base64
import datetime as _dt
import enum
import math
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["MAX_DEPTH", "JsvDecodeError", "dumps", "loads"]

#: Deepest nesting of maps and lists that ``loads`` accepts and ``dumps`` writes. DTOs need a handful
#: of levels; the limit keeps hostile input from exhausting the stack.
MAX_DEPTH = 64

_WS = " \t\r\n"
# A string holding any of these must be quoted (``JsWriter.EscapeChars``).
_NEEDS_QUOTES = re.compile(r'[":,{}\[\]\r\n]')
# Where a bare value ends, and where a bare key ends (or turns out to have no colon).
_BARE_VALUE_END = re.compile(r"[,}\]]")
_BARE_KEY_END = re.compile(r"[:,{}\[\]]")


class JsvDecodeError(ValueError):
    """Malformed JSV; ``pos`` (0-based), ``lineno`` and ``colno`` (1-based) say where."""

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        lineno = doc.count("\n", 0, pos) + 1
        colno = pos - doc.rfind("\n", 0, pos)
        super().__init__(f"{msg}: line {lineno} column {colno} (char {pos})")
        self.msg = msg
        self.doc = doc
        self.pos = pos
        self.lineno = lineno
        self.colno = colno

    def __reduce__(self) -> tuple[type[JsvDecodeError], tuple[str, str, int]]:
        return self.__class__, (self.msg, self.doc, self.pos)


# --------------------------------------------------------------------------------------------------
# Writing


def dumps(value: Any) -> str:
    """Write ``value`` as ServiceStack writes JSV: no whitespace, null properties omitted.

    Supported: ``None``, ``str``, ``bool``, ``int``, ``float``, ``Decimal``, ``uuid.UUID`` (N form),
    ``datetime``/``date``, ``Enum`` (a ``str`` enum writes its value, any other its name, as .NET
    writes enum names), ``bytes`` (base64, as ServiceStack writes ``byte[]``), mappings and
    lists/tuples of these. Anything else raises ``TypeError``.
    """
    if value is None:
        return ""
    out: list[str] = []
    _write(value, out, 0)
    return "".join(out)


def _write(value: Any, out: list[str], depth: int) -> None:
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            raise ValueError(f"JSV nesting deeper than {MAX_DEPTH} levels (or a circular reference)")
        out.append("{")
        first = True
        for key, item in value.items():
            if item is None:
                continue
            if not first:
                out.append(",")
            first = False
            out.append(_encode_string(_key_text(key)))
            out.append(":")
            _write(item, out, depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            raise ValueError(f"JSV nesting deeper than {MAX_DEPTH} levels (or a circular reference)")
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            if item is not None:  # a null element is written as nothing, as ServiceStack does
                _write(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, str) and not isinstance(value, enum.Enum):
        out.append(_encode_string(value))
    else:
        # Scalars other than strings are written raw, as ServiceStack writes them; their text
        # never holds a character that would need quoting, except an Enum's (hence the encode).
        text = _scalar_text(value)
        out.append(_encode_string(text) if isinstance(value, enum.Enum) else text)


def _key_text(key: Any) -> str:
    if isinstance(key, str) and not isinstance(key, enum.Enum):
        return key
    if key is None or isinstance(key, Mapping | list | tuple):
        raise TypeError(f"JSV map keys must be scalars, not {type(key).__name__}")
    return _scalar_text(key)


def _encode_string(text: str) -> str:
    """Quote ``text`` when a reader would otherwise misread it (``StringExtensions.EncodeJsv``).

    ServiceStack quotes a string holding ``"`` ``:`` ``,`` ``{`` ``}`` ``[`` ``]`` CR or LF, doubling any
    ``"``, and writes the empty string as ``""``. We also quote a string that starts or ends with a
    space or tab, which ServiceStack writes bare: a reader that skips whitespace around tokens (ours,
    and any that accepts pretty-printed JSV) would lose it. ServiceStack reads the quoted form back
    to the same string, so nothing is lost for its clients either.
    """
    if not text:
        return '""'
    if _NEEDS_QUOTES.search(text) is None and text[0] not in " \t" and text[-1] not in " \t":
        return text
    return '"' + text.replace('"', '""') + '"'


def _scalar_text(value: Any) -> str:
    """The invariant text ServiceStack writes for a scalar (.NET ``ToString`` conventions)."""
    if isinstance(value, enum.Enum):
        return str(value.value) if isinstance(value, str) else value.name
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as a .NET decimal")
        return format(value, "f")
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, _dt.datetime):
        return _format_datetime(value)
    if isinstance(value, _dt.date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot write {type(value).__name__} as JSV")


def _format_float(value: float) -> str:
    """Format like .NET Core's ``double.ToString(InvariantCulture)``: shortest round-trip digits,
    no trailing ``.0``, scientific (``1E+15``, ``1E-05``) outside 1e-4 <= |x| < 1e15."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)  # finite, so never 'n'/'N'/'F'
    text = "".join(map(str, digits))
    sci = len(text) + exponent - 1  # exponent of the leading digit
    prefix = "-" if sign else ""
    if -5 < sci < 15:
        if exponent >= 0:
            return prefix + text + "0" * exponent
        point = len(text) + exponent
        if point > 0:
            return prefix + text[:point] + "." + text[point:]
        return prefix + "0." + "0" * -point + text
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{prefix}{mantissa}E{'+' if sci >= 0 else '-'}{abs(sci):02d}"


def _format_datetime(value: _dt.datetime) -> str:
    """``DateTimeSerializer.ToShortestXsdDateTimeString``, mapping an offset of zero to .NET's Utc
    kind, any other offset to Local, and a naive datetime to Unspecified (written without offset)."""
    day = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    micro = value.microsecond
    if not (value.hour or value.minute or value.second or micro):
        return day
    text = f"{day}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    offset = value.utcoffset()
    if offset is not None and not offset:
        return text + ("." + f"{micro:06d}".rstrip("0") if micro else "") + "Z"
    if micro:
        text += f".{micro:06d}0"  # .NET's fffffff: seven digits, Python has six
    if offset is None:
        return text
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


# --------------------------------------------------------------------------------------------------
# Reading


def loads(text: str | bytes | bytearray) -> Any:
    """Parse JSV into ``dict`` (str keys), ``list``, ``str`` and ``None`` (for missing values).

    Scalars stay strings: JSV carries no types, so ``True``, numbers and Guids are converted by the
    consumer. Whitespace between tokens is skipped and a bare value is trimmed at both ends, but
    keeps its inner spaces. Bytes are decoded as UTF-8 (a BOM is dropped). Malformed input raises
    ``JsvDecodeError`` and nothing else.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JsvDecodeError(f"Invalid UTF-8 ({exc.reason})", "", exc.start) from None
    if not isinstance(text, str):
        raise TypeError(f"JSV text must be str or bytes, not {type(text).__name__}")
    return _Parser(text).parse_document()


class _Parser:
    """A single-pass, index-based recursive-descent scanner over one document."""

    __slots__ = ("n", "s")

    def __init__(self, s: str) -> None:
        self.s = s
        self.n = len(s)

    def fail(self, msg: str, pos: int) -> JsvDecodeError:
        return JsvDecodeError(msg, self.s, pos)

    def skip_ws(self, i: int) -> int:
        s, n = self.s, self.n
        while i < n and s[i] in _WS:
            i += 1
        return i

    def parse_document(self) -> Any:
        i = self.skip_ws(0)
        if i == self.n:
            return None
        if self.s[i] in ",}]":
            raise self.fail(f"Unexpected {self.s[i]!r} where a value should start", i)
        value, i = self.parse_value(i, 0)
        i = self.skip_ws(i)
        if i != self.n:
            raise self.fail(f"Unexpected {self.s[i]!r} after the value", i)
        return value

    def parse_value(self, i: int, depth: int) -> tuple[Any, int]:
        """Parse the value starting at ``i`` (already past whitespace); return it and the end index.

        A missing value (``,`` ``}`` ``]`` or the end of the text) is ``None`` and consumes nothing.
        """
        if i == self.n:
            return None, i
        c = self.s[i]
        if c == "{":
            return self.parse_map(i, depth + 1)
        if c == "[":
            return self.parse_list(i, depth + 1)
        if c == '"':
            return self.parse_quoted(i)
        if c in ",}]":
            return None, i
        match = _BARE_VALUE_END.search(self.s, i)
        end = self.n if match is None else match.start()
        return self.s[i:end].rstrip(_WS), end

    def parse_quoted(self, start: int) -> tuple[str, int]:
        s = self.s
        parts: list[str] = []
        i = start + 1
        while True:
            q = s.find('"', i)
            if q == -1:
                raise self.fail("Unterminated quoted string", start)
            if q + 1 < self.n and s[q + 1] == '"':
                parts.append(s[i : q + 1])  # keep one of the doubled quotes
                i = q + 2
                continue
            parts.append(s[i:q])
            return "".join(parts), q + 1

    def parse_key(self, i: int) -> tuple[str, int]:
        """Parse a key at ``i`` (already past whitespace) and the ``:`` after it."""
        s = self.s
        c = s[i]
        if c == '"':
            key, i = self.parse_quoted(i)
            i = self.skip_ws(i)
            if i == self.n or s[i] != ":":
                raise self.fail("Expected ':' after key", i)
            return key, i + 1
        if c in ":,{}[]":
            raise self.fail(f"Expected a key, found {c!r}", i)
        match = _BARE_KEY_END.search(s, i)
        if match is None or match.group() != ":":
            raise self.fail("Expected ':' after key", self.n if match is None else match.start())
        return s[i : match.start()].rstrip(_WS), match.end()

    def parse_map(self, start: int, depth: int) -> tuple[dict[str, Any], int]:
        if depth > MAX_DEPTH:
            raise self.fail(f"Nesting deeper than {MAX_DEPTH} levels", start)
        s, n = self.s, self.n
        result: dict[str, Any] = {}
        i = self.skip_ws(start + 1)
        if i < n and s[i] == "}":
            return result, i + 1
        while True:
            if i == n:
                raise self.fail(f"Unterminated map opened at char {start}: expected a key or '}}'", i)
            key, i = self.parse_key(i)
            value, i = self.parse_value(self.skip_ws(i), depth)
            result[key] = value
            i = self.skip_ws(i)
            if i == n:
                raise self.fail(f"Unterminated map opened at char {start}: expected ',' or '}}'", i)
            c = s[i]
            if c == "}":
                return result, i + 1
            if c != ",":
                raise self.fail(f"Expected ',' or '}}' in map, found {c!r}", i)
            i = self.skip_ws(i + 1)

    def parse_list(self, start: int, depth: int) -> tuple[list[Any], int]:
        if depth > MAX_DEPTH:
            raise self.fail(f"Nesting deeper than {MAX_DEPTH} levels", start)
        s, n = self.s, self.n
        result: list[Any] = []
        i = self.skip_ws(start + 1)
        if i < n and s[i] == "]":
            return result, i + 1
        while True:
            value, i = self.parse_value(i, depth)
            result.append(value)
            i = self.skip_ws(i)
            if i == n:
                raise self.fail(f"Unterminated list opened at char {start}: expected ',' or ']'", i)
            c = s[i]
            if c == "]":
                return result, i + 1
            if c != ",":
                raise self.fail(f"Expected ',' or ']' in list, found {c!r}", i)
            i = self.skip_ws(i + 1)
