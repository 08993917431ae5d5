"""Azure Functions bindings: each trigger hands its input to gateway/ and returns what it gets.

The HTTP routes come from one table (gateway/routes.py); no business logic lives here.
"""

import azure.functions as func

from gateway import http, worker
from gateway.routes import CATCH_ALL, ROUTES
from gateway.runtime import check_configuration

check_configuration()  # a bad setting stops start-up here, with a message naming it

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for _route in ROUTES:
    app.function_name(_route.name)(app.route(route=_route.path, methods=list(_route.methods))(http.endpoint(_route)))


@app.function_name("unmatched")
@app.route(route=CATCH_ALL)
def unmatched(req: func.HttpRequest) -> func.HttpResponse:
    return http.unmatched(req)


@app.function_name("deliver")
@app.queue_trigger(arg_name="message", queue_name="%SMS_QUEUE_NAME%", connection="AzureWebJobsStorage")
def on_delivery_message(message: func.QueueMessage) -> None:
    worker.handle_delivery_message(message)


@app.function_name("abandon")
@app.queue_trigger(arg_name="message", queue_name="%SMS_QUEUE_NAME%-poison", connection="AzureWebJobsStorage")
def on_poison_message(message: func.QueueMessage) -> None:
    worker.handle_poison_message(message)


@app.function_name("sweep")
@app.timer_trigger(arg_name="timer", schedule="%SMS_SWEEP_SCHEDULE%", run_on_startup=False)
def on_sweep_timer(timer: func.TimerRequest) -> None:
    worker.sweep()


@app.function_name("check_receipts")
@app.timer_trigger(arg_name="timer", schedule="%SMS_RECEIPT_CHECK_SCHEDULE%", run_on_startup=False)
def on_receipt_check_timer(timer: func.TimerRequest) -> None:
    worker.check_receipts()


@app.function_name("retention")
@app.timer_trigger(arg_name="timer", schedule="%SMS_RETENTION_SCHEDULE%", run_on_startup=False)
def on_retention_timer(timer: func.TimerRequest) -> None:
    worker.delete_expired()


@app.function_name("webhooks")
@app.queue_trigger(arg_name="message", queue_name="%SMS_WEBHOOK_QUEUE_NAME%", connection="AzureWebJobsStorage")
def on_webhook_message(message: func.QueueMessage) -> None:
    worker.handle_webhook_message(message)


@app.function_name("webhooks_poison")
@app.queue_trigger(arg_name="message", queue_name="%SMS_WEBHOOK_QUEUE_NAME%-poison", connection="AzureWebJobsStorage")
def on_webhook_poison_message(message: func.QueueMessage) -> None:
    worker.handle_webhook_poison_message(message)
