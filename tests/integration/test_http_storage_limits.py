"""Table Storage's size limits at the edge, over real HTTP against Azurite.

A string property holds 32,768 UTF-16 code units and an entity about 1 MiB. A send that cannot be
stored is the client's to fix: it must answer 400 naming the field, write nothing, and never 503
(which tells a client to retry the same request for ever). What fits must be stored and read back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from gateway.runtime import Gateway
from gateway.settings import Settings
from gateway.storage import (
    MAX_ENTITY_BYTES,
    MAX_PROPERTY_UNITS,
    Communication,
    RecipientSpec,
    communication_entity,
    entity_bytes,
    utf16_units,
)
from tests.http_fixtures import LICENSEE
from tests.integration.test_http_send import assert_error
from tests.server import GatewayServer, server_env

EMOJI = "\U0001f600"  # one character, two UTF-16 code units
SENDER = "+15005550006"  # server_env's SMS_DEFAULT_SENDER


@pytest.fixture(scope="module")
def host(storage_connection: str) -> Iterator[tuple[GatewayServer, Gateway, str]]:
    """A gateway without queue workers whose own limits let a request reach the storage limits."""
    env = server_env(storage_connection, SMS_MAX_BODY_LENGTH="40000", SMS_MAX_SEGMENTS="255",
                     SMS_MAX_REQUEST_BYTES=str(4 * 1024 * 1024))
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    server = GatewayServer.start(env, "--no-queues")
    yield server, gateway, gateway.keys.create(LICENSEE, "limits")[1]
    server.stop()


def number(index: int) -> str:
    return f"+4479111{index:05d}"


def send(server: GatewayServer, key: str, names: list[str], body: str = "Hello", *, rows_now: bool = False):
    to = [{"PhoneNumber": number(index), "Name": name} for index, name in enumerate(names)]
    request = {"SMSModel": {"To": to, "MessageBody": body}, "CreateCommunicationReferencesImmediately": rows_now}
    return server.post("/api/sendmessage", request, key=key)


def all_rows(gateway: Gateway) -> int:
    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
    return sum(1 for _ in table.list_entities(select=["RowKey"]))


def header_bytes(names: list[str], body: str = "Hello") -> int:
    """The size of the header row the gateway stores for ``send(names, body)``, as Table Storage counts it."""
    draft = Communication(comm_id=uuid.uuid4(), licensee_id=LICENSEE, reference="0123456789", sender=SENDER,
                          body=body, recipients_spec=[RecipientSpec(number(i), name) for i, name in enumerate(names)])
    return entity_bytes(communication_entity(draft))


def assert_read_back(server: GatewayServer, key: str, response, names: list[str], body: str = "Hello") -> None:
    assert response.status_code == 200, response.text[:500]
    status = server.get(f"/api/sms/{response.json()['CommId']}", key=key)
    assert status.status_code == 200
    assert status.json()["MessageBody"] == body
    assert [recipient["Name"] for recipient in status.json()["Recipients"]] == names


def assert_refused(response, field: str) -> None:
    assert "Retry-After" not in response.headers
    assert_error(response, 400, "TooLargeToStore", field)


def test_recipient_names_wider_than_their_character_count_are_stored_and_read_back(host) -> None:
    """The adversarial run's case: 62 names of 256 emoji are 19K characters but 34K UTF-16 units."""
    server, gateway, key = host
    names = [EMOJI * 256] * 62
    response = send(server, key, names)
    assert_read_back(server, key, response, names)
    table = gateway.clients.tables.get_table_client(gateway.settings.communications_table)
    header = table.get_entity(response.json()["CommId"], "comm")
    chunks = [value for name, value in header.items() if name.startswith("Recipients")]
    assert len(chunks) == 2 and max(utf16_units(chunk) for chunk in chunks) <= MAX_PROPERTY_UNITS


def test_a_property_at_the_limit_is_stored_and_one_unit_more_is_400_writing_nothing(host) -> None:
    """A GSM-7 body: 32,768 septets are 215 segments, within SMS_MAX_SEGMENTS's ceiling of 255, while a UCS-2 body
    that long (490 segments) is refused for its segments before storage is asked. The names above are the case
    where UTF-16 units outnumber characters."""
    server, gateway, key = host
    at_limit = "a" * MAX_PROPERTY_UNITS
    assert utf16_units(at_limit) == MAX_PROPERTY_UNITS
    assert_read_back(server, key, send(server, key, ["Alex"], at_limit), ["Alex"], at_limit)

    before = all_rows(gateway)
    assert_refused(send(server, key, ["Alex"], at_limit + "a", rows_now=True), "SMSModel.MessageBody")
    assert all_rows(gateway) == before


def test_a_row_at_the_entity_limit_is_stored_and_one_unit_more_is_400_writing_nothing(host) -> None:
    """About 970 recipients with 256-emoji names fill the header row: the largest that fits is accepted and
    read back; the same with one character one UTF-16 unit wider is refused before any row is written."""
    server, gateway, key = host
    full = EMOJI * 256
    fits, too_many = 1, 1000  # the most full names that fit, by bisection
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        fits, too_many = (middle, too_many) if header_bytes([full] * middle) <= MAX_ENTITY_BYTES else (fits, middle)
    names = [full] * fits
    room = MAX_ENTITY_BYTES - header_bytes([*names, ""])  # odd: the row holds three 1-byte booleans
    ascii_count = 1 if (room - 1) % 4 == 2 else 2  # at least one character that can grow by a unit
    last = "a" * ascii_count + EMOJI * ((room - 1 - 2 * ascii_count) // 4)
    at_limit = [*names, last]
    assert len(last) <= 256 and header_bytes(at_limit) == MAX_ENTITY_BYTES - 1
    one_over = [*names, EMOJI + last[1:]]
    assert len(one_over[-1]) == len(last) and header_bytes(one_over) == MAX_ENTITY_BYTES + 1

    assert_read_back(server, key, send(server, key, at_limit, rows_now=True), at_limit)
    before = all_rows(gateway)
    assert_refused(send(server, key, one_over, rows_now=True), "SMSModel.To")
    assert all_rows(gateway) == before
