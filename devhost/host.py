"""The DevHost: one app's HTTP, queue and timer triggers hosted in this process.

It indexes the app's functions, checks every trigger's configuration before anything starts (so a
missing setting fails start-up, not the first message), then serves HTTP, starts a listener per
queue trigger and a runner per timer, and stops them in reverse.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Self

import azure.functions as func

from devhost.config import (
    DEFAULT_CONNECTION_SETTING,
    read_host_json,
    resolve_binding_expression,
    storage_connection_string,
)
from devhost.cron import CronError, CronSchedule
from devhost.errors import DevHostError
from devhost.functions import FunctionSpec, check_supported_bindings, discover_functions, find_app, import_app
from devhost.queues import QueueListener, QueueOptions, is_valid_queue_name
from devhost.routing import Router, route_prefix
from devhost.server import IDLE_TIMEOUT_SECONDS, HttpServer
from devhost.timers import TimerRunner


@dataclass
class _Listing:
    """One line of the function list printed at start-up."""

    name: str
    text: str


@dataclass
class _Plan:
    """What start() will run, worked out before anything starts so configuration errors come first."""

    http: list[FunctionSpec] = field(default_factory=list)
    queues: list[tuple[FunctionSpec, str, str]] = field(default_factory=list)
    timers: list[tuple[FunctionSpec, CronSchedule, bool]] = field(default_factory=list)
    skipped: list[_Listing] = field(default_factory=list)


class DevHost:
    """Hosts a Functions app's HTTP, queue and timer triggers in this process.

    ``app`` is a module name (imported; host.json is read from its directory unless ``host_json``
    is given), an imported module, or a ``func.FunctionApp``.  ``port=0`` picks a free port (see
    ``url`` after ``start()``).  ``queues``/``timers`` switch those triggers off;
    ``max_polling_interval`` (seconds) overrides host.json's; ``idle_timeout`` is how long (seconds)
    the HTTP server waits for a silent client.  App settings are read from ``environ`` (default
    ``os.environ``) when ``start()`` runs.
    """

    def __init__(self, app: str | ModuleType | func.FunctionRegister = "function_app",
                 host_json: Mapping[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 queues: bool = True, timers: bool = True, max_polling_interval: float | None = None,
                 idle_timeout: float = IDLE_TIMEOUT_SECONDS, environ: Mapping[str, str] | None = None) -> None:
        directory: Path | None = None
        if isinstance(app, str):
            app = import_app(app)
        if isinstance(app, ModuleType):
            directory = Path(app.__file__).resolve().parent if app.__file__ else None
            app = find_app(app)
        if not isinstance(app, func.FunctionRegister):
            raise DevHostError(f"expected a module name, module or func.FunctionApp, not {type(app).__name__}")
        self.app = app
        self.directory = directory
        if host_json is None:
            host_json = read_host_json(directory) if directory else {}
        self.host_json: dict[str, Any] = dict(host_json)
        self.host = host
        self.port = port
        self.queues_enabled = queues
        self.timers_enabled = timers
        self.max_polling_interval = max_polling_interval
        self.idle_timeout = idle_timeout
        self.environ = environ
        self.functions = discover_functions(app, str(directory or ""))
        self._server: HttpServer | None = None
        self._server_thread: threading.Thread | None = None
        self._listeners: list[QueueListener] = []
        self._timers: list[TimerRunner] = []
        self._listing: list[_Listing] = []
        self._started = False

    @property
    def url(self) -> str:
        """Base URL of the HTTP server (valid after start(); resolves port 0 to the real port)."""
        if self._server is None:
            raise RuntimeError("DevHost is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _plan(self, environ: Mapping[str, str]) -> _Plan:
        plan = _Plan()
        for spec in self.functions:
            kind = spec.trigger_type
            if _flag_set(environ.get(f"AzureWebJobs.{spec.name}.Disabled")):
                plan.skipped.append(_Listing(spec.name, f"{kind} (disabled by AzureWebJobs.{spec.name}.Disabled)"))
                continue
            if kind == "httpTrigger":
                check_supported_bindings(spec)
                plan.http.append(spec)
            elif kind == "queueTrigger":
                if not self.queues_enabled:
                    plan.skipped.append(_Listing(spec.name, "queueTrigger (not started: queues are off)"))
                    continue
                check_supported_bindings(spec)
                what = f"function {spec.name!r}: queueName"
                queue = resolve_binding_expression(str(spec.trigger.get("queueName", "")), environ, what)
                if not is_valid_queue_name(queue):
                    raise DevHostError(f"{what} {queue!r} is not a valid queue name (3-63 lowercase letters, "
                                       "digits and single hyphens)")
                setting = str(spec.trigger.get("connection") or DEFAULT_CONNECTION_SETTING)
                setting = resolve_binding_expression(setting, environ, f"function {spec.name!r}: connection")
                connection = storage_connection_string(setting, environ, f"function {spec.name!r}")
                plan.queues.append((spec, queue, connection))
            elif kind == "timerTrigger":
                if not self.timers_enabled:
                    plan.skipped.append(_Listing(spec.name, "timerTrigger (not started: timers are off)"))
                    continue
                check_supported_bindings(spec)
                text = resolve_binding_expression(str(spec.trigger.get("schedule", "")), environ,
                                                  f"function {spec.name!r}: schedule")
                try:
                    schedule = CronSchedule.parse(text)
                    schedule.next_after(datetime.now(UTC))  # a schedule that never fires fails here, not later
                except CronError as error:
                    raise DevHostError(f"function {spec.name!r}: {error}") from error
                plan.timers.append((spec, schedule, bool(spec.trigger.get("runOnStartup"))))
            else:
                plan.skipped.append(_Listing(spec.name, f"{kind} (not supported by devhost; not started)"))
        return plan

    def start(self) -> Self:
        """Check the configuration, then serve HTTP and start queue pollers and timers."""
        if self._started:
            raise RuntimeError("DevHost already started")
        environ = os.environ if self.environ is None else self.environ
        plan = self._plan(environ)
        options = QueueOptions.from_host_json(self.host_json, self.max_polling_interval)
        self._started = True
        try:
            server = HttpServer((self.host, self.port), Router.for_functions(plan.http, route_prefix(self.host_json)),
                                idle_timeout=self.idle_timeout)
            self._server = server
            self._server_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                                   name="devhost-http", daemon=True)
            self._server_thread.start()
            for route in sorted(server.router.routes, key=lambda r: self.functions.index(r.spec)):
                methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
                self._listing.append(_Listing(route.spec.name, f"[{methods}] {self.url}/{route.template.template}"))
            for spec, queue, connection in plan.queues:
                listener = QueueListener(spec, queue, connection, options)
                listener.start()
                self._listeners.append(listener)
                setting = spec.trigger.get("connection") or DEFAULT_CONNECTION_SETTING
                self._listing.append(_Listing(spec.name, f"queueTrigger (queue: {queue}, connection: {setting})"))
            for spec, schedule, on_startup in plan.timers:
                runner = TimerRunner(spec, schedule, on_startup)
                runner.start()
                self._timers.append(runner)
                extra = ", run on startup" if on_startup else ""
                self._listing.append(_Listing(spec.name, f"timerTrigger (schedule: {schedule.expression}{extra})"))
        except Exception:
            self.stop()
            raise
        self._listing.extend(plan.skipped)
        return self

    def describe(self) -> list[str]:
        """One line per function, like the list ``func start`` prints."""
        return [f"{item.name}: {item.text}" for item in self._listing]

    def stop(self) -> None:
        """Stop pollers and timers (waiting for running invocations), then close the server."""
        for listener in self._listeners:
            listener.stop()
        for runner in self._timers:
            runner.stop()
        self._listeners.clear()
        self._timers.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join()
            self._server_thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _flag_set(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}
