"""The message log's keys and query: newest first by RowKey, Since/Until as key bounds, rows by recipient in a
partition of their own, tokens bound to a licensee and a PhoneNumber filter."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import ApiError
from gateway.message_list import DEFAULT_TOP, LogQuery, key_range, make_token, read_query
from gateway.message_log import (
    LogEntry,
    _number_batches,
    day_keys,
    licensee_row_key,
    number_partition,
    number_prefix,
    number_row_key,
)
from gateway.settings import MAX_RECIPIENTS_CEILING, Settings
from gateway.storage import MAX_PROPERTY_UNITS, CommStatus

LICENSEE = uuid.UUID("0d6f4a8e-5c1b-4e57-9a43-1f7d2b3c4e5f")
NOW = datetime(2026, 11, 30, 15, 0, 0, 123456, tzinfo=UTC)
SETTINGS = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "SMS_DEFAULT_REGION": "GB"})


def read(query: dict[str, str], licensee: uuid.UUID = LICENSEE) -> LogQuery:
    return read_query(query, licensee, SETTINGS)


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
    assert read({"continuationtoken": token}).after == row
    for bad in (make_token(uuid.uuid4(), row), "not a token", make_token(LICENSEE, "x' or true")):
        with pytest.raises(ApiError) as refused:
            read({"ContinuationToken": bad})
        assert refused.value.error_code == "InvalidContinuationToken"


def test_a_token_is_bound_to_its_phone_number_filter_and_never_spells_the_number() -> None:
    row = key_at(NOW)
    token = make_token(LICENSEE, row, "+447911123456")
    assert "447911123456" not in base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert read({"PhoneNumber": "07911 123456", "ContinuationToken": token}).after == row  # the same number, national
    for query in ({"ContinuationToken": token}, {"PhoneNumber": "+447911123457", "ContinuationToken": token},
                  {"PhoneNumber": "+447911123456", "ContinuationToken": make_token(LICENSEE, row)}):
        with pytest.raises(ApiError) as refused:
            read(query)
        assert refused.value.error_code == "InvalidContinuationToken"
    with pytest.raises(ApiError) as other:  # the same number for another licensee: another token
        read({"PhoneNumber": "+447911123456", "ContinuationToken": token}, uuid.uuid4())
    assert other.value.error_code == "InvalidContinuationToken"


def test_the_phone_number_is_read_as_a_recipients_and_a_bad_one_is_400_naming_the_field() -> None:
    assert read({"phonenumber": " 07911 123456 "}).phone_number == "+447911123456"
    assert read({"PhoneNumber": "  "}).phone_number is None  # empty: no filter, as for the other names
    with pytest.raises(ApiError) as refused:
        read({"PhoneNumber": "+44 12"})
    assert refused.value.error_code == "InvalidPhoneNumber"
    assert [error.field_name for error in refused.value.errors] == ["PhoneNumber"]
    assert "12" not in refused.value.message  # an error never repeats a number


def test_rows_by_recipient_are_in_a_partition_no_other_range_reaches() -> None:
    partition = number_partition(LICENSEE)
    assert "f" * 32 < partition < "t" and partition != LICENSEE.hex  # not a licensee's, before every day
    entry = LogEntry(LICENSEE, uuid.uuid4(), NOW, ("+4479111234",))
    shorter, longer = number_row_key("+4479111234", entry), number_row_key("+44791112345", entry)
    assert shorter.startswith(number_prefix("+4479111234")) and shorter.endswith(licensee_row_key(entry))
    start, stop = key_range(LogQuery())
    prefix = number_prefix("+4479111234")
    assert prefix + start < shorter < prefix + stop
    assert not prefix + start < longer < prefix + stop  # a number that starts with another is not in its range


def test_a_sends_rows_by_recipient_go_in_transactions_of_100() -> None:
    numbers = tuple(f"+4479110{n:05d}" for n in range(1000))
    batches = _number_batches(LogEntry(LICENSEE, uuid.uuid4(), NOW, numbers + numbers[:1]))  # a number twice: once
    assert [len(batch) for batch in batches] == [100] * 10
    assert {operation[1]["PartitionKey"] for batch in batches for operation in batch} == {number_partition(LICENSEE)}
    assert len(_number_batches(LogEntry(LICENSEE, uuid.uuid4(), NOW, numbers[:1]))) == 1
    assert _number_batches(LogEntry(LICENSEE, uuid.uuid4(), NOW)) == []
    longest = " ".join(["+" + "9" * 15] * MAX_RECIPIENTS_CEILING)  # E.164 is at most 15 digits
    assert len(longest) <= MAX_PROPERTY_UNITS  # the day row's Numbers: one property


def test_the_query_reads_names_case_insensitively_with_defaults() -> None:
    assert read({}) == LogQuery(top=DEFAULT_TOP)
    query = read({"top": "7", "STATUS": "partiallysent", "since": "2026-11-30T15:00:00Z"})
    assert (query.top, query.status, query.since) == (7, CommStatus.PARTIALLY_SENT, datetime(2026, 11, 30, 15,
                                                                                             tzinfo=UTC))
    for name, value, code in (("Top", "-1", "InvalidTop"), ("Top", "٣", "InvalidTop"), ("Status", "x", "InvalidStatus"),
                              ("Until", "soon", "InvalidDateTime"), ("PhoneNumber", "12", "InvalidPhoneNumber")):
        with pytest.raises(ApiError) as refused:
            read({name: value})
        assert refused.value.error_code == code
