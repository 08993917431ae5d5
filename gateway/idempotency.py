"""Idempotent sends: the same Idempotency-Key from the same licensee stores and sends once.

The key (the IETF httpapi draft's ``Idempotency-Key`` header, or ``?IdempotencyKey=`` for clients that
cannot set headers) picks the communication's Reference: candidate ``i`` is derived from (licensee,
key, i), so the CommId is too, and every retry looks in the same partitions in the same order. The
accepting transaction writes a claim row (the key and a hash of the validated request) beside the
``comm`` row, so "this key's send was stored" is one atomic fact: a second accept of the same
candidate fails on insert, reads the claim, and answers the first one's result. docs/storage.md
("Idempotency-Key") has the layout and the argument, docs/wire.md what clients see.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.errors import ApiError, FieldError, conflict
from gateway.references import keyed_reference
from gateway.storage import Communication, CommunicationStore, KeyClaim, Recipient, ReferenceTaken
from gateway.validation import ValidSend

HEADER = "Idempotency-Key"
QUERY_PARAMETER = "IdempotencyKey"
MAX_KEY_LENGTH = 255
WINDOW = timedelta(hours=24)
"""How long a key is remembered: a retry within it answers the first request's result; after it, the key is new."""
ACCEPT_LEASE_SECONDS = 60
"""How long a claimed but unfinished accept (one that spans several transactions) belongs to its request."""
CANDIDATES = 16
"""References a key may take: one per reuse after the window (a hash collision aside), so 16 windows' worth."""
KEY_SYNTAX = (
    f"1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces, quotes, backslashes or commas, or an "
    'RFC 8941 string such as "8e03978e-40d5-43e8-bc93-6894a57f9324"'
)

_BARE_KEY = re.compile(r'[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+')  # visible ASCII but " , \
_QUOTED_KEY = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')  # RFC 8941 sf-string
_ESCAPE = re.compile(r'\\(["\\])')


def read_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The request's idempotency key, from the header or the query string; a 400 when it is malformed."""
    from_header = _parse(headers.get(HEADER), HEADER)
    raw_query = next((value for name, value in query.items() if name.lower() == QUERY_PARAMETER.lower()), None)
    from_query = _parse(raw_query, QUERY_PARAMETER)
    if from_header is not None and from_query is not None and from_header != from_query:
        raise _invalid(HEADER, f"'{HEADER}' and '{QUERY_PARAMETER}' name different keys; send one")
    return from_header if from_header is not None else from_query


def _parse(raw: str | None, name: str) -> str | None:
    if raw is None:
        return None
    text = raw.strip(" \t")
    quoted = _QUOTED_KEY.fullmatch(text)
    key = _ESCAPE.sub(r"\1", quoted.group(1)) if quoted else text if _BARE_KEY.fullmatch(text) else None
    if not key or len(key) > MAX_KEY_LENGTH:
        raise _invalid(name, f"'{name}' must be {KEY_SYNTAX}")
    return key


def _invalid(name: str, message: str) -> ApiError:
    return ApiError.validation([FieldError(name, "InvalidIdempotencyKey", message)])


def request_hash(valid: ValidSend, *, immediate: bool) -> str:
    """SHA-256 of the validated request: what makes two requests "the same" for one key.

    The parsed and normalised request, not its bytes: the same send in JSON, JSV or a form, with a
    number written +44 7911 123456 or +447911123456, is one request. Immediate or queued is part of it. The
    SendAt is the one the request named, not what validation made of it at the time: a retry that arrives once
    that time is just past (sent now, not scheduled) is still the same request.
    """
    fields = {"version": 1, "immediate": immediate, **dataclasses.asdict(valid)}
    del fields["send_at"]  # decided against the clock; ``asked_send_at`` is what was asked
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _plain(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):  # SendAt, ValidUntil: aware UTC
        return value.isoformat()
    raise TypeError(f"cannot hash {type(value).__name__}")


@dataclass(frozen=True)
class Accepted:
    communication: Communication
    fresh: bool  # False: an earlier request with the key stored it, and this one stored nothing


Build = Callable[[str], tuple[Communication, Sequence[Recipient]]]
"""A communication (and the recipient rows to write with it) under the given reference."""


def accept_once(store: CommunicationStore, licensee_id: uuid.UUID, key: str, hashed: str, build: Build, *,
                now: datetime) -> Accepted:
    """Store the communication under the key's first free candidate, or find the one stored before.

    Raises 422 when the key was used with a different request, 409 while an accept of this request is
    under way in another call, and ``AcceptOutcomeUnknown`` (from the store) when the accepting
    write got no answer.
    """
    for candidate in range(CANDIDATES):
        comm, recipients = build(keyed_reference(licensee_id, key, candidate))
        try:
            store.create(comm, recipients, claim=KeyClaim(key, hashed, created_at=now, started_at=now))
            return Accepted(comm, fresh=True)
        except ReferenceTaken:
            pass
        found = _settle(store, comm, recipients, key, hashed, now)
        if found is not None:
            return found
    raise ApiError(422, "IdempotencyKeyExhausted", f"This {HEADER} has been used in {CANDIDATES} windows of "
                   f"{WINDOW.total_seconds() / 3600:g} hours; use a new key")


def _settle(store: CommunicationStore, comm: Communication, recipients: Sequence[Recipient], key: str, hashed: str,
            now: datetime) -> Accepted | None:
    """What a taken candidate means: the earlier request's result, an error, or None to try the next one."""
    claim, header = store.load_claim(comm.comm_id)
    if claim is None or claim.key != key or now - claim.created_at >= WINDOW:
        return None  # another send's reference, or this key's from an earlier window
    if claim.request_hash != hashed:
        raise ApiError(422, "IdempotencyKeyReused", f"This {HEADER} was used with a different request in the "
                       f"last {WINDOW.total_seconds() / 3600:g} hours; use a new key for a new send")
    if header is not None:
        return Accepted(header, fresh=False)
    # Claimed but not accepted: an accept spanning several transactions is under way, or was cut off.
    age = (now - claim.started_at).total_seconds()
    if age < ACCEPT_LEASE_SECONDS:
        raise _in_progress(ACCEPT_LEASE_SECONDS - age)
    try:
        store.create(comm, recipients, claim=dataclasses.replace(claim, started_at=now))  # takes it over
        return Accepted(comm, fresh=True)
    except ReferenceTaken:
        header = store.load_header(comm.comm_id)
        if header is None:
            raise _in_progress(ACCEPT_LEASE_SECONDS) from None
        return Accepted(header, fresh=False)


def _in_progress(retry_after: float) -> ApiError:
    return conflict(f"A request with this {HEADER} is still being accepted; retry with the same key shortly",
                    retry_after)


def delivery_in_progress(retry_after: float) -> ApiError:
    return conflict(f"The send with this {HEADER} is being delivered right now; retry with the same key to "
                    "see its outcome", retry_after)
