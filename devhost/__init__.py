"""Run an Azure Functions (Python v2 model) app locally without Core Tools.

``func start`` cannot be installed everywhere (its npm package downloads a binary), and the Python
worker the real host runs needs a newer Python than ours.  This package hosts the *same* decorated
functions the real host would: it asks the app for its functions once, reads each trigger binding,
and drives them itself:

* HTTP triggers are served on a stdlib ``ThreadingHTTPServer`` at their declared routes and methods,
  honouring ``extensions.http.routePrefix`` from host.json.
* Queue triggers poll Azure Storage queues with the host's ``extensions.queues`` semantics
  (batch size, back-off, visibility timeout, dequeue count, poison queue, base64 messages).
* Timer triggers follow their six-field NCRONTAB schedule (UTC), including ``run_on_startup``.

It carries no business logic and is not part of the deployment package.  Run it as::

    python -m devhost [--app function_app] [--host 127.0.0.1] [--port 7071] [--no-queues]
                      [--no-timers] [--settings local.settings.json] [--max-polling-interval S]
                      [--idle-timeout S] [--log-level INFO]

or in-process (tests)::

    with DevHost("tests.devhost_app.function_app", port=0) as host:
        urllib.request.urlopen(host.url + "/api/ping")

Modules: ``config`` (local.settings.json, host.json, ``%SETTING%`` and connections), ``functions``
(finding and calling the app's functions), ``routing``, ``body`` and ``server`` (HTTP), ``queues``, ``cron``
and ``timers``, ``host`` (the DevHost that wires them), ``__main__`` (the command line), and
``azurite`` (a real Azurite on free ports, for tests and benchmarks).
"""
