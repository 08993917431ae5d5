"""Idempotency-Key over HTTP, on Azurite: a retried send stores and sends nothing new.

The gateway runs as users run it (``python -m devhost``, queue worker on, outbox provider); the
tests count what storage holds: the communications carrying a test's marker, and the outbox rows
(one per SMS handed to the provider).
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from azure.data.tables import UpdateMode

from fakes.server import Fault
from fakes.twilio import TwilioFake
from gateway import jsv
from gateway.idempotency import ACCEPT_LEASE_SECONDS, WINDOW, request_hash
from gateway.models import SMSSend
from gateway.references import keyed_reference
from gateway.runtime import Gateway
from gateway.service import new_communication
from gateway.settings import Settings
from gateway.storage import CLAIM_ROW, HEADER_ROW, KeyClaim, claim_entity, recipient_entity, utcnow
from gateway.validation import validate_send
from tests.http_fixtures import LICENSEE
from tests.integration.test_http_send import outbox_rows
from tests.samples import NUMBERS, send_body
from tests.server import GatewayServer, server_env
from tests.waiting import wait_until

FINAL = {"Sent", "PartiallySent", "Failed"}


def marked(*numbers: str, **model: object) -> tuple[str, dict]:
    marker = f"idem-{uuid.uuid4().hex}"
    return marker, send_body(*numbers, body=f"{marker} hello", Notes=marker, **model)


def headers_for(key: str, idempotency_key: str | None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


def post(server: GatewayServer, route: str, body: object, key: str, idempotency_key: str | None = None,
         **kwargs: object) -> requests.Response:
    return server.post(route, body, headers=headers_for(key, idempotency_key), **kwargs)


def stored(gateway: Gateway, marker: str) -> list[dict]:
    """The communications whose Notes carry ``marker`` (a scan of this module's own table)."""
    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
    return list(table.query_entities("RowKey eq @row and Notes eq @marker",
                                     parameters={"row": HEADER_ROW, "marker": marker}))


def final_status(server: GatewayServer, key: str, comm_id: str) -> dict:
    def read() -> dict | None:
        answer = server.get(f"/api/sms/{comm_id}", key=key).json()
        return answer if answer["Status"] in FINAL else None

    return wait_until(read, timeout=30, what=f"comm {comm_id} to be final")


def test_the_same_key_twice_is_one_communication_and_one_send(server, gateway, key) -> None:
    marker, body = marked(*NUMBERS[:2])
    idempotency_key = str(uuid.uuid4())
    first = post(server, "/api/sendmessage", body, key, idempotency_key)
    second = post(server, "/api/sms/send", body, key, idempotency_key)  # another alias of the same operation
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert second.json() == first.json()
    comm_id = first.json()["CommId"]
    assert final_status(server, key, comm_id)["Status"] == "Sent"
    third = post(server, "/api/sendmessage", body, key, idempotency_key)  # after delivery: still the same answer
    assert third.json() == first.json()
    assert len(stored(gateway, marker)) == 1
    assert sorted(row["To"] for row in outbox_rows(gateway, comm_id)) == sorted(NUMBERS[:2])


def test_the_same_request_in_another_format_is_the_same_request(server, gateway, key) -> None:
    """The hash is of the parsed, normalised request: JSV with a spaced-out number matches JSON."""
    marker = f"idem-{uuid.uuid4().hex}"
    idempotency_key = uuid.uuid4().hex
    json_body = send_body("+447911123456", body=f"{marker} hello", Notes=marker)
    spaced = send_body("+44 7911 123456", body=f"{marker} hello", Notes=marker)
    jsv_body = jsv.dumps(spaced)
    assert "+44 7911 123456" in jsv_body
    first = post(server, "/api/sendmessage", json_body, key, idempotency_key)
    second = server.post("/api/sendmessage", data=jsv_body.encode(),
                         headers={**headers_for(key, idempotency_key), "Content-Type": "text/jsv",
                                  "Accept": "application/json"})
    assert first.status_code == second.status_code == 200, second.text
    assert second.json()["CommId"] == first.json()["CommId"]
    assert len(stored(gateway, marker)) == 1


def test_the_same_key_with_a_different_request_is_422_and_stores_nothing(server, gateway, key) -> None:
    marker, body = marked(NUMBERS[0])
    idempotency_key = str(uuid.uuid4())
    first = post(server, "/api/send", body, key, idempotency_key)
    assert first.status_code == 200
    changed = {**body, "SMSModel": {**body["SMSModel"], "MessageBody": f"{marker} changed"}}
    for route, request in [("/api/send", changed), ("/api/send/immediate", body)]:  # immediate is another request
        answer = post(server, route, request, key, idempotency_key)
        assert answer.status_code == 422, answer.text
        assert answer.json()["ResponseStatus"]["ErrorCode"] == "IdempotencyKeyReused"
    assert len(stored(gateway, marker)) == 1


def test_another_licensee_with_the_same_key_is_independent(server, gateway, key) -> None:
    other = gateway.keys.create(uuid.uuid4(), "other licensee")[1]
    marker, body = marked(NUMBERS[0])
    idempotency_key = "shared-key-1"
    mine = post(server, "/api/sendmessage", body, key, idempotency_key)
    theirs = post(server, "/api/sendmessage", body, other, idempotency_key)
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["CommId"] != theirs.json()["CommId"]
    assert len(stored(gateway, marker)) == 2
    for answer, api_key in [(mine, key), (theirs, other)]:
        final_status(server, api_key, answer.json()["CommId"])
        assert len(outbox_rows(gateway, answer.json()["CommId"])) == 1


def test_without_a_key_every_request_is_a_new_send(server, gateway, key) -> None:
    marker, body = marked(NUMBERS[0])
    first, second = (post(server, "/api/sendmessage", body, key) for _ in range(2))
    assert first.status_code == second.status_code == 200
    assert first.json()["CommId"] != second.json()["CommId"]
    assert len(stored(gateway, marker)) == 2


@pytest.mark.parametrize(
    "value",
    ["", '""', "has space", "x" * 256, '"unterminated', '"bad \\escape"', "caf\u00e9", "a,b", '"a", "a"', '"a";p=1'],
    ids=["empty", "empty-string", "space", "too-long", "unterminated", "bad-escape", "non-ascii", "comma", "two",
         "parameters"],
)
def test_a_malformed_key_is_400_and_stores_nothing(server, gateway, key, value: str) -> None:
    marker, body = marked(NUMBERS[0])
    answer = server.post("/api/sendmessage", data=_json(body),
                         headers={**headers_for(key, None), "Content-Type": "application/json",
                                  "Idempotency-Key": value.encode("utf-8")})
    assert answer.status_code == 400, answer.text
    status = answer.json()["ResponseStatus"]
    assert status["ErrorCode"] == "InvalidIdempotencyKey"
    assert status["Errors"][0]["FieldName"] == "Idempotency-Key"
    assert stored(gateway, marker) == []


def test_quoted_and_bare_keys_and_the_query_parameter_name_one_key(server, gateway, key) -> None:
    """The draft's sf-string, the common bare form, and ?IdempotencyKey= for form posts are the same key."""
    marker, body = marked(NUMBERS[0])
    order = f"order-{uuid.uuid4().hex}"
    first = post(server, "/api/sendmessage", body, key, f'"{order}"')
    bare = post(server, "/api/sendmessage", body, key, order)
    form = server.post(f"/api/sendmessage?idempotencykey={order}", key=key,
                       data={"SMSModel": jsv.dumps(body["SMSModel"]),
                             "CreateCommunicationReferencesImmediately": "false"})
    assert first.status_code == bare.status_code == form.status_code == 200, form.text
    assert first.json()["CommId"] == bare.json()["CommId"] == form.json()["CommId"]
    assert len(stored(gateway, marker)) == 1
    mismatch = post(server, "/api/sendmessage?IdempotencyKey=other", body, key, order)
    assert mismatch.status_code == 400
    assert mismatch.json()["ResponseStatus"]["ErrorCode"] == "InvalidIdempotencyKey"


def test_an_immediate_retry_answers_the_outcome_and_sends_nobody_twice(server, gateway, key) -> None:
    marker, body = marked(*NUMBERS[:2])
    idempotency_key = str(uuid.uuid4())
    first = post(server, "/api/sendmessage/immediate", body, key, idempotency_key)
    assert first.status_code == 200
    assert first.json()["Message"] == "Sent to 2 of 2 recipients; 0 failed; GSM-7, 1 segment each"
    second = post(server, "/api/send/immediate", body, key, idempotency_key)
    assert second.status_code == 200 and second.json() == first.json()
    assert len(stored(gateway, marker)) == 1
    assert len(outbox_rows(gateway, first.json()["CommId"])) == 2


def test_predefined_routes_take_the_key_too(server, gateway, key) -> None:
    marker, body = marked(NUMBERS[0])
    idempotency_key = str(uuid.uuid4())
    answers = [post(server, route, body, key, idempotency_key) for route in ("/api/SMSSend", "/json/reply/SMSSend")]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert len(stored(gateway, marker)) == 1


def test_a_key_is_forgotten_after_its_window(server, gateway, key) -> None:
    """Its claim row dated back past the window: the key's next send is new, and its retries find that one."""
    marker, body = marked(NUMBERS[0])
    idempotency_key = str(uuid.uuid4())
    first = post(server, "/api/sendmessage", body, key, idempotency_key).json()
    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
    table.update_entity({"PartitionKey": first["CommId"], "RowKey": CLAIM_ROW,
                         "CreatedAt": utcnow() - WINDOW - timedelta(minutes=1)}, mode=UpdateMode.MERGE)
    second = post(server, "/api/sendmessage", body, key, idempotency_key).json()
    third = post(server, "/api/sendmessage", body, key, idempotency_key).json()
    assert second["CommId"] != first["CommId"]
    assert third == second
    assert second["Reference"] == keyed_reference(LICENSEE, idempotency_key, 1)
    assert len(stored(gateway, marker)) == 2


def test_a_large_accept_cut_off_mid_way_is_409_then_taken_over_once(server, gateway, key) -> None:
    """Recipient rows written at accept time for 150 recipients take two transactions; the claim opens the first.

    A first request cut off after that transaction (written here as a killed process leaves it) makes
    a retry within the lease answer 409 with Retry-After; once the lease is over, a retry takes the
    accept over and finishes it, once.
    """
    marker, body = marked(*[f"+4479111{n:05d}" for n in range(150)])
    body["CreateCommunicationReferencesImmediately"] = True
    idempotency_key = str(uuid.uuid4())
    valid = validate_send(SMSSend.model_validate(body), gateway.settings)
    comm, recipients = new_communication(LICENSEE, keyed_reference(LICENSEE, idempotency_key, 0), valid)
    claim = KeyClaim(idempotency_key, request_hash(valid, immediate=False), created_at=utcnow(), started_at=utcnow())
    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
    table.submit_transaction([("create", claim_entity(comm.comm_id, claim))]
                             + [("create", recipient_entity(comm.comm_id, recipient)) for recipient in recipients[:99]])

    busy = post(server, "/api/sms/send", body, key, idempotency_key)
    assert busy.status_code == 409, busy.text
    assert busy.json()["ResponseStatus"]["ErrorCode"] == "RequestInProgress"
    assert 1 <= int(busy.headers["Retry-After"]) <= ACCEPT_LEASE_SECONDS
    assert stored(gateway, marker) == []
    table.update_entity({"PartitionKey": comm.comm_id.hex, "RowKey": CLAIM_ROW,
                         "StartedAt": utcnow() - timedelta(seconds=ACCEPT_LEASE_SECONDS + 1)}, mode=UpdateMode.MERGE)
    taken_over = post(server, "/api/sms/send", body, key, idempotency_key)
    again = post(server, "/api/sms/send", body, key, idempotency_key)
    assert taken_over.status_code == again.status_code == 200, taken_over.text
    assert taken_over.json()["CommId"] == comm.comm_id.hex
    assert again.json() == taken_over.json()
    assert len(stored(gateway, marker)) == 1
    status = final_status(server, key, comm.comm_id.hex)
    assert status["RecipientCount"] == 150 and status["SentCount"] == 150
    assert len(outbox_rows(gateway, comm.comm_id.hex)) == 150


@pytest.fixture
def twilio() -> Iterator[TwilioFake]:
    with TwilioFake() as fake:
        yield fake


def test_a_retry_while_the_first_immediate_send_is_delivering_is_409(storage_connection: str,
                                                                      twilio: TwilioFake) -> None:
    env = server_env(storage_connection, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=twilio.account_sid,
                     TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_BASE_URL=twilio.base_url)
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    key = gateway.keys.create(LICENSEE, "tests")[1]
    server = GatewayServer.start(env, "--no-queues")
    try:
        marker, body = marked(NUMBERS[0])
        idempotency_key = str(uuid.uuid4())
        twilio.push_fault(Fault(delay=3))  # holds the provider call of the first request
        answers: list[requests.Response] = []
        first = threading.Thread(target=lambda: answers.append(
            post(server, "/api/sendmessage/immediate", body, key, idempotency_key)))
        first.start()
        wait_until(lambda: stored(gateway, marker) and stored(gateway, marker)[0]["Status"] == "Sending",
                   timeout=10, what="the first request's claim")
        busy = post(server, "/api/sendmessage/immediate", body, key, idempotency_key)
        first.join()
        assert busy.status_code == 409, busy.text
        assert busy.json()["ResponseStatus"]["ErrorCode"] == "RequestInProgress"
        assert int(busy.headers["Retry-After"]) >= 1
        assert answers[0].status_code == 200
        assert answers[0].json()["Message"] == "Sent to 1 of 1 recipient; 0 failed; GSM-7, 1 segment"
        after = post(server, "/api/sendmessage/immediate", body, key, idempotency_key)
        assert after.status_code == 200 and after.json() == answers[0].json()
        assert [message.to for message in twilio.messages] == [NUMBERS[0]]
    finally:
        server.stop()


def _json(body: object) -> bytes:
    import json

    return json.dumps(body).encode()


def test_both_documents_describe_the_key_and_its_answers(server) -> None:
    """Every send route (predefined ones included) takes the header and the query parameter and lists 409 and 422."""
    document = server.get("/openapi.json").json()
    sends = [operation for item in document["paths"].values() for operation in item.values()
             if "SMSSend" in operation["tags"]]
    assert len(sends) == 15
    for operation in sends:
        refs = [parameter["$ref"].rsplit("/", 1)[1] for parameter in operation["parameters"]]
        assert {"header_Idempotency-Key", "query_IdempotencyKey"} <= set(refs)
        assert {"409", "422", "503"} <= set(operation["responses"])
    header = document["components"]["parameters"]["header_Idempotency-Key"]
    assert header["in"] == "header" and header["name"] == "Idempotency-Key" and "24 hours" in header["description"]
    assert document["components"]["responses"]["409"]["headers"]["Retry-After"]["required"] is True
    assert "OutcomeUnknown" in document["components"]["responses"]["503"]["description"]
    page = server.get("/metadata").text
    section = page[page.index('<section id="op-SMSSend">'):page.index('<section id="op-SMSStatus">')]
    assert "<td>Idempotency-Key</td><td>header</td>" in section
    assert "<td>IdempotencyKey</td><td>query</td>" in section
    assert 'href="#error-409"' in section and 'href="#error-422"' in section


def test_two_key_header_lines_are_400(server, gateway, key) -> None:
    """The draft: a client must not send the header twice; two lines are refused, even with one value."""
    marker, body = marked(NUMBERS[0])
    payload = _json(body)
    connection = http.client.HTTPConnection(urlsplit(server.url).hostname, urlsplit(server.url).port, timeout=30)
    connection.putrequest("POST", "/api/sendmessage")
    for name, value in [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"),
                        ("Content-Length", str(len(payload))), ("Idempotency-Key", "abc"), ("Idempotency-Key", "abc")]:
        connection.putheader(name, value)
    connection.endheaders(payload)
    answer = connection.getresponse()
    assert answer.status == 400
    assert b"InvalidIdempotencyKey" in answer.read()
    connection.close()
    assert stored(gateway, marker) == []
