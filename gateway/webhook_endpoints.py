"""The licensees' registered webhook endpoints (part A's module; this minimal version stands in until it merges).

Table ``<prefix>Webhooks``: PartitionKey = the licensee id (hex), one row (RowKey ``endpoint``) with ``Url``,
``Secret`` and, after a rotation, ``PreviousSecret`` and ``PreviousUntil``.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from gateway.cache import ExpiringCache
from gateway.connections import TableStore
from gateway.storage import utcnow
from gateway.webhook_events import Endpoint, EndpointDirectory
from gateway.webhook_urls import check_url

ROW_KEY = "endpoint"
ROTATION_GRACE = timedelta(hours=24)


class WebhookEndpoints(TableStore):
    """One endpoint per licensee: set (a checked URL, a new secret each time), find, delete."""

    def __init__(self, service: TableServiceClient, table_name: str, *, allow_private: bool, require_https: bool,
                 clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(service, table_name)
        self._allow_private = allow_private
        self._require_https = require_https
        self._clock = clock

    def find(self, licensee_id: uuid.UUID) -> Endpoint | None:
        try:
            row = self._table.get_entity(licensee_id.hex, ROW_KEY)
        except ResourceNotFoundError:
            return None
        return _endpoint(licensee_id, row)

    def set(self, licensee_id: uuid.UUID, url: str) -> Endpoint:
        """Register ``url`` with a new secret; the old one keeps signing for ``ROTATION_GRACE``."""
        check_url(url, allow_private=self._allow_private, require_https=self._require_https)
        old = self.find(licensee_id)
        entity: dict[str, Any] = {"PartitionKey": licensee_id.hex, "RowKey": ROW_KEY, "Url": url,
                                  "Secret": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()}
        if old is not None:
            entity.update(PreviousSecret=old.secret, PreviousUntil=self._clock() + ROTATION_GRACE)
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        return _endpoint(licensee_id, entity)

    def delete(self, licensee_id: uuid.UUID) -> Endpoint | None:
        removed = self.find(licensee_id)
        if removed is not None:
            self._table.delete_entity(licensee_id.hex, ROW_KEY)
        return removed


def _endpoint(licensee_id: uuid.UUID, row: Mapping[str, Any]) -> Endpoint:
    return Endpoint(licensee_id, row["Url"], row["Secret"], row.get("PreviousSecret"), row.get("PreviousUntil"))


class CachedEndpoints:
    """An EndpointDirectory asking the one it wraps at most once per ``ttl_seconds`` per licensee ("none" too)."""

    def __init__(self, directory: EndpointDirectory, ttl_seconds: float, capacity: int = 10_000) -> None:
        self._directory = directory
        self._cache: ExpiringCache[uuid.UUID, tuple[Endpoint | None]] = ExpiringCache(capacity, ttl_seconds,
                                                                                     time.monotonic)

    def find(self, licensee_id: uuid.UUID) -> Endpoint | None:
        cached = self._cache.get(licensee_id)
        if cached is None:
            cached = (self._directory.find(licensee_id),)
            self._cache.put(licensee_id, cached)
        return cached[0]
