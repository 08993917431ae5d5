"""Fuzz the HTTP API from its own /openapi.json with schemathesis: no 5xx, every error in the
ResponseStatus shape, every answer conforming to the document.

Runs against a real gateway over a real socket; bounded per operation so the suite stays quick.

Negative cases add headers the document does not name, and Hypothesis draws some of their names from the
string literals of the modules loaded (devhost/body.py spells Content-Length and Transfer-Encoding). Those
frame the message instead of carrying the API's input: the front end answers a wrong one (400 or 501,
without a ResponseStatus, as devhost does) before any function runs, so cases carrying them are not drawn.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode

from gateway import jsv
from gateway.metadata.openapi import openapi_document
from tests.server import GatewayServer

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# Hop-by-hop and framing headers: the HTTP client writes them, the platform reads them (RFC 9110 7.6.1, 6.4).
TRANSPORT_HEADERS = frozenset({"connection", "content-length", "expect", "host", "keep-alive", "proxy-connection",
                               "te", "trailer", "transfer-encoding", "upgrade"})


def carries_transport_headers(case: Case) -> bool:
    """Whether a generated case sets a header that frames the HTTP message rather than feeding the API."""
    return any(name.lower() in TRANSPORT_HEADERS for name in case.headers or {})


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_server_errors_and_every_error_is_a_response_status(operation, mode, server: GatewayServer,
                                                                key: str) -> None:
    session = requests.Session()

    @settings(max_examples=20, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode).filter(lambda case: not carries_transport_headers(case)))
    def check(case) -> None:
        response = case.call(base_url=server.url, session=session, headers={"Authorization": f"Bearer {key}"},
                             timeout=30)
        assert_api_answer(case, response)

    check()


def assert_api_answer(case: Case, response: requests.Response) -> None:
    """No 5xx, and every 4xx a ResponseStatus in JSON or JSV; a failure shows the request as a curl command
    (schemathesis prints a falsifying case as an empty ``case=,``)."""
    request = case.as_curl_command()
    assert response.status_code < 500, (request, response.text[:500])
    if response.status_code >= 400:
        jsv_answer = "jsv" in str(response.headers.get("content-type") or response.headers.get("Content-Type"))
        try:
            body = jsv.loads(response.text) if jsv_answer else response.json()
        except ValueError as error:
            raise AssertionError(f"{request} answered {response.status_code}, not JSON or JSV: "
                                 f"{response.text[:200]!r}") from error
        status = body.get("ResponseStatus") or body.get("responseStatus")
        assert isinstance(status, dict), (request, response.text[:500])
        status = {key[0].upper() + key[1:]: value for key, value in status.items()}
        assert {"ErrorCode", "Message", "Errors"} <= set(status), request


@pytest.mark.parametrize(("name", "value", "host_status"), [("CONTENT-LENGTH", "", 400),
                                                           ("transfer-encoding", "q", 501)])
def test_a_framing_header_the_fuzzer_drew_is_answered_by_the_host_and_no_longer_drawn(
        name: str, value: str, host_status: int, server: GatewayServer, key: str) -> None:
    """The case a full-suite run once failed on, as Hypothesis shrank it: negative GET /api/sms/0 with an empty
    CONTENT-LENGTH (a name drawn from devhost/body.py's literals); the host's plain 400 is no JSON."""
    operation = SCHEMA["/api/sms/{commId}"]["GET"]
    auth = {"Authorization": f"Bearer {key}"}
    framed = operation.Case(path_parameters={"commId": "0"}, headers={name: value})
    answer = framed.call(base_url=server.url, headers=auth, timeout=30)
    assert answer.status_code == host_status and "ResponseStatus" not in answer.text, answer.text
    assert carries_transport_headers(framed)

    plain = operation.Case(path_parameters={"commId": "0"}, headers={"X-Fuzz": value})
    assert not carries_transport_headers(plain)
    answer = plain.call(base_url=server.url, headers=auth, timeout=30)
    assert answer.status_code == 404
    assert_api_answer(plain, answer)
