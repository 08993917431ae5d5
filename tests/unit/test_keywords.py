"""Keywords: the message alone, trimmed and in any case, is a keyword; anything around it makes it a reply."""

from __future__ import annotations

import pytest

from gateway.keywords import HELP, OPT_IN, OPT_OUT, Keyword, classify


@pytest.mark.parametrize("word", sorted(OPT_OUT))
def test_every_opt_out_word_opts_out_in_any_case(word: str) -> None:
    assert classify(word) is Keyword.OPT_OUT
    assert classify(word.lower()) is Keyword.OPT_OUT
    assert classify(word.title()) is Keyword.OPT_OUT


def test_the_lists_are_the_issues() -> None:
    assert {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"} == OPT_OUT
    assert {"START", "YES", "UNSTOP"} == OPT_IN
    assert {"HELP", "INFO"} == HELP


@pytest.mark.parametrize(("body", "keyword"), [
    (" stop ", Keyword.OPT_OUT), ("\tStop\r\n", Keyword.OPT_OUT), ("opt  out", Keyword.OPT_OUT),
    ("Opt Out\n", Keyword.OPT_OUT), ("start", Keyword.OPT_IN), ("YES", Keyword.OPT_IN), ("unstop", Keyword.OPT_IN),
    ("help", Keyword.HELP), (" Info ", Keyword.HELP),
])
def test_a_keyword_is_the_trimmed_message_in_any_case(body: str, keyword: Keyword) -> None:
    assert classify(body) is keyword


@pytest.mark.parametrize("body", [
    "stop please", "S T O P", "STOP.", "please stop", "stopp", "st op", "optout now", "yes please", "help me",
    "no", "Thanks, see you Tuesday", "", "   ", None, "\uff33\uff34\uff2f\uff30",  # fullwidth letters
])
def test_anything_else_is_an_ordinary_reply(body: str | None) -> None:
    assert classify(body) is None
