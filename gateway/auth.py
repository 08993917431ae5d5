"""API keys: who is calling, and for which licensee.

A key is shown once at creation; only its SHA-256 is stored (keys are 256-bit random
tokens, so a fast hash is enough: there is nothing to brute-force). Look-ups are cached
for ``SMS_API_KEY_CACHE_SECONDS``, which is also how long a revocation can take to bite.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from gateway.connections import TableStore
from gateway.errors import forbidden, unauthorized
from gateway.models import EMPTY_GUID

KEY_PREFIX = "sgk_"


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


class Authenticator:
    """Turns request headers into a Principal, caching key look-ups briefly."""

    def __init__(self, store: ApiKeyStore, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        secret = presented_key(headers)
        if not secret:
            raise unauthorized()
        record = self._lookup(secret)
        if record is None:
            raise unauthorized("The API key is not valid")
        if record.revoked:
            raise unauthorized("The API key has been revoked")
        return Principal(key_id=record.key_id, name=record.name, licensee_id=record.licensee_id)

    def _lookup(self, secret: str) -> ApiKey | None:
        digest = hash_key(secret)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        record = self._store.find(secret)
        with self._lock:
            if record is None:
                self._cache.pop(digest, None)
            else:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now, record)
        return record


