"""GET /api/sms over real HTTP through devhost against a real Azurite: the issue's "Done when" (three sends listed
newest first, paged with Top=2 and the continuation token, invisible to another licensee), the filters, and what
a page reads (the index's range query and a point read per listed header, never a scan)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gateway.message_log import LogEntry, MessageLog
from gateway.runtime import Gateway
from tests.integration.test_http_send import OTHER_LICENSEE, assert_error
from tests.samples import NUMBERS, send_body
from tests.server import GatewayServer


def send(server: GatewayServer, key: str, number: str) -> str:
    response = server.post("/api/sendmessage", send_body(number), key=key)
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
    statuses = {each["Status"] for each in page(server, key)["Results"]}
    for status in statuses:
        listed = page(server, key, Status=status.lower())["Results"]
        assert listed and {each["Status"] for each in listed} == {status}


def test_bad_queries_are_400_naming_the_field(server: GatewayServer, key: str) -> None:
    assert_error(server.get("/api/sms", key=key, params={"Top": "0"}), 400, "InvalidTop", "Top")
    assert_error(server.get("/api/sms", key=key, params={"Top": "201"}), 400, "InvalidTop", "Top")
    assert_error(server.get("/api/sms", key=key, params={"Status": "Lost"}), 400, "InvalidStatus", "Status")
    assert_error(server.get("/api/sms", key=key, params={"Since": "yesterday"}), 400, "InvalidDateTime", "Since")
    assert_error(server.get("/api/sms", key=key, params={"ContinuationToken": "bm9wZQ"}), 400,
                 "InvalidContinuationToken", "ContinuationToken")
    assert_error(server.get("/api/sms", key=key, params={"PhoneNumber": NUMBERS[0]}), 400, "NotSupported",
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
