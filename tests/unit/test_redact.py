"""What a log line may say: numbers to their last four digits, ids intact, query strings cut."""

from __future__ import annotations

import pytest

from gateway.redact import brief, describe, mask_phone, mask_text


@pytest.mark.parametrize(
    ("number", "masked"),
    [("+447400123461", "********3461"), ("07400 123461", "*******3461"), ("1234", "****"), (None, "<none>")],
)
def test_mask_phone_keeps_the_last_four_digits(number: str | None, masked: str) -> None:
    assert mask_phone(number) == masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The 'To' number +447400123461 is not valid", "The 'To' number ********3461 is not valid"),
        ("call 07400-123-461 or (0740) 0123461", "call *******3461 or (*******3461"),
        ("number+447400123461.", "number+********3461."),
        ("comm de6532d5e24255e79818a12f4d128183 code 20503", "comm de6532d5e24255e79818a12f4d128183 code 20503"),
        ("GET https://api.example/M.json?To=%2B447400123461&From=x failed", "GET https://api.example/M.json?… failed"),
        ("/devstoreaccount1/Tables?sv=2020&sig=abc%3D refused", "/devstoreaccount1/Tables?… refused"),
        ("Why? Because.", "Why? Because."),
    ],
)
def test_mask_text_masks_numbers_and_cuts_query_strings_only(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_brief_cuts_long_text_and_describe_names_the_exception() -> None:
    assert len(brief("x" * 1000)) == 300
    assert describe(ValueError("invalid literal for int(): '+447400123461'")) == (
        "ValueError: invalid literal for int(): '********3461'")
