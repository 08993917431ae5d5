"""Request bodies the tests share: the seed's request, and small valid variations."""

from __future__ import annotations

import copy
from typing import Any

# The seed's JSV sample written as JSON: PascalCase names, N-form Guids (values filled in).
SEED_REQUEST: dict[str, Any] = {
    "SMSModel": {
        "From": {"Name": "Front desk", "PhoneNumber": "+61412345678", "ContactId": "00000000000000000000000000000000"},
        "To": [{"Name": "Alex", "PhoneNumber": "+447911123456", "ContactId": "3f2504e04f8911d39a0c0305e82c3301"}],
        "MessageBody": "Your appointment is confirmed for 10:30, Tuesday.",
        "ReplyIsAllowed": False,
        "ReplyIsRequired": False,
        "Notes": "String",
        "LinkedObjectId": "00000000000000000000000000000000",
        "SuiteId": "00000000000000000000000000000000",
        "LicenseeId": "00000000000000000000000000000000",
    },
    "CreateCommunicationReferencesImmediately": False,
}

NUMBERS = ["+447911123456", "+61412345678", "+14155550123", "+33612345678", "+491701234567"]


def send_body(*numbers: str, body: str = "Hello from the tests", **model: Any) -> dict[str, Any]:
    request = copy.deepcopy(SEED_REQUEST)
    request["SMSModel"]["To"] = [{"PhoneNumber": number} for number in (numbers or NUMBERS[:1])]
    request["SMSModel"]["MessageBody"] = body
    request["SMSModel"].update(model)
    return request
