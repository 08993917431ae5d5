"""A local Azure Event Grid: one webhook subscription, delivered to the way Event Grid delivers.

* Events are built with ``azure-eventgrid``'s ``EventGridEvent`` and serialised as Event Grid sends them
  to a webhook (Event Grid schema, with the ``topic`` and ``metadataVersion`` it adds), a JSON array per
  POST, with the headers ``aeg-event-type``, ``aeg-subscription-name``, ``aeg-delivery-count``,
  ``aeg-data-version`` and ``aeg-metadata-version``.
* The validation handshake comes first: a ``Microsoft.EventGrid.SubscriptionValidationEvent`` POSTed with
  ``aeg-event-type: SubscriptionValidation``; the endpoint must answer 200 with ``{"validationResponse":
  <the code>}`` (202 is not enough). An endpoint that fails it gets no events, as a subscription that
  failed validation gets none.
* Deliveries run on a background thread, at least once and in no promised order: a POST may batch several
  events, events may be shuffled, and some are delivered twice. 200-204 is done; 400, 401, 403, 404 and 413
  are not retried (Event Grid dead-letters them); anything else, or no answer, is retried after short waits
  (Event Grid's 10 s, 30 s, 1 min… scaled down).

(MicrosoftDocs azure-docs ``articles/event-grid/end-point-validation-event-grid-events-schema.md`` and
``delivery-and-retry.md``.)
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from azure.eventgrid import EventGridEvent, SystemEventNames

VALIDATION_EVENT = SystemEventNames.EventGridSubscriptionValidationEventName.value
NOT_RETRIED = frozenset({400, 401, 403, 404, 413})
RETRY_WAITS = (0.1, 0.3, 1.0)  # Event Grid's 10 s, 30 s, 1 min, scaled down
METADATA_VERSION = "1"
TOPIC = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/"
         "microsoft.communication/communicationservices/acs-fake")


def wire_event(event: EventGridEvent, topic: str = TOPIC) -> dict[str, Any]:
    """One event as Event Grid delivers it: the SDK's serialisation, plus what Event Grid adds on the way."""
    body = event.serialize()
    body.setdefault("topic", topic)
    body["metadataVersion"] = METADATA_VERSION
    return body


def wire_batch(events: Sequence[EventGridEvent], topic: str = TOPIC) -> bytes:
    """A webhook POST's body: a JSON array of events."""
    return json.dumps([wire_event(event, topic) for event in events]).encode("utf-8")


def validation_event(code: str) -> EventGridEvent:
    """The handshake's event (its ``validationUrl`` is where a manual handshake would GET)."""
    return EventGridEvent(
        subject="", event_type=VALIDATION_EVENT, data_version="1",
        data={"validationCode": code,
              "validationUrl": f"https://127.0.0.1:553/eventsubscriptions/local/validate?id={code}"},
    )


def event_time(moment: datetime | None = None) -> str:
    """Event Grid's and ACS's time format: UTC, seven fractional digits, ``Z``."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


@dataclass(frozen=True)
class Delivery:
    """One POST the fake made: which events, which attempt, and the endpoint's answer (None: no answer)."""

    kind: str  # "SubscriptionValidation" or "Notification"
    event_ids: tuple[str, ...]
    attempt: int
    status: int | None
    accepted: bool  # a handshake: 200 with the code echoed; a notification: 200-204


