"""devhost: the local Functions host, tested over real sockets and a real Azurite.

The sample app is tests/devhost_app/function_app.py; its functions record calls in module lists.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.azurite import connection_string, free_port
from devhost.config import load_local_settings, parse_timespan, resolve_binding_expression, storage_connection_string
from devhost.cron import CronError, CronSchedule
from devhost.errors import DevHostError
from devhost.functions import discover_functions
from devhost.host import DevHost
from devhost.queues import QueueListener, QueueOptions
from devhost.routing import MethodNotAllowed, RouteNotFound, Router, RouteTemplate
from tests.devhost_app import function_app as sample
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = Path(sample.__file__).resolve().parent
APP_MODULE = "tests.devhost_app.function_app"


# --------------------------------------------------------------------------------------------------
# Cron schedules
# --------------------------------------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 */5 * * * *", "2024-03-01T12:03:10", "2024-03-01T12:05:00"),
        ("0 */5 * * * *", "2024-03-01T12:05:00", "2024-03-01T12:10:00"),
        ("0 */5 * * * *", "2024-03-01T23:59:59", "2024-03-02T00:00:00"),
        ("*/30 * * * * *", "2024-03-01T12:00:29.900", "2024-03-01T12:00:30"),
        ("*/30 * * * * *", "2024-03-01T12:00:30", "2024-03-01T12:01:00"),
        ("0 0 * * * *", "2024-03-01T12:00:00", "2024-03-01T13:00:00"),
        ("* * * * * *", "2024-03-01T12:00:00.5", "2024-03-01T12:00:01"),
        ("0 30 9 * * MON-FRI", "2024-03-01T10:00:00", "2024-03-04T09:30:00"),  # Friday after 9:30 -> Monday
        ("0 0 0 1 JAN *", "2024-06-01T00:00:00", "2025-01-01T00:00:00"),
        ("0 0 0 29 2 *", "2024-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 0 12 13 * 5", "2024-01-01T00:00:00", "2024-09-13T12:00:00"),  # day AND weekday, like NCrontab
        ("15,45 10-12/2 * * * *", "2024-03-01T12:10:45", "2024-03-01T12:12:15"),
        ("0 0 0 * 12 *", "2024-12-31T00:00:00", "2025-12-01T00:00:00"),
    ],
)
def test_cron_next_after(expression: str, after: str, expected: str) -> None:
    assert CronSchedule.parse(expression).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("*/5 * * * *", "six"),
        ("60 * * * * *", "second field"),
        ("0 */0 * * * *", "step"),
        ("0 0 5-1 * * *", "backwards"),
        ("0 0 0 * * 7", "day-of-week"),
        ("0 0 0 * FOO *", "month field"),
        ("0 0,,1 * * * *", "empty"),
    ],
)
def test_cron_rejects_invalid_schedules(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule.parse(expression)


def test_cron_that_never_fires_says_so() -> None:
    with pytest.raises(CronError, match="never fires"):
        CronSchedule.parse("0 0 0 30 2 *").next_after(at("2024-01-01T00:00:00"))


# --------------------------------------------------------------------------------------------------
# Routes, settings and options (no server)
# --------------------------------------------------------------------------------------------------


def test_route_templates_match_like_the_host() -> None:
    template = RouteTemplate("api/sms/{commId}")
    assert template.match(["API", "SMS", "42"]) == {"commId": "42"}
    assert template.match(["api", "sms"]) is None
    assert template.match(["api", "sms", "1", "2"]) is None
    guid = RouteTemplate("x/{id:guid}")
    assert guid.match(["x", str(uuid.uuid4())]) is not None
    assert guid.match(["x", "nope"]) is None
    assert RouteTemplate("x/{n:int:min(2)}").match(["x", "1"]) is None
    assert RouteTemplate("x/{n:int:min(2)}").match(["x", "2"]) == {"n": "2"}
    assert RouteTemplate("files/{*path}").match(["files", "a", "b.txt"]) == {"path": "a/b.txt"}
    assert RouteTemplate("files/{*path}").match(["files"]) == {}
    assert RouteTemplate("v/{id?}").match(["v"]) == {}
    assert RouteTemplate("v/{page=1}").match(["v"]) == {"page": "1"}
    assert RouteTemplate("report/{name}.{ext}").match(["report", "q1.csv"]) == {"name": "q1", "ext": "csv"}
    with pytest.raises(DevHostError, match="catch-all"):
        RouteTemplate("{*rest}/tail")


def test_router_prefers_literals_then_methods() -> None:
    specs = discover_functions(sample.app)
    router = Router.for_functions([spec for spec in specs if spec.trigger_type == "httpTrigger"], "")
    route, values = router.resolve("GET", "/api/items/special")
    assert (route.spec.name, values) == ("special_item", {})
    route, values = router.resolve("POST", "/api/items/special")  # the literal is GET only: the template serves POST
    assert (route.spec.name, values) == ("item", {"itemId": "special"})
    route, values = router.resolve("GET", "/api/sms/reference/abc")
    assert (route.spec.name, values) == ("sms_by_reference", {"reference": "abc"})
    route, values = router.resolve("GET", "/api/items/a%20b%2Fc")
    assert values == {"itemId": "a b/c"}
    with pytest.raises(MethodNotAllowed) as refused:
        router.resolve("DELETE", "/api/items/1")
    assert refused.value.allowed == ["GET", "POST"]
    with pytest.raises(RouteNotFound):
        router.resolve("GET", "/api/nothing/here")


def test_route_prefix_applies() -> None:
    specs = [spec for spec in discover_functions(sample.app) if spec.name == "ping"]
    router = Router.for_functions(specs, "api")
    assert router.resolve("GET", "/api/api/ping")[0].spec.name == "ping"
    with pytest.raises(RouteNotFound):
        router.resolve("GET", "/api/ping")


def test_timespans_and_queue_options() -> None:
    assert parse_timespan("00:00:30", "x") == 30
    assert parse_timespan("00:00:00.250", "x") == 0.25
    assert parse_timespan("1.02:00:00", "x") == 93600
    assert parse_timespan(1500, "x") == 1.5  # version 1 host.json: milliseconds
    with pytest.raises(DevHostError, match="TimeSpan"):
        parse_timespan("soon", "x")
    assert QueueOptions.from_host_json({}) == QueueOptions()
    options = QueueOptions.from_host_json(json.loads((APP_DIR / "host.json").read_text()), max_polling_interval=0.05)
    assert (options.batch_size, options.new_batch_threshold, options.max_dequeue_count) == (4, 2, 3)
    assert (options.max_polling_interval, options.visibility_timeout) == (0.05, 0.0)
    with pytest.raises(DevHostError, match="batchSize"):
        QueueOptions.from_host_json({"extensions": {"queues": {"batchSize": 64}}})
    with pytest.raises(DevHostError, match="messageEncoding"):
        QueueOptions.from_host_json({"extensions": {"queues": {"messageEncoding": "utf8"}}})


def test_binding_expressions_and_connections() -> None:
    env = {"Q": "orders", "AzureWebJobsOther": "UseDevelopmentStorage=true", "Ident__accountName": "acct"}
    assert resolve_binding_expression("%Q%-in", env, "queueName") == "orders-in"
    with pytest.raises(DevHostError, match="'MISSING', which is not set"):
        resolve_binding_expression("%MISSING%", env, "queueName")
    assert storage_connection_string("Other", env, "f") == "UseDevelopmentStorage=true"
    with pytest.raises(DevHostError, match="identity-based"):
        storage_connection_string("Ident", env, "f")
    with pytest.raises(DevHostError, match="not set"):
        storage_connection_string("AzureWebJobsStorage", env, "f")


def test_local_settings_fill_but_do_not_override(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "file", "B": "file", "FLAG": True, "N": 3}}))
    env = {"A": "shell"}
    load_local_settings(path, env)
    assert env == {"A": "shell", "B": "file", "FLAG": "true", "N": "3"}
    assert load_local_settings(tmp_path / "absent.json", env) == {}
    with pytest.raises(DevHostError, match="does not exist"):
        load_local_settings(tmp_path / "absent.json", env, required=True)
    path.write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    with pytest.raises(DevHostError, match="encrypted"):
        load_local_settings(path, {})


def test_unresolved_queue_name_fails_before_serving() -> None:
    host = DevHost(APP_MODULE, timers=False, environ={"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    with pytest.raises(DevHostError, match="DEVHOST_TEST_QUEUE"):
        host.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = host.url


def test_disabled_functions_are_not_hosted() -> None:
    with DevHost(APP_MODULE, queues=False, timers=False, environ={"AzureWebJobs.ping.Disabled": "true"}) as host:
        assert "ping: httpTrigger (disabled by AzureWebJobs.ping.Disabled)" in host.describe()
        assert request(host, "GET", "/api/ping")[0] == 404


# --------------------------------------------------------------------------------------------------
# HTTP over a real socket
# --------------------------------------------------------------------------------------------------


def request(host: DevHost, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, chunked: bool = False) -> tuple[int, http.client.HTTPMessage, bytes]:
    address = host.url.removeprefix("http://")
    connection = http.client.HTTPConnection(address, timeout=10)
    try:
        if chunked:
            connection.request(method, path, body=iter([body or b""]), headers=headers or {}, encode_chunked=True)
        else:
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def http_host() -> Iterator[DevHost]:
    with DevHost(APP_MODULE, queues=False, timers=False) as host:
        yield host


def test_literal_route_with_query_and_headers(http_host: DevHost) -> None:
    status, headers, body = request(http_host, "GET", "/api/ping?a=1&b=two%20words&a=3", headers={"X-Test": "hi"})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Devhost"] == "yes"
    payload = json.loads(body)
    assert payload["params"] == {"a": "1,3", "b": "two words"}
    assert payload["x_test"] == "hi"
    assert payload["method"] == "GET"
    assert payload["url"] == f"{http_host.url}/api/ping?a=1&b=two%20words&a=3"


def test_a_burst_of_clients_is_accepted_without_resets_or_syn_retries(http_host: DevHost) -> None:
    """64 clients connecting at once all get in at once (a listen backlog of 5 made some wait 1 s or fail)."""
    clients = 64
    barrier = threading.Barrier(clients)
    results: list[tuple[int, float] | Exception] = []

    def one() -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            status, _, _ = request(http_host, "GET", "/api/ping")
            results.append((status, time.monotonic() - started))
        except Exception as error:  # recorded, asserted below
            results.append(error)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert sorted(status for status, _ in results) == [200] * clients  # type: ignore[misc]
    assert max(elapsed for _, elapsed in results) < 0.9  # type: ignore[misc]  # no 1 s SYN retransmission


def test_routes_are_case_insensitive_and_tolerate_a_trailing_slash(http_host: DevHost) -> None:
    assert request(http_host, "GET", "/API/Ping")[0] == 200
    assert request(http_host, "GET", "/api/ping/")[0] == 200


def test_templated_routes_and_literal_precedence(http_host: DevHost) -> None:
    assert json.loads(request(http_host, "GET", "/api/items/42")[2]) == {"route": "item",
                                                                        "route_params": {"itemId": "42"}}
    assert json.loads(request(http_host, "GET", "/api/items/special")[2])["route"] == "special"
    assert json.loads(request(http_host, "GET", "/api/sms/reference/R-1")[2]) == {
        "route": "reference", "route_params": {"reference": "R-1"}}
    assert json.loads(request(http_host, "GET", "/api/sms/77")[2])["route_params"] == {"commId": "77"}
    guid = str(uuid.uuid4())
    assert json.loads(request(http_host, "GET", f"/api/guid/{guid}")[2])["route_params"] == {"id": guid}
    assert request(http_host, "GET", "/api/guid/not-a-guid")[0] == 404


def test_body_round_trip_status_and_response_headers(http_host: DevHost) -> None:
    payload = bytes(range(256)) * 4
    status, headers, body = request(http_host, "POST", "/api/items/7", body=payload,
                                    headers={"Content-Type": "application/octet-stream"})
    assert (status, body) == (201, payload)
    assert headers["X-Item-Id"] == "7"
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Length"] == str(len(payload))


def test_chunked_request_body(http_host: DevHost) -> None:
    status, _, body = request(http_host, "POST", "/api/items/8", body=b"chunked body", chunked=True)
    assert (status, body) == (201, b"chunked body")


def test_unknown_path_is_404_and_wrong_method_is_405(http_host: DevHost) -> None:
    assert request(http_host, "GET", "/nowhere")[0] == 404
    status, headers, _ = request(http_host, "POST", "/api/ping", body=b"{}")
    assert status == 405
    assert headers["Allow"] == "GET"


def test_exception_becomes_a_short_500(http_host: DevHost, caplog: pytest.LogCaptureFixture) -> None:
    status, _, body = request(http_host, "GET", "/api/boom")
    assert status == 500
    assert b"boom on purpose" not in body and len(body) < 200
    assert "boom on purpose" in caplog.text  # the traceback goes to the log


def test_text_response_gets_charset_and_head_has_no_body(http_host: DevHost) -> None:
    status, headers, body = request(http_host, "GET", "/api/text")
    assert (status, body.decode()) == (200, "h\u00e9llo")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    status, headers, body = request(http_host, "HEAD", "/api/text")
    assert (status, body) == (200, b"")


def test_async_function_receives_context(http_host: DevHost) -> None:
    status, _, body = request(http_host, "GET", "/api/async")
    assert status == 200
    assert json.loads(body)["function_name"] == "async_context"


# --------------------------------------------------------------------------------------------------
# Queue triggers against Azurite
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def queue_host(storage_connection: str) -> Iterator[tuple[DevHost, QueueClient, QueueClient]]:
    """A devhost polling a fresh queue; clients for the queue (base64 sender) and its poison queue."""
    name = f"devhost-{uuid.uuid4().hex[:12]}"
    env = {"AzureWebJobsStorage": storage_connection, "DEVHOST_TEST_QUEUE": name}
    sender = QueueClient.from_connection_string(storage_connection, name,
                                                message_encode_policy=TextBase64EncodePolicy())
    poison = QueueClient.from_connection_string(storage_connection, f"{name}-poison")
    host = DevHost(APP_MODULE, timers=False, environ=env)
    host.start()
    try:
        yield host, sender, poison
    finally:
        host.stop()
        sender.close()
        poison.close()


def calls_for(message_id: str) -> list[tuple[str, bytes, int]]:
    with sample.LOCK:
        return [call for call in sample.QUEUE_CALLS if call[0] == message_id]


def peek(client: QueueClient) -> list[Any]:
    """Visible messages, or none while the queue does not exist yet (the host creates it on first use)."""
    try:
        return client.peek_messages(max_messages=5)
    except ResourceNotFoundError:
        return []


def queue_is_empty(client: QueueClient) -> bool:
    return client.get_queue_properties().approximate_message_count == 0


def test_base64_messages_are_delivered_and_deleted(queue_host: tuple[DevHost, QueueClient, QueueClient]) -> None:
    host, sender, _ = queue_host
    assert any(line.startswith("record: queueTrigger (queue: devhost-") for line in host.describe())
    bodies = [f"hello {index} {uuid.uuid4()}" for index in range(10)]  # more than one batch of 4
    ids = [sender.send_message(body).id for body in bodies]
    wait_until(lambda: all(calls_for(message_id) for message_id in ids), what="all messages delivered")
    for message_id, body in zip(ids, bodies, strict=True):
        assert calls_for(message_id) == [(message_id, body.encode(), 1)]
    wait_until(lambda: queue_is_empty(sender), what="queue emptied")


def test_failing_message_is_retried_then_poisoned(queue_host: tuple[DevHost, QueueClient, QueueClient]) -> None:
    _, sender, poison = queue_host
    sent = sender.send_message("fail")
    original_text = base64.b64encode(b"fail").decode()
    poisoned = wait_until(lambda: peek(poison), what="a poison message")
    assert [message.content for message in poisoned] == [original_text]
    assert [call[2] for call in calls_for(sent.id)] == [1, 2, 3]  # maxDequeueCount 3 in the sample host.json
    wait_until(lambda: queue_is_empty(sender), what="the original deleted")


def test_message_that_is_not_base64_goes_straight_to_poison(
        queue_host: tuple[DevHost, QueueClient, QueueClient], storage_connection: str) -> None:
    _, sender, poison = queue_host
    plain = QueueClient.from_connection_string(storage_connection, sender.queue_name)  # no base64 policy
    sent = plain.send_message("not base64 at all!")
    poisoned = wait_until(lambda: peek(poison), what="a poison message")
    assert [message.content for message in poisoned] == ["not base64 at all!"]
    assert calls_for(sent.id) == []
    wait_until(lambda: queue_is_empty(sender), what="the original deleted")
    plain.close()


def test_message_over_max_dequeue_count_is_poisoned_without_a_call(storage_connection: str) -> None:
    name = f"devhost-{uuid.uuid4().hex[:12]}"
    sender = QueueClient.from_connection_string(storage_connection, name,
                                                message_encode_policy=TextBase64EncodePolicy())
    sender.create_queue()
    sent = sender.send_message("worn out")
    for _ in range(3):  # dequeue it maxDequeueCount times without settling, as a crashed host would
        received = sender.receive_message(visibility_timeout=1)
        assert received is not None
        sender.update_message(received.id, received.pop_receipt, visibility_timeout=0)
    env = {"AzureWebJobsStorage": storage_connection, "DEVHOST_TEST_QUEUE": name}
    poison = QueueClient.from_connection_string(storage_connection, f"{name}-poison")
    with DevHost(APP_MODULE, timers=False, environ=env):
        poisoned = wait_until(lambda: peek(poison), what="a poison message")
    assert [message.content for message in poisoned] == [base64.b64encode(b"worn out").decode()]
    assert calls_for(sent.id) == []
    sender.close()
    poison.close()


def test_a_listener_notices_unreachable_storage_quickly() -> None:
    """Storage calls give up within a couple of seconds (the SDK's default retries take a minute), so the
    poll loop's back-off decides when to try again, and a host started without storage says so at once."""
    dead = connection_string(*(free_port(),) * 3)
    spec = next(spec for spec in discover_functions(sample.app) if spec.trigger_type == "queueTrigger")
    listener = QueueListener(spec, "unreachable", dead, QueueOptions())
    started = time.monotonic()
    try:
        with pytest.raises(DevHostError, match="cannot create or reach queue 'unreachable'"):
            listener.start()
        assert time.monotonic() - started < 3
    finally:
        listener.stop()


# --------------------------------------------------------------------------------------------------
# Timer triggers
# --------------------------------------------------------------------------------------------------


def test_timers_run_on_startup_and_on_schedule() -> None:
    with sample.LOCK:
        sample.TIMER_CALLS.clear()
    with DevHost(APP_MODULE, queues=False, timers=True) as host:
        assert "on_startup: timerTrigger (schedule: 0 0 0 1 1 *, run on startup)" in host.describe()

        def calls() -> list[tuple[str, bool]]:
            with sample.LOCK:
                return list(sample.TIMER_CALLS)

        wait_until(lambda: ("on_startup", False) in calls(), timeout=5, what="the run-on-startup timer")
        wait_until(lambda: sum(name == "tick" for name, _ in calls()) >= 2, timeout=5, what="two ticks")
    assert calls()[0] == ("on_startup", False)
    assert all(not past_due for _, past_due in calls())


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------


def test_cli_loads_settings_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False,
                                    "Values": {"DEVHOST_FROM_FILE": "file", "DEVHOST_OVERRIDDEN": "file"}}))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEVHOST_OVERRIDDEN": "shell"}
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--app", "function_app", "--port", str(port), "--no-queues",
         "--no-timers", "--settings", str(settings)],
        cwd=APP_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []], daemon=True).start()
    seen: list[str] = []
    try:
        while not any(line.startswith("Gateway listening on") for line in seen):
            seen.append(lines.get(timeout=20))
        assert seen[-1].strip() == f"Gateway listening on http://127.0.0.1:{port}"
        while not any("record: queueTrigger (not started" in line for line in seen):
            seen.append(lines.get(timeout=10))

        def get(path: str) -> Any:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path)
            return json.loads(connection.getresponse().read())

        assert get("/api/settings/DEVHOST_FROM_FILE") == {"value": "file"}
        assert get("/api/settings/DEVHOST_OVERRIDDEN") == {"value": "shell"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    time.sleep(0.1)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    output = "".join(seen + rest)
    assert "ping: [GET] http://127.0.0.1:" in output
    assert "Gateway stopped" in output


def test_cli_reports_a_missing_app_module(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "devhost", "--app", "no_such_app", "--no-queues"],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "no module 'no_such_app'" in result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "line"),
    [
        ("SMS_PROVIDER", "nonsense", "error: SMS_PROVIDER must be outbox, twilio or acs, not 'nonsense'"),
        ("SMS_MAX_RECIPIENTS", "lots", "error: SMS_MAX_RECIPIENTS must be a whole number from 1 to 1000, not 'lots'"),
    ],
)
def test_cli_reports_a_bad_setting_in_one_line(setting: str, value: str, line: str) -> None:
    """The gateway refuses a bad setting at start-up; the host says which, without a traceback."""
    env = {name: text for name, text in os.environ.items() if not name.startswith(("SMS_", "TWILIO_", "ACS_"))}
    env.update(AzureWebJobsStorage="UseDevelopmentStorage=true", **{setting: value})
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "--port", str(free_port()), "--no-queues", "--no-timers",
         "--settings", "tests/empty.settings.json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [line]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_bug_in_the_app_keeps_its_traceback(tmp_path: Path) -> None:
    """A built-in exception while importing the app is a bug, not a setting: the traceback says where."""
    (tmp_path / "broken_app.py").write_text("import azure.functions\n\nundefined_name\n")
    result = subprocess.run([sys.executable, "-m", "devhost", "--app", "broken_app", "--no-queues", "--no-timers"],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "broken_app.py\", line 3" in result.stderr
    assert "NameError: name 'undefined_name' is not defined" in result.stderr
