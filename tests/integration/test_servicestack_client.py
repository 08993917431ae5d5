"""The real PyPI `servicestack` JsonServiceClient, unchanged, against the local host.

The DTOs are written the way ServiceStack's Python code generator writes them ("Add ServiceStack
Reference"): snake_case dataclasses whose JSON names are camelCase.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

import pytest
from dataclasses_json import LetterCase, Undefined, dataclass_json
from servicestack import IReturn, JsonServiceClient, WebServiceException

from gateway.runtime import Gateway
from gateway.settings import Settings
from tests.http_fixtures import LICENSEE
from tests.samples import NUMBERS
from tests.server import GatewayServer, server_env


@dataclass_json(letter_case=LetterCase.CAMEL, undefined=Undefined.EXCLUDE)
@dataclass
class CommResponse:
    comm_id: Optional[str] = None  # noqa: UP045 - the generator's spelling
    reference: Optional[str] = None  # noqa: UP045
    status: bool = False
    message: Optional[str] = None  # noqa: UP045


@dataclass_json(letter_case=LetterCase.CAMEL, undefined=Undefined.EXCLUDE)
@dataclass
class SMSContact:
    name: Optional[str] = None  # noqa: UP045
    phone_number: Optional[str] = None  # noqa: UP045
    contact_id: Optional[str] = None  # noqa: UP045


@dataclass_json(letter_case=LetterCase.CAMEL, undefined=Undefined.EXCLUDE)
@dataclass
class SMSModel:
    from_: Optional[SMSContact] = field(default=None, metadata={"dataclasses_json": {"field_name": "from"}})  # noqa: UP045
    to: list[SMSContact] = field(default_factory=list)
    message_body: Optional[str] = None  # noqa: UP045
    reply_is_allowed: bool = False
    reply_is_required: bool = False
    notes: Optional[str] = None  # noqa: UP045
    linked_object_id: Optional[str] = None  # noqa: UP045
    suite_id: Optional[str] = None  # noqa: UP045
    licensee_id: Optional[str] = None  # noqa: UP045


@dataclass_json(letter_case=LetterCase.CAMEL, undefined=Undefined.EXCLUDE)
@dataclass
class SMSSend(IReturn[CommResponse]):
    s_m_s_model: Optional[SMSModel] = field(  # noqa: UP045 - generated from the .NET name SMSModel
        default=None, metadata={"dataclasses_json": {"field_name": "smsModel"}})
    create_communication_references_immediately: bool = False


def request(*numbers: str, body: str = "Hello from the ServiceStack client") -> SMSSend:
    return SMSSend(s_m_s_model=SMSModel(to=[SMSContact(name="Alex", phone_number=n) for n in numbers],
                                        message_body=body, licensee_id="00000000000000000000000000000000"))


@pytest.fixture(scope="module", params=["default", "camel", "pascal"])
def hosted(request, storage_connection: str) -> Iterator[tuple[GatewayServer, Gateway, str, dict]]:
    """A gateway on the default settings (casing follows the request), one set to camelCase (as .NET Core
    ServiceStack hosts), and one set to PascalCase (as the reference page)."""
    casing = {} if request.param == "default" else {"SMS_JSON_CASING": request.param}
    env = server_env(storage_connection, **casing)
    gateway = Gateway.create(Settings.from_env(env))
    gateway.ensure_resources()
    server = GatewayServer.start(env)
    key = gateway.keys.create(LICENSEE, "servicestack client")[1]
    # A host set to PascalCase is read by this client when it asks for camelCase per request, as ServiceStack allows.
    args = {"jsconfig": "tc:cc"} if request.param == "pascal" else {}
    yield server, gateway, key, args
    server.stop()


def client_for(server: GatewayServer, key: str) -> JsonServiceClient:
    client = JsonServiceClient(server.url)
    client.bearer_token = key
    return client


def test_post_to_the_predefined_route(hosted) -> None:
    server, gateway, key, args = hosted
    response = client_for(server, key).post(request(NUMBERS[0]), args=args or None)
    assert isinstance(response, CommResponse)
    assert response.status is True and len(response.comm_id) == 32 and response.reference
    assert response.message == "Queued for delivery to 1 recipient; GSM-7, 1 segment"
    header = gateway.store.load_header(__import__("uuid").UUID(response.comm_id))
    assert header.licensee_id == LICENSEE and header.body == "Hello from the ServiceStack client"


def test_post_url_to_a_custom_route(hosted) -> None:
    server, _, key, args = hosted
    response = client_for(server, key).post_url("/api/sendmessage/immediate", request(*NUMBERS[:2]),
                                                response_as=CommResponse, args=args or None)
    assert response.status is True
    assert response.message == "Sent to 2 of 2 recipients; 0 failed; GSM-7, 1 segment each"


def test_a_bad_request_raises_web_service_exception_with_field_errors(hosted) -> None:
    server, _, key, args = hosted
    with pytest.raises(WebServiceException) as caught:
        client_for(server, key).post(request("+1 555", body=""), args=args or None)
    error = caught.value
    assert error.status_code == 400
    assert error.response_status.error_code == "NotEmpty"
    fields = {(e.field_name, e.error_code) for e in error.response_status.errors}
    assert fields == {("SMSModel.MessageBody", "NotEmpty"), ("SMSModel.To[0].PhoneNumber", "InvalidPhoneNumber")}


def test_a_wrong_key_raises_401(hosted) -> None:
    server, _, _, args = hosted
    with pytest.raises(WebServiceException) as caught:
        client_for(server, "sgk_wrong").post(request(NUMBERS[0]), args=args or None)
    assert caught.value.status_code == 401
    assert caught.value.response_status.error_code == "Unauthorized"
