"""What configures the host and the bindings: local.settings.json, host.json and app-setting references.

``func start`` copies local.settings.json's ``Values`` into the environment, reads host.json from the
app's directory, and resolves ``%SETTING%`` and ``connection`` names in binding properties against
the app settings. These are the same rules, for the trigger kinds the devhost runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from devhost.errors import DevHostError

logger = logging.getLogger(__name__)

DEFAULT_CONNECTION_SETTING = "AzureWebJobsStorage"


def load_local_settings(path: Path, environ: MutableMapping[str, str] | None = None, *,
                        required: bool = False) -> dict[str, Any]:
    """Copy ``Values`` from local.settings.json into the environment, as ``func start`` does.

    Variables already set win, so a shell export overrides the file.  Returns the whole parsed file
    (``python -m devhost`` reads ``Host.LocalHttpPort``); an absent file gives ``{}`` unless ``required``.
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
    return _read_json_object(path)


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
                f"{what}: connection {setting!r} is identity-based ({name}__...); devhost supports "
                f"connection strings only: set {setting} to a connection string (e.g. UseDevelopmentStorage=true)"
            )
    raise DevHostError(f"{what}: connection setting {setting!r} is not set (expected a storage connection string)")
