"""Queue triggers: a listener per function that polls an Azure Storage queue with host.json's semantics.

``extensions.queues`` sets the batch size, the threshold for fetching the next batch, the polling
back-off, how long a failed message stays hidden, how many tries make a message poison, and the
message encoding. A message that fails ``maxDequeueCount`` times, or cannot be decoded, is copied to
``<queue>-poison`` and deleted, as the host does.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as TriggerQueueMessage
from azure.storage.queue import ExponentialRetry, QueueClient
from azure.storage.queue import QueueMessage as StorageQueueMessage

from devhost.config import parse_timespan
from devhost.errors import DevHostError
from devhost.functions import FunctionSpec, invoke

logger = logging.getLogger(__name__)

# How long a received message stays invisible while its function runs: the host's queue listener receives with a
# fixed 10 minutes (WebJobs QueueListener ``_visibilityTimeout``; host.json cannot change it, and its
# ``visibilityTimeout`` is only the delay after a failed run). So a message whose host died comes back 10 minutes
# after it was taken, and the gateway's sweep, not the queue, must recover it sooner (docs/delivery.md). The host
# renews the lease while a function runs longer; the gateway's runs end well inside it, so this host does not.
PROCESSING_VISIBILITY_TIMEOUT = 600
# The host's queue poller starts at 100 ms when a queue is empty and doubles up to maxPollingInterval.
MIN_POLLING_INTERVAL = 0.1
# One quick retry inside a storage call, then the poll loop's own back-off takes over, as in the host. The
# SDK's default (15 s, then 18 s and 24 s between tries) would hide an outage inside one receive and keep
# the listener from noticing storage is back for half a minute.
LISTENER_RETRY: dict[str, float] = {"initial_backoff": 0.5, "increment_base": 2, "retry_total": 1,
                                    "random_jitter_range": 0.2}
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


def is_valid_queue_name(name: str) -> bool:
    """Azure's rule: 3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric."""
    return _QUEUE_NAME.match(name) is not None


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` from host.json, with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, host_json: Mapping[str, Any], max_polling_interval: float | None = None) -> QueueOptions:
        """Read and check the queue options; ``max_polling_interval`` (seconds) overrides host.json."""
        section = (host_json.get("extensions") or {}).get("queues") or {}
        batch_size = _int_option(section, "batchSize", 16, 1, 32)
        threshold = _int_option(section, "newBatchThreshold", batch_size // 2, 0, None)
        polling = parse_timespan(section["maxPollingInterval"], "extensions.queues.maxPollingInterval") \
            if "maxPollingInterval" in section else 60.0
        if max_polling_interval is not None:
            polling = max_polling_interval
        visibility = parse_timespan(section["visibilityTimeout"], "extensions.queues.visibilityTimeout") \
            if "visibilityTimeout" in section else 0.0
        encoding = str(section.get("messageEncoding", "base64")).lower()
        if encoding not in {"base64", "none"}:
            raise DevHostError(f"host.json extensions.queues.messageEncoding must be base64 or none, not {encoding!r}")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=threshold,
            max_polling_interval=max(polling, 0.001),
            visibility_timeout=visibility,
            max_dequeue_count=_int_option(section, "maxDequeueCount", 5, 1, None),
            message_encoding=encoding,
        )


def _int_option(section: Mapping[str, Any], name: str, default: int, low: int, high: int | None) -> int:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise DevHostError(f"host.json extensions.queues.{name} must be a whole number {bound}, not {value!r}")
    return value



class QueueListener:
    """Polls one queue for one function the way the host's queue listener does.

    Fetches up to ``batchSize`` messages whenever no more than ``newBatchThreshold`` are in flight,
    backs off exponentially (100 ms doubling to ``maxPollingInterval``) while the queue is empty, and
    settles each message: delete on success; on failure make it visible again after
    ``visibilityTimeout``, or move it to ``<queue>-poison`` once it reached ``maxDequeueCount``.
    """

    def __init__(self, spec: FunctionSpec, queue_name: str, connection_string: str, options: QueueOptions) -> None:
        self.spec = spec
        self.queue_name = queue_name
        self.poison_name = f"{queue_name}-poison"
        self.options = options
        try:
            self._client = QueueClient.from_connection_string(
                connection_string, queue_name, retry_policy=ExponentialRetry(**LISTENER_RETRY))
            self._poison = QueueClient.from_connection_string(
                connection_string, self.poison_name, retry_policy=ExponentialRetry(**LISTENER_RETRY))
        except ValueError as error:
            raise DevHostError(f"function {spec.name!r}: the storage connection string is invalid: {error}") from error
        self._poison_ready = False
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._pending: dict[Future[None], StorageQueueMessage] = {}
        self._pool = ThreadPoolExecutor(max_workers=options.batch_size, thread_name_prefix=f"queue-{spec.name}")
        self._thread = threading.Thread(target=self._poll, name=f"poll-{spec.name}", daemon=True)

    def start(self) -> None:
        _create_queue(self._client)
        self._thread.start()

    def stop(self) -> None:
        """Stop fetching, hand back messages not yet started, and wait for running ones."""
        self._stop.set()
        with self._idle:
            self._idle.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        with self._idle:
            pending = list(self._pending.items())
        for future, message in pending:
            if future.cancel():
                self._settle(lambda m=message: self._make_visible(m, 0), message)
        self._pool.shutdown(wait=True)
        self._client.close()
        self._poison.close()

    def _poll(self) -> None:
        delay = min(MIN_POLLING_INTERVAL, self.options.max_polling_interval)
        while not self._stop.is_set():
            with self._idle:
                self._idle.wait_for(
                    lambda: self._stop.is_set() or len(self._pending) <= self.options.new_batch_threshold)
            if self._stop.is_set():
                return
            try:
                pages = self._client.receive_messages(messages_per_page=self.options.batch_size,
                                                      visibility_timeout=PROCESSING_VISIBILITY_TIMEOUT).by_page()
                messages = list(next(pages, []))
            except Exception as error:  # keep polling: storage may come back
                logger.warning("Queue %s: receiving failed (%s: %s); retrying in %.1f s", self.queue_name,
                               error.__class__.__name__, error, delay)
                messages = []
            if not messages:
                self._stop.wait(delay)
                delay = min(delay * 2, self.options.max_polling_interval)
                continue
            delay = min(MIN_POLLING_INTERVAL, self.options.max_polling_interval)
            for message in messages:
                with self._idle:
                    future = self._pool.submit(self._process, message)
                    self._pending[future] = message
                future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._idle:
            self._pending.pop(future, None)
            self._idle.notify_all()

    def _decode(self, content: str) -> bytes:
        if self.options.message_encoding == "none":
            return content.encode("utf-8")
        compact = re.sub(r"\s+", "", content)
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"not valid base64 ({error})") from error

    def _process(self, message: StorageQueueMessage) -> None:
        count = message.dequeue_count or 1
        content = message.content if isinstance(message.content, str) else str(message.content or "")
        if count > self.options.max_dequeue_count:
            self._to_poison(message, content, f"its dequeue count {count} exceeds maxDequeueCount")
            return
        try:
            body = self._decode(content)
        except ValueError as error:
            self._to_poison(message, content, f"it cannot be decoded: {error}")
            return
        trigger_message = TriggerQueueMessage(
            id=message.id, body=body, dequeue_count=count, insertion_time=message.inserted_on,
            expiration_time=message.expires_on, time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt)
        try:
            invoke(self.spec, trigger_message)
        except Exception:
            logger.error("Function %s failed on message %s (dequeue count %d):\n%s", self.spec.name, message.id,
                         count, traceback.format_exc().rstrip())
            if count >= self.options.max_dequeue_count:
                self._to_poison(message, content, f"it failed {count} times (maxDequeueCount)")
            else:
                visibility = math.ceil(self.options.visibility_timeout)
                self._settle(lambda: self._make_visible(message, visibility), message)
            return
        logger.info("Function %s processed message %s from %s", self.spec.name, message.id, self.queue_name)
        self._settle(lambda: self._client.delete_message(message), message)

    def _make_visible(self, message: StorageQueueMessage, seconds: int) -> None:
        """Change only the visibility: passing the message object would make the SDK rewrite its content."""
        self._client.update_message(message.id, message.pop_receipt, visibility_timeout=seconds)

    def _to_poison(self, message: StorageQueueMessage, content: str, reason: str) -> None:
        """Copy the message's original text to ``<queue>-poison`` and delete it, as the host does."""
        logger.warning("Moving message %s from %s to %s because %s", message.id, self.queue_name,
                       self.poison_name, reason)

        def move() -> None:
            if not self._poison_ready:
                _create_queue(self._poison)
                self._poison_ready = True
            self._poison.send_message(content)
            self._client.delete_message(message)

        self._settle(move, message)

    def _settle(self, action: Callable[[], object], message: StorageQueueMessage) -> None:
        try:
            action()
        except AzureError as error:
            logger.error("Queue %s: could not settle message %s: %s", self.queue_name, message.id, error)


def _create_queue(client: QueueClient) -> None:
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    except AzureError as error:
        raise DevHostError(f"cannot create or reach queue {client.queue_name!r}: {error}") from error
