"""Storage clients built from settings: a connection string (Azurite, keys) or an identity.

The Functions host and this code read the same ``AzureWebJobsStorage`` family of settings,
so one storage account serves both, with keys locally and a managed identity in Azure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import ExponentialRetry, QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from gateway.settings import ConfigError, StorageSettings

# Fail fast: a request waits for storage at most a few seconds before it answers 503.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.4,
    "connection_timeout": 5,
    "read_timeout": 20,
}


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
    """The clients one process shares: a table service and a factory for queues."""

    settings: StorageSettings
    tables: TableServiceClient
    _credential: Any = None
    _options: dict[str, Any] = field(default_factory=lambda: dict(CLIENT_OPTIONS))

    @classmethod
    def create(cls, storage: StorageSettings, *, policies: Sequence[SansIOHTTPPolicy] = ()) -> StorageClients:
        """Clients for ``storage``; ``policies`` see every request they make (benchmarks count them)."""
        options = {**CLIENT_OPTIONS, **observer_options(policies)}
        if storage.connection_string:
            tables = TableServiceClient.from_connection_string(storage.connection_string, **options)
            return cls(storage, tables, None, options)
        credential = _credential(storage)
        tables = TableServiceClient(endpoint=_service_uri(storage, "table"), credential=credential, **options)
        return cls(storage, tables, credential, options)

    def queue(self, name: str) -> QueueClient:
        """A queue client that writes and reads base64 text, as the Functions queue trigger expects."""
        codecs = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
            # The storage SDK's own default waits 15 s, then 18 s, between tries: far too long for a request.
            "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2, random_jitter_range=1),
        }
        if self.settings.connection_string:
            return QueueClient.from_connection_string(self.settings.connection_string, name, **codecs, **self._options)
        return QueueClient(
            account_url=_service_uri(self.settings, "queue"),
            queue_name=name,
            credential=self._credential,
            **codecs,
            **self._options,
        )


class TableStore:
    """Base for the classes that own one table: keeps the client and can create the table."""

    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        self._table_name = table_name
        self._table: TableClient = service.get_table_client(table_name)

    def ensure_table(self) -> None:
        self._service.create_table_if_not_exists(self._table_name)
