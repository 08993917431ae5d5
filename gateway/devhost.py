"""Run an Azure Functions (Python v2 model) app locally without Core Tools.

``func start`` cannot be installed everywhere (its npm package downloads a binary), and the Python
worker the real host runs needs a newer Python than ours.  This module hosts the *same* decorated
functions the real host would: it asks the app for its functions once, reads each trigger binding,
and drives them itself:

* HTTP triggers are served on a stdlib ``ThreadingHTTPServer`` at their declared routes and methods,
  honouring ``extensions.http.routePrefix`` from host.json.
* Queue triggers poll Azure Storage queues with the host's ``extensions.queues`` semantics
  (batch size, back-off, visibility timeout, dequeue count, poison queue, base64 messages).
* Timer triggers follow their six-field NCRONTAB schedule (UTC), including ``run_on_startup``.

It carries no business logic.  Run it as::

    python -m gateway.devhost [--app function_app] [--host 127.0.0.1] [--port 7071] [--no-queues]
                              [--no-timers] [--settings local.settings.json] [--max-polling-interval S]

or in-process (tests)::

    with DevHost("tests.devhost_app.function_app", port=0) as host:
        urllib.request.urlopen(host.url + "/api/ping")
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import http.server
import importlib
import inspect
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, Self

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as TriggerQueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.queue import ExponentialRetry, QueueClient
from azure.storage.queue import QueueMessage as StorageQueueMessage

from gateway.devhost_cron import CronError, CronSchedule

logger = logging.getLogger("gateway.devhost")

DEFAULT_CONNECTION_SETTING = "AzureWebJobsStorage"
DEFAULT_ROUTE_PREFIX = "api"
# How long a message stays invisible while its function runs; the host also hides it for minutes.
PROCESSING_VISIBILITY_TIMEOUT = 600
# The host's queue poller starts at 100 ms when a queue is empty and doubles up to maxPollingInterval.
MIN_POLLING_INTERVAL = 0.1
# One quick retry inside a storage call, then the poll loop's own back-off takes over, as in the host. The
# SDK's default (15 s, then 18 s and 24 s between tries) would hide an outage inside one receive and keep
# the listener from noticing storage is back for half a minute.
LISTENER_RETRY: dict[str, float] = {"initial_backoff": 0.5, "increment_base": 2, "retry_total": 1,
                                    "random_jitter_range": 0.2}
# A timer invocation later than this after its scheduled second is reported as past due.
PAST_DUE_TOLERANCE = timedelta(seconds=1)


class DevHostError(RuntimeError):
    """The app or its settings cannot be hosted as declared; the message says what to fix."""


# --------------------------------------------------------------------------------------------------
# Settings, host.json and binding expressions
# --------------------------------------------------------------------------------------------------


def load_local_settings(path: Path, environ: MutableMapping[str, str] | None = None, *,
                        required: bool = False) -> dict[str, Any]:
    """Copy ``Values`` from local.settings.json into the environment, as ``func start`` does.

    Variables already set win, so a shell export overrides the file.  Returns the whole parsed file
    (the CLI reads ``Host.LocalHttpPort`` from it); an absent file gives ``{}`` unless ``required``.
    """
    target = os.environ if environ is None else environ
    if not path.exists():
        if required:
            raise DevHostError(f"settings file {path} does not exist")
        return {}
    document = _read_json_object(path)
    if document.get("IsEncrypted"):
        raise DevHostError(f"{path} is encrypted (IsEncrypted: true); decrypt it with Core Tools first")
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise DevHostError(f"{path}: Values must be an object of name: string")
    for name, value in values.items():
        if name in target:
            continue
        if isinstance(value, bool):
            target[name] = "true" if value else "false"
        elif value is None:
            target[name] = ""
        else:
            target[name] = str(value)
    return document


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise DevHostError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise DevHostError(f"{path} must hold a JSON object")
    return document


def read_host_json(directory: Path) -> dict[str, Any]:
    """host.json from the app's directory, or defaults (with a warning) when there is none."""
    path = directory / "host.json"
    if not path.exists():
        logger.warning("No host.json in %s; using the host's defaults", directory)
        return {}
    document = _read_json_object(path)
    return document


