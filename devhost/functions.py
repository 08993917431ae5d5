"""The app's functions: finding the FunctionApp, reading each function's trigger, and calling it.

The devhost asks the app for its functions once, as the Python worker does when the host indexes
them, and calls each user function with its trigger value by the binding's name (plus ``context``).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import azure.functions as func

from devhost.errors import DevHostError


def import_app(name: str) -> ModuleType:
    """Import the module that defines the app, as the worker does before it indexes the functions.

    An exception of the app's own class (a configuration error naming a setting, say) is a message
    for whoever starts the host, so it comes back as a DevHostError holding just that message. A
    built-in exception (NameError, ImportError, TypeError...) is a bug in the app and keeps its
    traceback.
    """
    try:
        return importlib.import_module(name)
    except Exception as error:
        if type(error).__module__ == "builtins":
            raise
        raise DevHostError(str(error)) from error


def find_app(module: ModuleType) -> func.FunctionRegister:
    """The module's FunctionApp, found like the worker does: the one FunctionRegister at module level."""
    candidate = getattr(module, "app", None)
    if isinstance(candidate, func.FunctionRegister):
        return candidate
    found = {id(value): value for value in vars(module).values() if isinstance(value, func.FunctionRegister)}
    if len(found) != 1:
        raise DevHostError(f"module {module.__name__!r} must define exactly one func.FunctionApp (found {len(found)})")
    return next(iter(found.values()))


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


def check_supported_bindings(spec: FunctionSpec) -> None:
    """Refuse input/output bindings the devhost cannot fill, rather than failing at each call."""
    for binding in spec.bindings:
        if binding is spec.trigger:
            continue
        if spec.trigger_type == "httpTrigger" and binding.get("type") == "http" and binding.get("name") == "$return":
            continue
        raise DevHostError(
            f"function {spec.name!r}: binding {binding.get('name')!r} of type {binding.get('type')!r} is not "
            "supported by devhost (only trigger bindings and the HTTP $return are)"
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

