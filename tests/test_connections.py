"""Storage clients: extra pipeline policies see every request, from every client the gateway makes."""

from __future__ import annotations

import uuid

from azure.core.pipeline.policies import SansIOHTTPPolicy

from gateway.connections import CLIENT_OPTIONS, StorageClients, observer_options
from gateway.runtime import Gateway
from gateway.settings import Settings, StorageSettings


class Recorder(SansIOHTTPPolicy):
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.statuses: list[int] = []

    def on_request(self, request) -> None:
        self.requests.append((request.http_request.method, request.http_request.url))

    def on_response(self, request, response) -> None:
        assert request.http_request is response.http_request
        self.statuses.append(response.http_response.status_code)


def test_extra_policies_see_table_queue_and_batch_requests(storage_connection: str) -> None:
    recorder = Recorder()
    clients = StorageClients.create(StorageSettings(connection_string=storage_connection), policies=[recorder])
    name = "C" + uuid.uuid4().hex[:10]
    clients.tables.create_table_if_not_exists(name)  # the service client
    table = clients.tables.get_table_client(name)  # a derived client
    table.submit_transaction([("create", {"PartitionKey": "p", "RowKey": str(n)}) for n in range(3)])
    queue = clients.queue("c" + uuid.uuid4().hex[:10])  # each queue client
    queue.create_queue()
    queue.send_message("hello")

    methods = [method for method, _ in recorder.requests]
    assert methods == ["POST", "POST", "PUT", "POST"]
    assert recorder.requests[1][1].endswith("/$batch")
    assert recorder.statuses == [201, 202, 201, 201]


def test_without_policies_the_clients_get_the_plain_options(storage_connection: str) -> None:
    assert observer_options([]) == {}
    clients = StorageClients.create(StorageSettings(connection_string=storage_connection))
    assert clients._options == CLIENT_OPTIONS


def test_a_gateway_can_be_built_on_given_clients(storage_env: dict[str, str]) -> None:
    recorder = Recorder()
    settings = Settings.from_env(storage_env)
    clients = StorageClients.create(settings.storage, policies=[recorder])
    gateway = Gateway.create(settings, clients=clients)
    gateway.ensure_resources()
    assert gateway.clients is clients
    gateway.store.load_header(uuid.UUID(int=0))
    assert recorder.requests[-1][0] == "GET" and recorder.statuses[-1] == 404
