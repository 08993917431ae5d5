"""Azure Functions bindings: each trigger hands its input to gateway/ and returns what it gets.

No business logic lives here (see gateway/service.py, gateway/delivery.py).
"""

import azure.functions as func

from gateway import http, worker
from gateway.runtime import check_configuration

check_configuration()  # a bad setting stops start-up here, with a message naming it

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

SEND_ROUTES = {
    "send_message": ("api/sendmessage", False),
    "send": ("api/send", False),
    "sms_send": ("api/sms/send", False),
    "send_message_immediate": ("api/sendmessage/immediate", True),
    "send_immediate": ("api/send/immediate", True),
    "sms_send_immediate": ("api/sms/send/immediate", True),
}


def _bind_send(name: str, route: str, immediate: bool) -> None:
    @app.function_name(name)
    @app.route(route=route, methods=["POST"])
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        return http.send(req, immediate=immediate)


for _name, (_route, _immediate) in SEND_ROUTES.items():
    _bind_send(_name, _route, _immediate)


@app.function_name("status_by_id")
@app.route(route="api/sms/{commId}", methods=["GET"])
def status_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return http.status_by_id(req)


@app.function_name("status_by_reference")
@app.route(route="api/sms/reference/{reference}", methods=["GET"])
def status_by_reference(req: func.HttpRequest) -> func.HttpResponse:
    return http.status_by_reference(req)


@app.function_name("health")
@app.route(route="api/health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return http.health(req)


@app.function_name("deliver")
@app.queue_trigger(arg_name="message", queue_name="%SMS_QUEUE_NAME%", connection="AzureWebJobsStorage")
def deliver(message: func.QueueMessage) -> None:
    worker.deliver(message)


@app.function_name("abandon")
@app.queue_trigger(arg_name="message", queue_name="%SMS_QUEUE_NAME%-poison", connection="AzureWebJobsStorage")
def abandon(message: func.QueueMessage) -> None:
    worker.abandon(message)


@app.function_name("sweep")
@app.timer_trigger(arg_name="timer", schedule="%SMS_SWEEP_SCHEDULE%", run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    worker.sweep()
