"""The HTTP adapter in process: one place authenticates from the operation table, hands the handler its
caller, and turns every outcome into a ServiceStack-shaped answer; the documents load only on request."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import azure.functions as func
import pytest
from azure.core.exceptions import ServiceRequestError

from devhost.azurite import ROOT
from gateway import http, jsv
from gateway.auth import Principal
from gateway.handlers import Call
from gateway.models import HealthResponse
from gateway.routes import Operation, Route
from gateway.runtime import use_gateway
from gateway.settings import get_settings
from tests.http_fixtures import LICENSEE


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, storage_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The process's settings point at this test's storage (the adapter reads the default casing from them)."""
    for name, value in storage_env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield storage_env
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def offline_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings that need no storage: for operations that never touch it."""
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def request(path: str, headers: dict[str, str] | None = None, **params: str) -> func.HttpRequest:
    return func.HttpRequest("GET", f"http://gateway.test/{path}", headers=headers or {}, params=params, body=b"")


def test_the_adapter_authenticates_from_the_table_and_hands_the_handler_its_caller(make_gateway,
                                                                                  settings_env) -> None:
    """A new route is a table entry and a handler: the adapter needs no change to authenticate it."""
    gateway = make_gateway()
    key = gateway.keys.create(LICENSEE, "adapter test")[1]
    callers: list[Principal | None] = []

    def who_am_i(call: Call) -> HealthResponse:
        callers.append(call.principal)
        return HealthResponse()

    private = Route("who_am_i", "api/whoami", ("GET",),
                    Operation("WhoAmI", "d", who_am_i, errors=(401, 406, 500), response=HealthResponse))
    public = Route("hello", "api/hello", ("GET",),
                   Operation("Hello", "d", who_am_i, errors=(500,), response=HealthResponse, authenticated=False))
    use_gateway(gateway)
    try:
        refused = http.serve(private, request("api/whoami"))
        assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
        assert callers == []  # the handler never ran
        revoked_key = http.serve(private, request("api/whoami", {"Authorization": "Bearer sgk_nobody"}))
        assert revoked_key.status_code == 401 and callers == []
        answered = http.serve(private, request("api/whoami", {"X-Api-Key": key}))
        assert answered.status_code == 200, answered.get_body()
        assert callers[-1] is not None and callers[-1].licensee_id == LICENSEE
        assert http.serve(public, request("api/hello")).status_code == 200
        assert callers[-1] is None  # an unauthenticated operation gets no principal, even with a key
        assert http.serve(public, request("api/hello", {"X-Api-Key": key})).status_code == 200
        assert callers[-1] is None
    finally:
        use_gateway(None)


def raising(error: Exception) -> Route:
    def handler(call: Call) -> HealthResponse:
        raise error

    return Route("raises", "api/raises", ("GET",),
                 Operation("Raises", "d", handler, errors=(406, 500, 503), response=HealthResponse,
                           authenticated=False))


def test_storage_errors_and_bugs_are_answered_in_the_negotiated_format(offline_settings) -> None:
    outage = http.serve(raising(ServiceRequestError("no storage")), request("api/raises", format="jsv"))
    assert outage.status_code == 503 and outage.headers["Retry-After"] == "5"
    assert outage.headers["Content-Type"].startswith("application/jsv")
    assert jsv.loads(outage.get_body().decode())["ResponseStatus"]["ErrorCode"] == "ServiceUnavailable"
    bug = http.serve(raising(ValueError("+447911123456 secret")), request("api/raises"))
    assert bug.status_code == 500
    status = json.loads(bug.get_body())["ResponseStatus"]
    assert status["ErrorCode"] == "InternalServerError" and len(status["Meta"]["CorrelationId"]) == 32
    assert "secret" not in bug.get_body().decode()


def test_a_bug_is_logged_with_its_frames_and_without_what_its_message_quotes(offline_settings, caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="gateway"):
        http.serve(raising(ValueError("could not send 'Hello Alex' to +447911123456")), request("api/raises"))
        http.serve(raising(ServiceRequestError("no storage at +447911123456")), request("api/raises"))
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert "unhandled error, correlation id" in logged and "in handler" in logged  # the frame that raised
    assert "storage unavailable: ServiceRequestError" in logged
    assert "447911123456" not in logged and "Hello Alex" not in logged


def test_a_call_to_an_unauthenticated_operation_has_no_caller(offline_settings) -> None:
    def needs_caller(call: Call) -> HealthResponse:
        call.caller  # noqa: B018 - the property raises
        return HealthResponse()

    route = Route("open", "api/open", ("GET",),
                  Operation("Open", "d", needs_caller, errors=(500,), response=HealthResponse, authenticated=False))
    assert http.serve(route, request("api/open")).status_code == 500


def test_the_app_binds_every_route_and_loads_the_documents_only_when_asked() -> None:
    """Cold start: importing the app and serving a send leave ``gateway.metadata`` unloaded."""
    script = textwrap.dedent("""
        import json, sys
        import azure.functions as func
        import function_app
        from gateway.routes import ROUTES

        bound = {f.get_function_name(): f for f in function_app.app.get_functions()}
        def call(name, path, method="GET", headers=None):
            req = func.HttpRequest(method, "http://gateway.test/" + path, headers=headers or {}, body=b"{}")
            return bound[name].get_user_function()(req)

        send = call("sendmessage", "api/sendmessage", "POST", {"Accept": "application/xml"})
        loaded_after_send = "gateway.metadata" in sys.modules
        page = call("metadata", "metadata")
        document = call("openapi", "openapi.json")
        print(json.dumps({
            "routes": [route.name for route in ROUTES], "bound": sorted(bound),
            "send": send.status_code, "loaded_after_send": loaded_after_send,
            "page": [page.status_code, page.mimetype], "document": [document.status_code, document.mimetype],
            "loaded_after_page": "gateway.metadata" in sys.modules,
        }))
    """)
    env = {"PATH": "/usr/bin:/bin", "AzureWebJobsStorage": "UseDevelopmentStorage=true", "SMS_PROVIDER": "outbox"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    triggers = {"unmatched", "deliver", "abandon", "sweep", "check_receipts", "retention", "webhooks",
                "webhooks_poison"}
    assert set(result["routes"]) | triggers == set(result["bound"])
    assert result["send"] == 406
    assert result["loaded_after_send"] is False
    assert result["page"] == [200, "text/html"] and result["document"] == [200, "application/json"]
    assert result["loaded_after_page"] is True
