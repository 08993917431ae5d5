"""The outbox: a development provider that sends nothing.

Every would-be SMS is written to the ``<prefix>Outbox`` table (PartitionKey = CommId,
RowKey = RecipientId, so a repeat is an overwrite, never a second row), where
``python -m gateway outbox`` shows exactly what would have gone out; the log says only that
it happened (the number masked, the body's length, never the body). Settings refuse it in Azure unless
``SMS_ALLOW_OUTBOX_IN_AZURE`` says otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from azure.core.exceptions import AzureError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from gateway.providers.base import OutboundSms, Outcome, SendResult
from gateway.redact import mask_phone
from gateway.settings import Settings

log = logging.getLogger("gateway.outbox")


class OutboxProvider:
    name = "outbox"
    max_batch_size = 99  # one table transaction per batch
    resend_is_safe = True  # an upsert per (CommId, RecipientId): a resend overwrites
    resend_window_seconds: float | None = None
    sends_receipts = False  # nothing is sent, so no receipt ever comes: delivery indexes nothing for it

    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        self._table_name = table_name
        self._table: TableClient = service.get_table_client(table_name)
        self._table_ready = False

    def send(self, messages: Sequence[OutboundSms], deadline: float | None = None) -> list[SendResult]:
        """One table transaction for the batch; storage's own time-outs bound it, so ``deadline`` changes nothing."""
        if not messages:
            return []
        now = datetime.now(UTC)
        operations = [
            (
                "upsert",
                {
                    "PartitionKey": message.comm_id.hex,
                    "RowKey": message.recipient_id.hex,
                    "To": message.to,
                    "From": message.sender,
                    "Body": message.body,
                    "SentAt": now,
                },
                {"mode": UpdateMode.REPLACE},
            )
            for message in messages
        ]
        try:
            if not self._table_ready:
                self._service.create_table_if_not_exists(self._table_name)
                self._table_ready = True
            self._table.submit_transaction(operations)
        except AzureError as error:
            reason = f"outbox table unavailable: {error}"
            return [
                SendResult(message.recipient_id, Outcome.RETRY, error_code="OutboxUnavailable", error_message=reason)
                for message in messages
            ]
        for message in messages:
            log.info("OUTBOX (not sent) comm=%s recipient=%s to=%s, %d characters", message.comm_id.hex,
                     message.recipient_id.hex, mask_phone(message.to), len(message.body))
        return [
            SendResult(message.recipient_id, Outcome.ACCEPTED, provider_message_id=f"outbox-{message.recipient_id.hex}")
            for message in messages
        ]


def create(settings: Settings, tables: TableServiceClient) -> OutboxProvider:
    return OutboxProvider(tables, settings.outbox_table)
