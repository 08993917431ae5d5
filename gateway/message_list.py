"""GET /api/sms: a page of the caller's communications, newest first, read from the message log index.

A page is one range query of the caller's partition of ``<prefix>MessageLog`` (Top + 1 rows: the one more says
whether there is a next page) and a point read of each listed header (a few columns, in parallel), which gives
the status and counts as they are now: the index holds only what never changes (the accept time), so no write
that moves a status has to keep it in step. A ``Status`` filter is applied to those headers, so a filtered page
may hold fewer than Top and still have a next page: the reads per page stay bounded by Top whatever the filter.

With ``PhoneNumber`` (normalized as a recipient's is on send) the range query reads the caller's rows by recipient
instead: the communications sent to that number, newest first, keyed by the same time and CommId, read and checked
the same way.

The continuation token is the time-and-CommId part of the last RowKey the page read, bound to the caller's licensee
and to the PhoneNumber filter (a short digest of it, never the number): a token is only ever used inside the
caller's own partitions, and one made for another licensee or another filter is refused (400), never read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from gateway.errors import ApiError, FieldError
from gateway.message_log import LogEntry, MessageLog, newest_first_key, same_instant
from gateway.models import SMSLogEntry, SMSLogResponse, parse_wire_datetime
from gateway.segments import count_segments
from gateway.settings import Settings
from gateway.storage import HEADER_ROW, RECEIPT_COUNT_PROPERTIES, CommStatus, receipt_counts_of
from gateway.validation import validate_number

DEFAULT_TOP = 50
MAX_TOP = 200
TOKEN_VERSION = "2"  # 2: the filter it was made for ("1", before PhoneNumber, named only the licensee)
WHOLE_LOG = "all"  # a token's scope without PhoneNumber
AFTER_EVERY_KEY = "~"  # sorts after the digits and the "-" a RowKey is made of
SUMMARY_COLUMNS = ["LicenseeId", "Reference", "Status", "CreatedAt", "SendAt", "RecipientCount", "SentCount",
                   "FailedCount", *RECEIPT_COUNT_PROPERTIES, "LinkedObjectId", "SuiteId", "Body"]
"""The header's columns a listed entry reads: Body only for its Segments and Encoding (never listed itself)."""
ROW_KEY = re.compile(r"\d{17}-[0-9a-f]{32}")  # what ``licensee_row_key`` writes: all a token may resume after
QUERY_NAMES = ("Top", "ContinuationToken", "Status", "Since", "Until", "PhoneNumber")


@dataclass(frozen=True)
class LogQuery:
    """What a caller asked for, validated: the page size, where to go on, and the filters."""

    top: int = DEFAULT_TOP
    after: str = ""  # the last RowKey the previous page read; "" from the newest
    status: CommStatus | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    phone_number: str | None = None  # E.164: only communications sent to it


def _invalid(field: str, code: str, message: str) -> ApiError:
    return ApiError.validation([FieldError(field, code, message)])


def read_query(query: Mapping[str, str], licensee_id: uuid.UUID, settings: Settings) -> LogQuery:
    """The log query from a request's query string (names case-insensitive); 400 naming the field otherwise."""
    by_lower = {name.lower(): name for name in QUERY_NAMES}
    values = {by_lower[name.lower()]: value for name, value in query.items() if name.lower() in by_lower}
    number = values.get("PhoneNumber")
    phone_number = validate_number(number, "PhoneNumber", settings) if (number or "").strip() else None
    return LogQuery(top=_top(values.get("Top")),
                    after=_token_key(values.get("ContinuationToken"), licensee_id, phone_number),
                    status=_status(values.get("Status")), since=_time(values.get("Since"), "Since"),
                    until=_time(values.get("Until"), "Until"), phone_number=phone_number)


def _top(text: str | None) -> int:
    if text is None or not text.strip():
        return DEFAULT_TOP
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or not 1 <= int(stripped) <= MAX_TOP:
        raise _invalid("Top", "InvalidTop", f"'Top' must be a whole number from 1 to {MAX_TOP}.")
    return int(stripped)


def _status(text: str | None) -> CommStatus | None:
    if text is None or not text.strip():
        return None
    by_name = {status.value.lower(): status for status in CommStatus}
    found = by_name.get(text.strip().lower())
    if found is None:
        names = ", ".join(status.value for status in CommStatus)
        raise _invalid("Status", "InvalidStatus", f"'Status' must be one of: {names}.")
    return found


def _time(text: str | None, field: str) -> datetime | None:
    """A Since or Until as a send's SendAt is read (ISO 8601 or ``/Date(ms)/``; no offset: UTC)."""
    try:
        parsed = parse_wire_datetime(text) if text is not None else None
    except ValueError as error:
        raise _invalid(field, "InvalidDateTime", f"'{field}' {error}.") from None
    return parsed if isinstance(parsed, datetime) else None


