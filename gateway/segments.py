"""What a body costs: its encoding (GSM-7 or UCS-2) and how many segments (billed parts) it is sent in.

Providers bill every segment, so the gateway counts them itself: to refuse a body longer than
``SMS_MAX_SEGMENTS``, to show the count in the status and to say it in a send's answer. A body is GSM-7
when every character is in the GSM 03.38 default alphabet (basic table one septet, extension table two:
escape and character); one other character makes the whole body UCS-2, where a character beyond the
Basic Multilingual Plane (most emoji) takes two UTF-16 code units. A body that fits one message has 140
octets: 160 septets or 70 units; a longer one is split into parts that each lose 6 octets to the header
that joins them: 153 septets or 67 units. A part never ends between the two septets of an extension
character nor between the two units of a surrogate pair (docs/messages.md, "Encodings" and "Segments").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# 3GPP TS 23.038 default alphabet as Unicode's GSM0338.TXT maps it: 127 characters (0x1B is the escape).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is sent as the escape septet and its own, so it costs two.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

BMP_END = 0xFFFF


class Encoding(enum.StrEnum):
    GSM_7 = "GSM-7"
    UCS_2 = "UCS-2"

    @property
    def units(self) -> str:
        """What a length in this encoding counts, for people."""
        return "septets" if self is Encoding.GSM_7 else "UTF-16 units"


@dataclass(frozen=True)
class Capacity:
    """Units in a body sent as one message, and in each part of a body split into several."""

    single: int
    part: int


CAPACITY = {Encoding.GSM_7: Capacity(single=160, part=153), Encoding.UCS_2: Capacity(single=70, part=67)}


@dataclass(frozen=True)
class Segmentation:
    """A body's encoding, its segments and its length in units: septets (GSM-7) or UTF-16 code units (UCS-2)."""

    encoding: Encoding
    segments: int
    units: int

    def describe(self) -> str:
        """``GSM-7, 2 segments``: how a send's answer states it."""
        return f"{self.encoding}, {self.segments} segment{'' if self.segments == 1 else 's'}"


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in GSM-7's basic or extension table."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def encoding_of(body: str) -> Encoding:
    return Encoding.GSM_7 if is_gsm7(body) else Encoding.UCS_2


def width(char: str, encoding: Encoding) -> int:
    """Units one character takes: an extension character two septets, a character beyond the BMP two units."""
    if encoding is Encoding.GSM_7:
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > BMP_END else 1


def split(body: str) -> list[str]:
    """The parts ``body`` is sent in, each filled as far as it goes without splitting a character's units."""
    encoding = encoding_of(body)
    capacity = CAPACITY[encoding]
    if sum(width(char, encoding) for char in body) <= capacity.single:
        return [body]
    parts: list[str] = []
    start, used = 0, 0
    for position, char in enumerate(body):
        units = width(char, encoding)
        if used + units > capacity.part:
            parts.append(body[start:position])
            start, used = position, 0
        used += units
    parts.append(body[start:])
    return parts


def count_segments(body: str) -> Segmentation:
    """The encoding, segments and units of ``body``; an empty body is one (empty) segment."""
    encoding = encoding_of(body)
    return Segmentation(encoding=encoding, segments=len(split(body)),
                        units=sum(width(char, encoding) for char in body))
