"""The composition root: one Gateway per process, built from settings on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

from azure.data.tables import TableServiceClient

from gateway.auth import ApiKeyStore, Authenticator
from gateway.cancel import Canceler
from gateway.connections import StorageClients
from gateway.delivery import Delivery, ReceiptFollowUp
from gateway.health import StorageProbe
from gateway.inbound import InboundBook, InboundStore
from gateway.listing import Listing
from gateway.message_index import MessageIndex
from gateway.message_list import LogService
from gateway.message_log import MessageLog
from gateway.open_work import OpenWork
from gateway.optouts import OptOutList
from gateway.pacing import NoPacing, Pacer, TablePacer
from gateway.providers import SmsProvider, create_provider
from gateway.providers.base import ReceiptSource
from gateway.queue import DeliveryQueue
from gateway.receipt_checks import CheckPolicy, ReceiptChecker, ReceiptChecks
from gateway.receipts import ReceiptBook
from gateway.reply_index import ReplyIndex
from gateway.retention import Retention, Tables
from gateway.schedule import ScheduleIndex
from gateway.service import SendService
from gateway.settings import Settings, get_settings
from gateway.status import StatusService
from gateway.storage import CommunicationStore
from gateway.webhook_dispatch import WebhookDispatcher, WebhookSender
from gateway.webhook_endpoints import CachedEndpoints, WebhookEndpoints
from gateway.webhook_events import EventSink
from gateway.webhook_outbox import WebhookOutbox
from gateway.webhook_queue import WebhookQueue

ENDPOINT_CACHE_SECONDS = 60  # a licensee's endpoint (or that it has none) is read at most once a minute per instance


@dataclass
class Gateway:
    """The process's parts. The request path (service, status, authentication, health) uses clients with a
    few seconds' budget; the queue worker's parts (``store``, ``queue``, ``poison_queue``, ``delivery``) and the
    missing-receipt check (``receipt_checker``) use the worker's longer one (``gateway.connections``). ``receipts``
    is the request path's: the provider routes apply what providers report with it; so is ``optouts``, the licensees'
    opt-out lists the routes, the CLI and inbound keywords change (delivery reads them with its own clients), and
    ``webhook_endpoints``, the licensees' webhook registrations the routes and the CLI change. ``webhook_directory``
    is the process's cache in front of them, which every publisher and the dispatcher read (the routes forget a
    licensee's entry when they change it). ``webhook_outbox`` is the request path's webhook outbox (the event
    routes, and the EventSink of the request path's changes); ``webhook_dispatcher`` sends the webhook queue's
    events with the worker's clients, and its ``outbox`` is the worker's EventSink, ``events``, which the sweep
    recovers into."""

    settings: Settings
    clients: StorageClients
    keys: ApiKeyStore
    authenticator: Authenticator
    service: SendService
    status: StatusService
    canceler: Canceler
    probe: StorageProbe
    provider: SmsProvider
    store: CommunicationStore
    queue: DeliveryQueue
    poison_queue: DeliveryQueue
    delivery: Delivery
    receipts: ReceiptBook
    receipt_checker: ReceiptChecker
    optouts: OptOutList
    inbound: InboundBook
    webhook_endpoints: WebhookEndpoints
    webhook_directory: CachedEndpoints
    webhook_outbox: WebhookOutbox
    webhook_dispatcher: WebhookDispatcher
    schedule: ScheduleIndex | None = None  # the worker's schedule index: the sweep finds lost scheduled sends in it
    events: EventSink | None = None  # the worker's webhook outbox; the sweep recovers unpublished events into it
    log: LogService | None = None  # GET /api/sms: the request path's message log pages
    retention: Retention | None = None  # the retention timer's job, with the worker's clients

    @classmethod
    def create(cls, settings: Settings, *, clients: StorageClients | None = None) -> Gateway:
        """Compose the gateway; ``clients`` replaces the storage clients built from settings (benchmarks)."""
        clients = clients or StorageClients.create(settings.storage, connections=settings.concurrent_calls)
        claim_timeout = settings.claim_timeout_seconds
        provider = create_provider(settings, clients.tables)
        quiet = timedelta(seconds=settings.sweep_after_seconds)
        def message_log(tables: TableServiceClient) -> MessageLog:
            return MessageLog(tables, settings.message_log_table, concurrency=settings.concurrent_calls)

        def listing(tables: TableServiceClient, log: MessageLog) -> Listing:
            """Every index an accept lists a communication in before its header (gateway/listing.py)."""
            return Listing(OpenWork(tables, settings.open_work_table, quiet), log,
                           ScheduleIndex(tables, settings.schedule_table))

        request_log, worker_log = message_log(clients.tables), message_log(clients.worker_tables)
        request_store = CommunicationStore(clients.tables, settings.communications_table,
                                           listing=listing(clients.tables, request_log))
        request_queue = DeliveryQueue(clients.queue(settings.queue_name))
        store = CommunicationStore(clients.worker_tables, settings.communications_table,
                                   listing=listing(clients.worker_tables, worker_log))
        keys = ApiKeyStore(clients.tables, settings.api_keys_table)
        pacer = pacer_for(settings, clients)
        policy = CheckPolicy(after=timedelta(minutes=settings.receipt_check_after_minutes),
                             give_up=timedelta(hours=settings.receipt_give_up_hours),
                             per_run=settings.receipt_checks_per_run)

        def replies_by_receipt(provider: SmsProvider, tables: TableServiceClient) -> ReplyIndex | None:
            """The reply index for the receipt book, when the provider picks the sender and receipts name it."""
            if not getattr(provider, "picks_sender", False):
                return None
            return ReplyIndex(tables, settings.reply_index_table)

        def follow_up(tables: TableServiceClient) -> ReceiptFollowUp:
            return ReceiptFollowUp(index=MessageIndex(tables, settings.message_index_table),
                                   checks=ReceiptChecks(tables, settings.receipt_checks_table), policy=policy,
                                   concurrency=index_concurrency(settings))

        # One cache of registrations per process: the routes forget what they change, every publisher sees it.
        directory = CachedEndpoints(webhook_endpoints_for(settings, clients.tables), ENDPOINT_CACHE_SECONDS)
        request_outbox = WebhookOutbox(clients.tables, settings.webhook_events_table,
                                       WebhookQueue(clients.queue(settings.webhook_queue_name)), directory)
        worker_webhook_queue = WebhookQueue(clients.queue(settings.webhook_queue_name, worker=True))
        worker_outbox = WebhookOutbox(clients.worker_tables, settings.webhook_events_table, worker_webhook_queue,
                                      directory)
        worker_book = ReceiptBook(store, MessageIndex(clients.worker_tables, settings.message_index_table),
                                  optouts=OptOutList(clients.worker_tables, settings.optouts_table),
                                  replies=replies_by_receipt(provider, clients.worker_tables), events=worker_outbox)
        optouts = OptOutList(clients.tables, settings.optouts_table)
        request_schedule = ScheduleIndex(clients.tables, settings.schedule_table)
        request_delivery = Delivery(request_store, provider, claim_timeout_seconds=claim_timeout, pacer=pacer,
                                    follow_up=follow_up(clients.tables), optouts=optouts,
                                    replies=ReplyIndex(clients.tables, settings.reply_index_table),
                                    events=request_outbox, schedule=request_schedule)
        return cls(
            settings=settings,
            clients=clients,
            keys=keys,
            authenticator=Authenticator(keys, settings.api_key_cache_seconds),
            service=SendService(settings, request_store, request_queue, request_delivery),
            status=StatusService(request_store),
            canceler=Canceler(request_store, request_delivery, request_outbox),
            probe=StorageProbe(request_store, request_queue),
            provider=provider,
            store=store,
            queue=DeliveryQueue(clients.queue(settings.queue_name, worker=True)),
            poison_queue=DeliveryQueue(clients.queue(settings.poison_queue_name, worker=True)),
            delivery=Delivery(store, provider, claim_timeout_seconds=claim_timeout, pacer=pacer,
                              follow_up=follow_up(clients.worker_tables),
                              optouts=OptOutList(clients.worker_tables, settings.optouts_table),
                              replies=ReplyIndex(clients.worker_tables, settings.reply_index_table),
                              events=worker_outbox,
                              schedule=ScheduleIndex(clients.worker_tables, settings.schedule_table)),
            schedule=ScheduleIndex(clients.worker_tables, settings.schedule_table),
            receipts=ReceiptBook(request_store, MessageIndex(clients.tables, settings.message_index_table),
                                 optouts=optouts, replies=replies_by_receipt(provider, clients.tables),
                                 events=request_outbox),
            receipt_checker=ReceiptChecker(ReceiptChecks(clients.worker_tables, settings.receipt_checks_table), store,
                                           worker_book, provider if isinstance(provider, ReceiptSource) else None,
                                           policy),
            inbound=InboundBook(InboundStore(clients.tables, settings.inbound_table),
                                ReplyIndex(clients.tables, settings.reply_index_table), request_store,
                                window=timedelta(hours=settings.reply_window_hours), optouts=optouts,
                                events=request_outbox),
            optouts=optouts,
            webhook_endpoints=webhook_endpoints_for(settings, clients.tables),
            webhook_directory=directory,
            webhook_outbox=request_outbox,
            webhook_dispatcher=WebhookDispatcher(
                worker_outbox, directory, worker_webhook_queue, WebhookSender(connections=settings.concurrent_calls),
                retry_base_seconds=settings.webhook_retry_base_seconds,
                allow_private=settings.webhook_allow_private, require_https=settings.webhooks_need_https),
            events=worker_outbox,
            log=LogService(request_log, clients.tables.get_table_client(settings.communications_table),
                           concurrency=min(INDEX_CONCURRENCY, settings.concurrent_calls)),
            retention=Retention(worker_log,
                                Tables.of(clients.worker_tables, settings), days=settings.retention_days,
                                provider=settings.provider),
        )

    @classmethod
    def start(cls, settings: Settings, *, clients: StorageClients | None = None) -> Gateway:
        """The gateway a process serves with: composed, and its tables and queues created, except in Azure.

        In Azure Bicep created them with the app, so asking again would only cost the first request of every
        instance four storage round trips (and the app's identity the right to create them).
        """
        gateway = cls.create(settings, clients=clients)
        if not settings.running_in_azure:
            gateway.ensure_resources()
        return gateway

    def ensure_resources(self) -> None:
        """Create the tables and queues (Azurite starts empty; in Azure Bicep creates them, see ``start``).

        With the request path's clients: the first request of a process waits for this, whatever it is.
        """
        tables = [self.settings.communications_table, self.settings.api_keys_table,
                  self.settings.message_index_table, self.settings.receipt_checks_table, self.settings.optouts_table,
                  self.settings.inbound_table, self.settings.reply_index_table, self.settings.webhooks_table,
                  self.settings.webhook_events_table, self.settings.schedule_table, self.settings.message_log_table,
                  self.settings.open_work_table]
        if self.settings.sender_rate_per_second is not None:
            tables.append(self.settings.sender_pacing_table)
        for table in tables:
            self.clients.tables.create_table_if_not_exists(table)
        for queue in (self.settings.queue_name, self.settings.poison_queue_name):
            DeliveryQueue(self.clients.queue(queue)).ensure_queue()
        for queue in (self.settings.webhook_queue_name, self.settings.webhook_poison_queue_name):
            WebhookQueue(self.clients.queue(queue)).ensure_queue()


def webhook_endpoints_for(settings: Settings, tables: TableServiceClient) -> WebhookEndpoints:
    """The webhook registrations on ``tables``, refusing URLs as settings say (``SMS_WEBHOOK_ALLOW_PRIVATE``, https
    in Azure and on any real storage account)."""
    return WebhookEndpoints(tables, settings.webhooks_table, allow_private=settings.webhook_allow_private,
                            require_https=settings.webhooks_need_https)


INDEX_CONCURRENCY = 10  # the most index writes in flight, like Twilio's calls: one per message it accepted


def index_concurrency(settings: Settings) -> int:
    """Index writes in flight at once for one batch: the provider's bound, within the storage connection pool."""
    return max(1, min(settings.provider_concurrency or INDEX_CONCURRENCY, settings.concurrent_calls))


def pacer_for(settings: Settings, clients: StorageClients) -> Pacer:
    """Per-sender pacing on the shared table when ``SMS_SENDER_RATE_PER_SECOND`` is set; none otherwise."""
    if settings.sender_rate_per_second is None:
        return NoPacing()
    table = clients.worker_tables.get_table_client(settings.sender_pacing_table)
    return TablePacer(table, settings.sender_rate_per_second)


_lock = threading.Lock()
_gateway: Gateway | None = None


def get_gateway() -> Gateway:
    """The process's Gateway, started (``Gateway.start``) at first use."""
    global _gateway
    if _gateway is None:
        with _lock:
            if _gateway is None:
                _gateway = Gateway.start(get_settings())
    return _gateway


def use_gateway(gateway: Gateway | None) -> None:
    """Replace the process's Gateway (tests and benchmarks host the app with their own parts)."""
    global _gateway
    with _lock:
        _gateway = gateway


def check_configuration() -> None:
    """Fail start-up with a message naming the setting when the configuration cannot work."""
    get_settings()
