"""Webhook events stored, queued and sent (docs/webhooks.md): over Azurite and real HTTP, to a receiver that
verifies every request with the ``standardwebhooks`` library (tests/webhook_receiver.py).

The end-to-end tests publish through the outbox and let the local host's ``webhooks`` queue function send; the
ones that need a clock (24 hours of retries) or a short time-out drive a dispatcher in this process, on a queue of
their own, and read back what it left in storage. Events come from the outbox directly here: which state change
makes which event is the emission's business (part C of issue 15).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bench.common import CountingPolicy
from devhost.azurite import free_port
from gateway.connections import StorageClients
from gateway.runtime import Gateway
from gateway.settings import Settings
from gateway.storage import utcnow
from gateway.webhook_dispatch import WebhookDispatcher, WebhookSender
from gateway.webhook_endpoints import WebhookEndpoints
from gateway.webhook_events import Endpoint, EventType, WebhookEvent, event_id_for
from gateway.webhook_outbox import DELIVERED, FAILED, PENDING, WebhookOutbox
from gateway.webhook_queue import WebhookMessage, WebhookQueue, decode_webhook_message
from gateway.webhook_signing import webhook_headers
from tests.server import GatewayServer, server_env
from tests.waiting import wait_until
from tests.webhook_receiver import Answer, WebhookReceiver

LICENSEE_A = uuid.UUID("a1a1a1a1-0000-4000-8000-000000000001")
LICENSEE_B = uuid.UUID("b2b2b2b2-0000-4000-8000-000000000002")


@pytest.fixture(scope="module")
def env(storage_connection: str) -> dict[str, str]:
    return server_env(storage_connection, SMS_WEBHOOK_ALLOW_PRIVATE="true", SMS_WEBHOOK_RETRY_BASE_SECONDS="1")


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(autouse=True)
def every_request_verified(receiver: WebhookReceiver) -> Iterator[None]:
    before = len(receiver.unverified)
    yield
    assert receiver.unverified[before:] == [], "a request the receiver could not verify"


@pytest.fixture(scope="module")
def endpoints(gateway: Gateway) -> WebhookEndpoints:
    return registrations(gateway)


@pytest.fixture(scope="module")
def keys(gateway: Gateway) -> dict[uuid.UUID, str]:
    return {licensee: gateway.keys.create(licensee, "webhooks")[1] for licensee in (LICENSEE_A, LICENSEE_B)}


def registrations(gateway: Gateway) -> WebhookEndpoints:
    """The endpoint table the gateway reads, taking the receiver's loopback URLs."""
    return WebhookEndpoints(gateway.clients.tables, gateway.settings.webhooks_table, allow_private=True,
                            require_https=False)


def register(receiver: WebhookReceiver, endpoints: WebhookEndpoints, licensee: uuid.UUID) -> tuple[str, Endpoint]:
    """A new endpoint path for ``licensee`` (a fresh licensee id each test keeps the host's endpoint cache out of
    the way), registered in the table the gateway reads."""
    path = f"/hooks/{uuid.uuid4().hex}"
    endpoint = endpoints.set(licensee, receiver.endpoint(path))
    receiver.trust(path, endpoint.secret)
    return path, endpoint


def events(licensee: uuid.UUID, *types: EventType, linked: str = "order-17") -> list[WebhookEvent]:
    comm = uuid.uuid4()
    return [WebhookEvent(event_id_for(comm, each, None if each is EventType.COMPLETED else 0), licensee, each,
                         datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                         {"CommId": comm.hex, "RecipientId": f"{comm.hex}-0", "PhoneNumber": "+15005550006",
                          "Status": each.value.split(".")[1].capitalize(), "LinkedObjectId": linked,
                          "SuiteId": "suite-1", "Notes": "n"})
            for each in types]


# --- end to end: the outbox, the queue, the host's webhooks function, the receiver --------------------------------


