"""A tiny Functions app for tests/integration/test_devhost.py: one function per trigger shape devhost hosts.

The devhost runs in the test process, so functions record what they saw in module-level lists.
"""

import json
import os
import threading

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

LOCK = threading.Lock()
QUEUE_CALLS: list[tuple[str, bytes, int]] = []  # (message id, body, dequeue_count)
TIMER_CALLS: list[tuple[str, bool]] = []  # (function, past_due)


def _json(value: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


@app.route(route="api/ping", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    response = _json({"params": dict(req.params), "x_test": req.headers.get("X-Test"), "url": req.url,
                      "method": req.method})
    response.headers["X-Devhost"] = "yes"
    return response


@app.route(route="api/items/{itemId}", methods=["GET", "POST"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    if req.method == "POST":
        return func.HttpResponse(req.get_body(), status_code=201, mimetype="application/octet-stream",
                                 headers={"X-Item-Id": req.route_params["itemId"]})
    return _json({"route": "item", "route_params": dict(req.route_params)})


@app.route(route="api/items/special", methods=["GET"])
def special_item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "special", "route_params": dict(req.route_params)})


@app.route(route="api/sms/{commId}", methods=["GET"])
def sms_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "sms", "route_params": dict(req.route_params)})


@app.route(route="api/sms/reference/{reference}", methods=["GET"])
def sms_by_reference(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "reference", "route_params": dict(req.route_params)})


@app.route(route="api/guid/{id:guid}", methods=["GET"])
def by_guid(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"route": "guid", "route_params": dict(req.route_params)})


@app.route(route="api/text")
def text(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("h\u00e9llo")


@app.route(route="api/boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom on purpose")


@app.function_name("async_context")
@app.route(route="api/async", methods=["GET"])
async def async_with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _json({"function_name": context.function_name, "invocation_id": context.invocation_id})


@app.route(route="api/settings/{name}", methods=["GET"])
def setting(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"value": os.environ.get(req.route_params["name"])})


@app.queue_trigger(arg_name="msg", queue_name="%DEVHOST_TEST_QUEUE%", connection="AzureWebJobsStorage")
def record(msg: func.QueueMessage) -> None:
    body = msg.get_body()
    with LOCK:
        QUEUE_CALLS.append((msg.id, body, msg.dequeue_count))
    if body == b"fail":
        raise RuntimeError("failing on purpose")


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
def tick(timer: func.TimerRequest) -> None:
    with LOCK:
        TIMER_CALLS.append(("tick", timer.past_due))


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
def on_startup(timer: func.TimerRequest) -> None:
    with LOCK:
        TIMER_CALLS.append(("on_startup", timer.past_due))
