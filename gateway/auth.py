"""API keys: who is calling, and for which licensee.

A key is shown once at creation; only its SHA-256 is stored (keys are 256-bit random
tokens, so a fast hash is enough: there is nothing to brute-force). Look-ups are cached
for ``SMS_API_KEY_CACHE_SECONDS``, which is also how long a revocation can take to bite;
unknown keys for ``UNKNOWN_KEY_SECONDS``, which is how long a new key can be refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from gateway.cache import ExpiringCache
from gateway.connections import TableStore
from gateway.errors import forbidden, unauthorized
from gateway.models import EMPTY_GUID

KEY_PREFIX = "sgk_"
KEY_FORMAT = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{43}")  # what create() issues: 32 random bytes
KNOWN_KEYS_CACHED = 10_000
UNKNOWN_KEYS_CACHED = 10_000
UNKNOWN_KEY_SECONDS = 5.0  # how long a key created just now may still be refused by an instance that looked


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    licensee_id: uuid.UUID
    created_at: datetime | None = None
    revoked: bool = False


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: it acts for exactly one licensee."""

    key_id: str
    name: str
    licensee_id: uuid.UUID

    def licensee_for(self, requested: uuid.UUID | None) -> uuid.UUID:
        """The licensee a request acts for: the key's own, whatever else is asked."""
        if requested is None or requested == EMPTY_GUID or requested == self.licensee_id:
            return self.licensee_id
        raise forbidden("This API key may not act for another licensee")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyStore(TableStore):
    """Hashed keys in a table: PartitionKey = first two hex digits of the hash, RowKey = the hash."""

    def create(self, licensee_id: uuid.UUID, name: str) -> tuple[ApiKey, str]:
        """A new key: returns its record and the secret, which is never stored or shown again."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(secret)
        record = ApiKey(key_id=digest[:12], name=name, licensee_id=licensee_id, created_at=datetime.now(UTC))
        self._table.create_entity(
            {
                "PartitionKey": digest[:2],
                "RowKey": digest,
                "KeyId": record.key_id,
                "Name": name,
                "LicenseeId": licensee_id.hex,
                "CreatedAt": record.created_at,
                "Revoked": False,
            }
        )
        return record, secret

    def find(self, secret: str) -> ApiKey | None:
        digest = hash_key(secret)
        try:
            entity = self._table.get_entity(digest[:2], digest)
        except ResourceNotFoundError:
            return None
        return _record(entity)

    def list(self) -> Iterator[ApiKey]:
        for entity in self._table.list_entities():
            yield _record(entity)

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke by key id (the first 12 hex digits of the hash, as `keys list` shows)."""
        key_id = key_id.strip().lower()
        if len(key_id) < 4:
            return None
        matches = list(
            self._table.query_entities(
                "PartitionKey eq @pk and KeyId eq @id", parameters={"pk": key_id[:2], "id": key_id}
            )
        )
        if len(matches) != 1:
            return None
        entity = matches[0]
        entity["Revoked"] = True
        entity["RevokedAt"] = datetime.now(UTC)
        self._table.update_entity(entity, mode=UpdateMode.MERGE)
        return _record(entity)


def _record(entity: Mapping[str, object]) -> ApiKey:
    return ApiKey(
        key_id=str(entity["KeyId"]),
        name=str(entity.get("Name", "")),
        licensee_id=uuid.UUID(str(entity["LicenseeId"])),
        created_at=entity.get("CreatedAt"),  # type: ignore[arg-type]
        revoked=bool(entity.get("Revoked", False)),
    )


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer`, Basic (key as user name) or `X-Api-Key`."""
    authorization = (headers.get("authorization") or "").strip()
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return credentials
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    api_key = (headers.get("x-api-key") or "").strip()
    return api_key or None


class _Lookup:
    """One table read that concurrent requests for the same key wait on, instead of each reading."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._record: ApiKey | None = None
        self._error: BaseException | None = None

    def finish(self, record: ApiKey | None, error: BaseException | None = None) -> None:
        self._record, self._error = record, error
        self._done.set()

    def result(self) -> ApiKey | None:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._record


class Authenticator:
    """Turns request headers into a Principal, reading the key table as little as it can.

    A key that cannot be one we issued is refused without a read. Found keys are cached for
    ``ttl_seconds``; unknown ones for ``UNKNOWN_KEY_SECONDS`` (or less), so a client repeating a bad
    key costs one read, not one per request; and concurrent requests with the same uncached key
    share one read. Each cache is bounded and evicts its least recently used entry, and they are
    separate, so a client spraying random keys cannot push good keys out.
    """

    def __init__(self, store: ApiKeyStore, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._known: ExpiringCache[str, ApiKey] = ExpiringCache(KNOWN_KEYS_CACHED, ttl_seconds, clock)
        self._unknown: ExpiringCache[str, bool] = ExpiringCache(
            UNKNOWN_KEYS_CACHED, min(UNKNOWN_KEY_SECONDS, ttl_seconds), clock
        )
        self._lookups: dict[str, _Lookup] = {}
        self._lock = threading.Lock()

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        secret = presented_key(headers)
        if not secret:
            raise unauthorized()
        record = self._lookup(secret) if KEY_FORMAT.fullmatch(secret) else None
        if record is None:
            raise unauthorized("The API key is not valid")
        if record.revoked:
            raise unauthorized("The API key has been revoked")
        return Principal(key_id=record.key_id, name=record.name, licensee_id=record.licensee_id)

    def _lookup(self, secret: str) -> ApiKey | None:
        digest = hash_key(secret)
        with self._lock:
            known = self._known.get(digest)
            if known is not None or self._unknown.get(digest):
                return known
            lookup = self._lookups.get(digest)
            leader = lookup is None
            if lookup is None:
                lookup = self._lookups[digest] = _Lookup()
        if not leader:
            return lookup.result()
        try:
            record = self._store.find(secret)
        except BaseException as error:
            self._settle(digest, lookup, None, error)
            raise
        if record is None:
            self._unknown.put(digest, True)
        else:
            self._known.put(digest, record)
        self._settle(digest, lookup, record)  # after the cache has it: a request arriving now reads neither
        return record

    def _settle(self, digest: str, lookup: _Lookup, record: ApiKey | None, error: BaseException | None = None) -> None:
        with self._lock:
            del self._lookups[digest]
        lookup.finish(record, error)
