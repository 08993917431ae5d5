"""Smart encoding (gateway/smart_encoding.py): look-alikes replaced only when that makes the whole body GSM-7."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.segments import count_segments, is_gsm7
from gateway.smart_encoding import LOOK_ALIKES, smart_encode


def test_every_look_alike_is_outside_gsm7_and_becomes_gsm7() -> None:
    assert [char for char in LOOK_ALIKES if is_gsm7(char)] == []
    assert [char for char, replacement in LOOK_ALIKES.items() if not is_gsm7(replacement)] == []


@pytest.mark.parametrize(("body", "sent"), [
    ("\u201cSee you at 10\u201d \u2014 it\u2019s on\u2026", '"See you at 10" - it\'s on...'),
    ("\u2018a\u2019 \u2013 b\u00a0c\u2009d\u202fe\u3000f", "'a' - b c d e f"),
    ("\u00ab\u00bb \u2039\u203a \uff21\uff3a\uff10\uff19", '"" <> AZ09'),  # angle quotes keep their direction
    ("\u00bd\u00bc \u2022 \u203c", "1/21/4 - !!"),
    ("tab\there", "tab here"),
    ("line\u2028next\u2029para", "line\nnext\npara"),
    ("zero\u200bwidth\ufeff", "zerowidth"),
])
def test_look_alikes_are_replaced_when_that_makes_the_body_gsm7(body: str, sent: str) -> None:
    assert smart_encode(body) == sent


@pytest.mark.parametrize("body", [
    "plain GSM-7 with {braces} and \u20ac",  # nothing to do
    "\u201cCyrillic\u201d \u0436",  # needs UCS-2 anyway: the quotes stay as written
    "\u201cemoji\u201d \U0001f600",
    "e\u0302t\u0303e",  # combining marks belong to their letter: not in the table
    "\u200b\u2060",  # only zero-width characters: replacing them would send nothing
    "\u2026" * 60,  # 1 UCS-2 segment; as "..." it would be 180 septets, 2 segments
])
def test_bodies_smart_encoding_leaves_alone(body: str) -> None:
    assert smart_encode(body) is None


def test_replacing_is_kept_when_it_costs_no_more_segments() -> None:
    assert smart_encode("\u2026" * 53) == "..." * 53  # 159 septets: 1 segment, as the 53 UCS-2 units were


look_alike_bodies = st.text(st.one_of(st.sampled_from(sorted(LOOK_ALIKES)), st.sampled_from(list("ab €{")),
                                      st.characters()), max_size=300)


@given(look_alike_bodies)
def test_a_body_is_replaced_exactly_when_that_makes_it_gsm7_at_no_more_segments(body: str) -> None:
    translated = "".join(LOOK_ALIKES.get(char, char) for char in body)
    worth_it = (not is_gsm7(body) and is_gsm7(translated) and bool(translated.strip())
                and count_segments(translated).segments <= count_segments(body).segments)
    assert smart_encode(body) == (translated if worth_it else None)
