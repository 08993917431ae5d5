"""SMSSend over real HTTP through devhost, against a real Azurite, worker included."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid

import jsonschema
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from devhost.azurite import connection_string, free_port
from gateway.runtime import Gateway
from gateway.settings import Settings
from gateway.storage import CommStatus, RecipientState
from tests.http_fixtures import LICENSEE
from tests.samples import NUMBERS, SEED_REQUEST, send_body
from tests.server import GatewayServer, server_env
from tests.waiting import wait_until

SEND_ROUTES = ["/api/sendmessage", "/api/send", "/api/sms/send"]
IMMEDIATE_ROUTES = [route + "/immediate" for route in SEND_ROUTES]
OTHER_LICENSEE = uuid.UUID("9b2e7c41-8a3d-4f60-b15e-6c7d8e9f0a1b")


def outbox_rows(gateway: Gateway, comm_id: str) -> list[dict]:
    """One communication's outbox rows; none while the outbox table does not exist (the first delivery makes it).

    Any other failure raises: an empty answer from a failed read would let "nothing sent twice" pass.
    """
    table = gateway.clients.tables.get_table_client(gateway.settings.outbox_table)
    try:
        return list(table.query_entities("PartitionKey eq @pk", parameters={"pk": comm_id}))
    except ResourceNotFoundError as error:
        if error.error_code != "TableNotFound":
            raise
        return []


def test_outbox_rows_reads_empty_only_while_the_outbox_table_does_not_exist(storage_connection: str) -> None:
    env = server_env(storage_connection)
    assert outbox_rows(Gateway.create(Settings.from_env(env)), uuid.uuid4().hex) == []  # no table yet
    wrong_key = re.sub(r"AccountKey=[^;]+", "AccountKey=" + base64.b64encode(b"not the key").decode(),
                       storage_connection)
    refused = Gateway.create(Settings.from_env({**env, "AzureWebJobsStorage": wrong_key}))
    with pytest.raises(HttpResponseError):
        outbox_rows(refused, uuid.uuid4().hex)


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    status_body = response.json()["ResponseStatus"]
    assert set(status_body) >= {"ErrorCode", "Message", "Errors"}
    if code:
        assert status_body["ErrorCode"] == code
    if field:
        assert field in [error["FieldName"] for error in status_body["Errors"]]
    return status_body


def test_queued_send_is_stored_queued_delivered_and_final(server: GatewayServer, gateway: Gateway, key: str) -> None:
    response = server.post("/api/sendmessage", send_body(*NUMBERS[:3]), key=key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"CommId", "Reference", "Status", "Message"}
    assert body["Status"] is True and len(body["CommId"]) == 32
    assert body["Message"] == "Queued for delivery to 3 recipients; GSM-7, 1 segment each"

    comm_id = uuid.UUID(body["CommId"])
    header = gateway.store.load_header(comm_id)
    assert header is not None and header.licensee_id == LICENSEE and header.reference == body["Reference"]

    rows = wait_until(lambda: len(found := outbox_rows(gateway, comm_id.hex)) == 3 and found, timeout=20,
                      what="three outbox rows")
    assert sorted(row["To"] for row in rows) == sorted(NUMBERS[:3])
    assert {row["From"] for row in rows} == {"+61412345678"}
    snapshot = wait_until(lambda: (s := gateway.store.load(comm_id)) and s.communication.status.is_final and s,
                          timeout=20, what="a final status")
    assert snapshot.communication.status is CommStatus.SENT
    assert [r.status for r in snapshot.stored_recipients] == [RecipientState.SENT] * 3  # created by the worker


@pytest.mark.parametrize("route", SEND_ROUTES)
def test_every_queue_route_answers_a_comm_response(server: GatewayServer, key: str, route: str) -> None:
    response = server.post(route, send_body(), key=key)
    assert response.status_code == 200, response.text
    assert response.json()["Status"] is True


@pytest.mark.parametrize("route", IMMEDIATE_ROUTES)
def test_immediate_routes_deliver_inside_the_request(server: GatewayServer, gateway: Gateway, key: str,
                                                     route: str) -> None:
    response = server.post(route, send_body(*NUMBERS[:2]), key=key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["Status"] is True
    assert body["Message"] == "Sent to 2 of 2 recipients; 0 failed; GSM-7, 1 segment each"
    assert len(outbox_rows(gateway, body["CommId"])) == 2
    assert gateway.store.load_header(uuid.UUID(body["CommId"])).status is CommStatus.SENT


def test_recipient_rows_written_immediately_exist_when_the_call_returns(quiet_server) -> None:
    server, gateway = quiet_server
    key = gateway.keys.create(LICENSEE, "quiet")[1]
    body = send_body(*NUMBERS[:2])
    body["CreateCommunicationReferencesImmediately"] = True
    comm_id = uuid.UUID(server.post("/api/send", body, key=key).json()["CommId"])
    snapshot = gateway.store.load(comm_id)
    assert [r.status for r in snapshot.stored_recipients] == [RecipientState.PENDING] * 2
    assert len({r.recipient_id for r in snapshot.stored_recipients}) == 2


def test_without_immediate_references_only_the_worker_creates_them(quiet_server) -> None:
    server, gateway = quiet_server
    key = gateway.keys.create(LICENSEE, "quiet")[1]
    comm_id = uuid.UUID(server.post("/api/send", send_body(*NUMBERS[:2]), key=key).json()["CommId"])
    assert gateway.store.load(comm_id).stored_recipients == []
    messages = [m for m in gateway.clients.queue(gateway.settings.queue_name).receive_messages(max_messages=32)]
    assert json.dumps({"CommId": comm_id.hex}, separators=(",", ":")) in [m.content for m in messages]


def test_queue_messages_are_base64_on_the_wire(quiet_server) -> None:
    server, gateway = quiet_server
    key = gateway.keys.create(LICENSEE, "quiet")[1]
    comm_id = server.post("/api/send", send_body(), key=key).json()["CommId"]
    from azure.storage.queue import QueueClient

    raw = QueueClient.from_connection_string(gateway.settings.storage.connection_string, gateway.settings.queue_name)
    texts = [m.content for m in raw.peek_messages(max_messages=32)]
    assert any(json.loads(base64.b64decode(text))["CommId"] == comm_id for text in texts)


def test_the_seed_request_written_as_json_is_accepted_unchanged(server: GatewayServer, key: str) -> None:
    response = server.post("/api/sendmessage", SEED_REQUEST, key=key)
    assert response.status_code == 200, response.text
    assert response.json()["Status"] is True


def test_redelivering_a_processed_message_sends_nothing_twice(server: GatewayServer, gateway: Gateway,
                                                               key: str) -> None:
    comm_id = uuid.UUID(server.post("/api/sendmessage/immediate", send_body(*NUMBERS[:2]), key=key).json()["CommId"])
    before = {row["RowKey"]: row["SentAt"] for row in outbox_rows(gateway, comm_id.hex)}
    gateway.queue.enqueue(comm_id)
    gateway.queue.enqueue(comm_id)
    wait_until(lambda: gateway.clients.queue(gateway.settings.queue_name).get_queue_properties()
               .approximate_message_count == 0, timeout=20, what="the queue to drain")
    time.sleep(1)
    after = {row["RowKey"]: row["SentAt"] for row in outbox_rows(gateway, comm_id.hex)}
    assert after == before
    assert [r.attempts for r in gateway.store.load(comm_id).stored_recipients] == [1, 1]


@pytest.mark.parametrize(
    ("mutate", "field", "code"),
    [
        (lambda b: b.pop("SMSModel"), "SMSModel", "NotNull"),
        (lambda b: b["SMSModel"].__setitem__("To", []), "SMSModel.To", "NotEmpty"),
        (lambda b: b["SMSModel"]["To"].append({"Name": "x"}), "SMSModel.To[1].PhoneNumber", "NotEmpty"),
        (lambda b: b["SMSModel"]["To"].append({"PhoneNumber": "+1 555"}), "SMSModel.To[1].PhoneNumber",
         "InvalidPhoneNumber"),
        (lambda b: b["SMSModel"].__setitem__("MessageBody", "  "), "SMSModel.MessageBody", "NotEmpty"),
        (lambda b: b["SMSModel"].__setitem__("MessageBody", "x" * 1601), "SMSModel.MessageBody", "MaximumLength"),
        (lambda b: b["SMSModel"].__setitem__("LinkedObjectId", "not-a-guid"), "SMSModel.LinkedObjectId",
         "SerializationException"),
    ],
)
def test_validation_errors_are_400_in_servicestack_shape(server: GatewayServer, key: str, mutate, field: str,
                                                        code: str) -> None:
    body = send_body()
    mutate(body)
    status = assert_error(server.post("/api/sendmessage", body, key=key), 400, code, field)
    assert status["Errors"][0]["ErrorCode"] == status["ErrorCode"]


def test_malformed_json_unsupported_type_and_oversize_bodies(server: GatewayServer, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    assert_error(server.post("/api/sendmessage", data=b'{"SMSModel": ', headers=headers), 400,
                 "SerializationException")
    assert_error(server.post("/api/sendmessage", data=b"[1,2]", headers=headers), 400, "SerializationException")
    assert_error(server.post("/api/sendmessage", data=b"hello", key=key, headers={"Content-Type": "text/plain"}),
                 415, "UnsupportedMediaType")
    huge = json.dumps(send_body(body="x" * (1024 * 1024 + 10))).encode()
    assert_error(server.post("/api/sendmessage", data=huge, headers=headers), 413, "RequestEntityTooLarge")


def test_authentication_is_required_and_revocation_bites(server: GatewayServer, gateway: Gateway) -> None:
    response = server.post("/api/sendmessage", send_body())
    assert_error(response, 401, "Unauthorized")
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert_error(server.post("/api/sendmessage", send_body(), key="sgk_unknown"), 401)

    record, secret = gateway.keys.create(LICENSEE, "short-lived")
    basic = "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
    assert server.post("/api/send", send_body(), headers={"Authorization": basic}).status_code == 200
    assert server.post("/api/send", send_body(), headers={"X-Api-Key": secret}).status_code == 200
    gateway.keys.revoke(record.key_id)
    time.sleep(1.2)  # SMS_API_KEY_CACHE_SECONDS=1 on this server
    assert "revoked" in assert_error(server.post("/api/send", send_body(), key=secret), 401)["Message"]


def test_a_key_never_acts_for_another_licensee(server: GatewayServer, gateway: Gateway, key: str) -> None:
    other_key = gateway.keys.create(OTHER_LICENSEE, "other")[1]
    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)

    def stored_for(licensee: uuid.UUID) -> int:
        return len(list(table.query_entities("LicenseeId eq @l", parameters={"l": licensee.hex})))

    before = stored_for(OTHER_LICENSEE)
    forbidden = server.post("/api/sendmessage", send_body(LicenseeId=OTHER_LICENSEE.hex), key=key)
    assert_error(forbidden, 403, "Forbidden")
    assert stored_for(OTHER_LICENSEE) == before

    own = server.post("/api/sendmessage", send_body(LicenseeId=str(OTHER_LICENSEE)), key=other_key)
    assert own.status_code == 200
    assert gateway.store.load_header(uuid.UUID(own.json()["CommId"])).licensee_id == OTHER_LICENSEE
    empty = server.post("/api/sendmessage", send_body(LicenseeId="00000000-0000-0000-0000-000000000000"), key=key)
    assert gateway.store.load_header(uuid.UUID(empty.json()["CommId"])).licensee_id == LICENSEE


def documented(name: str, body: object) -> None:
    """``body`` fits the schema the OpenAPI document gives the model ``name``."""
    from gateway.metadata.openapi import openapi_document

    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": f"#/components/schemas/{name}",
              "components": openapi_document()["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_health_answers_without_authentication(server: GatewayServer) -> None:
    response = server.get("/api/health")
    assert response.status_code == 200 and response.json() == {"Status": "Healthy", "Provider": "outbox"}
    documented("HealthResponse", response.json())


def test_health_says_which_provider_delivers(storage_connection: str) -> None:
    """A deployment that sends nothing is visible from outside: the probe names the provider."""
    env = server_env(storage_connection, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32,
                     TWILIO_AUTH_TOKEN="not-a-real-token")
    Gateway.create(Settings.from_env(env)).ensure_resources()
    twilio = GatewayServer.start(env, "--no-queues")
    try:
        response = twilio.get("/api/health")
    finally:
        twilio.stop()
    assert response.status_code == 200 and response.json() == {"Status": "Healthy", "Provider": "twilio"}
    documented("HealthResponse", response.json())


def test_health_is_503_when_storage_does_not_answer(storage_connection: str) -> None:
    env = server_env(connection_string(free_port(), free_port(), free_port()))  # nobody listens there
    server = GatewayServer.start(env, "--no-queues")
    try:
        response = server.get("/api/health", headers={"Accept": "application/xml"})
        assert_error(response, 503, "ServiceUnavailable")
        assert response.headers["Retry-After"] == "5"
        documented("ErrorResponse", response.json())
        send = server.post("/api/sendmessage", send_body(), key="sgk_any")
        assert_error(send, 503, "ServiceUnavailable")
        documented("ErrorResponse", send.json())
    finally:
        server.stop()


def test_status_by_comm_id_and_by_reference(server: GatewayServer, gateway: Gateway, key: str) -> None:
    sent = server.post("/api/sms/send/immediate", send_body(*NUMBERS[:2], Notes="hello"), key=key).json()
    for path in (f"/api/sms/{sent['CommId']}", f"/api/sms/reference/{sent['Reference']}",
                 f"/api/sms/reference/{sent['Reference'].lower()}", f"/api/sms/{uuid.UUID(sent['CommId'])}"):
        response = server.get(path, key=key)
        assert response.status_code == 200, (path, response.text)
        status = response.json()
        assert (status["CommId"], status["Reference"], status["Status"]) == (sent["CommId"], sent["Reference"], "Sent")
        assert (status["RecipientCount"], status["SentCount"], status["FailedCount"], status["PendingCount"]) == (
            2, 2, 0, 0)
        assert status["Notes"] == "hello" and status["LicenseeId"] == LICENSEE.hex
        assert [r["Status"] for r in status["Recipients"]] == ["Sent", "Sent"]
        assert all(r["ProviderMessageId"].startswith("outbox-") for r in status["Recipients"])
        assert sorted(r["PhoneNumber"] for r in status["Recipients"]) == sorted(NUMBERS[:2])


def test_status_of_a_queued_send_lists_its_recipients_before_delivery(quiet_server) -> None:
    server, gateway = quiet_server
    key = gateway.keys.create(LICENSEE, "quiet")[1]
    sent = server.post("/api/send", send_body(*NUMBERS[:3]), key=key).json()
    status = server.get(f"/api/sms/{sent['CommId']}", key=key).json()
    assert status["Status"] == "Queued" and status["PendingCount"] == 3
    assert [r["Status"] for r in status["Recipients"]] == ["Pending"] * 3


def test_status_of_another_licensees_communication_is_404(server: GatewayServer, gateway: Gateway, key: str) -> None:
    other_key = gateway.keys.create(OTHER_LICENSEE, "other")[1]
    sent = server.post("/api/sendmessage", send_body(), key=other_key).json()
    assert server.get(f"/api/sms/{sent['CommId']}", key=other_key).status_code == 200
    assert_error(server.get(f"/api/sms/{sent['CommId']}", key=key), 404, "NotFound")
    assert_error(server.get(f"/api/sms/reference/{sent['Reference']}", key=key), 404, "NotFound")
    assert_error(server.get(f"/api/sms/{uuid.uuid4().hex}", key=key), 404, "NotFound")
    assert_error(server.get("/api/sms/not-a-guid", key=key), 404, "NotFound")
    assert_error(server.get(f"/api/sms/{sent['CommId']}"), 401, "Unauthorized")