def test_each_licensee_gets_its_own_events_verified_in_order(
        gateway: Gateway, server: GatewayServer, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    my_path, _ = register(receiver, endpoints, mine)
    their_path, _ = register(receiver, endpoints, theirs)
    my_events = events(mine, EventType.SENT, EventType.DELIVERED, EventType.COMPLETED)
    their_events = events(theirs, EventType.SENT, linked="theirs")
    gateway.webhook_outbox.publish([*my_events, *their_events])

    got = wait_until(lambda: len(receiver.at(my_path)) == 3 and receiver.at(my_path), what="three events")
    assert [each.webhook_id for each in got] == [event.event_id for event in my_events]
    assert [each.body["type"] for each in got] == ["message.sent", "message.delivered", "communication.completed"]
    assert all(each.body["data"]["LinkedObjectId"] == "order-17" for each in got)
    assert got[0].body == my_events[0].body()
    wait_until(lambda: len(receiver.at(their_path)) == 1, what="the other licensee's event")
    assert receiver.at(their_path)[0].webhook_id == their_events[0].event_id  # and none of mine
    stored = wait_until(lambda: all(e.status == DELIVERED for e in gateway.webhook_outbox.find_many(
        mine, [event.event_id for event in my_events])) and gateway.webhook_outbox.get(mine, my_events[0].event_id),
        what="the events marked Delivered")
    assert stored.attempts == 1 and stored.last_error == ""
    assert stored.first_attempt_at is not None and stored.first_attempt_at == stored.last_attempt_at


def test_a_500_brings_the_same_event_again(
        gateway: Gateway, server: GatewayServer, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, _ = register(receiver, endpoints, licensee)
    receiver.script(path, Answer(500))
    [event] = events(licensee, EventType.UNDELIVERED)
    gateway.webhook_outbox.publish([event])

    first, second = wait_until(lambda: len(receiver.at(path)) == 2 and receiver.at(path), timeout=20,
                               what="the event again after the 500")
    assert first.webhook_id == second.webhook_id == event.event_id
    assert first.body == second.body
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])
    stored = wait_until(lambda: (row := gateway.webhook_outbox.get(licensee, event.event_id))
                        and row.status == DELIVERED and row, what="Delivered")
    assert stored.attempts == 2 and stored.first_attempt_at is not None


