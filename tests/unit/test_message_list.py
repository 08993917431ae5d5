"""The message log's keys and query: newest first by RowKey, Since/Until as key bounds, tokens bound to a licensee."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import ApiError
from gateway.message_list import DEFAULT_TOP, LogQuery, key_range, make_token, read_query
from gateway.message_log import LogEntry, day_keys, licensee_row_key
from gateway.storage import CommStatus

LICENSEE = uuid.UUID("0d6f4a8e-5c1b-4e57-9a43-1f7d2b3c4e5f")
NOW = datetime(2026, 11, 30, 15, 0, 0, 123456, tzinfo=UTC)


def key_at(when: datetime) -> str:
    return licensee_row_key(LogEntry(LICENSEE, uuid.uuid4(), when))


def test_a_later_accept_sorts_first_and_the_day_row_sorts_by_time() -> None:
    assert key_at(NOW + timedelta(microseconds=1)) < key_at(NOW) < key_at(NOW - timedelta(days=3650))
    partition, row = day_keys(LogEntry(LICENSEE, uuid.UUID(int=1), NOW))
    assert partition == "t20261130" and row.startswith("150000123456-")
    assert partition > "f" * 32  # after every licensee's hex partition


def test_since_is_inclusive_and_until_exclusive() -> None:
    start, stop = key_range(LogQuery(since=NOW, until=NOW + timedelta(seconds=1)))
    assert start < key_at(NOW) < stop
    assert start < key_at(NOW + timedelta(microseconds=999_999)) < stop
    assert not start < key_at(NOW + timedelta(seconds=1)) < stop
    assert not start < key_at(NOW - timedelta(microseconds=1)) < stop


def test_a_token_resumes_after_its_row_for_its_licensee_only() -> None:
    row = key_at(NOW)
    token = make_token(LICENSEE, row)
    assert read_query({"continuationtoken": token}, LICENSEE).after == row
    for bad in (make_token(uuid.uuid4(), row), "not a token", make_token(LICENSEE, "x' or true")):
        with pytest.raises(ApiError) as refused:
            read_query({"ContinuationToken": bad}, LICENSEE)
        assert refused.value.error_code == "InvalidContinuationToken"


def test_the_query_reads_names_case_insensitively_with_defaults() -> None:
    assert read_query({}, LICENSEE) == LogQuery(top=DEFAULT_TOP)
    query = read_query({"top": "7", "STATUS": "partiallysent", "since": "2026-11-30T15:00:00Z"}, LICENSEE)
    assert (query.top, query.status, query.since) == (7, CommStatus.PARTIALLY_SENT, datetime(2026, 11, 30, 15,
                                                                                             tzinfo=UTC))
    for name, value, code in (("Top", "-1", "InvalidTop"), ("Top", "٣", "InvalidTop"), ("Status", "x", "InvalidStatus"),
                              ("Until", "soon", "InvalidDateTime"), ("PhoneNumber", "+447911123456", "NotSupported")):
        with pytest.raises(ApiError) as refused:
            read_query({name: value}, LICENSEE)
        assert refused.value.error_code == code
