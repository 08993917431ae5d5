"""GET /api/sms over real HTTP through devhost against a real Azurite: the issue's "Done when" (three sends listed
newest first, paged with Top=2 and the continuation token, invisible to another licensee), the filters (PhoneNumber
included: the index's rows by recipient), and what a page reads (the index's range query and a point read per
listed header, never a scan)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.common import CountingPolicy
from gateway.connections import StorageClients
from gateway.message_list import LogQuery, LogService
from gateway.message_log import LogEntry, MessageLog
from gateway.runtime import Gateway
from gateway.settings import Settings
from tests.integration.test_http_send import OTHER_LICENSEE, assert_error
from tests.samples import NUMBERS, send_body
from tests.server import GatewayServer


def send(server: GatewayServer, key: str, *numbers: str) -> str:
    response = server.post("/api/sendmessage", send_body(*numbers), key=key)
    assert response.status_code == 200, response.text
    return response.json()["CommId"]


def page(server: GatewayServer, key: str, **query: object) -> dict:
    response = server.get("/api/sms", key=key, params=query)
    assert response.status_code == 200, response.text
    return response.json()


def test_three_sends_are_listed_newest_first_paged_by_two_and_invisible_to_another_licensee(
        server: GatewayServer, gateway: Gateway) -> None:
    licensee = uuid.uuid4()  # a licensee of its own: the module's other tests send too
    key = gateway.keys.create(licensee, "log")[1]
    sent = [send(server, key, number) for number in NUMBERS[:3]]

    first = page(server, key, Top=2)
    assert [entry["CommId"] for entry in first["Results"]] == [sent[2], sent[1]]
    assert first["ContinuationToken"]
    second = page(server, key, Top=2, ContinuationToken=first["ContinuationToken"])
    assert [entry["CommId"] for entry in second["Results"]] == [sent[0]]
    assert "ContinuationToken" not in second  # the last page

    entry = first["Results"][0]
    assert entry["RecipientCount"] == 1 and entry["Reference"] and entry["Status"] and entry["CreatedAt"]
    assert [each["CommId"] for each in page(server, key)["Results"]] == sent[::-1]

    other_key = gateway.keys.create(OTHER_LICENSEE, "other log")[1]
    theirs = page(server, other_key, Top=200)
    assert not {each["CommId"] for each in theirs["Results"]} & set(sent)
    # Their token is not ours: a token names its licensee and is refused to anyone else.
    refused = server.get("/api/sms", key=other_key, params={"ContinuationToken": first["ContinuationToken"]})
    assert_error(refused, 400, "InvalidContinuationToken", "ContinuationToken")


def test_since_until_and_status_filter_what_is_listed(server: GatewayServer, gateway: Gateway) -> None:
    licensee = uuid.uuid4()
    key = gateway.keys.create(licensee, "log filters")[1]
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    first = send(server, key, NUMBERS[0])
    middle = datetime.now(UTC)
    second = send(server, key, NUMBERS[1])

    assert [each["CommId"] for each in page(server, key, Since=middle.isoformat().replace("+00:00", "Z"))
            ["Results"]] == [second]
    assert [each["CommId"] for each in page(server, key, Until=middle.isoformat().replace("+00:00", "Z"))
            ["Results"]] == [first]
    assert len(page(server, key, Since=before.isoformat().replace("+00:00", "Z"))["Results"]) == 2
    assert page(server, key, Status="Canceled")["Results"] == []
    statuses = settled(server, key)  # the host's worker delivers meanwhile: a status read before it moves is no filter
    for status in statuses:
        listed = page(server, key, Status=status.lower())["Results"]
        assert listed and {each["Status"] for each in listed} == {status}


def settled(server: GatewayServer, key: str, within: float = 30.0) -> set[str]:
    """The statuses the log lists once none of its sends is still on its way."""
    deadline = time.monotonic() + within
    while True:
        statuses = {each["Status"] for each in page(server, key)["Results"]}
        if not statuses & {"Queued", "Sending"} or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


def test_bad_queries_are_400_naming_the_field(server: GatewayServer, key: str) -> None:
    assert_error(server.get("/api/sms", key=key, params={"Top": "0"}), 400, "InvalidTop", "Top")
    assert_error(server.get("/api/sms", key=key, params={"Top": "201"}), 400, "InvalidTop", "Top")
    assert_error(server.get("/api/sms", key=key, params={"Status": "Lost"}), 400, "InvalidStatus", "Status")
    assert_error(server.get("/api/sms", key=key, params={"Since": "yesterday"}), 400, "InvalidDateTime", "Since")
    assert_error(server.get("/api/sms", key=key, params={"ContinuationToken": "bm9wZQ"}), 400,
                 "InvalidContinuationToken", "ContinuationToken")
    assert_error(server.get("/api/sms", key=key, params={"PhoneNumber": "+44 12"}), 400, "InvalidPhoneNumber",
                 "PhoneNumber")
    assert server.get("/api/sms").status_code == 401


def test_an_index_row_without_its_header_is_never_listed(server: GatewayServer, gateway: Gateway) -> None:
    """What a crash between the index rows and the header leaves: listed nowhere (retention deletes it later)."""
    licensee = uuid.uuid4()
    key = gateway.keys.create(licensee, "log orphans")[1]
    kept = send(server, key, NUMBERS[0])
    MessageLog(gateway.clients.tables, gateway.settings.message_log_table).add(
        LogEntry(licensee, uuid.uuid4(), datetime.now(UTC)))
    assert [each["CommId"] for each in page(server, key)["Results"]] == [kept]


def test_bounds_outside_the_keys_range_list_everything_or_nothing(server: GatewayServer, gateway: Gateway) -> None:
    """A Since before 1970 or an Until after 5138 is the end it is past, not a key that sorts wrongly."""
    licensee = uuid.uuid4()
    key = gateway.keys.create(licensee, "log bounds")[1]
    sent = send(server, key, NUMBERS[0])
    assert [each["CommId"] for each in page(server, key, Since="1900-01-01T00:00:00Z", Until="9999-12-31T00:00:00Z")
            ["Results"]] == [sent]
    assert page(server, key, Until="1900-01-01T00:00:00Z")["Results"] == []
    assert page(server, key, Since="9999-12-31T00:00:00Z")["Results"] == []


def test_phone_number_lists_only_the_sends_to_that_number_newest_first_paged_and_only_the_callers(
        server: GatewayServer, gateway: Gateway) -> None:
    licensee = uuid.uuid4()
    key = gateway.keys.create(licensee, "log by number")[1]
    number, other_number = NUMBERS[0], NUMBERS[1]
    first = send(server, key, number, other_number)
    send(server, key, other_number)
    between = datetime.now(UTC)
    third = send(server, key, number)
    fourth = send(server, key, NUMBERS[2], number)  # not the first recipient: listed all the same
    theirs = gateway.keys.create(uuid.uuid4(), "another licensee, the same number")[1]
    their_send = send(server, theirs, number)

    assert [each["CommId"] for each in page(server, key, PhoneNumber=number)["Results"]] == [fourth, third, first]
    paged = page(server, key, PhoneNumber=number, Top=2)
    assert [each["CommId"] for each in paged["Results"]] == [fourth, third]
    rest = page(server, key, PhoneNumber=number, Top=2, ContinuationToken=paged["ContinuationToken"])
    assert [each["CommId"] for each in rest["Results"]] == [first] and "ContinuationToken" not in rest
    assert [each["CommId"] for each in page(server, theirs, PhoneNumber=number)["Results"]] == [their_send]
    # Combined with the other filters exactly as the whole log is.
    since = between.isoformat().replace("+00:00", "Z")
    assert [each["CommId"] for each in page(server, key, PhoneNumber=number, Since=since)["Results"]] == [fourth,
                                                                                                          third]
    assert [each["CommId"] for each in page(server, key, PhoneNumber=number, Until=since)["Results"]] == [first]
    assert page(server, key, PhoneNumber=number, Status="Canceled")["Results"] == []
    assert page(server, key, PhoneNumber=NUMBERS[3])["Results"] == []  # never sent to
    # A token is good for its filter only: not for another number, nor for the whole log.
    for query in ({"PhoneNumber": other_number}, {}):
        refused = server.get("/api/sms", key=key,
                             params={**query, "Top": 2, "ContinuationToken": paged["ContinuationToken"]})
        assert_error(refused, 400, "InvalidContinuationToken", "ContinuationToken")
    assert "447911123456" not in server.log_text()  # the number is never logged (gateway.redact)


def test_a_number_row_without_its_header_is_never_listed(server: GatewayServer, gateway: Gateway) -> None:
    licensee = uuid.uuid4()
    key = gateway.keys.create(licensee, "log by number orphans")[1]
    kept = send(server, key, NUMBERS[0])
    MessageLog(gateway.clients.tables, gateway.settings.message_log_table).add(
        LogEntry(licensee, uuid.uuid4(), datetime.now(UTC), (NUMBERS[0],)))
    assert [each["CommId"] for each in page(server, key, PhoneNumber=NUMBERS[0])["Results"]] == [kept]


def test_a_page_by_number_is_one_range_query_and_a_read_per_listed_header(
        server: GatewayServer, gateway: Gateway, env: dict[str, str]) -> None:
    licensee = uuid.uuid4()
    key = gateway.keys.create(licensee, "log by number cost")[1]
    for _ in range(3):
        send(server, key, NUMBERS[4])
    send(server, key, NUMBERS[3])  # another number's rows: not read
    counter = CountingPolicy()
    settings = Settings.from_env(env)
    clients = StorageClients.create(settings.storage, connections=4, policies=[counter])
    log = LogService(MessageLog(clients.tables, settings.message_log_table),
                     clients.tables.get_table_client(settings.communications_table), concurrency=4)
    counter.take()
    listed = log.page(licensee, LogQuery(top=2, phone_number=NUMBERS[4]))
    assert len(listed.Results) == 2 and listed.ContinuationToken
    assert counter.take() == {"table query": 1, "table read": 2}
