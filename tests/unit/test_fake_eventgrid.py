"""The ACS fake's Event Grid: the handshake first, then reports delivered at least once, batched, shuffled, retried.

A small local webhook (tests/webhook.py) receives what the fake's Event Grid posts, over a real socket.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.eventgrid import EventGridEvent

from fakes.acs import AcsFake, signed_headers
from fakes.eventgrid import EventGridSubscription
from gateway.providers.acs import AcsProvider
from gateway.providers.acs_settings import AcsSettings
from gateway.providers.base import OutboundSms, Outcome
from tests.waiting import wait_until
from tests.webhook import Webhook

SENDER = "+18005550199"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


def events(count: int) -> list[EventGridEvent]:
    return [EventGridEvent(subject="/x", event_type="Test.Event", data={"n": n}, data_version="1.0", id=f"e{n}")
            for n in range(count)]


def subscription(webhook: Webhook, **options: Any) -> EventGridSubscription:
    return EventGridSubscription(webhook.url, **{"retry_waits": (0.01, 0.01, 0.01), "linger": 0.01, **options})


def test_the_handshake_comes_first_and_needs_the_code_echoed_with_200(webhook: Webhook) -> None:
    grid = subscription(webhook)
    try:
        assert grid.validate() is True
        assert grid.validate() is True  # once per subscription
        first = webhook.posts[0]
        assert len(webhook.posts) == 1
        assert first.headers["aeg-event-type"] == "SubscriptionValidation"
        assert first.headers["content-type"].startswith("application/json")
        [event] = first.events
        assert {"id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion", "metadataVersion"} <= set(
            event)
        assert event["data"]["validationCode"] and event["data"]["validationUrl"].startswith("https://")
    finally:
        grid.stop()


@pytest.mark.parametrize("answer", [(202, None), (200, {"validationResponse": "not the code"}), (200, {}), (401, {})],
                         ids=["202", "wrong-code", "no-code", "401"])
def test_an_endpoint_that_fails_the_handshake_gets_no_events(webhook: Webhook, answer: tuple[int, Any]) -> None:
    webhook.handshake = answer
    grid = subscription(webhook)
    try:
        grid.publish(*events(3))
        assert grid.wait_idle()
        grid.publish(*events(1))
        assert grid.wait_idle()
        assert grid.validated is False
        assert [post.headers["aeg-event-type"] for post in webhook.posts] == ["SubscriptionValidation"]
    finally:
        grid.stop()


def test_every_event_arrives_at_least_once_batched_shuffled_and_some_twice(webhook: Webhook) -> None:
    grid = subscription(webhook, max_batch=4, duplicate_chance=0.4, seed=3, linger=0.05)
    try:
        grid.publish(*events(20))
        assert grid.wait_idle()
    finally:
        grid.stop()
    posts = webhook.notifications()
    delivered = [event["id"] for post in posts for event in post.events]
    counts = Counter(delivered)
    assert set(counts) == {f"e{n}" for n in range(20)}
    assert max(counts.values()) == 2  # duplicates, each once at most
    assert max(len(post.events) for post in posts) > 1  # batches
    assert delivered != sorted(delivered, key=lambda name: int(name[1:]))  # out of order
    for post in posts:
        assert post.headers["aeg-subscription-name"] and post.headers["aeg-metadata-version"] == "1"
        assert all(event["metadataVersion"] == "1" and event["topic"] for event in post.events)


def test_a_failed_delivery_is_retried_and_a_refused_one_is_not(webhook: Webhook) -> None:
    webhook.statuses.extend([500, 503, 200, 400])
    grid = subscription(webhook, max_batch=1, duplicate_chance=0, shuffle=False)
    try:
        grid.publish(*events(1))
        assert grid.wait_idle()
        grid.publish(*events(2)[1:])
        assert grid.wait_idle()
    finally:
        grid.stop()
    posts = webhook.notifications()
    assert [(post.events[0]["id"], post.headers["aeg-delivery-count"]) for post in posts] == [
        ("e0", "0"), ("e0", "1"), ("e0", "2"), ("e1", "0")]  # 400: not retried
    assert [(d.status, d.accepted) for d in grid.deliveries if d.kind == "Notification"] == [
        (500, False), (503, False), (200, True), (400, False)]


def test_no_answer_is_retried_a_few_times_then_given_up() -> None:
    grid = EventGridSubscription("http://127.0.0.1:9/events", retry_waits=(0.01, 0.01), linger=0.01,
                                 duplicate_chance=0)
    grid.validated = True  # the endpoint went away after the handshake
    try:
        grid.publish(*events(1))
        assert grid.wait_idle()
    finally:
        grid.stop()
    assert [(d.attempt, d.status) for d in grid.deliveries] == [(0, None), (1, None), (2, None)]


def test_the_acs_fake_reports_each_sms_sent_with_delivery_reports_and_echoes_its_tag(webhook: Webhook) -> None:
    with AcsFake(events_endpoint=webhook.url, events_seed=1) as acs:
        assert acs.events is not None
        acs.events.linger = 0.01
        acs.report_outcome("+447911123456", "Failed", "Sender blocked for given recipient")
        provider = AcsProvider(AcsSettings(connection_string=acs.connection_string, ca_bundle=acs.ca_bundle))
        comm = uuid.uuid4()
        messages = [OutboundSms(comm, uuid.uuid4(), to, SENDER, "hi") for to in ("+15555550123", "+447911123456")]
        assert [result.outcome for result in provider.send(messages)] == [Outcome.ACCEPTED] * 2
        body = json.dumps({"from": SENDER, "smsRecipients": [{"to": "+15555550100"}], "message": "no report",
                           "smsSendOptions": {"enableDeliveryReport": False}}).encode()
        url = f"{acs.base_url}/sms?api-version=2021-03-07"
        answer = requests.post(url, data=body, headers=signed_headers(acs.access_key, "POST", url, body),
                               verify=acs.ca_bundle, timeout=10)
        assert answer.status_code == 202
        assert wait_until(lambda: len({e["id"] for p in webhook.notifications() for e in p.events}) >= 2)
        assert acs.events.wait_idle()
    reports = {event["id"]: {name.lower(): value for name, value in event["data"].items()}
               for post in webhook.notifications() for event in post.events}
    sent = {sms.to: sms.message_id for sms in acs.sent}
    assert set(reports) == {sent["+15555550123"], sent["+447911123456"]}  # none for the send without reports
    failed = reports[sent["+447911123456"]]
    assert (failed["deliverystatus"], failed["deliverystatusdetails"], failed["tag"]) == (
        "Failed", "Sender blocked for given recipient", comm.hex)
    delivered = reports[sent["+15555550123"]]
    assert (delivered["deliverystatus"], delivered["from"], delivered["to"].lstrip("+")) == (
        "Delivered", SENDER.lstrip("+"), "15555550123")
    assert webhook.posts[0].headers["aeg-event-type"] == "SubscriptionValidation"
