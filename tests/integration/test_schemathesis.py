"""Fuzz the HTTP API from its own /openapi.json with schemathesis: no 5xx, every error in the
ResponseStatus shape, every answer conforming to the document.

Runs against a real gateway over a real socket; bounded per operation so the suite stays quick.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from gateway import jsv
from gateway.metadata.openapi import openapi_document
from tests.server import GatewayServer

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_server_errors_and_every_error_is_a_response_status(operation, mode, server: GatewayServer,
                                                                key: str) -> None:
    session = requests.Session()

    @settings(max_examples=20, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        response = case.call(base_url=server.url, session=session, headers={"Authorization": f"Bearer {key}"},
                             timeout=30)
        assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
        if response.status_code >= 400:
            jsv_answer = "jsv" in str(response.headers.get("content-type") or response.headers.get("Content-Type"))
            body = jsv.loads(response.text) if jsv_answer else response.json()
            status = body.get("ResponseStatus") or body.get("responseStatus")
            status = {key[0].upper() + key[1:]: value for key, value in status.items()}
            assert {"ErrorCode", "Message", "Errors"} <= set(status)

    check()
