"""Stands in for the Azure CLI in the deploy tests: records every call and answers from a world file.

Run as ``python fake_az.py <az arguments>`` with ``FAKE_AZ_DIR`` naming a folder that holds ``world.json``
(what Azure looks like: the subscription, whether the app name is free, the apps that exist, how the Key Vault
references resolve, the deployment's outputs, the vault's secrets, how often Event Grid fails to validate a webhook).
Each call is appended to ``calls.jsonl`` there; each deployment's parameters file is kept there, named after its
template (``parameters.json`` for main.bicep, ``<template>.parameters.json`` for any other). Answers are the
REST API's shapes, and ``--query`` / ``-o`` are applied the way the real CLI does (JMESPath; knack's tsv rows:
a list is one row per item, a lone boolean is lower case, null is ``None``), so the scripts' queries are tested
too. A command this fake does not know fails loudly, as a mistyped az command would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import jmespath

STATE = Path(os.environ["FAKE_AZ_DIR"])
WORLD: dict[str, Any] = json.loads((STATE / "world.json").read_text())


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def counter(name: str, bump: bool = False) -> int:
    file = STATE / f"{name}.count"
    count = int(file.read_text()) if file.exists() else 0
    if bump:
        count += 1
        file.write_text(str(count))
    return count


def references(url: str) -> dict[str, Any]:
    """The app's references as GET .../config/configreferences/appsettings returns them, after N refreshes."""
    refreshes = counter("refresh")
    site = url.split("/config/")[0].removeprefix("https://management.azure.com")
    value = []
    for setting, statuses in WORLD.get("references", {}).items():
        status = statuses[min(max(refreshes - 1, 0), len(statuses) - 1)]
        value.append({"id": f"{site}/config/configreferences/appsettings/{setting}", "name": setting,
                      "properties": {"status": status, "vaultName": "kv-test", "secretName": setting.lower()}})
    return {"value": value}


def deploy(args: list[str]) -> Any:
    """az deployment group create: keep the parameters file; a webhook subscription's deployment fails while Event
    Grid's validation handshake does (``validation_failures`` times), with the error ARM reports for it."""
    template = Path(option(args, "--template-file") or "")
    assert template.is_file(), f"no template at {template}"
    parameters = Path((option(args, "--parameters") or "@")[1:])
    name = "parameters.json" if template.name == "main.bicep" else f"{template.stem}.parameters.json"
    shutil.copy(parameters, STATE / name)
    if template.name == "acs-events-subscription.bicep" and counter("validation", bump=True) <= WORLD.get(
            "validation_failures", 0):
        raise SystemExit("ERROR: (Url validation) Webhook validation handshake failed for https://app-test."
                         "azurewebsites.net/api/providers/acs/events. Http POST request failed with response code "
                         "Unknown.")
    return {}


def rest(args: list[str]) -> Any:
    method, url = (option(args, "--method") or "get").lower(), option(args, "--url") or ""
    if method == "post" and re.search(r"/subscriptions/[^/]+/providers/Microsoft\.Web/checknameavailability\?", url):
        body = json.loads(option(args, "--body") or "{}")
        assert body["type"] == "Microsoft.Web/sites", body
        if WORLD.get("name_available", True):
            return {"nameAvailable": True, "reason": None, "message": None}
        taken = f"Hostname '{body['name']}' already exists. Please select a different name."
        return {"nameAvailable": False, "reason": WORLD.get("reason", "AlreadyExists"),
                "message": WORLD.get("message", taken)}
    if method == "post" and "/config/configreferences/appsettings/refresh?api-version=" in url:
        counter("refresh", bump=True)
        return None
    if method == "get" and "/config/configreferences/appsettings?api-version=" in url:
        return references(url)
    raise SystemExit(f"fake az: no answer for az rest {method} {url}")


def answer(args: list[str]) -> Any:
    outputs = WORLD.get("outputs", {})
    match args[:3]:
        case ["account", "show", *_]:
            if WORLD.get("signed_out"):
                raise SystemExit("Please run 'az login' to setup account.")
            return {"id": WORLD.get("subscription", "00000000-0000-0000-0000-00000000000a"),
                    "user": {"type": "user", "name": "someone@example.com"}}
        case ["ad", "signed-in-user", "show"]:
            return {"id": "11111111-2222-3333-4444-555555555555"}
        case ["group", "create", *_]:
            return {}
        case ["deployment", "group", "create"]:
            return deploy(args)
        case ["deployment", "group", "show"]:
            if not (STATE / "parameters.json").exists():
                raise SystemExit("Deployment not found")
            return {"properties": {"outputs": {name: {"type": "String", "value": value}
                                               for name, value in outputs.items()}}}
        case ["keyvault", "secret", "list"]:
            return [{"name": name} for name in WORLD.get("vault_secrets", [])]
        case ["keyvault", "secret", "show"]:
            name = option(args, "--name")
            values = WORLD.get("vault_values", {})
            if name not in values:
                raise SystemExit(f"ERROR: (SecretNotFound) A secret with (name/id) {name} was not found in this "
                                 "key vault.")
            return {"name": name, "value": values[name]}
        case ["resource", "list", *_]:
            name, kind = option(args, "--name"), option(args, "--resource-type")
            return [{"name": site["name"], "resourceGroup": site["resourceGroup"], "type": kind,
                     "tags": site.get("tags")} for site in WORLD.get("sites", [])
                    if site["name"] == name and kind == "Microsoft.Web/sites"]
        case ["functionapp", "restart", *_]:
            return None
        case ["functionapp", "deployment", "source"]:
            shutil.copy(option(args, "--src") or "", STATE / "app.zip")
            return {}
        case ["rest", *_]:
            return rest(args)
    raise SystemExit(f"fake az: unexpected command: az {' '.join(args)}")


def tsv_cell(value: Any) -> str:
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, dict):
        return ""
    return value if isinstance(value, str) else str(value)


def tsv(result: Any) -> str:
    lines = []
    for row in result if isinstance(result, list) else [result]:
        if isinstance(row, dict):
            lines.append("\t".join(tsv_cell(value) for _, value in sorted(row.items())))
        elif isinstance(row, list):
            lines.append("\t".join(tsv_cell(value) for value in row))
        elif isinstance(row, bool):
            lines.append(str(row).lower())
        else:
            lines.append(tsv_cell(row))
    return "".join(line + "\n" for line in lines)


def main(args: list[str]) -> None:
    with (STATE / "calls.jsonl").open("a") as log:
        log.write(json.dumps(args) + "\n")
    for failing in WORLD.get("failing", []):
        if " ".join(args).startswith(failing):
            raise SystemExit(f"ERROR: (fake) az {failing} failed")
    result = answer(args)
    query = option(args, "--query")
    if query is not None:
        result = jmespath.search(query, result)
    output = option(args, "-o") or option(args, "--output") or "json"
    if output == "tsv":
        sys.stdout.write(tsv(result))
    elif output == "json" and result is not None:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