def token_scope(licensee_id: uuid.UUID, phone_number: str | None) -> str:
    """What a token is good for besides its licensee: the whole log, or one number's rows (a digest of the number
    and the licensee, so the token, which travels in URLs, never spells the number)."""
    if phone_number is None:
        return WHOLE_LOG
    return hashlib.sha256(f"{licensee_id.hex}/{phone_number}".encode()).hexdigest()[:16]


def make_token(licensee_id: uuid.UUID, row_key: str, phone_number: str | None = None) -> str:
    """An opaque token naming where the next page starts, for this licensee and this PhoneNumber filter only."""
    text = f"{TOKEN_VERSION}.{licensee_id.hex}.{token_scope(licensee_id, phone_number)}.{row_key}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _token_key(token: str | None, licensee_id: uuid.UUID, phone_number: str | None) -> str:
    """The key a token resumes after; 400 for a token that is not ours, or was made for another licensee or another
    PhoneNumber (resuming one number's list at a position in another's would skip rows unasked)."""
    if token is None or not token.strip():
        return ""
    text = token.strip()
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        decoded = ""
    version, owner, scope, row_key = ([*decoded.split(".", 3), "", "", ""])[:4]
    if (version != TOKEN_VERSION or owner != licensee_id.hex or scope != token_scope(licensee_id, phone_number)
            or not ROW_KEY.fullmatch(row_key)):
        raise _invalid("ContinuationToken", "InvalidContinuationToken",
                       "'ContinuationToken' is not one this licensee's previous page gave for this PhoneNumber.")
    return row_key


def key_range(query: LogQuery) -> tuple[str, str]:
    """The keys (exclusive both ends; a licensee row's RowKey, a number row's after its number) a query covers:
    after its token, accepted in ``[since, until)``."""
    start = query.after
    if query.until is not None:
        start = max(start, newest_first_key(query.until) + AFTER_EVERY_KEY)
    stop = AFTER_EVERY_KEY
    if query.since is not None:
        stop = newest_first_key(query.since) + AFTER_EVERY_KEY
    return start, stop


class LogService:
    """Pages through a licensee's communications: the index for the order, the headers for what they say now."""

    def __init__(self, log: MessageLog, communications: TableClient, *, concurrency: int) -> None:
        self._log = log
        self._communications = communications
        self._concurrency = max(1, concurrency)

    def page(self, licensee_id: uuid.UUID, query: LogQuery) -> SMSLogResponse:
        start, stop = key_range(query)
        rows = (self._log.newest_first(licensee_id, start, stop, query.top + 1, number=query.phone_number)
                if start < stop else [])
        listed, more = rows[: query.top], len(rows) > query.top
        entries = [entry for _, entry in listed]
        results = [_summary(entry, header) for entry, header in zip(entries, self._headers(entries), strict=True)
                   if _shown(entry, header, query.status)]
        token = make_token(licensee_id, listed[-1][0], query.phone_number) if more else None
        return SMSLogResponse(Results=results, ContinuationToken=token)

    def _headers(self, entries: list[LogEntry]) -> list[Any]:
        """Each entry's header (a few columns), or None where none exists: point reads, ``concurrency`` at once."""

        def read(entry: LogEntry) -> Any:
            try:
                return self._communications.get_entity(entry.comm_id.hex, HEADER_ROW, select=SUMMARY_COLUMNS)
            except ResourceNotFoundError:
                return None

        if len(entries) <= 1 or self._concurrency == 1:
            return [read(entry) for entry in entries]
        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(entries)), thread_name_prefix="log") as pool:
            return list(pool.map(read, entries))


def _shown(entry: LogEntry, header: Any, status: CommStatus | None) -> bool:
    """A row is listed when its header exists, is the licensee's and was accepted at the row's time (a row left by
    a failed accept, or by a candidate reference that was taken, is not), and matches the Status filter."""
    return (header is not None and header.get("LicenseeId") == entry.licensee_id.hex
            and header.get("CreatedAt") is not None and same_instant(header["CreatedAt"], entry.created_at)
            and (status is None or header.get("Status") == status.value))


def _summary(entry: LogEntry, header: Any) -> SMSLogEntry:
    receipts = receipt_counts_of(header)
    cost = count_segments(header.get("Body") or "")
    return SMSLogEntry(CommId=entry.comm_id, Reference=header.get("Reference"), Status=header.get("Status"),
                       CreatedAt=header.get("CreatedAt"), SendAt=header.get("SendAt"),
                       RecipientCount=int(header.get("RecipientCount") or 0),
                       SentCount=int(header.get("SentCount") or 0), FailedCount=int(header.get("FailedCount") or 0),
                       DeliveredCount=receipts.delivered, UndeliveredCount=receipts.undelivered + receipts.failed,
                       LinkedObjectId=header.get("LinkedObjectId"), SuiteId=header.get("SuiteId"),
                       Segments=cost.segments, Encoding=cost.encoding.value)
