"""How settings become storage clients (connection strings locally, identities in Azure), and how extra
pipeline policies (the benchmarks' transaction counter) see every request."""

import uuid

import pytest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from gateway.connections import StorageClients, observer_options
from gateway.runtime import Gateway
from gateway.settings import ConfigError, Settings, StorageSettings

CLIENT_ID = "6d2f1c4e-1111-2222-3333-444455556666"


def clients(**env: str) -> StorageClients:
    return StorageClients.create(StorageSettings.from_env(env))


def test_a_connection_string_uses_the_shared_key() -> None:
    made = clients(AzureWebJobsStorage="UseDevelopmentStorage=true")
    assert made.tables.url.startswith("http://127.0.0.1:10002/devstoreaccount1")
    queue = made.queue("sms-outbound")
    assert queue.url == "http://127.0.0.1:10001/devstoreaccount1/sms-outbound"
    assert type(queue.credential).__name__ == "SharedKeyCredentialPolicy"
    assert made.tables.credential.named_key.name == "devstoreaccount1"


def test_an_account_name_alone_derives_the_endpoints_and_uses_the_default_credential() -> None:
    made = clients(AzureWebJobsStorage__accountName="stsms123")
    assert made.tables.url.startswith("https://stsms123.table.core.windows.net")
    assert made.queue("q").url == "https://stsms123.queue.core.windows.net/q"
    assert isinstance(made.tables.credential, DefaultAzureCredential)
    assert made.queue("q").credential is made.tables.credential  # one credential, one token cache


def test_managed_identity_with_a_client_id_and_explicit_service_uris() -> None:
    made = clients(
        AzureWebJobsStorage__credential="managedidentity",
        AzureWebJobsStorage__clientId=CLIENT_ID,
        AzureWebJobsStorage__tableServiceUri="https://custom.table.example.net/",
        AzureWebJobsStorage__queueServiceUri="https://custom.queue.example.net",
        AzureWebJobsStorage__accountName="ignored",
    )
    assert made.tables.url.startswith("https://custom.table.example.net")
    assert made.queue("q").url == "https://custom.queue.example.net/q"
    credential = made.tables.credential
    assert isinstance(credential, ManagedIdentityCredential)


def test_an_empty_connection_string_falls_back_to_the_identity_settings() -> None:
    made = clients(AzureWebJobsStorage="", AzureWebJobsStorage__accountName="stsms123")
    assert made.tables.url.startswith("https://stsms123.table.core.windows.net")


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage__tableServiceUri": "https://t.example"}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage__accountName": "a", "AzureWebJobsStorage__credential": "certificate"},
         "AzureWebJobsStorage__credential"),
    ],
)
def test_incomplete_or_unknown_settings_name_the_setting(env: dict, names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        clients(**env)
    assert names in str(caught.value)


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
    assert clients._hooks == {}



def test_a_gateway_can_be_built_on_given_clients(storage_env: dict[str, str]) -> None:
    recorder = Recorder()
    settings = Settings.from_env(storage_env)
    clients = StorageClients.create(settings.storage, policies=[recorder])
    gateway = Gateway.create(settings, clients=clients)
    gateway.ensure_resources()
    assert gateway.clients is clients
    gateway.store.load_header(uuid.UUID(int=0))
    assert recorder.requests[-1][0] == "GET" and recorder.statuses[-1] == 404
