"""The outbox's promise that a licensee without a webhook costs nothing: no storage call at all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import AzureError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from gateway.webhook_events import Endpoint, EventType, WebhookEvent, event_id_for
from gateway.webhook_outbox import WebhookOutbox
from gateway.webhook_queue import WebhookQueue

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers, so any storage call fails at once
ACCOUNT = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + "a2V5" * 22 + ";"


class Directory:
    def __init__(self, *with_endpoint: uuid.UUID) -> None:
        self.endpoints = {each: Endpoint(each, "https://example.com/", "whsec_a2V5") for each in with_endpoint}

    def find(self, licensee_id: uuid.UUID) -> Endpoint | None:
        return self.endpoints.get(licensee_id)


def event(licensee: uuid.UUID) -> WebhookEvent:
    comm = uuid.uuid4()
    return WebhookEvent(event_id_for(comm, EventType.SENT, 0), licensee, EventType.SENT, datetime.now(UTC),
                        {"CommId": comm.hex})


def test_no_endpoint_no_storage_call() -> None:
    tables = TableServiceClient.from_connection_string(f"{ACCOUNT}TableEndpoint={NOWHERE}/devstoreaccount1;",
                                                       retry_total=0)
    queue = QueueClient.from_connection_string(f"{ACCOUNT}QueueEndpoint={NOWHERE}/devstoreaccount1;", "q",
                                               retry_total=0)
    registered, silent = uuid.uuid4(), uuid.uuid4()
    outbox = WebhookOutbox(tables, "Events", WebhookQueue(queue), Directory(registered))
    outbox.publish([event(silent), event(silent)])  # nothing to store, nothing to queue
    with pytest.raises(AzureError):
        outbox.publish([event(registered)])  # the storage really is unreachable
