"""The composition root: one Gateway per process, built from settings on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from gateway.auth import ApiKeyStore, Authenticator
from gateway.connections import StorageClients
from gateway.delivery import Delivery
from gateway.health import StorageProbe
from gateway.providers import SmsProvider, create_provider
from gateway.queue import DeliveryQueue
from gateway.service import SendService
from gateway.settings import Settings, get_settings
from gateway.status import StatusService
from gateway.storage import CommunicationStore


@dataclass
class Gateway:
    """The process's parts. The request path (service, status, authentication, health) uses clients with a
    few seconds' budget; the queue worker's parts (``store``, ``queue``, ``poison_queue``, ``delivery``)
    use the worker's longer one (``gateway.connections``)."""

    settings: Settings
    clients: StorageClients
    keys: ApiKeyStore
    authenticator: Authenticator
    service: SendService
    status: StatusService
    probe: StorageProbe
    provider: SmsProvider
    store: CommunicationStore
    queue: DeliveryQueue
    poison_queue: DeliveryQueue
    delivery: Delivery

    @classmethod
    def create(cls, settings: Settings, *, clients: StorageClients | None = None) -> Gateway:
        """Compose the gateway; ``clients`` replaces the storage clients built from settings (benchmarks)."""
        clients = clients or StorageClients.create(settings.storage, connections=settings.concurrent_calls)
        claim_timeout = settings.claim_timeout_seconds
        provider = create_provider(settings, clients.tables)
        request_store = CommunicationStore(clients.tables, settings.communications_table)
        request_queue = DeliveryQueue(clients.queue(settings.queue_name))
        store = CommunicationStore(clients.worker_tables, settings.communications_table)
        keys = ApiKeyStore(clients.tables, settings.api_keys_table)
        return cls(
            settings=settings,
            clients=clients,
            keys=keys,
            authenticator=Authenticator(keys, settings.api_key_cache_seconds),
            service=SendService(settings, request_store, request_queue,
                                Delivery(request_store, provider, claim_timeout_seconds=claim_timeout)),
            status=StatusService(request_store),
            probe=StorageProbe(request_store, request_queue),
            provider=provider,
            store=store,
            queue=DeliveryQueue(clients.queue(settings.queue_name, worker=True)),
            poison_queue=DeliveryQueue(clients.queue(settings.poison_queue_name, worker=True)),
            delivery=Delivery(store, provider, claim_timeout_seconds=claim_timeout),
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
        for table in (self.settings.communications_table, self.settings.api_keys_table):
            self.clients.tables.create_table_if_not_exists(table)
        for queue in (self.settings.queue_name, self.settings.poison_queue_name):
            DeliveryQueue(self.clients.queue(queue)).ensure_queue()


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
