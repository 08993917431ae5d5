"""Encoding and segments of a body (gateway/segments.py): the boundary cases, and properties over any text."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakes.sms_segments import num_segments as fake_segments
from gateway.segments import (
    CAPACITY,
    GSM7_BASIC,
    GSM7_EXTENSION,
    Encoding,
    Segmentation,
    count_segments,
    encoding_of,
    split,
)

GSM, UCS = Encoding.GSM_7, Encoding.UCS_2
CYRILLIC = "ж"
EMOJI = "\U0001f600"  # beyond the BMP: a surrogate pair in UTF-16


@pytest.mark.parametrize(("body", "encoding", "segments", "units"), [
    ("a" * 160, GSM, 1, 160),
    ("a" * 161, GSM, 2, 161),
    ("a" * 306, GSM, 2, 306),
    ("a" * 307, GSM, 3, 307),
    ("€" * 80, GSM, 1, 160),  # extension characters: two septets each
    ("€" * 81, GSM, 2, 162),
    (CYRILLIC * 70, UCS, 1, 70),
    (CYRILLIC * 71, UCS, 2, 71),
    (CYRILLIC * 134, UCS, 2, 134),
    (CYRILLIC * 135, UCS, 3, 135),
    (EMOJI * 35, UCS, 1, 70),
    (EMOJI * 36, UCS, 2, 72),
    ("a" * 159 + CYRILLIC, UCS, 3, 160),  # one letter makes 160 characters UCS-2: 67 + 67 + 26
    ("é" * 160, GSM, 1, 160),  # é is in GSM-7's basic table; á is not
    ("á", UCS, 1, 1),
    ("", GSM, 1, 0),
    ("\r\n" * 80, GSM, 1, 160),
    ("\uffff" * 70, UCS, 1, 70),  # the last character of the BMP is one unit
    ("\U00010000" * 35, UCS, 1, 70),  # the first beyond it two
])
def test_boundary_bodies(body: str, encoding: Encoding, segments: int, units: int) -> None:
    assert count_segments(body) == Segmentation(encoding, segments, units)


def test_an_extension_character_at_a_part_boundary_starts_the_next_part() -> None:
    body = "a" * 152 + "€" + "a" * 10  # the € would need septets 153 and 154 of the first part
    assert [len(part) for part in split(body)] == [152, 11]
    assert split(body)[1].startswith("€")
    assert count_segments("a" * 151 + "€" + "a" * 10).segments == 2  # it fits: septets 152 and 153
    assert [len(part) for part in split("a" * 151 + "€" + "a" * 10)] == [152, 10]


def test_a_surrogate_pair_at_a_part_boundary_starts_the_next_part() -> None:
    body = CYRILLIC * 66 + EMOJI + CYRILLIC * 10  # the emoji would need units 67 and 68 of the first part
    assert [part.encode("utf-16-le") for part in split(body)] == [
        (CYRILLIC * 66).encode("utf-16-le"), (EMOJI + CYRILLIC * 10).encode("utf-16-le")]


def test_the_tables_are_gsm_03_38() -> None:
    assert len(GSM7_BASIC) == 127 and len(GSM7_EXTENSION) == 10  # 128 values, one of them the escape
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert {"@", "£", "¤", "Δ", "ß", "§", "¿", "à", "\n", "\r"} <= GSM7_BASIC
    assert {"`", "\t", "ç", "\u00a0", "\u2019"}.isdisjoint(GSM7_BASIC | GSM7_EXTENSION)


def test_a_segmentation_and_the_capacities_cannot_be_changed() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        count_segments("hi").segments = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CAPACITY[GSM].part = 160  # type: ignore[misc]


def test_describe_says_encoding_and_segments() -> None:
    assert count_segments("hi").describe() == "GSM-7, 1 segment"
    assert count_segments(CYRILLIC * 71).describe() == "UCS-2, 2 segments"


# Text that crosses part boundaries often: GSM-7 basic and extension characters, a BMP letter outside GSM-7,
# characters beyond the BMP, and anything else.
characters = st.one_of(
    st.sampled_from(sorted(GSM7_BASIC)), st.sampled_from(sorted(GSM7_EXTENSION)), st.just(CYRILLIC),
    st.sampled_from([EMOJI, "\U0001f1ee", "\U00020000"]), st.characters(),
)
bodies = st.one_of(st.text(characters, max_size=500), st.text(st.sampled_from(["a", "€"]), min_size=150, max_size=320))


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def sent_units(text: str, encoding: Encoding) -> int:
    """Units a part takes, read without gateway/segments.py's own width: septets, or UTF-16 code units."""
    if encoding is GSM:
        return sum(2 if char in GSM7_EXTENSION else 1 for char in text)
    return utf16_units(text)


@given(bodies)
def test_the_parts_are_the_body_each_filled_as_far_as_it_goes(body: str) -> None:
    cost, parts = count_segments(body), split(body)
    assert "".join(parts) == body
    assert cost.segments == len(parts) and cost.units == sent_units(body, cost.encoding)
    capacity = CAPACITY[cost.encoding]
    if len(parts) == 1:
        assert cost.units <= capacity.single
        return
    assert cost.units > capacity.single
    assert all(0 < sent_units(part, cost.encoding) <= capacity.part for part in parts)
    for part, following in itertools.pairwise(parts):
        # Full: the next part's first character (both its units) would not have fitted.
        assert sent_units(part + following[0], cost.encoding) > capacity.part
    assert cost.segments >= math.ceil(cost.units / capacity.part)


@given(bodies)
def test_gsm7_exactly_when_every_character_is_in_a_table(body: str) -> None:
    assert (encoding_of(body) is GSM) == all(char in GSM7_BASIC | GSM7_EXTENSION for char in body)


@given(bodies, characters)
def test_a_longer_body_never_takes_fewer_segments(body: str, char: str) -> None:
    assert count_segments(body + char).segments >= count_segments(body).segments


@given(bodies)
def test_the_fakes_count_the_same_segments_from_their_own_tables(body: str) -> None:
    assert count_segments(body).segments == fake_segments(body)
