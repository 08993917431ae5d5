"""The fakes run from a shell: the settings they print point a real provider at them, and they say what they got."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from fakes.acs import AUTO_ENDPOINT, events_endpoint
from gateway.providers.acs import AcsProvider
from gateway.providers.acs_settings import AcsSettings
from gateway.providers.base import OutboundSms, Outcome
from gateway.providers.twilio import TwilioProvider
from gateway.providers.twilio_settings import TwilioSettings
from tests.webhook import Webhook

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningFake:
    def __init__(self, module: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", str(free_port()), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def read_until(self, marker: str) -> str:
        """Lines up to and including the first that holds ``marker`` (the fake prints promptly)."""
        assert self.process.stdout is not None
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if marker in line:
                return line
        raise AssertionError(f"the fake ended without printing {marker!r}:\n{''.join(lines)}")

    def environment(self) -> dict[str, str]:
        """The variables the fake tells a person to start the gateway with."""
        words = shlex.split(self.read_until("bash scripts/run.sh"))
        assert words[-2:] == ["bash", "scripts/run.sh"]
        return dict(word.split("=", 1) for word in words[:-2])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()


@pytest.fixture
def run_fake() -> Iterator:
    started: list[RunningFake] = []

    def start(module: str, *args: str) -> RunningFake:
        started.append(RunningFake(module, *args))
        return started[-1]

    yield start
    for fake in started:
        if fake.process.poll() is None:
            fake.process.kill()
            fake.process.wait()


def sms(to: str, sender: str) -> OutboundSms:
    return OutboundSms(uuid.uuid4(), uuid.uuid4(), to, sender, "Hello through the fake", datetime.now(UTC))


def test_twilio_fake_from_a_shell(run_fake) -> None:
    fake = run_fake("fakes.twilio")
    env = fake.environment()
    assert env["SMS_PROVIDER"] == "twilio" and env["TWILIO_BASE_URL"].startswith("http://127.0.0.1:")
    provider = TwilioProvider(TwilioSettings.from_env(env))
    message = sms("+14155550100", env["SMS_DEFAULT_SENDER"])

    [result] = provider.send([message])

    assert result.outcome is Outcome.ACCEPTED
    assert f"received {result.provider_message_id} to +14155550100" in fake.read_until("received")
    assert provider.find_sent([message]) == {message.recipient_id: result.provider_message_id}
    assert fake.stop() == 0


def test_twilio_fake_from_a_shell_calls_back_and_ends_a_marked_number_undelivered(run_fake) -> None:
    fake = run_fake("fakes.twilio", "--undelivered", "+14155550199", "--interval", "0")
    env = fake.environment()
    # Nothing listens on port 9: each callback fails, is printed, and is not retried.
    provider = TwilioProvider(TwilioSettings.from_env(env), public_base_url="http://127.0.0.1:9")

    [result] = provider.send([sms("+14155550199", env["SMS_DEFAULT_SENDER"])])

    for status in ("sending", "sent", "undelivered"):
        assert f"status callback {result.provider_message_id} {status}: ConnectionError" in fake.read_until(
            "status callback")
    receipt = provider.look_up(str(result.provider_message_id))
    assert receipt is not None and (receipt.provider_status, receipt.error_code) == ("undelivered", "30003")
    assert fake.stop() == 0


def test_acs_fake_from_a_shell(run_fake) -> None:
    fake = run_fake("fakes.acs")
    env = fake.environment()
    assert env["SMS_PROVIDER"] == "acs" and Path(env["ACS_CA_BUNDLE"]).is_file()
    provider = AcsProvider(AcsSettings.from_env(env))

    [result] = provider.send([sms("+14255550100", env["SMS_DEFAULT_SENDER"])])

    assert result.outcome is Outcome.ACCEPTED, result
    assert f"sent {result.provider_message_id} to +14255550100" in fake.read_until(" sent ")
    assert fake.stop() == 0
    assert not Path(env["ACS_CA_BUNDLE"]).exists()  # its temporary certificate goes with it


def test_acs_fake_from_a_shell_reports_deliveries_through_event_grid(run_fake) -> None:
    with Webhook() as webhook:
        key = "k" * 43
        fake = run_fake("fakes.acs", "--events-endpoint", webhook.url.replace("key=k", f"key={key}"))
        env = fake.environment()
        assert env["SMS_EVENTGRID_KEY"] == key  # the gateway must be started with the key the URL carries
        provider = AcsProvider(AcsSettings.from_env(env))

        [result] = provider.send([sms("+14255550100", env["SMS_DEFAULT_SENDER"])])

        assert result.outcome is Outcome.ACCEPTED, result
        assert "Event Grid validation handshake: HTTP 200" in fake.read_until("handshake")
        assert "Event Grid delivered 1 report(s): HTTP 200" in fake.read_until("delivered")
        [report] = webhook.notifications()[0].events
        assert {name.lower(): value for name, value in report["data"].items()}["messageid"] == (
            result.provider_message_id)
        assert fake.stop() == 0


def test_acs_fake_events_endpoint_without_a_url_is_the_local_gateways_with_a_new_key() -> None:
    endpoint, key = events_endpoint(AUTO_ENDPOINT)
    assert key is not None and re.fullmatch(r"[A-Za-z0-9_-]{32,}", key)  # what SMS_EVENTGRID_KEY accepts
    assert endpoint == f"http://127.0.0.1:7071/api/providers/acs/events?key={key}"
    assert events_endpoint("https://gw.example/api/providers/acs/events")[1] is None


def test_twilio_fake_from_a_shell_replies_to_a_delivered_message_signed(run_fake) -> None:
    received: list[tuple[str, dict[str, str], str]] = []

    class Inbound(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            form = dict(parse_qsl(body, keep_blank_values=True))  # Twilio signs the empty fields too
            received.append((self.path, form, self.headers.get("X-Twilio-Signature", "")))
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.end_headers()
            self.wfile.write(b"<Response/>")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Inbound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    inbound_url = f"http://127.0.0.1:{server.server_port}/api/providers/twilio/inbound"
    try:
        fake = run_fake("fakes.twilio", "--interval", "0", "--reply", "See you then", "--inbound-url", inbound_url)
        env = fake.environment()
        provider = TwilioProvider(TwilioSettings.from_env(env), public_base_url="http://127.0.0.1:9")
        [result] = provider.send([sms("+14155550123", env["SMS_DEFAULT_SENDER"])])
        assert f"reply to {result.provider_message_id} posted to {inbound_url}: HTTP 200" in fake.read_until("reply to")
        [(path, form, signature)] = received
        assert path == "/api/providers/twilio/inbound"
        assert (form["From"], form["To"], form["Body"]) == ("+14155550123", env["SMS_DEFAULT_SENDER"], "See you then")
        assert RequestValidator(env["TWILIO_AUTH_TOKEN"]).validate(inbound_url, form, signature)
        assert fake.stop() == 0
    finally:
        server.shutdown()