class EventGridSubscription:
    """One webhook subscription: ``validate()`` runs the handshake, ``publish()`` queues events for delivery.

    ``max_batch`` events at most go in one POST (1: never batched), ``duplicate_chance`` is the chance an
    event is delivered a second time later (1: every event twice), ``shuffle`` mixes what is queued; ``seed``
    makes the choices repeat.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        name: str = "SMS-GATEWAY",
        max_batch: int = 3,
        duplicate_chance: float = 0.25,
        shuffle: bool = True,
        retry_waits: Sequence[float] = RETRY_WAITS,
        linger: float = 0.05,
        seed: int | None = None,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.max_batch = max_batch
        self.duplicate_chance = duplicate_chance
        self.shuffle = shuffle
        self.retry_waits = tuple(retry_waits)
        self.linger = linger
        self.on_delivery = on_delivery
        self.deliveries: list[Delivery] = []
        self.validated: bool | None = None  # None until the handshake ran
        self._random = random.Random(seed)
        self._pending: list[EventGridEvent] = []
        self._repeated: set[int] = set()  # the events already queued a second time
        self._in_flight = 0
        self._condition = threading.Condition()
        self._validation_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    # --- the handshake -------------------------------------------------------------------------------------

    def validate(self) -> bool:
        """POST the validation event; True when the answer is 200 with the code echoed. Runs once."""
        with self._validation_lock:
            if self.validated is None:
                code = str(uuid.uuid4())
                event = validation_event(code)
                status, answer = self._post([event], "SubscriptionValidation", attempt=0)
                self.validated = status == 200 and _echoed_code(answer) == code
                self._record(Delivery("SubscriptionValidation", (str(event.id),), 0, status, self.validated))
            return self.validated

    # --- deliveries ----------------------------------------------------------------------------------------

    def publish(self, *events: EventGridEvent) -> None:
        """Queue events; the delivery thread (started on first use) POSTs them after the handshake."""
        with self._condition:
            if self.validated is False:
                return  # a subscription that failed validation delivers nothing
            self._pending.extend(events)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-grid", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once nothing is queued or being delivered (retries included), within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._pending or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def stop(self) -> None:
        self._stopping.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._session.close()

    def _run(self) -> None:
        if not self.validate():
            with self._condition:  # a subscription that failed validation delivers nothing
                self._pending.clear()
                self._condition.notify_all()
            return
        while not self._stopping.is_set():
            batch = self._next_batch()
            if batch:
                self._deliver(batch)
                with self._condition:
                    self._in_flight -= len(batch)
                    self._condition.notify_all()

    def _next_batch(self) -> list[EventGridEvent]:
        with self._condition:
            while not self._pending and not self._stopping.is_set():
                self._condition.wait(0.5)
        if self._stopping.wait(self.linger):  # let a few events gather, as a batching subscription does
            return []
        with self._condition:
            size = self._random.randint(1, max(1, self.max_batch))
            if self.shuffle:
                self._random.shuffle(self._pending)
            batch, self._pending = self._pending[:size], self._pending[size:]
            self._in_flight += len(batch)
            for event in batch:
                if id(event) not in self._repeated and self._random.random() < self.duplicate_chance:
                    self._repeated.add(id(event))  # once more at most
                    self._pending.append(event)  # delivered again later: at least once, not exactly once
                    self._random.shuffle(self._pending)
            return batch

    def _deliver(self, batch: list[EventGridEvent]) -> None:
        for attempt in range(len(self.retry_waits) + 1):
            status, _ = self._post(batch, "Notification", attempt=attempt)
            accepted = status is not None and 200 <= status <= 204
            self._record(Delivery("Notification", tuple(str(event.id) for event in batch), attempt, status, accepted))
            if status is not None and (200 <= status <= 204 or status in NOT_RETRIED):
                return
            if attempt < len(self.retry_waits) and self._stopping.wait(self.retry_waits[attempt]):
                return

    def _post(self, events: list[EventGridEvent], kind: str, *, attempt: int) -> tuple[int | None, Any]:
        data_version = events[0].data_version if events else ""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "aeg-event-type": kind,
            "aeg-subscription-name": self.name,
            "aeg-delivery-count": str(attempt),
            "aeg-data-version": str(data_version),
            "aeg-metadata-version": METADATA_VERSION,
        }
        status: int | None = None
        answer: Any = None
        try:
            response = self._session.post(self.endpoint, data=wire_batch(events), headers=headers, timeout=30)
            status = response.status_code
            answer = _json_or_none(response)
        except requests.RequestException:
            status = None
        return status, answer

    def _record(self, delivery: Delivery) -> None:
        with self._condition:
            self.deliveries.append(delivery)
        if self.on_delivery is not None:
            self.on_delivery(delivery)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _echoed_code(answer: Any) -> str | None:
    return answer.get("validationResponse") if isinstance(answer, dict) else None