def test_publishing_again_sends_nothing_twice(
        gateway: Gateway, server: GatewayServer, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, _ = register(receiver, endpoints, licensee)
    sent = events(licensee, EventType.SENT, EventType.OPTED_OUT)
    gateway.webhook_outbox.publish(sent)
    wait_until(lambda: all(e.status == DELIVERED for e in gateway.webhook_outbox.find_many(
        licensee, [event.event_id for event in sent])), what="both Delivered")
    gateway.webhook_outbox.publish([*sent, *sent])  # a retried run, the sweep: the same ids
    [more] = events(licensee, EventType.FAILED)
    gateway.webhook_outbox.publish([more])  # the queue behind them has run once this arrives
    wait_until(lambda: len(receiver.at(path)) == 3, what="the new event")
    assert [each.webhook_id for each in receiver.at(path)] == [*(event.event_id for event in sent), more.event_id]


def test_after_a_rotation_both_secrets_verify(
        gateway: Gateway, server: GatewayServer, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, old = register(receiver, endpoints, licensee)
    new = endpoints.set(licensee, old.url)  # rotated before anything was sent (the host has cached nothing)
    assert new.secret != old.secret and new.previous_secret == old.secret
    receiver.trust(path, old.secret)  # the licensee's receiver still has the old secret
    gateway.webhook_outbox.publish(events(licensee, EventType.SENT))
    wait_until(lambda: len(receiver.at(path)) == 1, what="the event")
    receiver.trust(path, new.secret)  # ...then switches to the new one
    gateway.webhook_outbox.publish(events(licensee, EventType.SENT))
    wait_until(lambda: len(receiver.at(path)) == 2, what="the second event")
    assert [each.verified_by for each in receiver.at(path)] == [(old.secret,), (new.secret,)]


# --- one dispatcher in this process, on a queue of its own ----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


class Local:
    """An outbox and a dispatcher on the module's tables with a queue nobody else reads, and a clock."""

    def __init__(self, gateway: Gateway, *, allow_private: bool = True, timeout: float = 10,
                 endpoints: object = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        name = f"side{uuid.uuid4().hex[:12]}"
        self.queue_client = gateway.clients.queue(name)
        self.queue = WebhookQueue(self.queue_client)
        self.queue.ensure_queue()
        self.clock = Clock()
        directory = endpoints or registrations(gateway)
        self.outbox = WebhookOutbox(gateway.clients.tables, gateway.settings.webhook_events_table, self.queue,
                                    directory, clock=self.clock)  # type: ignore[arg-type]
        self.dispatcher = WebhookDispatcher(self.outbox, directory, self.queue,  # type: ignore[arg-type]
                                            WebhookSender(timeout_seconds=timeout), retry_base_seconds=30,
                                            allow_private=allow_private, require_https=False, clock=self.clock,
                                            monotonic=monotonic)

    def count(self) -> int:
        """Messages on the queue, delayed ones included."""
        return self.queue_client.get_queue_properties().approximate_message_count

    def messages(self) -> list[WebhookMessage]:
        """The messages due now, taken off the queue."""
        taken = []
        for message in self.queue_client.receive_messages(messages_per_page=32, visibility_timeout=600):
            taken.append(decode_webhook_message(message.content))
            self.queue_client.delete_message(message)
        return taken

    def run(self) -> None:
        for message in self.messages():
            self.dispatcher.handle(message)


class Fixed:
    """An endpoint directory with one URL for everyone (a port nobody listens on: every send fails at once)."""

    def __init__(self, url: str, secret: str = "whsec_" + "a2V5" * 8) -> None:
        self.url, self.secret = url, secret

    def find(self, licensee_id: uuid.UUID) -> Endpoint | None:
        return Endpoint(licensee_id, self.url, self.secret)


def test_retries_end_after_a_day_and_the_failed_event_can_be_sent_again_over_http(
        gateway: Gateway, server: GatewayServer, receiver: WebhookReceiver, endpoints: WebhookEndpoints,
        keys: dict[uuid.UUID, str]) -> None:
    path, _ = register(receiver, endpoints, LICENSEE_A)  # where the host sends; this process sends nowhere
    local = Local(gateway, endpoints=Fixed(f"http://127.0.0.1:{free_port()}/gone"))
    older, newer = events(LICENSEE_A, EventType.SENT, EventType.DELIVERED)
    start = local.clock.now
    local.outbox.publish([older])
    local.clock.now = start + timedelta(minutes=1)
    local.outbox.publish([newer])
    assert len(local.messages()) == 2  # one per publish
    local.dispatcher.handle(WebhookMessage(LICENSEE_A, (older.event_id,)))
    first = local.outbox.get(LICENSEE_A, older.event_id)
    assert first is not None and (first.status, first.attempts, first.last_error) == (PENDING, 1, "ConnectionError")
    assert first.next_attempt_at == start + timedelta(minutes=1, seconds=30)
    local.clock.now = start + timedelta(minutes=1, seconds=30)
    local.dispatcher.handle(WebhookMessage(LICENSEE_A, (older.event_id,)))
    second = local.outbox.get(LICENSEE_A, older.event_id)
    assert second is not None and second.attempts == 2  # and the delay doubles
    assert second.next_attempt_at == start + timedelta(minutes=1, seconds=30 + 60)
    local.clock.now = start + timedelta(minutes=3)  # past the short hold on this licensee the failure started
    local.dispatcher.handle(WebhookMessage(LICENSEE_A, (newer.event_id,)))
    assert local.count() == 3  # each back on the queue, the older one twice (the test took its messages itself)
    local.clock.now = start + timedelta(hours=24, minutes=2)  # past the older one's last retry
    local.dispatcher.handle(WebhookMessage(LICENSEE_A, (older.event_id,)))
    local.clock.now = start + timedelta(hours=24, minutes=4)  # past the newer one's, and the hold
    local.dispatcher.handle(WebhookMessage(LICENSEE_A, (newer.event_id,)))
    assert local.count() == 3  # nothing more to try: no new message
    assert [e.event_id for e in gateway.webhook_outbox.failed(LICENSEE_A)][:2] == [newer.event_id, older.event_id]

    listed = server.get("/api/webhook/events?status=failed", key=keys[LICENSEE_A])
    assert listed.status_code == 200, listed.text
    entries = {entry["Id"]: entry for entry in listed.json()["Events"]}
    assert entries[older.event_id]["Status"] == FAILED and entries[older.event_id]["Attempts"] == 3
    assert entries[older.event_id]["LastError"] == "ConnectionError"
    entry = entries[older.event_id]
    assert (entry["Type"], entry["CommId"]) == ("message.sent", older.data["CommId"])
    assert server.get("/api/webhook/events", key=keys[LICENSEE_B]).json()["Events"] == []
    bad = server.get("/api/webhook/events?status=pending", key=keys[LICENSEE_A])
    assert bad.status_code == 400 and bad.json()["ResponseStatus"]["Errors"][0]["FieldName"] == "Status"

    retry = f"/api/webhook/events/{older.event_id}/retry"
    assert server.post(retry, key=keys[LICENSEE_B]).status_code == 404  # another licensee's event
    assert server.post("/api/webhook/events/evt_nope/retry", key=keys[LICENSEE_A]).status_code == 404
    again = server.post(retry, key=keys[LICENSEE_A])
    assert again.status_code == 200, again.text
    assert (again.json()["Status"], again.json()["Attempts"]) == (PENDING, 0)
    got = wait_until(lambda: receiver.at(path), what="the event sent again")
    assert [each.webhook_id for each in got] == [older.event_id]  # the same id, verified by the receiver
    wait_until(lambda: gateway.webhook_outbox.get(LICENSEE_A, older.event_id).status == DELIVERED, what="Delivered")
    assert server.post(retry, key=keys[LICENSEE_A]).status_code == 409  # delivered: nothing to send again
    assert older.event_id not in {e.event_id for e in gateway.webhook_outbox.failed(LICENSEE_A)}
    assert server.post(retry).status_code == 401


def test_a_time_out_holds_that_licensee_back_and_no_one_else(
        gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    slow, quick = uuid.uuid4(), uuid.uuid4()
    slow_path, _ = register(receiver, endpoints, slow)
    quick_path, _ = register(receiver, endpoints, quick)
    receiver.script(slow_path, Answer(delay_seconds=2))
    local = Local(gateway, timeout=0.5)
    first, second = events(slow, EventType.SENT), events(slow, EventType.SENT)
    local.outbox.publish(first)
    local.outbox.publish(second)
    local.outbox.publish(events(quick, EventType.SENT))
    messages = local.messages()
    assert [message.licensee_id for message in messages] == [slow, slow, quick]
    for message in messages:
        local.dispatcher.handle(message)
    assert len(receiver.at(slow_path)) == 1  # the second message was put back without a call
    assert len(receiver.at(quick_path)) == 1
    timed_out = local.outbox.get(slow, first[0].event_id)
    assert timed_out is not None and timed_out.last_error.startswith("Timeout") and timed_out.status == PENDING
    held = local.outbox.get(slow, second[0].event_id)
    assert held is not None and (held.attempts, held.status) == (0, PENDING)  # not an attempt: never sent
    assert local.count() == 2  # both back on the queue, for later


def test_a_redirect_is_not_followed(gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, endpoint = register(receiver, endpoints, licensee)
    elsewhere = receiver.endpoint(f"/elsewhere/{uuid.uuid4().hex}", endpoint.secret)
    receiver.script(path, Answer(307, location=elsewhere))
    local = Local(gateway)
    [event] = events(licensee, EventType.SENT)
    local.outbox.publish([event])
    local.run()
    assert len(receiver.at(path)) == 1 and receiver.at(elsewhere.removeprefix(receiver.base_url)) == []
    stored = local.outbox.get(licensee, event.event_id)
    assert stored is not None and stored.last_error == "HTTP 307: redirects are not followed"


def test_private_addresses_are_refused_by_default(
        gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, _ = register(receiver, endpoints, licensee)  # 127.0.0.1: loopback
    local = Local(gateway, allow_private=False)
    [event] = events(licensee, EventType.SENT)
    local.outbox.publish([event])
    local.run()
    assert receiver.at(path) == []
    stored = local.outbox.get(licensee, event.event_id)
    assert stored is not None and stored.status == PENDING and stored.last_error.startswith("RefusedUrl")


def test_an_event_whose_endpoint_went_away_fails_and_a_poison_message_abandons(
        gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    register(receiver, endpoints, licensee)
    local = Local(gateway)
    gone, stuck = events(licensee, EventType.SENT, EventType.REPLY)
    local.outbox.publish([gone, stuck])
    [message] = local.messages()
    endpoints.delete(licensee)
    local.dispatcher.handle(WebhookMessage(licensee, (gone.event_id,)))
    stored = local.outbox.get(licensee, gone.event_id)
    assert stored is not None and (stored.status, stored.attempts) == (FAILED, 0)
    assert stored.last_error.startswith("NoEndpoint")
    assert local.outbox.abandon(licensee, message.event_ids, "Abandoned: test") == 1  # gone is Failed already
    assert {e.event_id: e.last_error for e in local.outbox.failed(licensee)} == {
        gone.event_id: stored.last_error, stuck.event_id: "Abandoned: test"}


def test_publishing_again_queues_only_what_is_still_pending(
        gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, _ = register(receiver, endpoints, licensee)
    local = Local(gateway)
    sent = events(licensee, EventType.SENT, EventType.DELIVERED)
    local.outbox.publish(sent)
    assert local.count() == 1  # one message for the licensee's two events
    local.run()
    assert len(receiver.at(path)) == 2 and local.count() == 0
    local.outbox.publish(sent)  # delivered already: nothing to store, nothing to queue
    assert local.count() == 0
    [lost] = events(licensee, EventType.COMPLETED)
    local.outbox.publish([lost])
    assert len(local.messages()) == 1  # taken and dropped: a crash before it was handled
    local.outbox.publish([lost])  # the sweep's publish finds it still Pending, and queues it again
    local.run()
    assert [each.webhook_id for each in receiver.at(path)][2:] == [lost.event_id]
    assert all(event.attempts == 1 for event in local.outbox.find_many(licensee, [e.event_id for e in [*sent, lost]]))


def test_a_broken_secret_is_a_failed_attempt_not_a_crash(gateway: Gateway, receiver: WebhookReceiver) -> None:
    url = receiver.endpoint(f"/hooks/{uuid.uuid4().hex}")
    local = Local(gateway, endpoints=Fixed(url, secret="whsec_not base64!"))
    [event] = events(uuid.uuid4(), EventType.SENT)
    local.outbox.publish([event])
    local.run()
    stored = local.outbox.get(event.licensee_id, event.event_id)
    assert stored is not None and stored.status == PENDING and stored.last_error.startswith("BadSecret")
    assert receiver.at(url.removeprefix(receiver.base_url)) == [] and local.count() == 1


def test_what_an_event_costs_in_storage_requests(env: dict[str, str], gateway: Gateway, receiver: WebhookReceiver,
                                                 endpoints: WebhookEndpoints) -> None:
    """The figures docs/webhooks.md gives ("Durability and cost"), counted on the wire."""
    counter = CountingPolicy()
    settings = Settings.from_env({**env, "SMS_WEBHOOK_QUEUE_NAME": f"cost{uuid.uuid4().hex[:12]}"})  # not the host's
    counted = Gateway.start(settings, clients=StorageClients.create(settings.storage, policies=[counter]))
    queue = gateway.clients.queue(settings.webhook_queue_name)
    registered, silent = uuid.uuid4(), uuid.uuid4()
    path, _ = register(receiver, endpoints, registered)
    counter.take()

    counted.webhook_outbox.publish(events(silent, EventType.SENT))
    assert counter.take() == {"table read": 1}  # "no endpoint", cached from now on
    counted.webhook_outbox.publish(events(silent, EventType.SENT))
    assert counter.take() == {}
    counted.webhook_outbox.publish(events(registered, EventType.SENT))
    assert counter.take() == {"table read": 1, "table transaction": 1, "queue send": 1}
    counted.webhook_outbox.publish(events(registered, EventType.DELIVERED, EventType.COMPLETED))
    assert counter.take() == {"table transaction": 1, "queue send": 1}  # the endpoint is cached

    taken = list(queue.receive_messages(messages_per_page=32))
    messages = [decode_webhook_message(each.content) for each in taken]
    assert [len(message.event_ids) for message in messages] == [1, 2]
    for message in messages:
        counted.webhook_dispatcher.handle(message)
    # per message a query for its events (up to 14 ids) and an update per delivered event; the endpoint is in the
    # process's one cache of registrations, which the publisher filled
    assert counter.take() == {"table query": 2, "table PATCH entity": 3}
    assert len(receiver.at(path)) == 3


def test_the_hosts_poison_function_keeps_the_events_as_failed(
        gateway: Gateway, server: GatewayServer, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    register(receiver, endpoints, licensee)
    local = Local(gateway)  # stored and queued where the host does not look
    stuck = events(licensee, EventType.SENT, EventType.FAILED)
    local.outbox.publish(stuck)
    [message] = local.messages()
    WebhookQueue(gateway.clients.queue(gateway.settings.webhook_poison_queue_name)).enqueue(licensee, message.event_ids)
    failed = wait_until(lambda: len(rows := gateway.webhook_outbox.failed(licensee)) == 2 and rows, what="both Failed")
    assert {row.event_id for row in failed} == {event.event_id for event in stuck}
    assert {row.last_error for row in failed} == {"Abandoned: the queue message failed repeatedly"}
    assert {row.attempts for row in failed} == {0}  # abandoned, never attempted


def test_only_a_2xx_is_taken(gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, _ = register(receiver, endpoints, licensee)
    local = Local(gateway)
    for answer, outcome in ((200, (DELIVERED, "")), (299, (DELIVERED, "")), (300, (PENDING, "HTTP 300"))):
        receiver.script(path, Answer(answer))
        [event] = events(licensee, EventType.SENT)
        local.outbox.publish([event])
        local.run()
        stored = local.outbox.get(licensee, event.event_id)
        assert stored is not None and (stored.status, stored.last_error) == outcome, answer


def test_a_failure_sends_nothing_more_of_the_message_and_retries_all_of_it(
        gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, _ = register(receiver, endpoints, licensee)
    receiver.script(path, Answer(500))
    local = Local(gateway)
    three = events(licensee, EventType.SENT, EventType.DELIVERED, EventType.COMPLETED)
    local.outbox.publish(three)
    local.run()
    assert [each.webhook_id for each in receiver.at(path)] == [three[0].event_id]  # one call, then it stopped
    stored = local.outbox.find_many(licensee, [event.event_id for event in three])
    assert [(row.attempts, row.status) for row in stored] == [(1, PENDING)] * 3  # the day of retries starts for all
    assert stored[0].last_error == "HTTP 500"
    assert all(row.last_error == "NotSent: an earlier event to the endpoint failed (HTTP 500)" for row in stored[1:])
    assert local.count() == 1  # one message brings the three back, 30 s later


def test_a_run_out_of_time_hands_the_rest_to_a_fresh_message(
        gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, _ = register(receiver, endpoints, licensee)
    ticks = iter(range(0, 10_000, 100))  # each look at the time: 100 s later
    local = Local(gateway, monotonic=lambda: next(ticks))
    three = events(licensee, EventType.SENT, EventType.DELIVERED, EventType.COMPLETED)
    local.outbox.publish(three)
    local.run()  # started at 0, sends the first at 100, stops before the second at 200 (> RUN_SECONDS)
    assert [each.webhook_id for each in receiver.at(path)] == [three[0].event_id]
    [rest] = local.messages()  # due at once, not delayed
    assert rest.event_ids == (three[1].event_id, three[2].event_id)
    assert [row.attempts for row in local.outbox.find_many(licensee, rest.event_ids)] == [0, 0]  # no attempt spent


def test_a_slow_answer_body_is_not_waited_for(
        gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    path, _ = register(receiver, endpoints, licensee)
    receiver.script(path, Answer(200, trickle_seconds=3))
    local = Local(gateway, timeout=1)
    [event] = events(licensee, EventType.SENT)
    local.outbox.publish([event])
    started = time.monotonic()
    local.run()
    assert time.monotonic() - started < 2  # the status is enough: the body is never read
    stored = local.outbox.get(licensee, event.event_id)
    assert stored is not None and stored.status == DELIVERED


def test_no_proxy_from_the_environment_is_used(receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    path = f"/hooks/{uuid.uuid4().hex}"
    secret = "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()
    url = receiver.endpoint(path, secret)
    body = b'{"type":"message.sent"}'
    headers = webhook_headers(Endpoint(uuid.uuid4(), url, secret), "evt_proxy", body, utcnow())
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # a proxy nobody answers on
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert WebhookSender(timeout_seconds=2).post(url, headers, body) is None
    assert [each.webhook_id for each in receiver.at(path)] == ["evt_proxy"]


def test_an_update_that_lost_a_race_leaves_the_row_as_the_winner_wrote_it(
        gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    register(receiver, endpoints, licensee)
    local = Local(gateway)
    taken, gone = events(licensee, EventType.SENT, EventType.DELIVERED)
    local.outbox.publish([taken, gone])
    stale, doomed = local.outbox.find_many(licensee, [taken.event_id, gone.event_id])
    local.outbox.mark_delivered(stale, local.clock.now)  # the winner
    local.outbox.mark_delivered(stale, local.clock.now)  # another worker, with the row as it read it: 412, ignored
    winner = local.outbox.get(licensee, taken.event_id)
    assert winner is not None and (winner.status, winner.attempts) == (DELIVERED, 1)
    gateway.clients.tables.get_table_client(gateway.settings.webhook_events_table).delete_entity(
        licensee.hex, gone.event_id)
    local.outbox.mark_delivered(doomed, local.clock.now)  # 404, ignored
    assert local.outbox.get(licensee, gone.event_id) is None


def test_abandoning_a_whole_message_fails_every_event_in_bounded_transactions(
        gateway: Gateway, receiver: WebhookReceiver, endpoints: WebhookEndpoints) -> None:
    licensee = uuid.uuid4()
    register(receiver, endpoints, licensee)
    local = Local(gateway)
    sixty = [event for _ in range(30) for event in events(licensee, EventType.SENT, EventType.DELIVERED)]
    local.outbox.publish(sixty)  # one transaction, one message
    [message] = local.messages()
    abandoned = local.outbox.abandon(licensee, message.event_ids, "Abandoned: test")  # 120 operations
    assert abandoned == 60
    assert {row.event_id for row in local.outbox.failed(licensee)} == {event.event_id for event in sixty}
