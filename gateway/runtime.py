"""The composition root: one Gateway per process, built from settings on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from gateway.auth import ApiKeyStore, Authenticator
from gateway.connections import StorageClients
from gateway.delivery import Delivery
from gateway.providers import SmsProvider, create_provider
from gateway.queue import DeliveryQueue
from gateway.service import SendService
from gateway.settings import Settings, get_settings
from gateway.status import StatusService
from gateway.storage import CommunicationStore


@dataclass
class Gateway:
    settings: Settings
    clients: StorageClients
    store: CommunicationStore
    keys: ApiKeyStore
    authenticator: Authenticator
    queue: DeliveryQueue
    poison_queue: DeliveryQueue
    provider: SmsProvider
    delivery: Delivery
    service: SendService
    status: StatusService

    @classmethod
    def create(cls, settings: Settings, *, clients: StorageClients | None = None) -> Gateway:
        """Compose the gateway; ``clients`` replaces the storage clients built from settings (benchmarks)."""
        clients = clients or StorageClients.create(settings.storage)
        store = CommunicationStore(clients.tables, settings.communications_table)
        keys = ApiKeyStore(clients.tables, settings.api_keys_table)
        queue = DeliveryQueue(clients.queue(settings.queue_name))
        provider = create_provider(settings, clients.tables)
        delivery = Delivery(store, provider, claim_timeout_seconds=settings.claim_timeout_seconds)
        return cls(
            settings=settings,
            clients=clients,
            store=store,
            keys=keys,
            authenticator=Authenticator(keys, settings.api_key_cache_seconds),
            queue=queue,
            poison_queue=DeliveryQueue(clients.queue(settings.poison_queue_name)),
            provider=provider,
            delivery=delivery,
            service=SendService(settings, store, queue, delivery),
            status=StatusService(store),
        )

    def ensure_resources(self) -> None:
        """Create the tables and queues (Bicep creates them in Azure; Azurite starts empty)."""
        self.store.ensure_table()
        self.keys.ensure_table()
        self.queue.ensure_queue()
        self.poison_queue.ensure_queue()


_lock = threading.Lock()
_gateway: Gateway | None = None


def get_gateway() -> Gateway:
    """The process's Gateway; its storage resources are ensured once, at first use."""
    global _gateway
    if _gateway is None:
        with _lock:
            if _gateway is None:
                gateway = Gateway.create(get_settings())
                gateway.ensure_resources()
                _gateway = gateway
    return _gateway


def use_gateway(gateway: Gateway | None) -> None:
    """Replace the process's Gateway (tests and benchmarks host the app with their own parts)."""
    global _gateway
    with _lock:
        _gateway = gateway


def check_configuration() -> None:
    """Fail start-up with a message naming the setting when the configuration cannot work."""
    get_settings()
