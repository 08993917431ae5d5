"""The browser tests' side of the host: sending through it over HTTP with the key, as an app does, and reading
the message log as the API answers it (what the page must show)."""

from __future__ import annotations

import uuid

from fakes.twilio import DEV_SENDER
from tests.server import GatewayServer

LICENSEE = uuid.UUID("5e1e0c7a-18c0-4b5e-9a1d-c0de5011e018")
BODY = "Your appointment is on Tuesday at 10. Reply YES to confirm."
IN_PROGRESS = {"Scheduled", "Queued", "Pending", "Sending", "Sent", "PartiallySent"}  # what the log refreshes for


def accepted(server: GatewayServer, key: str, patient: str) -> dict[str, str]:
    """An immediate send to ``patient`` through the host, over HTTP with the key, as an app sends; the answer."""
    model = {"From": {"PhoneNumber": DEV_SENDER}, "To": [{"PhoneNumber": patient}], "MessageBody": BODY,
             "ReplyIsAllowed": True}
    answer = server.post("/api/sendmessage/immediate", {"SMSModel": model}, key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()


def send(server: GatewayServer, key: str, patient: str) -> str:
    """The CommId of an immediate send to ``patient``."""
    return accepted(server, key, patient)["CommId"]


def log_entries(server: GatewayServer, key: str) -> list[dict[str, str]]:
    """Every communication the key's licensee has in the log (GET /api/sms, page by page)."""
    entries: list[dict[str, str]] = []
    token = None
    while True:
        answer = server.get("/api/sms", key=key, params={"Top": 200, "ContinuationToken": token})
        assert answer.status_code == 200, answer.text
        entries += answer.json()["Results"]
        token = answer.json().get("ContinuationToken")
        if not token:
            return entries
