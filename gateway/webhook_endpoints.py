"""Where each licensee's webhook goes, and the secret that signs it (docs/webhooks.md, "Registering").

Table ``<prefix>Webhooks``: PartitionKey = the licensee id (hex), RowKey = ``endpoint``, one row per licensee, with
``Url``, ``Secret`` (``whsec_`` + base64 of 32 random bytes), ``PreviousSecret`` and ``PreviousUntil`` (UTC) and
``UpdatedAt``. A new registration always makes a new secret, and the one it replaces keeps signing beside it for
``ROTATION_GRACE`` (Standard Webhooks sends one ``v1,`` signature per secret), so a receiver that has not yet
been given the new secret still verifies every event meanwhile. The secret is stored as it is: signing needs it.

``CachedEndpoints`` puts a time-to-live cache in front, so the hot path (every state change publishing events)
asks storage about a licensee about once a minute, and about a licensee with no endpoint just as rarely.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from gateway.cache import ExpiringCache
from gateway.connections import TableStore
from gateway.storage import utcnow
from gateway.webhook_events import Endpoint, EndpointDirectory
from gateway.webhook_urls import check_url

log = logging.getLogger("gateway.webhook_endpoints")

ROW_KEY = "endpoint"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes
ROTATION_GRACE = timedelta(hours=24)
WRITE_TRIES = 3  # a registration racing another one of the same licensee reads again and retries
CACHE_SECONDS = 60
CACHE_CAPACITY = 10_000


def new_secret() -> str:
    """A fresh signing secret in Standard Webhooks' form: ``whsec_`` and the base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


class WebhookEndpoints(TableStore):
    """The licensees' webhook registrations; every method reads or writes one licensee's row only.

    ``set`` checks the URL itself (``gateway.webhook_urls.check_url`` with ``allow_private`` and
    ``require_https``), so neither the API nor the CLI can store one the dispatcher would refuse.
    """

    def __init__(self, service: TableServiceClient, table_name: str, *, allow_private: bool, require_https: bool,
                 clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(service, table_name)
        self._allow_private = allow_private
        self._require_https = require_https
        self._clock = clock

    def check(self, url: str) -> None:
        """Raise ``RefusedUrl`` (a ValueError saying why) unless ``url`` may receive events."""
        check_url(url, allow_private=self._allow_private, require_https=self._require_https)

    def find(self, licensee_id: uuid.UUID) -> Endpoint | None:
        """The licensee's endpoint (one point read); a previous secret past its grace is left out."""
        try:
            row = self._table.get_entity(licensee_id.hex, ROW_KEY)
        except ResourceNotFoundError:
            return None
        return _endpoint(licensee_id, row, self._clock())

    def set(self, licensee_id: uuid.UUID, url: str) -> Endpoint:
        """Register ``url`` for the licensee with a new secret; the secret it had signs too for ``ROTATION_GRACE``.

        Conditional on the row read (create when absent, replace if unchanged), so of two registrations at once
        neither loses the other's secret: the one that lost the race reads again and keeps it as its previous.
        """
        self.check(url)
        for _ in range(WRITE_TRIES - 1):
            try:
                return self._write(licensee_id, url)
            except (ResourceExistsError, ResourceModifiedError):
                continue
        return self._write(licensee_id, url)

    def _write(self, licensee_id: uuid.UUID, url: str) -> Endpoint:
        """One read and one conditional write; raises when another registration wrote in between."""
        try:
            current = self._table.get_entity(licensee_id.hex, ROW_KEY)
        except ResourceNotFoundError:
            current = None
        now = self._clock()
        entity: dict[str, Any] = {"PartitionKey": licensee_id.hex, "RowKey": ROW_KEY, "Url": url,
                                  "Secret": new_secret(), "UpdatedAt": now}
        if current is None:
            self._table.create_entity(entity)
        else:
            entity.update(PreviousSecret=current["Secret"], PreviousUntil=now + ROTATION_GRACE)
            self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                                      match_condition=MatchConditions.IfNotModified)
        log.info("licensee %s: webhook %s", licensee_id.hex,
                 "registered" if current is None else "changed, secret rotated")
        return _endpoint(licensee_id, entity, now)

    def delete(self, licensee_id: uuid.UUID) -> Endpoint | None:
        """Remove the licensee's endpoint and its secrets; answers what was removed, None when there was none."""
        removed = self.find(licensee_id)
        if removed is not None:
            self._table.delete_entity(licensee_id.hex, ROW_KEY)
            log.info("licensee %s: webhook removed", licensee_id.hex)
        return removed


def _endpoint(licensee_id: uuid.UUID, row: Mapping[str, Any], now: datetime) -> Endpoint:
    until = row.get("PreviousUntil")
    previous = row.get("PreviousSecret") if until is not None and until > now else None
    return Endpoint(licensee_id=licensee_id, url=str(row["Url"]), secret=str(row["Secret"]),
                    previous_secret=previous, previous_until=until if previous else None)


class CachedEndpoints:
    """An ``EndpointDirectory`` that remembers each answer, "no endpoint" included, for ``ttl_seconds``.

    A registration or a removal therefore reaches a process that asked recently within ``ttl_seconds``
    (``forget`` makes it immediate in the process that made the change).
    """

    def __init__(self, directory: EndpointDirectory, ttl_seconds: float = CACHE_SECONDS, *,
                 capacity: int = CACHE_CAPACITY, clock: Callable[[], float] = time.monotonic,
                 utc: Callable[[], datetime] = utcnow) -> None:
        self._directory = directory
        self._cache: ExpiringCache[uuid.UUID, tuple[Endpoint | None]] = ExpiringCache(capacity, ttl_seconds, clock)
        self._utc = utc

    def find(self, licensee_id: uuid.UUID) -> Endpoint | None:
        """The licensee's endpoint as the directory said within ``ttl_seconds``; a previous secret whose grace
        ended since is left out, as the directory itself would."""
        cached = self._cache.get(licensee_id)  # a 1-tuple: (None,) is a cached "no endpoint", None a miss
        if cached is None:
            cached = (self._directory.find(licensee_id),)
            self._cache.put(licensee_id, cached)
        found = cached[0]
        if found is not None and found.previous_until is not None and found.previous_until <= self._utc():
            return replace(found, previous_secret=None, previous_until=None)
        return found

    def forget(self, licensee_id: uuid.UUID) -> None:
        """Drop what is remembered of the licensee: the next ``find`` asks the directory."""
        self._cache.discard(licensee_id)
