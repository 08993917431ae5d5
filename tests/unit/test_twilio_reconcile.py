"""Twilio reconciliation: ``find_sent`` against the fake's ListMessage, and that ListMessage's own strictness."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from fakes.server import Fault
from fakes.twilio import TwilioFake
from gateway.providers import twilio
from gateway.providers.base import OutboundSms, Outcome, ReconcilingProvider
from gateway.providers.common import TIMEOUT
from gateway.providers.twilio import TwilioProvider
from tests.unit.test_twilio_provider import SENDER, SERVICE_SID, assert_twilio_error, settings_for

TO = "+14155550100"


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake() as running:
        yield running  # type: ignore[misc]


def sms(
    to: str = TO, body: str = "Your code is 1234", *, sender: str = SENDER, first_attempt_at: datetime | None = None
) -> OutboundSms:
    return OutboundSms(
        comm_id=uuid.uuid4(),
        recipient_id=uuid.uuid4(),
        to=to,
        sender=sender,
        body=body,
        first_attempt_at=first_attempt_at or datetime.now(UTC),
    )


def list_queries(fake: TwilioFake) -> list[dict[str, str]]:
    return [dict(parse_qsl(urlsplit(seen.path).query)) for seen in fake.requests if seen.method == "GET"]


def posts(fake: TwilioFake) -> int:
    return sum(1 for seen in fake.requests if seen.method == "POST")


# --- find_sent ---------------------------------------------------------------------------------------------------


def test_twilio_is_a_reconciling_provider() -> None:
    assert ReconcilingProvider in TwilioProvider.__mro__
    assert callable(TwilioProvider.find_sent)


def test_finds_what_twilio_received_by_to_from_body_and_time(fake: TwilioFake) -> None:
    provider = TwilioProvider(settings_for(fake))
    sent, other = sms(), sms("+14155550101", body="Another")
    results = provider.send([sent, other])
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 2

    found = provider.find_sent([sent, other, sms("+14155550102")])

    assert found == {sent.recipient_id: fake.messages[0].sid, other.recipient_id: fake.messages[1].sid}
    assert posts(fake) == 2  # reconciling only reads


def test_the_list_request_is_filtered_by_to_from_and_the_day_before_the_first_attempt(fake: TwilioFake) -> None:
    first_attempt = datetime(2031, 3, 1, 0, 1, tzinfo=UTC)  # just after midnight: the skew reaches the day before
    TwilioProvider(settings_for(fake)).find_sent([sms(first_attempt_at=first_attempt)])

    [query] = list_queries(fake)
    assert query == {"To": TO, "From": SENDER, "DateSent>": "2031-02-28", "PageSize": "50"}
    [seen] = [r for r in fake.requests if r.method == "GET"]
    assert "DateSent%3E=2031-02-28" in seen.path and seen.auth_user == fake.account_sid and seen.status == 200


def test_does_not_match_another_body_an_older_message_or_another_sender(fake: TwilioFake) -> None:
    provider = TwilioProvider(settings_for(fake))
    provider.send([sms(body="Your code is 1234")])

    assert provider.find_sent([sms(body="Your code is 9999")]) == {}
    # Created five minutes before this message's first attempt: an earlier communication's SMS, not this one.
    assert provider.find_sent([sms(first_attempt_at=datetime.now(UTC) + timedelta(minutes=5))]) == {}
    assert provider.find_sent([sms(sender="+15017122662")]) == {}
    # Within the two minutes allowed for clocks apart, it matches.
    assert len(provider.find_sent([sms(first_attempt_at=datetime.now(UTC) + timedelta(seconds=90))]) or {}) == 1


def test_nothing_received_is_an_empty_answer(fake: TwilioFake) -> None:
    assert TwilioProvider(settings_for(fake)).find_sent([sms(), sms("+14155550101")]) == {}
    assert TwilioProvider(settings_for(fake)).find_sent([]) == {}


def test_one_twilio_message_answers_for_one_recipient_only(fake: TwilioFake) -> None:
    provider = TwilioProvider(settings_for(fake))
    earlier = sms(first_attempt_at=datetime.now(UTC) - timedelta(seconds=30))
    provider.send([earlier])
    later = sms()  # the same number, sender and body: only one SMS went out, so only one is matched

    found = provider.find_sent([later, earlier])

    assert found == {earlier.recipient_id: fake.messages[0].sid}


def test_a_messaging_service_is_matched_on_the_service_not_from(fake: TwilioFake) -> None:
    provider = TwilioProvider(settings_for(fake, messaging_service_sid=SERVICE_SID))
    message = sms()
    provider.send([message])

    assert provider.find_sent([message]) == {message.recipient_id: fake.messages[0].sid}
    assert "From" not in list_queries(fake)[0]
    other_service = TwilioProvider(settings_for(fake, messaging_service_sid="MG" + "2" * 32))
    assert other_service.find_sent([message]) == {}


def test_pages_are_followed_and_too_many_pages_cannot_tell(fake: TwilioFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(twilio, "LIST_PAGE_SIZE", 2)
    provider = TwilioProvider(settings_for(fake))
    oldest = sms(body="first")
    provider.send([oldest, *[sms(body=f"later {n}") for n in range(6)]])  # 7 Messages: 4 pages of 2

    assert provider.find_sent([oldest]) == {oldest.recipient_id: fake.messages[0].sid}
    queries = list_queries(fake)
    assert [q.get("Page") for q in queries] == [None, "1", "2", "3"]
    assert all(q["To"] == TO and q["DateSent>"] for q in queries)

    provider.send([sms(body="one too many", first_attempt_at=datetime.now(UTC))] * 2)  # 9 Messages: 5 pages
    assert provider.find_sent([oldest]) is None


def test_a_message_without_its_first_attempt_time_cannot_be_reconciled(fake: TwilioFake) -> None:
    message = OutboundSms(uuid.uuid4(), uuid.uuid4(), TO, SENDER, "hi", first_attempt_at=None)
    assert TwilioProvider(settings_for(fake)).find_sent([message]) is None
    assert fake.requests == []


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(status=429, retry_after="5"),
        Fault(status=200, body={"not": "a page"}),
        Fault(status=200, body=[]),
        Fault(status=200, body={"messages": [{"to": TO, "from": SENDER, "sid": "SM1", "date_created": "?"}]}),
        Fault(status=200, body={"messages": [], "next_page_uri": "https://elsewhere.example/steal"}),
    ],
    ids=["500", "429", "not-a-page", "not-an-object", "unreadable-date", "foreign-next-page"],
)
def test_errors_and_unreadable_answers_cannot_tell(fake: TwilioFake, fault: Fault) -> None:
    provider = TwilioProvider(settings_for(fake))
    message = sms()
    provider.send([message])
    fake.push_fault(fault)
    assert provider.find_sent([message]) is None


def test_a_time_out_cannot_tell(fake: TwilioFake) -> None:
    fake.push_fault(Fault(delay=1.0))
    started = time.monotonic()
    assert TwilioProvider(settings_for(fake, timeout_seconds=0.3)).find_sent([sms()]) is None
    assert time.monotonic() - started < 0.9


def test_refused_credentials_and_a_refused_connection_cannot_tell(fake: TwilioFake) -> None:
    assert TwilioProvider(settings_for(fake, auth_token="wrong")).find_sent([sms()]) is None
    assert [r.status for r in fake.requests] == [401]
    provider = TwilioProvider(settings_for(fake))
    fake.stop()
    assert provider.find_sent([sms()]) is None


def test_reconciling_logs_no_whole_numbers_or_secrets(fake: TwilioFake, caplog: pytest.LogCaptureFixture) -> None:
    provider = TwilioProvider(settings_for(fake))
    fake.push_fault(Fault(status=400, body={"code": 21211, "message": f"bad number {TO}", "status": 400}))
    with caplog.at_level(logging.DEBUG):
        assert provider.find_sent([sms()]) is None
        assert provider.find_sent([sms()]) == {}
    # The gateway's own lines only: urllib3 logs each request's URL at DEBUG, and a list's URL carries the
    # numbers it filters on (docs/providers.md says to keep urllib3 above DEBUG, as the host does by default).
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("gateway"))
    assert "cannot tell" in ours and "reconciled 1 message" in ours
    assert TO not in ours and TO[1:] not in ours and fake.auth_token not in caplog.text


def test_a_create_the_fake_answers_too_late_is_found_afterwards(fake: TwilioFake) -> None:
    """The maybe-sent case end to end: the request times out, yet Twilio made the Message."""
    provider = TwilioProvider(settings_for(fake, timeout_seconds=0.3))
    message = sms()
    fake.push_fault(Fault(no_answer=True))

    [result] = provider.send([message])

    assert (result.outcome, result.error_code) == (Outcome.RETRY, TIMEOUT)
    assert provider.find_sent([message]) == {message.recipient_id: fake.messages[0].sid}


# --- the fake's ListMessage --------------------------------------------------------------------------------------


def get(fake: TwilioFake, params: object, *, auth: tuple[str, str] | None = None) -> requests.Response:
    return requests.get(
        fake.messages_url, params=params, auth=auth or (fake.account_sid, fake.auth_token), timeout=5
    )  # type: ignore[arg-type]


def create(fake: TwilioFake, to: str = TO, body: str = "hi", sender: str = SENDER) -> dict:
    response = requests.post(
        fake.messages_url, data={"To": to, "From": sender, "Body": body}, auth=(fake.account_sid, fake.auth_token),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_fake_list_answers_the_described_page(fake: TwilioFake) -> None:
    first, second = create(fake, body="one"), create(fake, body="two")
    create(fake, to="+14155550199")

    response = get(fake, {"To": TO, "From": SENDER})

    assert response.status_code == 200, response.text
    page = response.json()
    operation = fake.description.match("GET", urlsplit(fake.messages_url).path)
    assert operation.operation_id == "ListMessage"
    fake.description.check_response(operation, 200, page)
    assert set(page) == {"messages", "page", "page_size", "uri", "first_page_uri", "next_page_uri",
                         "previous_page_uri", "start", "end"}
    assert [m["sid"] for m in page["messages"]] == [second["sid"], first["sid"]]  # newest first
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 50, 0, 1)
    assert page["next_page_uri"] is None and page["previous_page_uri"] is None
    assert page["uri"] == page["first_page_uri"] == (
        f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json?To=%2B14155550100&From=%2B15017122661&PageSize=50&Page=0"
    )
    listed = page["messages"][1]
    assert {k: listed[k] for k in ("to", "from", "body", "sid", "direction")} == {
        "to": TO, "from": SENDER, "body": "one", "sid": first["sid"], "direction": "outbound-api"}
    assert listed["status"] == "sent" and listed["date_created"] == first["date_created"]
    assert listed["date_sent"].endswith("+0000")


def test_fake_list_filters_by_date_sent(fake: TwilioFake) -> None:
    create(fake)
    today = datetime.now(UTC).date()  # the fake's clock is this machine's
    day = timedelta(days=1)

    def count(params: dict[str, str]) -> int:
        response = get(fake, {"To": TO, **params})
        assert response.status_code == 200, response.text
        return len(response.json()["messages"])

    assert count({"DateSent>": today.isoformat()}) == 1  # on or after
    assert count({"DateSent>": (today - day).isoformat()}) == 1
    assert count({"DateSent>": (today + day).isoformat()}) == 0
    assert count({"DateSent<": today.isoformat()}) == 1  # on or before
    assert count({"DateSent<": (today - day).isoformat()}) == 0
    assert count({"DateSent": today.isoformat()}) == 1
    assert count({"DateSent": (today - day).isoformat()}) == 0
    assert count({"DateSent>": (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")}) == 1
    assert count({"DateSent>": (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")}) == 0
    assert count({"From": "+15017122662"}) == 0


def test_fake_list_pages_by_page_token(fake: TwilioFake) -> None:
    sids = [create(fake, body=f"m{n}")["sid"] for n in range(5)]
    seen: list[str] = []
    url: str | None = f"{fake.messages_url}?To=%2B14155550100&PageSize=2"
    pages = []
    while url is not None:
        page = requests.get(url, auth=(fake.account_sid, fake.auth_token), timeout=5).json()
        pages.append(page)
        seen += [m["sid"] for m in page["messages"]]
        url = fake.base_url + page["next_page_uri"] if page["next_page_uri"] else None
    assert seen == sids[::-1]
    assert [(p["page"], p["start"], p["end"]) for p in pages] == [(0, 0, 1), (1, 2, 3), (2, 4, 4)]
    assert "PageToken=PA" + sids[3] in pages[0]["next_page_uri"]
    assert pages[1]["previous_page_uri"] is not None
    assert_twilio_error(get(fake, {"PageToken": "PAnot-a-sid"}), 400, 20001)


@pytest.mark.parametrize(
    "params",
    [
        {"Bogus": "1"},  # not a parameter of ListMessage
        {"PageSize": "0"},  # minimum 1
        {"PageSize": "1001"},  # maximum 1000
        {"PageSize": "fifty"},  # integer
        {"Page": "-1"},  # minimum 0
        [("To", TO), ("To", "+14155550101")],  # once
        {"Body": "hi"},  # a create parameter, not a filter
    ],
)
def test_fake_list_refuses_queries_outside_the_openapi_description(fake: TwilioFake, params: object) -> None:
    assert_twilio_error(get(fake, params), 400, 70002)


@pytest.mark.parametrize("value", ["yesterday", "2031-13-01", ">=2031-01-01"])
def test_fake_list_refuses_dates_it_cannot_read(fake: TwilioFake, value: str) -> None:
    assert_twilio_error(get(fake, {"DateSent>": value}), 400, 20001)


def test_fake_list_wants_the_accounts_credentials(fake: TwilioFake) -> None:
    create(fake)
    assert_twilio_error(get(fake, {"To": TO}, auth=(fake.account_sid, "wrong")), 401, 20003)
    assert_twilio_error(requests.get(fake.messages_url, timeout=5), 401, 20003)
    other = fake.messages_url.replace(fake.account_sid, "AC" + "0" * 32)
    assert_twilio_error(requests.get(other, auth=(fake.account_sid, fake.auth_token), timeout=5), 401, 20003)


def test_fake_records_a_create_it_never_answers(fake: TwilioFake) -> None:
    fake.push_fault(Fault(no_answer=True))
    with pytest.raises(requests.ReadTimeout):
        requests.post(fake.messages_url, data={"To": TO, "From": SENDER, "Body": "hi"},
                      auth=(fake.account_sid, fake.auth_token), timeout=0.3)
    assert [m.to for m in fake.messages] == [TO]


def test_fake_answers_a_create_late(fake: TwilioFake) -> None:
    fake.push_fault(Fault(answer_after=0.5))
    started = time.monotonic()
    resource = create(fake)
    assert time.monotonic() - started >= 0.5
    assert resource["sid"] == fake.messages[0].sid
