"""Storage clients built from settings: a connection string (Azurite, keys) or an identity.

The Functions host and this code read the same ``AzureWebJobsStorage`` family of settings,
so one storage account serves both, with keys locally and a managed identity in Azure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import ExponentialRetry, QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from gateway.settings import WORKER_DEFAULT_THREADS, ConfigError, StorageSettings


@dataclass(frozen=True)
class CallBudget:
    """How long one storage call may wait, and how often it is tried again.

    A connect failure or a 5xx/429 answer is retried (``retries``): the server did not do the work.
    A read that timed out or broke is retried only ``read_retries`` times, and the table SDK retries
    it only for idempotent methods: the server may have done the write, so a retried insert would
    meet its own row (docs/storage.md, "What a 503 means").
    """

    connection_timeout: float
    read_timeout: float
    retries: int
    read_retries: int
    backoff: float

    def transport(self, session: requests.Session) -> RequestsTransport:
        """A transport over the process's shared ``session`` with this budget's time-outs (a transport
        holds them: a client given one ignores its own ``connection_timeout``/``read_timeout``)."""
        return RequestsTransport(session=session, session_owner=False, connection_timeout=self.connection_timeout,
                                 read_timeout=self.read_timeout)

    def table_options(self) -> dict[str, Any]:
        return {
            "connection_timeout": self.connection_timeout,
            "read_timeout": self.read_timeout,
            "retry_total": self.retries,
            "retry_connect": self.retries,
            "retry_status": self.retries,
            "retry_read": self.read_retries,
            "retry_backoff_factor": self.backoff,
            "retry_backoff_max": 4 * self.backoff,
        }

    def queue_options(self) -> dict[str, Any]:
        """The storage SDK's own retry policy (its default waits 15 s, then 18 s, between tries)."""
        retry = ExponentialRetry(initial_backoff=self.backoff, increment_base=2, retry_total=self.retries,
                                 retry_read=self.read_retries, random_jitter_range=self.backoff / 2)
        return {"connection_timeout": self.connection_timeout, "read_timeout": self.read_timeout,
                "retry_policy": retry}


REQUEST_BUDGET = CallBudget(connection_timeout=2, read_timeout=4, retries=1, read_retries=0, backoff=0.2)
"""The request path: a client waits for storage a few seconds at most, then gets a 503 that says what is known."""
WORKER_BUDGET = CallBudget(connection_timeout=5, read_timeout=20, retries=2, read_retries=2, backoff=0.4)
"""The queue worker: nobody waits on it, and a record that gets through spares a reconciliation later."""


def pooled_session(connections: int) -> requests.Session:
    """The one HTTP session every storage client of the process shares, keeping up to ``connections``
    connections per host (table, queue) for reuse.

    azure-core's own transport keeps urllib3's default of 10: with more threads calling storage at
    once than that, the extra connections are opened, used once and dropped ("Connection pool is
    full"), each paying a new TCP and TLS handshake. The adapter's retries are off, as azure-core
    sets them: the SDKs' retry policies decide what is tried again.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=connections,
                          max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return session


def observer_options(policies: Sequence[SansIOHTTPPolicy]) -> dict[str, Any]:
    """Client options that run ``policies`` on every storage request and response, each try included.

    The table and queue SDKs build their own pipelines and ignore azure-core's
    ``per_call_policies``/``per_retry_policies``, and a ``TableClient`` from ``get_table_client``
    would not inherit them anyway; both SDKs do honour the documented ``raw_request_hook`` and
    ``raw_response_hook``, which run after the retry policy. Benchmarks count transactions this way.
    """
    if not policies:
        return {}
    chain = tuple(policies)

    def on_request(request: PipelineRequest) -> None:
        for policy in chain:
            policy.on_request(request)

    def on_response(response: PipelineResponse) -> None:
        request = PipelineRequest(response.http_request, response.context)
        for policy in chain:
            policy.on_response(request, response)

    return {"raw_request_hook": on_request, "raw_response_hook": on_response}


def _credential(storage: StorageSettings) -> Any:
    """A token credential for identity-based connections (azure-identity loads only here)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if storage.credential == "managedidentity":  # the one value StorageSettings accepts
        return ManagedIdentityCredential(client_id=storage.client_id)
    return DefaultAzureCredential(managed_identity_client_id=storage.client_id)


def _service_uri(storage: StorageSettings, service: str) -> str:
    explicit = storage.table_service_uri if service == "table" else storage.queue_service_uri
    if explicit:
        return explicit.rstrip("/")
    if storage.account_name:
        return f"https://{storage.account_name}.{service}.core.windows.net"
    raise ConfigError(f"AzureWebJobsStorage__{service}ServiceUri or AzureWebJobsStorage__accountName must be set")


@dataclass
class StorageClients:
    """The clients one process shares: table services and queues, for the request path and for the worker.

    The two sides reach the same account with different budgets (``REQUEST_BUDGET``, ``WORKER_BUDGET``)
    over one pooled HTTP session (``pooled_session``), sized for the calls the process runs at once.
    """

    settings: StorageSettings
    tables: TableServiceClient  # the request path's
    worker_tables: TableServiceClient
    session: requests.Session
    _credential: Any = None
    _hooks: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, storage: StorageSettings, *, connections: int = WORKER_DEFAULT_THREADS,
               policies: Sequence[SansIOHTTPPolicy] = ()) -> StorageClients:
        """Clients for ``storage`` pooling ``connections`` per host (``Settings.concurrent_calls``);
        ``policies`` see every request they make (benchmarks count them)."""
        hooks = observer_options(policies)
        credential = None if storage.connection_string else _credential(storage)
        session = pooled_session(connections)

        def tables(budget: CallBudget) -> TableServiceClient:
            options = {**budget.table_options(), "transport": budget.transport(session), **hooks}
            if storage.connection_string:
                return TableServiceClient.from_connection_string(storage.connection_string, **options)
            return TableServiceClient(endpoint=_service_uri(storage, "table"), credential=credential, **options)

        return cls(storage, tables(REQUEST_BUDGET), tables(WORKER_BUDGET), session, credential, hooks)

    def queue(self, name: str, *, worker: bool = False) -> QueueClient:
        """A queue client that writes and reads base64 text, as the Functions queue trigger expects."""
        budget = WORKER_BUDGET if worker else REQUEST_BUDGET
        options = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
            **budget.queue_options(),
            "transport": budget.transport(self.session),
            **self._hooks,
        }
        if self.settings.connection_string:
            return QueueClient.from_connection_string(self.settings.connection_string, name, **options)
        return QueueClient(account_url=_service_uri(self.settings, "queue"), queue_name=name,
                           credential=self._credential, **options)


class TableStore:
    """Base for the classes that own one table: keeps the client and can create the table."""

    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        self._table_name = table_name
        self._table: TableClient = service.get_table_client(table_name)

    def ensure_table(self) -> None:
        self._service.create_table_if_not_exists(self._table_name)

    def ping(self, seconds: float) -> None:
        """Raise unless the table answers within ``seconds``, tried once (the health check's probe)."""
        with contextlib.suppress(ResourceNotFoundError):
            self._table.get_entity("ping", "ping", connection_timeout=seconds, read_timeout=seconds, retry_total=0)