_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})(?::(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?)?$")


def parse_timespan(value: object, name: str) -> float:
    """Seconds from a .NET TimeSpan string (``"00:00:30"``, ``"1.00:00:00"``, ``"00:00:00.250"``).

    A bare JSON number is read as milliseconds, as version 1 host.json files wrote intervals.
    """
    if isinstance(value, bool):
        raise DevHostError(f"host.json {name} must be a TimeSpan like '00:00:30', not {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000.0
    if isinstance(value, str):
        match = _TIMESPAN.match(value.strip())
        if match:
            fraction = match["f"] or "0"
            return (
                int(match["days"] or 0) * 86400
                + int(match["h"]) * 3600
                + int(match["m"]) * 60
                + int(match["s"] or 0)
                + int(fraction) / 10 ** len(fraction)
            )
    raise DevHostError(f"host.json {name} must be a TimeSpan like '00:00:30', not {value!r}")


_BINDING_EXPRESSION = re.compile(r"%([^%]+)%")


def resolve_binding_expression(value: str, environ: Mapping[str, str], what: str) -> str:
    """Replace ``%SETTING%`` with the app setting's value, as the host does for binding properties."""

    def substitute(match: re.Match[str]) -> str:
        setting = match.group(1)
        resolved = environ.get(setting)
        if resolved is None or resolved == "":
            raise DevHostError(f"{what} {value!r} refers to app setting {setting!r}, which is not set")
        return resolved

    return _BINDING_EXPRESSION.sub(substitute, value)


def storage_connection_string(setting: str, environ: Mapping[str, str], what: str) -> str:
    """The connection string a binding's ``connection`` names (``X``, then ``AzureWebJobsX``, like the host).

    Identity-based connections (``X__accountName``, ``X__queueServiceUri``...) are out of scope here.
    """
    for name in (setting, f"AzureWebJobs{setting}"):
        value = environ.get(name)
        if value:
            return value
    for name in (setting, f"AzureWebJobs{setting}"):
        if any(key.startswith(f"{name}__") for key in environ):
            raise DevHostError(
                f"{what}: connection {setting!r} is identity-based ({name}__...); gateway.devhost supports "
                f"connection strings only: set {setting} to a connection string (e.g. UseDevelopmentStorage=true)"
            )
    raise DevHostError(f"{what}: connection setting {setting!r} is not set (expected a storage connection string)")


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` from host.json, with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, host_json: Mapping[str, Any], max_polling_interval: float | None = None) -> QueueOptions:
        """Read and check the queue options; ``max_polling_interval`` (seconds) overrides host.json."""
        section = (host_json.get("extensions") or {}).get("queues") or {}
        batch_size = _int_option(section, "batchSize", 16, 1, 32)
        threshold = _int_option(section, "newBatchThreshold", batch_size // 2, 0, None)
        polling = parse_timespan(section["maxPollingInterval"], "extensions.queues.maxPollingInterval") \
            if "maxPollingInterval" in section else 60.0
        if max_polling_interval is not None:
            polling = max_polling_interval
        visibility = parse_timespan(section["visibilityTimeout"], "extensions.queues.visibilityTimeout") \
            if "visibilityTimeout" in section else 0.0
        encoding = str(section.get("messageEncoding", "base64")).lower()
        if encoding not in {"base64", "none"}:
            raise DevHostError(f"host.json extensions.queues.messageEncoding must be base64 or none, not {encoding!r}")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=threshold,
            max_polling_interval=max(polling, 0.001),
            visibility_timeout=visibility,
            max_dequeue_count=_int_option(section, "maxDequeueCount", 5, 1, None),
            message_encoding=encoding,
        )


def _int_option(section: Mapping[str, Any], name: str, default: int, low: int, high: int | None) -> int:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise DevHostError(f"host.json extensions.queues.{name} must be a whole number {bound}, not {value!r}")
    return value


def route_prefix(host_json: Mapping[str, Any]) -> str:
    """``extensions.http.routePrefix`` without surrounding slashes (default ``api``)."""
    section = (host_json.get("extensions") or {}).get("http") or {}
    prefix = section.get("routePrefix", DEFAULT_ROUTE_PREFIX)
    return str(prefix if prefix is not None else DEFAULT_ROUTE_PREFIX).strip("/")


# --------------------------------------------------------------------------------------------------
# Functions of the app
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FunctionSpec:
    """One function of the app: its name, callable and trigger binding as the host sees them."""

    name: str
    function: Callable[..., Any]
    trigger: dict[str, Any]
    bindings: tuple[dict[str, Any], ...]
    directory: str = ""

    @property
    def trigger_type(self) -> str:
        return str(self.trigger.get("type", ""))

    @property
    def arg_name(self) -> str:
        return str(self.trigger["name"])


class _InvocationContext:
    """What a function's ``context`` parameter receives (the subset of ``func.Context`` we can fill)."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.invocation_id = str(uuid.uuid4())
        self.function_name = spec.name
        self.function_directory = spec.directory
        self.trace_context = None
        self.retry_context = None
        self.thread_local_storage = threading.local()


# get_functions() may fail on a second call (it re-validates names against its own record), so keep
# each app's list: several DevHosts over one imported app (e.g. in tests) then share it.
_FUNCTIONS_BY_APP: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def _app_functions(app: func.FunctionRegister) -> list[Any]:
    functions = _FUNCTIONS_BY_APP.get(app)
    if functions is None:
        functions = app.get_functions()
        _FUNCTIONS_BY_APP[app] = functions
    return functions


def discover_functions(app: func.FunctionRegister, directory: str = "") -> list[FunctionSpec]:
    """The app's functions with their trigger bindings, read from the JSON the real host indexes."""
    specs: list[FunctionSpec] = []
    for function in _app_functions(app):
        bindings = tuple(json.loads(raw) for raw in function.get_raw_bindings())
        triggers = [binding for binding in bindings if str(binding.get("type", "")).endswith("Trigger")]
        if len(triggers) != 1:
            raise DevHostError(f"function {function.get_function_name()!r} has {len(triggers)} triggers, not one")
        specs.append(FunctionSpec(function.get_function_name(), function.get_user_function(), triggers[0],
                                  bindings, directory))
    return specs


def _check_supported_bindings(spec: FunctionSpec) -> None:
    """Refuse input/output bindings the devhost cannot fill, rather than failing at each call."""
    for binding in spec.bindings:
        if binding is spec.trigger:
            continue
        if spec.trigger_type == "httpTrigger" and binding.get("type") == "http" and binding.get("name") == "$return":
            continue
        raise DevHostError(
            f"function {spec.name!r}: binding {binding.get('name')!r} of type {binding.get('type')!r} is not "
            "supported by gateway.devhost (only trigger bindings and the HTTP $return are)"
        )


def invoke(spec: FunctionSpec, trigger_value: object) -> Any:
    """Call the user function as the worker would: the trigger by its binding name, plus ``context``."""
    arguments: dict[str, Any] = {spec.arg_name: trigger_value}
    if "context" in inspect.signature(spec.function).parameters and spec.arg_name != "context":
        arguments["context"] = _InvocationContext(spec)
    result = spec.function(**arguments)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


# --------------------------------------------------------------------------------------------------
# HTTP routing
# --------------------------------------------------------------------------------------------------

_GUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
                   r"|^\{[0-9a-fA-F-]{36}\}$|^\([0-9a-fA-F-]{36}\)$")


def _is_number(value: str, kind: Callable[[str], object]) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def _constraint(text: str) -> Callable[[str], bool] | None:
    """A predicate for one ASP.NET route constraint; None for those we do not check (they pass)."""
    name, _, argument = text.partition("(")
    argument = argument.removesuffix(")")
    name = name.lower()
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: re.fullmatch(r"-?\d+", v) is not None and -2**31 <= int(v) < 2**31,
        "long": lambda v: re.fullmatch(r"-?\d+", v) is not None and -2**63 <= int(v) < 2**63,
        "guid": lambda v: _GUID.match(v) is not None,
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "bool": lambda v: v.lower() in {"true", "false"},
        "decimal": lambda v: _is_number(v, float),
        "double": lambda v: _is_number(v, float),
        "float": lambda v: _is_number(v, float),
    }
    if name in simple:
        return simple[name]
    numbers = [int(part) for part in argument.split(",") if part.strip().lstrip("-").isdigit()]
    if name == "minlength" and len(numbers) == 1:
        return lambda v: len(v) >= numbers[0]
    if name == "maxlength" and len(numbers) == 1:
        return lambda v: len(v) <= numbers[0]
    if name == "length" and len(numbers) in (1, 2):
        low, high = numbers[0], numbers[-1]
        return lambda v: low <= len(v) <= high
    if name in {"min", "max", "range"} and numbers:
        low = numbers[0] if name != "max" else -(2**63)
        high = numbers[-1] if name != "min" else 2**63
        return lambda v: re.fullmatch(r"-?\d+", v) is not None and low <= int(v) <= high
    if name == "regex" and argument:
        pattern = re.compile(argument, re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    return None


@dataclass(frozen=True)
class _Parameter:
    name: str
    checks: tuple[Callable[[str], bool], ...]
    optional: bool
    default: str | None
    catch_all: bool


@dataclass(frozen=True)
class _Segment:
    """One ``/``-separated part of a route template: a literal, one parameter, or a mix of both."""

    pattern: re.Pattern[str]
    parameters: tuple[_Parameter, ...]
    whole: _Parameter | None  # the parameter when the segment is exactly one (``{id}``), else None

    @property
    def rank(self) -> int:
        """ASP.NET-like precedence, lower wins: literal, mixed, constrained, plain, catch-all."""
        if not self.parameters:
            return 1
        parameter = self.whole
        if parameter is None:
            return 2
        if parameter.catch_all:
            return 5
        return 3 if parameter.checks else 4


_PARAMETER = re.compile(r"\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


def _split_constraints(text: str) -> list[str]:
    """``name:int:min(1)`` -> [``name``, ``int``, ``min(1)``], not splitting inside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    parts.append(current)
    return parts


class RouteTemplate:
    """An HTTP trigger route such as ``api/sms/{commId}``, ``items/{id:guid}`` or ``files/{*path}``.

    Literal text matches case-insensitively, like the host.  Constraints int, long, guid, alpha,
    bool, decimal/double/float, (min|max)length, length, min, max, range and regex are honoured;
    others (e.g. datetime) are accepted without checking.
    """

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        texts = self.template.split("/") if self.template else []
        self.segments: tuple[_Segment, ...] = tuple(self._compile_segment(text) for text in texts)
        for index, segment in enumerate(self.segments):
            if any(parameter.catch_all for parameter in segment.parameters) and (
                    segment.whole is None or index != len(self.segments) - 1):
                raise DevHostError(f"route {template!r}: a catch-all parameter must be the whole last segment")

    @staticmethod
    def _compile_segment(text: str) -> _Segment:
        regex = ""
        parameters: list[_Parameter] = []
        position = 0
        matches = list(_PARAMETER.finditer(text))
        for match in matches:
            regex += re.escape(text[position:match.start()])
            position = match.end()
            name, *constraints = _split_constraints(match.group(1))
            name, _, default = name.partition("=")
            catch_all = name.startswith("*")
            optional = name.endswith("?")
            name = name.lstrip("*").rstrip("?")
            if not name.isidentifier():
                raise DevHostError(f"route parameter {match.group(0)!r} has a name Python regexes cannot use")
            checks = tuple(check for check in map(_constraint, constraints) if check is not None)
            parameters.append(_Parameter(name, checks, optional or bool(default), default or None, catch_all))
            regex += f"(?P<{name}>.*)" if catch_all else f"(?P<{name}>.+?)"
        regex += re.escape(text[position:])
        whole = parameters[0] if len(matches) == 1 and matches[0].group(0) == text else None
        return _Segment(re.compile(regex, re.IGNORECASE | re.DOTALL), tuple(parameters), whole)

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(segment.rank for segment in self.segments)

    def match(self, path_segments: list[str]) -> dict[str, str] | None:
        """Route values when these decoded path segments fit the template, else None."""
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            whole = segment.whole
            if whole is not None and whole.catch_all:
                rest = "/".join(path_segments[index:]) or whole.default or ""
                if rest and not all(check(rest) for check in whole.checks):
                    return None
                if rest:
                    values[whole.name] = rest
                return values
            if index >= len(path_segments):
                # Only trailing optional parameters may be left out.
                for missing in self.segments[index:]:
                    if missing.whole is None or not missing.whole.optional:
                        return None
                    if missing.whole.default is not None:
                        values[missing.whole.name] = missing.whole.default
                return values
            found = segment.pattern.fullmatch(path_segments[index])
            if found is None:
                return None
            for parameter in segment.parameters:
                value = found.group(parameter.name)
                if not all(check(value) for check in parameter.checks):
                    return None
                values[parameter.name] = value
        if len(path_segments) > len(self.segments):
            return None
        return values


@dataclass(frozen=True)
class HttpRoute:
    """An HTTP-triggered function at its full route (route prefix included)."""

    spec: FunctionSpec
    template: RouteTemplate
    methods: frozenset[str]  # empty: every method

    def allows(self, method: str) -> bool:
        return not self.methods or method in self.methods


class RouteNotFound(LookupError):
    """No route matches the path (404)."""


class MethodNotAllowed(LookupError):
    """Routes match the path, but none for this method (405); ``allowed`` lists theirs."""

    def __init__(self, allowed: Iterable[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = sorted(set(allowed))


class Router:
    """Picks the function for a request: best precedence among routes that match path and method."""

    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        self.routes = sorted(routes, key=lambda route: (route.template.precedence, route.template.template.lower()))

    @classmethod
    def for_functions(cls, specs: Iterable[FunctionSpec], prefix: str) -> Router:
        routes = []
        for spec in specs:
            declared = str(spec.trigger.get("route") or spec.name).strip("/")
            full = f"{prefix}/{declared}".strip("/") if prefix else declared
            methods = frozenset(str(method).upper() for method in spec.trigger.get("methods") or ())
            routes.append(HttpRoute(spec, RouteTemplate(full), methods))
        return cls(routes)

    def resolve(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]]:
        """The route and its route values for ``path`` (URL-encoded, no query string)."""
        trimmed = path.strip("/")
        segments = [urllib.parse.unquote(part) for part in trimmed.split("/")] if trimmed else []
        allowed: list[str] = []
        for route in self.routes:
            values = route.template.match(segments)
            if values is None:
                continue
            if route.allows(method):
                return route, values
            allowed.extend(route.methods)
        if allowed:
            raise MethodNotAllowed(allowed)
        raise RouteNotFound(path)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    """Turns one HTTP request into an ``HttpRequest`` for the routed function and writes its response."""

    server: _HttpServer
    protocol_version = "HTTP/1.1"  # so Expect: 100-continue works; every response still closes

    def _handle(self) -> None:
        started = time.perf_counter()
        status = 500
        target = "-"
        try:
            status, target = self._dispatch()
        except (ConnectionError, TimeoutError):
            logger.info("%s %s: client went away", self.command, self.path)
            return
        finally:
            self.close_connection = True
        logger.info("%s %s -> %d (%s, %.1f ms)", self.command, self.path, status, target,
                    (time.perf_counter() - started) * 1000)

    def _dispatch(self) -> tuple[int, str]:
        parsed = urllib.parse.urlsplit(self.path)
        method = self.command.upper()
        try:
            body = self._read_body()
        except ValueError as error:
            self._send_plain(400, f"Bad Request: {error}")
            return 400, "-"
        try:
            route, route_params = self.server.router.resolve(method, parsed.path)
        except RouteNotFound:
            self._send_plain(404, "Not Found")
            return 404, "-"
        except MethodNotAllowed as error:
            self._send_plain(405, "Method Not Allowed", {"Allow": ", ".join(error.allowed)})
            return 405, "-"

        query: dict[str, str] = {}
        for name, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        host_header = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        request = func.HttpRequest(method, f"http://{host_header}{self.path}", headers=headers, params=query,
                                   route_params=route_params, body=body)
        name = route.spec.name
        try:
            result = invoke(route.spec, request)
        except Exception:
            logger.error("Function %s failed:\n%s", name, traceback.format_exc().rstrip())
            self._send_plain(500, "Internal Server Error: the function raised an exception (see the host log)")
            return 500, name
        if result is None:
            self._send(204, [], b"")
            return 204, name
        if isinstance(result, str | bytes):
            payload = result.encode("utf-8") if isinstance(result, str) else result
            self._send(200, [("Content-Type", "text/plain; charset=utf-8")], payload)
            return 200, name
        if not isinstance(result, func.HttpResponse):
            logger.error("Function %s returned %s, not an HttpResponse", name, type(result).__name__)
            self._send_plain(500, "Internal Server Error: the function returned no HttpResponse")
            return 500, name
        self._send(result.status_code, self._response_headers(result), result.get_body() or b"")
        return result.status_code, name

    @staticmethod
    def _response_headers(response: func.HttpResponse) -> list[tuple[str, str]]:
        """Headers as the worker encodes them: a Content-Type from mimetype/charset unless one is set."""
        headers = [(name, value) for name, value in response.headers.items()]
        if not any(name.lower() == "content-type" for name, _ in headers):
            mimetype = response.mimetype
            content_type = f"{mimetype}; charset={response.charset}" if mimetype.startswith("text/") else mimetype
            headers.append(("Content-Type", content_type))
        return headers

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537).split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise ValueError("malformed chunked body") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        if not length_text.strip().isdigit():
            raise ValueError("bad Content-Length")
        return self.rfile.read(int(length_text))

    def _send_plain(self, status: int, text: str, extra: Mapping[str, str] | None = None) -> None:
        headers = [("Content-Type", "text/plain; charset=utf-8"), *(extra or {}).items()]
        self._send(status, headers, text.encode("utf-8"))

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        for name, value in headers:
            if name.lower() not in {"content-length", "connection", "transfer-encoding", "date"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's stderr access log; _handle logs one line per request instead."""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of clients then meets resets and 1 s SYN retries.
    request_queue_size = 128
    router: Router


# --------------------------------------------------------------------------------------------------
# Queue triggers
# --------------------------------------------------------------------------------------------------


class QueueListener:
    """Polls one queue for one function the way the host's queue listener does.

    Fetches up to ``batchSize`` messages whenever no more than ``newBatchThreshold`` are in flight,
    backs off exponentially (100 ms doubling to ``maxPollingInterval``) while the queue is empty, and
    settles each message: delete on success; on failure make it visible again after
    ``visibilityTimeout``, or move it to ``<queue>-poison`` once it reached ``maxDequeueCount``.
    """

    def __init__(self, spec: FunctionSpec, queue_name: str, connection_string: str, options: QueueOptions) -> None:
        self.spec = spec
        self.queue_name = queue_name
        self.poison_name = f"{queue_name}-poison"
        self.options = options
        try:
            self._client = QueueClient.from_connection_string(
                connection_string, queue_name, retry_policy=ExponentialRetry(**LISTENER_RETRY))
            self._poison = QueueClient.from_connection_string(
                connection_string, self.poison_name, retry_policy=ExponentialRetry(**LISTENER_RETRY))
        except ValueError as error:
            raise DevHostError(f"function {spec.name!r}: the storage connection string is invalid: {error}") from error
        self._poison_ready = False
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._pending: dict[Future[None], StorageQueueMessage] = {}
        self._pool = ThreadPoolExecutor(max_workers=options.batch_size, thread_name_prefix=f"queue-{spec.name}")
        self._thread = threading.Thread(target=self._poll, name=f"poll-{spec.name}", daemon=True)

    def start(self) -> None:
        _create_queue(self._client)
        self._thread.start()

    def stop(self) -> None:
        """Stop fetching, hand back messages not yet started, and wait for running ones."""
        self._stop.set()
        with self._idle:
            self._idle.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        with self._idle:
            pending = list(self._pending.items())
        for future, message in pending:
            if future.cancel():
                self._settle(lambda m=message: self._make_visible(m, 0), message)
        self._pool.shutdown(wait=True)
        self._client.close()
        self._poison.close()

    def _poll(self) -> None:
        delay = min(MIN_POLLING_INTERVAL, self.options.max_polling_interval)
        while not self._stop.is_set():
            with self._idle:
                self._idle.wait_for(
                    lambda: self._stop.is_set() or len(self._pending) <= self.options.new_batch_threshold)
            if self._stop.is_set():
                return
            try:
                pages = self._client.receive_messages(messages_per_page=self.options.batch_size,
                                                      visibility_timeout=PROCESSING_VISIBILITY_TIMEOUT).by_page()
                messages = list(next(pages, []))
            except Exception as error:  # keep polling: storage may come back
                logger.warning("Queue %s: receiving failed (%s: %s); retrying in %.1f s", self.queue_name,
                               error.__class__.__name__, error, delay)
                messages = []
            if not messages:
                self._stop.wait(delay)
                delay = min(delay * 2, self.options.max_polling_interval)
                continue
            delay = min(MIN_POLLING_INTERVAL, self.options.max_polling_interval)
            for message in messages:
                with self._idle:
                    future = self._pool.submit(self._process, message)
                    self._pending[future] = message
                future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._idle:
            self._pending.pop(future, None)
            self._idle.notify_all()

    def _decode(self, content: str) -> bytes:
        if self.options.message_encoding == "none":
            return content.encode("utf-8")
        compact = re.sub(r"\s+", "", content)
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"not valid base64 ({error})") from error

    def _process(self, message: StorageQueueMessage) -> None:
        count = message.dequeue_count or 1
        content = message.content if isinstance(message.content, str) else str(message.content or "")
        if count > self.options.max_dequeue_count:
            self._to_poison(message, content, f"its dequeue count {count} exceeds maxDequeueCount")
            return
        try:
            body = self._decode(content)
        except ValueError as error:
            self._to_poison(message, content, f"it cannot be decoded: {error}")
            return
        trigger_message = TriggerQueueMessage(
            id=message.id, body=body, dequeue_count=count, insertion_time=message.inserted_on,
            expiration_time=message.expires_on, time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt)
        try:
            invoke(self.spec, trigger_message)
        except Exception:
            logger.error("Function %s failed on message %s (dequeue count %d):\n%s", self.spec.name, message.id,
                         count, traceback.format_exc().rstrip())
            if count >= self.options.max_dequeue_count:
                self._to_poison(message, content, f"it failed {count} times (maxDequeueCount)")
            else:
                visibility = math.ceil(self.options.visibility_timeout)
                self._settle(lambda: self._make_visible(message, visibility), message)
            return
        logger.info("Function %s processed message %s from %s", self.spec.name, message.id, self.queue_name)
        self._settle(lambda: self._client.delete_message(message), message)

    def _make_visible(self, message: StorageQueueMessage, seconds: int) -> None:
        """Change only the visibility: passing the message object would make the SDK rewrite its content."""
        self._client.update_message(message.id, message.pop_receipt, visibility_timeout=seconds)

    def _to_poison(self, message: StorageQueueMessage, content: str, reason: str) -> None:
        """Copy the message's original text to ``<queue>-poison`` and delete it, as the host does."""
        logger.warning("Moving message %s from %s to %s because %s", message.id, self.queue_name,
                       self.poison_name, reason)

        def move() -> None:
            if not self._poison_ready:
                _create_queue(self._poison)
                self._poison_ready = True
            self._poison.send_message(content)
            self._client.delete_message(message)

        self._settle(move, message)

    def _settle(self, action: Callable[[], object], message: StorageQueueMessage) -> None:
        try:
            action()
        except AzureError as error:
            logger.error("Queue %s: could not settle message %s: %s", self.queue_name, message.id, error)


def _create_queue(client: QueueClient) -> None:
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    except AzureError as error:
        raise DevHostError(f"cannot create or reach queue {client.queue_name!r}: {error}") from error


_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


# --------------------------------------------------------------------------------------------------
# Timer triggers
# --------------------------------------------------------------------------------------------------


class TimerRunner:
    """Calls one timer-triggered function on its schedule, one invocation at a time like the host.

    Occurrences missed while the function ran long collapse into one past-due invocation.
    """

    def __init__(self, spec: FunctionSpec, schedule: CronSchedule, run_on_startup: bool,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.spec = spec
        self.schedule = schedule
        self.run_on_startup = run_on_startup
        self._clock = clock
        self._stop = threading.Event()
        self._last: datetime | None = None
        self._thread = threading.Thread(target=self._run, name=f"timer-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        now = self._clock()
        due = self.schedule.next_after(now)
        if self.run_on_startup:
            self._fire(now, due, past_due=False)
        while not self._stop.is_set():
            wait = (due - self._clock()).total_seconds()
            if wait > 0:
                if self._stop.wait(min(wait, 1.0)):
                    return
                continue
            now = self._clock()
            following = self.schedule.next_after(max(now, due))
            self._fire(now, following, past_due=now - due > PAST_DUE_TOLERANCE)
            due = following

    def _fire(self, now: datetime, following: datetime, past_due: bool) -> None:
        status = {"Last": (self._last or now).isoformat(), "Next": following.isoformat(),
                  "LastUpdated": now.isoformat()}
        self._last = now
        try:
            invoke(self.spec, TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True}))
        except Exception:
            logger.error("Function %s failed:\n%s", self.spec.name, traceback.format_exc().rstrip())
        else:
            logger.info("Function %s ran (timer%s)", self.spec.name, ", past due" if past_due else "")


# --------------------------------------------------------------------------------------------------
# The host
# --------------------------------------------------------------------------------------------------


def _find_app(module: ModuleType) -> func.FunctionRegister:
    """The module's FunctionApp, found like the worker does: the one FunctionRegister at module level."""
    candidate = getattr(module, "app", None)
    if isinstance(candidate, func.FunctionRegister):
        return candidate
    found = {id(value): value for value in vars(module).values() if isinstance(value, func.FunctionRegister)}
    if len(found) != 1:
        raise DevHostError(f"module {module.__name__!r} must define exactly one func.FunctionApp (found {len(found)})")
    return next(iter(found.values()))


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
    ``max_polling_interval`` (seconds) overrides host.json's.  App settings are read from
    ``environ`` (default ``os.environ``) when ``start()`` runs.
    """

    def __init__(self, app: str | ModuleType | func.FunctionRegister = "function_app",
                 host_json: Mapping[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 queues: bool = True, timers: bool = True, max_polling_interval: float | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        directory: Path | None = None
        if isinstance(app, str):
            app = importlib.import_module(app)
        if isinstance(app, ModuleType):
            directory = Path(app.__file__).resolve().parent if app.__file__ else None
            app = _find_app(app)
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
        self.environ = environ
        self.functions = discover_functions(app, str(directory or ""))
        self._server: _HttpServer | None = None
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
                _check_supported_bindings(spec)
                plan.http.append(spec)
            elif kind == "queueTrigger":
                if not self.queues_enabled:
                    plan.skipped.append(_Listing(spec.name, "queueTrigger (not started: queues are off)"))
                    continue
                _check_supported_bindings(spec)
                what = f"function {spec.name!r}: queueName"
                queue = resolve_binding_expression(str(spec.trigger.get("queueName", "")), environ, what)
                if not _QUEUE_NAME.match(queue):
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
                _check_supported_bindings(spec)
                text = resolve_binding_expression(str(spec.trigger.get("schedule", "")), environ,
                                                  f"function {spec.name!r}: schedule")
                try:
                    schedule = CronSchedule.parse(text)
                    schedule.next_after(datetime.now(UTC))  # a schedule that never fires fails here, not later
                except CronError as error:
                    raise DevHostError(f"function {spec.name!r}: {error}") from error
                plan.timers.append((spec, schedule, bool(spec.trigger.get("runOnStartup"))))
            else:
                plan.skipped.append(_Listing(spec.name, f"{kind} (not supported by gateway.devhost; not started)"))
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
            server = _HttpServer((self.host, self.port), _RequestHandler)
            server.router = Router.for_functions(plan.http, route_prefix(self.host_json))
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


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gateway.devhost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="function_app", help="module defining the FunctionApp (default function_app)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="HTTP port (default: Host.LocalHttpPort from the settings file, else 7071)")
    parser.add_argument("--no-queues", action="store_true", help="do not poll queues (no storage needed)")
    parser.add_argument("--no-timers", action="store_true", help="do not run timer triggers")
    parser.add_argument("--settings", default=None,
                        help="local.settings.json to load into the environment (default ./local.settings.json)")
    parser.add_argument("--max-polling-interval", type=float, default=None, metavar="SECONDS",
                        help="override host.json extensions.queues.maxPollingInterval")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: load settings, import the app, host it until SIGINT/SIGTERM."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every storage request (each poll) at INFO
    try:
        settings = load_local_settings(Path(args.settings or "local.settings.json"), required=args.settings is not None)
        port = args.port
        if port is None:
            port = int((settings.get("Host") or {}).get("LocalHttpPort") or 7071)
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        host = DevHost(args.app, host=args.host, port=port, queues=not args.no_queues, timers=not args.no_timers,
                       max_polling_interval=args.max_polling_interval)
        stopping = threading.Event()

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            logger.info("Received %s; shutting down", signal.Signals(signum).name)
            stopping.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        host.start()
    except ModuleNotFoundError as error:
        if error.name != args.app:
            raise
        print(f"gateway.devhost: no module {args.app!r} in {os.getcwd()} (use --app)", file=sys.stderr)
        return 1
    except (DevHostError, OSError) as error:
        print(f"gateway.devhost: {error}", file=sys.stderr)
        return 1
    print(f"Gateway listening on {host.url}")
    print("Functions:")
    for line in host.describe():
        print(f"    {line}")
    sys.stdout.flush()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        host.stop()
    print("Gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
