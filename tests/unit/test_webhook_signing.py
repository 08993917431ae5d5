"""Standard Webhooks signatures, checked with the reference library (``standardwebhooks``), and the retry schedule."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.queue import BadQueueMessage
from gateway.webhook_dispatch import RETRY_FOR, next_attempt, retry_delay
from gateway.webhook_events import Endpoint
from gateway.webhook_queue import MAX_DELAY_SECONDS, WebhookMessage, decode_webhook_message, encode_webhook_message
from gateway.webhook_signing import BadSecret, secret_key, sign, webhook_headers

LICENSEE = uuid.UUID("7b0c1d2e-3f40-4a51-8b62-9c7d8e9fa0b1")


def secret() -> str:
    return "whsec_" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:8]).decode()


def test_the_reference_library_verifies_what_we_sign() -> None:
    key = secret()
    body = json.dumps({"type": "message.sent", "timestamp": "2026-01-01T00:00:00Z", "data": {"Ünïcode": "✓"}},
                      ensure_ascii=False).encode()
    now = datetime.now(UTC)
    headers = webhook_headers(Endpoint(LICENSEE, "https://example.com/hook", key), "evt_1", body, now)
    assert Webhook(key).verify(body, headers)["data"] == {"Ünïcode": "✓"}
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret()).verify(body, headers)  # another licensee's secret
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(body.replace(b"sent", b"fail"), headers)  # the body changed on the way
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(body, {**headers, "webhook-id": "evt_2"})  # the id is signed too


def test_after_a_rotation_both_secrets_sign_until_the_old_one_expires() -> None:
    old, new = secret(), secret()
    now = datetime.now(UTC)
    rotated = Endpoint(LICENSEE, "https://example.com/hook", new, previous_secret=old,
                       previous_until=now + timedelta(hours=24))
    body = b'{"type":"message.sent"}'
    headers = webhook_headers(rotated, "evt_1", body, now)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)  # a receiver not yet told of the new secret
    Webhook(new).verify(body, headers)
    expired = webhook_headers(replace(rotated, previous_until=now), "evt_1", body, now)
    assert len(expired["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(body, expired)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, expired)


def test_a_secret_is_whsec_and_base64_padding_optional() -> None:
    raw = b"0123456789abcdefghijklmn!"  # 25 bytes: base64 with padding
    padded = base64.b64encode(raw).decode()
    assert secret_key("whsec_" + padded) == secret_key("whsec_" + padded.rstrip("=")) == raw
    assert sign("whsec_" + padded, "evt_1", 1, b"{}") == sign("whsec_" + padded.rstrip("="), "evt_1", 1, b"{}")
    for bad in ("whsec_", "whsec_not base64!", "whsec_a2V5!"):  # the last would decode, leniently, as b"key"
        with pytest.raises(BadSecret):
            secret_key(bad)


def test_retries_double_from_the_base_and_end_a_day_after_the_first_attempt() -> None:
    assert [retry_delay(attempts, 30) for attempts in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(60, 30) == MAX_DELAY_SECONDS  # a queue message waits at most 7 days
    first = datetime(2026, 1, 1, tzinfo=UTC)
    now, attempts, tries = first, 1, [first]
    while (due := next_attempt(first, now, attempts, 30)) is not None:
        now, attempts = due, attempts + 1
        tries.append(now)
    assert tries[-1] == first + timedelta(hours=24)  # the last retry is at 24 h exactly, and no later one
    assert len(tries) == 13 and tries[1] - tries[0] == timedelta(seconds=30)
    assert next_attempt(first, first + RETRY_FOR, attempts, 30) is None


def test_a_queue_message_names_one_licensee_and_its_events() -> None:
    message = WebhookMessage(LICENSEE, ("evt_a", "evt_b"))
    assert decode_webhook_message(encode_webhook_message(message).encode()) == message
    for bad in (b"\xff", b"[]", b'{"Licensee":"x","Events":["evt_a"]}', b'{"Licensee":"%s","Events":[]}' % (
            LICENSEE.hex.encode()), b'{"Licensee":"%s","Events":[1]}' % LICENSEE.hex.encode()):
        with pytest.raises(BadQueueMessage):
            decode_webhook_message(bad)
