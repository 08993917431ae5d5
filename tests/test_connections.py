"""How settings become storage clients: connection strings locally, identities in Azure."""

import pytest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from gateway.connections import StorageClients
from gateway.settings import ConfigError, StorageSettings

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

