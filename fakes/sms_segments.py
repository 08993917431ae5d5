"""How many parts an SMS is sent in, as the providers the fakes stand for count it (Twilio's ``num_segments``, ACS's
``segmentsSucceeded``/``segmentsFailed``).

Written from GSM 03.38 apart from the gateway's own ``gateway/segments.py``, so a test that compares the gateway's
count with a fake's compares two readings of the standard, not one code with itself.
"""

from __future__ import annotations

# GSM 03.38's default alphabet by septet value (0x1B, the escape, is no character), and its extension table: a
# character there is sent as the escape and its value.
GSM_DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_ESCAPE = 0x1B
GSM_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40,
                 "€": 0x65}
OCTETS_PER_SMS = 140
CONCATENATION_HEADER_OCTETS = 6


def _code_units(body: str) -> tuple[list[list[int]], int] | None:
    """Each character's GSM-7 septets and the bits a septet takes, or None when a character is not GSM-7."""
    units: list[list[int]] = []
    for char in body:
        if char in GSM_EXTENSION:
            units.append([GSM_ESCAPE, GSM_EXTENSION[char]])
        elif char != "\x1b" and char in GSM_DEFAULT_ALPHABET:
            units.append([GSM_DEFAULT_ALPHABET.index(char)])
        else:
            return None
    return units, 7


def _utf16_units(char: str) -> list[int]:
    """UCS-2 as phones read it: UTF-16, a surrogate pair for a character beyond the BMP."""
    encoded = char.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(encoded[at:at + 2]) for at in range(0, len(encoded), 2)]


def num_segments(body: str) -> int:
    """How many SMS parts a provider sends ``body`` in: GSM-7 when every character is in GSM 03.38, else UCS-2
    (UTF-16, two units for a character beyond the BMP); 140 octets a message, 134 a part once a concatenation header
    takes 6, and a character's units never split between parts."""
    gsm = _code_units(body)
    if gsm is not None:
        characters, bits = gsm
    else:
        characters, bits = [_utf16_units(char) for char in body], 16
    if sum(len(units) for units in characters) * bits <= OCTETS_PER_SMS * 8:
        return 1
    room = (OCTETS_PER_SMS - CONCATENATION_HEADER_OCTETS) * 8 // bits
    parts, used = 1, 0
    for units in characters:
        if used + len(units) > room:
            parts, used = parts + 1, 0
        used += len(units)
    return parts
