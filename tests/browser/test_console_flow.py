"""A person at a licensee using the console in headless Chromium, against the local host sending through the
Twilio fake: paste the key, see a message sent through the host appear in the log, open its journey and see the
delivered receipt (the fake's signed status callback) and a reply (the fake's inbound message) arrive, see an
undelivered one explained and resend it, read the chart, add and remove an opt-out, rotate the webhook secret.

Each step leaves a screenshot in ``tests/browser/screenshots/`` (git-ignored), named after it.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from fakes.twilio import DEV_SENDER, CallbackPlan, Fate, TwilioFake
from gateway.runtime import Gateway
from tests.browser.console import Console, row_of
from tests.browser.host import BODY, LICENSEE, accepted, log_entries, send
from tests.integration.test_inbound import number
from tests.server import GatewayServer

REPLY = "Yes, see you then"
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def test_pasting_the_key_and_pressing_enter_shows_the_message_log(console: Console, key: str) -> None:
    console.open()
    field = console.visible("input#api-key")
    assert field.get_attribute("type") == "password"
    assert console.text_of("label[for='api-key']")
    console.shot("01-sign-in")
    console.sign_in(key)
    assert urlsplit(console.driver.current_url).fragment == "/messages"
    assert key in console.session_values()
    console.shot("02-message-log-signed-in")


def test_a_wrong_key_shows_the_apis_message_and_stays_at_sign_in(
    console: Console, server: GatewayServer
) -> None:
    wrong = "not-a-key-" + uuid.uuid4().hex
    expected = server.get("/api/sms", key=wrong).json()["ResponseStatus"]["Message"]
    console.open()
    console.driver.execute_script("sessionStorage.clear()")
    console.driver.refresh()
    console.visible("input#api-key").send_keys(wrong, Keys.ENTER)
    console.until(lambda d: console.text_of("#error") == expected, f"#error to say {expected!r}")
    assert console.visible("#error").get_attribute("role") == "alert"
    console.visible("input#api-key")
    assert wrong not in console.session_values()
    console.shot("03-wrong-key")


def test_a_message_sent_through_the_host_appears_in_the_log(
    console: Console, server: GatewayServer, key: str
) -> None:
    console.signed_in(key)
    patient = number()
    answer = accepted(server, key, patient)
    comm_id = answer["CommId"]
    console.listed(comm_id)
    first = console.all("table#messages tbody tr")[0]
    assert first.get_attribute("data-comm-id") == comm_id  # newest first
    assert first.find_element(By.CSS_SELECTOR, "td.comm-id").text.strip() == comm_id
    assert first.find_element(By.CSS_SELECTOR, "td.recipients").text.startswith("1")
    assert patient not in console.visible("main").text  # a full number shows on the journey only
    created = first.find_element(By.CSS_SELECTOR, "td.created time")
    assert datetime.fromisoformat(created.get_attribute("datetime").replace("Z", "+00:00")).tzinfo is not None
    assert "UTC" in created.get_attribute("title")
    assert first.find_element(By.CSS_SELECTOR, "td.reference").text.strip() == answer["Reference"]
    console.shot("04-message-in-log")


def test_the_log_refreshes_itself_while_a_message_is_in_progress(
    console: Console, server: GatewayServer, key: str, twilio: TwilioFake
) -> None:
    console.signed_in(key)
    twilio.callback_plan = CallbackPlan(interval=1.5)  # delivered 4.5 s after the send: after the first look
    try:
        comm_id = send(server, key, number())
        console.listed(comm_id)
        status = f"{row_of(comm_id)} td.status"
        assert console.text_of(status) != "Delivered"
        console.shot("05-log-in-progress")
        console.until(lambda d: console.text_of(status) == "Delivered", "the log to show the receipt by itself")
        console.shot("06-log-delivered")
    finally:
        twilio.wait_for_callbacks()
        twilio.callback_plan = CallbackPlan()


def test_the_journey_shows_the_delivered_receipt_and_a_reply_as_they_arrive(
    console: Console, server: GatewayServer, key: str, twilio: TwilioFake
) -> None:
    console.signed_in(key)
    patient = number()
    twilio.callback_plan = CallbackPlan(interval=1.0)  # sending, sent, delivered: one a second after the send
    try:
        comm_id = send(server, key, patient)
        console.listed(comm_id)
        console.visible(f"{row_of(comm_id)} a.open-journey").click()
        console.visible("section#journey")
        assert urlsplit(console.driver.current_url).fragment == f"/messages/{comm_id}"
        assert BODY in console.text_of("#conversation .message.outbound")
        recipient = "table#journey-recipients tr[data-recipient-id]"
        assert console.text_of(f"{recipient} td.number") == patient  # the full number, here only
        console.shot("07-journey-opened")

        console.until(lambda d: console.text_of(f"{recipient} td.status") == "Delivered", "the receipt to show")
        sid = next(message.sid for message in twilio.messages if message.to == patient)
        assert console.text_of(f"{recipient} td.provider-id") == sid
        console.visible("ol#timeline li[data-kind='delivered'] time")
        console.shot("08-journey-delivered")
    finally:
        twilio.wait_for_callbacks()
        twilio.callback_plan = CallbackPlan()

    assert twilio.text(patient, DEV_SENDER, REPLY).answered == 200
    console.until(lambda d: REPLY in console.text_of("#conversation .message.reply"), "the reply to show")
    console.visible("ol#timeline li[data-kind='reply'] time")
    console.shot("09-journey-reply")


def test_an_undelivered_message_explains_its_error_and_is_resent(
    console: Console, server: GatewayServer, key: str, twilio: TwilioFake
) -> None:
    patient = number()
    twilio.fate(patient, Fate.undelivered(30003))  # the handset is unreachable
    comm_id = send(server, key, patient)
    twilio.wait_for_callbacks()
    console.signed_in(key)
    console.open(f"#/messages/{comm_id}")
    recipient = "table#journey-recipients tr[data-recipient-id]"
    console.until(lambda d: console.text_of(f"{recipient} td.status") == "Undelivered", "the failure to show")
    assert console.text_of(f"{recipient} td.error").startswith("30003")
    assert len(console.text_of(f"{recipient} td.error span.explained").split()) >= 3  # in words, not a number
    console.visible("ol#timeline li[data-kind='undelivered'] time")
    assert not console.all("button#cancel")  # nothing left to cancel
    console.shot("10-journey-undelivered")

    console.visible("button#resend").click()
    link = console.visible("#journey-notice a")
    resent = urlsplit(link.get_attribute("href")).fragment.removeprefix("/messages/")
    answer = server.get(f"/api/sms/{resent}", key=key)
    assert answer.status_code == 200 and answer.json()["ResentFrom"] == comm_id, answer.text
    console.shot("11-journey-resent")


def test_the_chart_counts_each_days_messages_by_status(console: Console, server: GatewayServer, key: str) -> None:
    console.signed_in(key)
    send(server, key, number())
    console.visible("button#refresh").click()  # the log and its chart, drawn again
    offset = timedelta(minutes=console.driver.execute_script("return new Date().getTimezoneOffset();"))

    def drawn_as_logged() -> dict[str, int] | None:
        logged = Counter(
            (datetime.fromisoformat(entry["CreatedAt"].replace("Z", "+00:00")) - offset).date().isoformat()
            for entry in log_entries(server, key))
        drawn: Counter[str] = Counter()
        for rect in console.all("svg#daily-chart rect[data-day]"):
            drawn[rect.get_attribute("data-day")] += int(rect.get_attribute("data-count"))
        return dict(drawn) if drawn == logged else None

    assert sum(console.until(lambda d: drawn_as_logged(), "the chart to count what the log lists").values()) >= 1
    for rect in console.all("svg#daily-chart rect[data-day]"):
        day, status, count = (rect.get_attribute(f"data-{name}") for name in ("day", "status", "count"))
        assert rect.find_element(By.TAG_NAME, "title").get_attribute("textContent") == f"{day}: {count} {status}"
    console.driver.execute_script("arguments[0].scrollIntoView();", console.visible("svg#daily-chart"))
    console.shot("12-chart")


def test_an_opt_out_is_added_and_removed(console: Console, server: GatewayServer, key: str) -> None:
    console.signed_in(key)
    console.visible("a#nav-optouts").click()
    console.visible("table#optouts")
    patient = number()
    console.visible("input#optout-number").send_keys(patient, Keys.ENTER)
    row = f'table#optouts tr[data-number="{patient}"]'
    console.visible(row)
    assert patient in numbers_opted_out(server, key)
    console.shot("13-opt-out-added")

    console.visible(f"{row} button.optout-remove").click()
    console.gone(row)
    assert patient not in numbers_opted_out(server, key)
    console.shot("14-opt-out-removed")


def numbers_opted_out(server: GatewayServer, key: str) -> list[str]:
    answer = server.get("/api/optouts", key=key)
    assert answer.status_code == 200, answer.text
    return [entry["PhoneNumber"] for entry in answer.json()["OptOuts"]]


def test_rotating_the_webhook_secret_shows_a_new_one_once(console: Console, key: str, gateway: Gateway) -> None:
    console.signed_in(key)
    console.visible("a#nav-webhook").click()
    url = console.visible("input#webhook-url")
    url.clear()
    url.send_keys("http://127.0.0.1:9/console-test")  # the discard port: no event is sent while it is registered
    console.visible("button#webhook-save").click()
    first = console.until(lambda d: SECRET.search(console.text_of("#webhook-secret")), "the first secret").group()
    assert gateway.webhook_endpoints.find(LICENSEE).secret == first
    console.shot("15-webhook-saved")

    console.visible("button#webhook-rotate").click()
    second = console.until(lambda d: (found := SECRET.search(console.text_of("#webhook-secret")))
                           and found.group() != first and found, "a new secret").group()
    stored = gateway.webhook_endpoints.find(LICENSEE)
    assert (stored.secret, stored.previous_secret) == (second, first)
    console.shot("16-webhook-rotated")

    console.visible("a#nav-messages").click()  # shown once: not when the view is drawn again
    console.visible("table#messages")
    console.visible("a#nav-webhook").click()
    console.visible("input#webhook-url")
    assert not SECRET.search(console.driver.find_element(By.TAG_NAME, "body").text)

    console.visible("button#webhook-delete").click()
    console.until(lambda d: gateway.webhook_endpoints.find(LICENSEE) is None, "the webhook to be deleted")
