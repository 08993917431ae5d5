"""The console over a real socket (`python -m devhost`, Azurite): its files and their security headers, what is
refused (unknown names, traversal), and the two API additions the page reads: Segments and Encoding in the message
log, and GET /api/sms/{CommId}/events (the webhook events of one communication, another licensee's a 404)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
import requests

from gateway.console_page import CONTENT_SECURITY_POLICY, shipped
from gateway.runtime import Gateway
from tests.integration.test_http_send import OTHER_LICENSEE, assert_error
from tests.samples import NUMBERS, send_body
from tests.server import GatewayServer, server_env
from tests.waiting import wait_until
from tests.webhook_receiver import WebhookReceiver

LICENSEE = uuid.UUID("c0c0c0c0-0000-4000-8000-000000000018")


@pytest.fixture(scope="module")
def env(storage_connection: str) -> dict[str, str]:
    return server_env(storage_connection, SMS_WEBHOOK_ALLOW_PRIVATE="true")


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def assert_console_headers(response: requests.Response, cache: str) -> None:
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == cache


def test_the_page_is_served_without_a_key_with_its_security_headers(server: GatewayServer) -> None:
    page = requests.get(server.url + "/console", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert_console_headers(page, "no-cache")
    assert 'id="api-key"' in page.text and '<script type="module" src="/console/app.js">' in page.text


@pytest.mark.parametrize(("name", "media_type"), [("app.js", "text/javascript"), ("console.css", "text/css"),
                                                   ("icon.svg", "image/svg+xml"), ("index.html", "text/html")])
def test_each_file_has_its_content_type_and_assets_are_cached_for_an_hour(server: GatewayServer, name: str,
                                                                         media_type: str) -> None:
    response = requests.get(f"{server.url}/console/{name}", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"{media_type}; charset=utf-8"  # the SVG's too: the host adds none
    assert_console_headers(response, "no-cache" if name == "index.html" else "public, max-age=3600")
    assert response.text == shipped()[name]


def test_every_shipped_file_is_served(server: GatewayServer) -> None:
    for name in shipped():
        assert requests.get(f"{server.url}/console/{name}", timeout=30).status_code == 200, name


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/app.JS", "/console/console_page.py",
                                  "/console/..%2Fconsole_page.py", "/console/%2e%2e%2fhandlers.py",
                                  "/console/app.js.json", "/console/api.js%00.css", "/console/.gitignore"])
def test_anything_else_is_a_404_with_the_same_headers(server: GatewayServer, path: str) -> None:
    response = requests.get(server.url + path, timeout=30)
    assert response.status_code == 404, path
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "def " not in response.text and "import" not in response.text


def test_a_raw_dot_dot_path_reaches_no_file(server: GatewayServer) -> None:
    """requests normalises ``..``; a raw request line does not, so the host's routing is what refuses it."""
    host, port = server.url.removeprefix("http://").split(":")
    for target in ("/console/../gateway/handlers.py", "/console/../../function_app.py", "/console/./app.js/../x"):
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        status = answer.split(b" ", 2)[1]
        assert status in (b"400", b"404"), (target, answer[:200])
        assert b"import " not in answer


def test_the_console_is_not_in_the_api_documents(server: GatewayServer) -> None:
    spec = requests.get(server.url + "/openapi.json", timeout=30).json()
    assert not [path for path in spec["paths"] if path.startswith("/console")]
    assert "/console" not in requests.get(server.url + "/metadata", timeout=30).text


def test_the_log_lists_segments_and_encoding(server: GatewayServer, gateway: Gateway) -> None:
    key = gateway.keys.create(uuid.uuid4(), "console log")[1]
    long_unicode = "Résumé ✓ " * 10  # UCS-2, 90 characters: two segments of 67
    for body in ("Hello", long_unicode):
        assert server.post("/api/sendmessage", send_body(NUMBERS[0], body=body), key=key).status_code == 200
    listed = server.get("/api/sms", key=key).json()["Results"]
    assert [(entry["Segments"], entry["Encoding"]) for entry in listed] == [(2, "UCS-2"), (1, "GSM-7")]


def test_the_events_of_one_communication_and_no_one_elses(server: GatewayServer, gateway: Gateway,
                                                          receiver: WebhookReceiver) -> None:
    key = gateway.keys.create(LICENSEE, "console events")[1]
    path = f"/hooks/{uuid.uuid4().hex}"
    registered = requests.put(server.url + "/api/webhook", json={"Url": receiver.endpoint(path)},
                              headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert registered.status_code == 200, registered.text
    receiver.trust(path, registered.json()["Secret"])
    sent = server.post("/api/sendmessage", send_body(NUMBERS[1]), key=key).json()["CommId"]
    other = server.post("/api/sendmessage", send_body(NUMBERS[2]), key=key).json()["CommId"]

    def events_of(comm_id: str) -> list[dict]:
        response = server.get(f"/api/sms/{comm_id}/events", key=key)
        assert response.status_code == 200, response.text
        return response.json().get("Events", [])

    listed = wait_until(lambda: [event for event in events_of(sent) if event["Status"] == "Delivered"],
                        timeout=30, what="the message.sent event delivered")
    assert {event["CommId"] for event in events_of(sent)} == {sent}  # only this communication's
    assert "message.sent" in {event["Type"] for event in listed}
    assert wait_until(lambda: events_of(other), timeout=30)  # the other one has its own
    assert not {event["Id"] for event in events_of(other)} & {event["Id"] for event in events_of(sent)}

    theirs = gateway.keys.create(OTHER_LICENSEE, "console events other")[1]
    assert_error(server.get(f"/api/sms/{sent}/events", key=theirs), 404, "NotFound")
    assert_error(server.get(f"/api/sms/{uuid.uuid4().hex}/events", key=key), 404, "NotFound")
    assert_error(server.get("/api/sms/not-a-guid/events", key=key), 404, "NotFound")
    assert_error(server.get(f"/api/sms/{sent}/events"), 401, "Unauthorized")


def test_a_communication_without_a_webhook_has_no_events(server: GatewayServer, gateway: Gateway) -> None:
    key = gateway.keys.create(uuid.uuid4(), "console no webhook")[1]
    sent = server.post("/api/sendmessage", send_body(NUMBERS[0]), key=key).json()["CommId"]
    wait_until(lambda: server.get(f"/api/sms/{sent}", key=key).json()["Status"] == "Sent", timeout=30)
    assert server.get(f"/api/sms/{sent}/events", key=key).json().get("Events", []) == []
