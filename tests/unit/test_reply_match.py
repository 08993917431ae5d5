"""The correlation rule on paper: one licensee within the window; its latest ReplyIsAllowed send, else its latest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gateway.reply_index import MatchKind, Sent, match, number_key

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=72)
A, B = uuid.UUID(int=0xA), uuid.UUID(int=0xB)


def sent(licensee: uuid.UUID, hours_ago: float, *, allowed: bool = False) -> Sent:
    return Sent(licensee, uuid.uuid4(), 0, NOW - timedelta(hours=hours_ago), reply_is_allowed=allowed)


def test_nothing_sent_on_the_pair_is_unmatched() -> None:
    result = match([], NOW, WINDOW)
    assert (result.kind, result.sent, result.licensees) == (MatchKind.UNMATCHED, None, ())


def test_the_latest_send_within_the_window_is_matched() -> None:
    older, newer = sent(A, 30), sent(A, 2)
    result = match([older, newer], NOW, WINDOW)
    assert (result.kind, result.sent) == (MatchKind.MATCHED, newer)


def test_a_reply_allowed_send_wins_over_a_later_one_without() -> None:
    allowed, later = sent(A, 30, allowed=True), sent(A, 2)
    assert match([later, allowed], NOW, WINDOW).sent == allowed


def test_a_send_older_than_the_window_is_not_matched_but_its_licensee_is_known() -> None:
    result = match([sent(A, 73)], NOW, WINDOW)
    assert (result.kind, result.sent, result.licensees) == (MatchKind.UNMATCHED, None, (A,))


def test_two_licensees_within_the_window_is_ambiguous_and_attributed_to_neither() -> None:
    result = match([sent(A, 1, allowed=True), sent(B, 5)], NOW, WINDOW)
    assert (result.kind, result.sent, set(result.licensees)) == (MatchKind.AMBIGUOUS, None, {A, B})


def test_another_licensee_outside_the_window_does_not_make_it_ambiguous() -> None:
    mine = sent(A, 1)
    assert match([mine, sent(B, 100)], NOW, WINDOW).sent == mine


def test_a_send_stamped_after_the_reply_counts_within_the_clock_skew_only() -> None:
    assert match([sent(A, -0.05)], NOW, WINDOW).kind is MatchKind.MATCHED
    assert match([sent(A, -1)], NOW, WINDOW).kind is MatchKind.UNMATCHED


def test_numbers_are_keyed_by_their_digits_and_sender_ids_not_at_all() -> None:
    assert number_key("+15005550006") == number_key("15005550006") == "15005550006"
    assert number_key("12345") == number_key("+12345") == "12345"  # a short code, as sent and as received
    assert number_key("ACME") is None
    assert number_key("+1 500") is None
