"""Offline checks of the infrastructure: the Bicep template, its parameters, azd and the az deploy script.

Bicep is parsed with pycep-parser and scanned with checkov, both run from their own virtualenv (``$IAC_VENV``,
default ``.venv-iac/``, made from ``requirements-iac.txt``) because checkov pins many dependencies. Cross-checks
tie the template to the code: queue and table names, the Python version, and the app's declared settings
(``gateway.settings.SETTING_GROUPS``): every one is an app setting unless exempt, parameter defaults and bounds
agree with the declarations, and secrets are Key Vault references. ``local.settings.json.example`` is checked
against the same declarations.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Choice, ConfigError, Integer, Setting, as_text
from gateway.settings import SETTING_GROUPS

ROOT = Path(__file__).resolve().parents[2]
BICEP_DIR = ROOT / "infra" / "bicep"
MAIN_BICEP = BICEP_DIR / "main.bicep"
PARAMETERS_JSON = BICEP_DIR / "main.parameters.json"
DEPLOY_SH = ROOT / "infra" / "deploy.sh"
LOCAL_SETTINGS_EXAMPLE = ROOT / "local.settings.json.example"

SETUP_HINT = (
    "run scripts/test.sh, which creates it; by hand: "
    "python3.11 -m venv .venv-iac && .venv-iac/bin/pip install -r requirements-iac.txt"
)

# Declared settings the template must not set, with the reason.
NOT_APP_SETTINGS = {
    "AzureWebJobsStorage": "connection-string form for Azurite and local runs; Azure uses the identity-based "
    "AzureWebJobsStorage__* settings because the account refuses shared keys",
    "WEBSITE_INSTANCE_ID": "set by the platform on every instance",
    "ACS_CA_BUNDLE": "test-only: a CA file to trust a local Communication Services fake; Azure uses public CAs",
}
# Top-level modules that never run in Azure: the deployment package must not hold them.
DEV_ONLY_MODULES = {
    "devhost": "hosts function_app.py locally without Core Tools; starts Azurite for tests and benchmarks",
    "fakes": "local fakes of the SMS providers",
    "tests": "the test suite",
    "bench": "the benchmarks",
    "scripts": "bootstrap, run and test scripts",
}
# Settings the Functions host (not our code) reads, allowed in appSettings and local.settings.json.example.
HOST_SETTINGS = {
    "AzureWebJobsStorage",
    "AzureWebJobsFeatureFlags",
    "AzureWebJobsSecretStorageType",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
HOST_SETTING_PATTERNS = (re.compile(r"^AzureWebJobsStorage__\w+$"), re.compile(r"^AzureWebJobs\.[\w-]+\.Disabled$"))
# Declared settings the template sets to other than the app's default, with the reason.
TEMPLATE_CHOICES = {
    "SMS_ALLOW_OUTBOX_IN_AZURE": "a first deployment without provider credentials comes up, on the outbox",
    "AzureWebJobsStorage__credential": "in Azure the app connects with its user-assigned managed identity",
}
# Declared settings local.settings.json.example sets to other than the app's default, with the reason.
EXAMPLE_CHOICES = {
    "AzureWebJobsStorage": "Azurite, the local storage emulator",
    "SMS_DEFAULT_SENDER": "Twilio's test number, so a local send needs no From",
}
# Settings Flex Consumption rejects or that would bring shared-key storage back.
FORBIDDEN_APP_SETTINGS = {
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}


# ---------------------------------------------------------------------------------------------------------------
# The IaC virtualenv and the tools in it
# ---------------------------------------------------------------------------------------------------------------


def iac_venv() -> Path:
    """Where the IaC tools are installed: $IAC_VENV, else .venv-iac/ in the repository."""
    return Path(os.environ.get("IAC_VENV") or ROOT / ".venv-iac")


def iac_tool(name: str) -> Path:
    """A program in the IaC virtualenv; fails the test (not skips it) when the virtualenv is missing."""
    venv = iac_venv()
    for candidate in (venv / "bin" / name, venv / "Scripts" / f"{name}.exe"):
        if candidate.exists():
            return candidate
    pytest.fail(f"{name} is not installed in the IaC virtualenv {venv}: {SETUP_HINT}")


_PARSE_SCRIPT = """
import json, sys
from pathlib import Path
from pycep import BicepParser
parser = BicepParser(cache=False)
result = {}
for name in sys.argv[1:]:
    try:
        result[name] = {"ok": parser.parse(file_path=Path(name))}
    except Exception as error:  # report every file, not just the first failure
        result[name] = {"error": f"{type(error).__name__}: {error}"}
print(json.dumps(result, default=str))
"""


def parse_bicep(*paths: Path) -> dict[Path, dict[str, Any]]:
    """Parse Bicep files with pycep in the IaC virtualenv; raises AssertionError naming any file that fails."""
    texts = tuple((path, path.read_text()) for path in paths)
    parsed = _parse_cached(texts)
    errors = {path: result["error"] for path, result in parsed.items() if "error" in result}
    assert not errors, f"Bicep files pycep cannot parse: {errors}"
    return {path: result["ok"] for path, result in parsed.items()}


@cache
def _parse_cached(texts: tuple[tuple[Path, str], ...]) -> dict[Path, dict[str, Any]]:
    python = iac_tool("python")
    completed = subprocess.run(
        [str(python), "-c", _PARSE_SCRIPT, *(str(path) for path, _ in texts)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, f"pycep failed to run:\n{completed.stderr}"
    return {Path(name): result for name, result in json.loads(completed.stdout).items()}


def bicep_files() -> list[Path]:
    return sorted(BICEP_DIR.rglob("*.bicep"))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """main.bicep as pycep parses it."""
    return parse_bicep(MAIN_BICEP)[MAIN_BICEP]


# ---------------------------------------------------------------------------------------------------------------
# Reading the template
# ---------------------------------------------------------------------------------------------------------------


def template_app_settings(parsed: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, value expression) of each item of the template's `appSettings` variable, in order."""
    variable = parsed.get("variables", {}).get("appSettings")
    assert variable is not None, "main.bicep has no `appSettings` variable: keep every app setting in it"
    items = variable["value"]
    assert isinstance(items, list), "`appSettings` must be a list of {name, value} objects"
    settings = []
    for item in items:
        assert isinstance(item, dict) and set(item) == {"name", "value"}, f"not a {{name, value}} object: {item}"
        settings.append((str(item["name"]).strip("'"), item["value"]))
    return settings


def template_app_setting_names(parsed: dict[str, Any]) -> list[str]:
    return [name for name, _ in template_app_settings(parsed)]


def parameter_defaults(parsed: dict[str, Any]) -> dict[str, Any]:
    return {name: spec.get("default") for name, spec in parsed.get("parameters", {}).items()}


def evaluate_string(expression: Any, parsed: dict[str, Any]) -> str:
    """Evaluate a pycep string that is a parameter name or interpolates parameters, using their defaults."""
    defaults = parameter_defaults(parsed)
    assert isinstance(expression, str), f"cannot evaluate {expression!r}"
    if expression in defaults:
        return str(defaults[expression])

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in defaults, f"{expression!r} uses {name!r}, which is not a parameter"
        return str(defaults[name])

    return re.sub(r"\$\{(\w+)\}", substitute, expression)


def resources_of_type(parsed: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in parsed.get("resources", {}).items() if res["type"] == resource_type}


def resource_body(resource: dict[str, Any]) -> dict[str, Any]:
    """The properties block of a resource, looking through `if (...)` and `for` wrappers."""
    config = resource["config"]
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def loop_source(resource: dict[str, Any]) -> str | None:
    loop = resource["config"].get("loop_type")
    return loop["detail"].get("array_name") if loop else None


# ---------------------------------------------------------------------------------------------------------------
# The app's declared settings against the template and the example local settings
# ---------------------------------------------------------------------------------------------------------------


def declared_settings() -> dict[str, Setting[Any]]:
    """Every setting the app reads, by name: storage, the gateway's own, and each provider's."""
    return {declared.name: declared for group in SETTING_GROUPS.values() for declared in group}


def is_host_setting(name: str) -> bool:
    return name in HOST_SETTINGS or any(pattern.match(name) for pattern in HOST_SETTING_PATTERNS)


def missing_from_template(declared: Iterable[str], template_names: Iterable[str]) -> set[str]:
    """Declared settings the template's app settings leave out (exempt ones aside)."""
    return set(declared) - set(template_names) - set(NOT_APP_SETTINGS)


def parameter_of(value: Any, parameters: dict[str, Any]) -> str | None:
    """The parameter an app setting passes on as it is: `p`, `string(p)` or `p ? 'true' : 'false'`."""
    if isinstance(value, str):
        return value if value in parameters else None
    function = value.get("function", {}) if isinstance(value, dict) else {}
    if function.get("type") == "string":
        return parameter_of(function["parameters"]["value_to_convert"], parameters)
    operator = value.get("operator", {}) if isinstance(value, dict) else {}
    operands = operator.get("operands", {})
    if operator.get("type") == "conditional" and (operands.get("true_value"), operands.get("false_value")) == (
            "true", "false"):
        return parameter_of(operands["condition"], parameters)
    return None


def is_vault_reference(value: Any) -> bool:
    """`condition ? '@Microsoft.KeyVault(...)' : ''`: the app setting points into the vault, or is empty."""
    operator = value.get("operator", {}) if isinstance(value, dict) else {}
    operands = operator.get("operands", {})
    return (operator.get("type") == "conditional" and str(operands.get("true_value")).startswith(
        "@Microsoft.KeyVault(") and operands.get("false_value") == "")


def value_problem(declared: Setting[Any], text: str, where: str, choices: dict[str, str]) -> str | None:
    """Why ``text`` does not agree with the declaration: refused, or not the default without a listed reason."""
    try:
        value = declared.read({declared.name: text})
    except ConfigError as error:
        return f"{declared.name}: {where} is refused by the app: {error}"
    if value != declared.default and declared.name not in choices:
        return f"{declared.name}: {where} is {text!r}, the app's default {declared.default_text!r}"
    return None


def parameter_problems(declared: Setting[Any], parameter: str, spec: dict[str, Any]) -> list[str]:
    """A parameter that feeds a setting: its default, @allowed and @minValue/@maxValue agree with the declaration."""
    problems = []
    problem = value_problem(declared, as_text(spec.get("default")), f"parameter {parameter}'s default",
                            TEMPLATE_CHOICES)
    if problem:
        problems.append(problem)
    decorators = {item["type"]: item["argument"] for item in spec.get("decorators", [])}
    kind = declared.kind
    if isinstance(kind, Choice) and set(decorators.get("allowed", [])) != set(kind.choices):
        problems.append(f"{declared.name}: parameter {parameter} must be @allowed({list(kind.choices)}), "
                        f"not {decorators.get('allowed')}")
    if isinstance(kind, Integer):
        bounds = (decorators.get("min_value"), decorators.get("max_value"))
        if bounds != (kind.minimum, kind.maximum):
            problems.append(f"{declared.name}: parameter {parameter} must have @minValue({kind.minimum})"
                            + (f" @maxValue({kind.maximum})" if kind.maximum is not None else "")
                            + f", not (min, max) = {bounds}")
    return problems


def template_problems(parsed: dict[str, Any]) -> list[str]:
    """Where main.bicep's app settings disagree with the declared settings; each problem starts with the name."""
    declared = declared_settings()
    settings = template_app_settings(parsed)
    parameters = parsed.get("parameters", {})
    variables = parsed.get("variables", {})
    names = [name for name, _ in settings]
    problems = [f"{name}: not in appSettings" for name in sorted(missing_from_template(declared, names))]
    for name, value in settings:
        setting = declared.get(name)
        if setting is None:
            if not is_host_setting(name):
                problems.append(f"{name}: in appSettings, but neither the app nor the Functions host reads it")
            continue
        if setting.secret:
            if not is_vault_reference(value):
                problems.append(f"{name}: a secret, so its value must be a Key Vault reference")
            continue
        parameter = parameter_of(value, parameters)
        if parameter is not None:
            problems += parameter_problems(setting, parameter, parameters[parameter])
        elif isinstance(value, str) and value not in variables and "${" not in value:
            problem = value_problem(setting, value, "its value", TEMPLATE_CHOICES)
            if problem:
                problems.append(problem)
    return problems


def example_problems(values: dict[str, str]) -> list[str]:
    """Where local.settings.json.example disagrees with the declared settings; each problem starts with the name."""
    from gateway.settings import Settings

    declared = declared_settings()
    problems = []
    for name, text in values.items():
        if name in declared:
            problem = value_problem(declared[name], text, "its value", EXAMPLE_CHOICES)
            if problem:
                problems.append(problem)
        elif not is_host_setting(name):
            problems.append(f"{name}: in the example, but neither the app nor the Functions host reads it")
    problems += [f"{s.name}: not in the example, which lists every gateway setting that has a default"
                 for s in SETTING_GROUPS["gateway"] if s.default is not None and s.name not in values]
    try:
        Settings.from_env(values)
    except ConfigError as error:
        problems.append(f"local.settings.json.example: the app refuses it as a whole: {error}")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Parsing and security scanning
# ---------------------------------------------------------------------------------------------------------------


def test_every_bicep_file_parses() -> None:
    files = bicep_files()
    assert MAIN_BICEP in files
    parsed = parse_bicep(*files)
    assert set(parsed) == set(files)


def test_no_registry_modules() -> None:
    """Registry modules are opaque to checkov and cannot be fetched offline: declare resources in the repo."""
    for path, parsed in parse_bicep(*bicep_files()).items():
        for name, module in parsed.get("modules", {}).items():
            assert module["type"] == "local", f"{path.name}: module {name} is not a local file"
            assert (path.parent / module["detail"]["path"]).exists(), f"{path.name}: module {name} file is missing"


def test_checkov_reports_no_failed_check() -> None:
    checkov = iac_tool("checkov")
    completed = subprocess.run(
        [str(checkov), "-d", str(BICEP_DIR), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )
    assert completed.stdout.strip(), f"checkov printed nothing:\n{completed.stderr}"
    report = json.loads(completed.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]
    assert not failed, "checkov failed checks (fix them or skip inline with a reason):\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0, summary
    assert summary["passed"] > 0, summary
    skipped = report["results"]["skipped_checks"]
    reasons = {check["check_id"]: check["check_result"].get("suppress_comment", "") for check in skipped}
    unexplained = [check for check, reason in reasons.items() if len(reason.strip()) < 20]
    assert not unexplained, f"skipped without a reason: {unexplained}"


# ---------------------------------------------------------------------------------------------------------------
# The template against the code
# ---------------------------------------------------------------------------------------------------------------


def _default_settings() -> Any:
    from gateway.settings import Settings, StorageSettings

    return Settings(storage=StorageSettings(connection_string="UseDevelopmentStorage=true"))


def test_queue_and_table_names_match_the_code(template: dict[str, Any]) -> None:
    settings = _default_settings()
    variables = template["variables"]
    queues = {evaluate_string(v, template) for v in variables["queueNames"]["value"]}
    tables = {evaluate_string(v, template) for v in variables["tableNames"]["value"]}
    assert queues == {settings.queue_name, settings.poison_queue_name}
    assert tables == {settings.communications_table, settings.api_keys_table, settings.outbox_table}
    # ...and the template really creates them from those lists.
    [queue_resource] = resources_of_type(template, "Microsoft.Storage/storageAccounts/queueServices/queues").values()
    [table_resource] = resources_of_type(template, "Microsoft.Storage/storageAccounts/tableServices/tables").values()
    assert loop_source(queue_resource) == "queueNames"
    assert loop_source(table_resource) == "tableNames"


def test_template_agrees_with_the_declared_settings(template: dict[str, Any]) -> None:
    problems = template_problems(template)
    assert not problems, "main.bicep's appSettings disagree with the declared settings:\n" + "\n".join(problems)
    names = template_app_setting_names(template)
    assert len(names) == len(set(names)), "a setting appears twice in appSettings"


def test_template_sets_the_identity_based_storage_settings(template: dict[str, Any]) -> None:
    names = set(template_app_setting_names(template))
    for suffix in ("accountName", "credential", "clientId", "blobServiceUri", "queueServiceUri", "tableServiceUri"):
        assert f"AzureWebJobsStorage__{suffix}" in names
    assert {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"} <= names
    assert not names & FORBIDDEN_APP_SETTINGS, names & FORBIDDEN_APP_SETTINGS


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once in main.bicep"
    return text.replace(old, new)


def test_the_template_check_catches_each_kind_of_drift(tmp_path: Path) -> None:
    """The checks must fail when the template drifts: run them against an edited copy."""
    text = MAIN_BICEP.read_text()
    entry = re.compile(r"\n  \{\n    name: 'SMS_QUEUE_NAME'\n    value: [^\n]+\n  \}")
    assert len(entry.findall(text)) == 1, "expected one SMS_QUEUE_NAME entry in appSettings"
    text = entry.sub("", text)  # a setting left out
    text = _edit(text, "param smsMaxBodyLength int = 1600", "param smsMaxBodyLength int = 1601")  # another default
    text = _edit(text, "  'twilio'\n  'acs'\n])", "  'twilio'\n])")  # a provider the parameter does not allow
    recipients = "@description('Most recipients"
    text = _edit(text, f"@maxValue(1000)\n{recipients}", f"@maxValue(999)\n{recipients}")  # another bound
    attempts = "name: 'SMS_MAX_DELIVERY_ATTEMPTS'\n    value: "
    text = _edit(text, f"{attempts}'5'", f"{attempts}'6'")  # a literal value that is not the default
    text = re.sub(r"(name: 'TWILIO_AUTH_TOKEN'\n    value: )[^\n]+", r"\1twilioAuthToken", text)  # a secret in plain
    stray = "  {\n    name: 'SMS_RETIRED'\n    value: 'x'\n  }\n"
    text = _edit(text, "var appSettings = [\n", f"var appSettings = [\n{stray}")  # a setting nobody reads
    edited = tmp_path / "main.bicep"
    edited.write_text(text)
    parsed = parse_bicep(edited)[edited]
    names = template_app_setting_names(parsed)
    assert missing_from_template(declared_settings(), names) == {"SMS_QUEUE_NAME"}
    problems = template_problems(parsed)
    assert sorted(problem.split(":")[0] for problem in problems) == [
        "SMS_MAX_BODY_LENGTH", "SMS_MAX_DELIVERY_ATTEMPTS", "SMS_MAX_RECIPIENTS", "SMS_PROVIDER", "SMS_QUEUE_NAME",
        "SMS_RETIRED", "TWILIO_AUTH_TOKEN"], problems


def test_local_settings_example_agrees_with_the_declared_settings() -> None:
    problems = example_problems(json.loads(LOCAL_SETTINGS_EXAMPLE.read_text())["Values"])
    assert not problems, "local.settings.json.example disagrees with the declared settings:\n" + "\n".join(problems)


def test_the_example_check_catches_each_kind_of_drift() -> None:
    values = json.loads(LOCAL_SETTINGS_EXAMPLE.read_text())["Values"]
    del values["SMS_QUEUE_NAME"]  # a gateway setting left out
    values.update(SMS_MAX_RECIPIENTS="1001", SMS_CLAIM_TIMEOUT_SECONDS="300", SMS_RETIRED="x",
                  AzureWebJobsFeatureFlags="EnableWorkerIndexing")  # refused, not the default, unknown, host's
    assert sorted(problem.split(":")[0] for problem in example_problems(values)) == [
        "SMS_CLAIM_TIMEOUT_SECONDS", "SMS_MAX_RECIPIENTS", "SMS_QUEUE_NAME", "SMS_RETIRED",
        "local.settings.json.example"]


def test_python_version_matches(template: dict[str, Any]) -> None:
    local = (ROOT / ".python-version").read_text().strip()
    [site] = resources_of_type(template, "Microsoft.Web/sites").values()
    runtime = resource_body(site)["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": local}


# ---------------------------------------------------------------------------------------------------------------
# The hosting the brief asks for
# ---------------------------------------------------------------------------------------------------------------


def test_function_app_is_flex_consumption_and_locked_down(template: dict[str, Any]) -> None:
    [plan] = resources_of_type(template, "Microsoft.Web/serverfarms").values()
    assert resource_body(plan)["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert resource_body(plan)["properties"]["reserved"] is True
    [site] = resources_of_type(template, "Microsoft.Web/sites").values()
    body = resource_body(site)
    assert body["kind"] == "functionapp,linux"
    assert body["identity"]["type"] == "UserAssigned"
    properties = body["properties"]
    assert properties["httpsOnly"] is True
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["ftpsState"] == "Disabled"
    assert properties["siteConfig"]["appSettings"] == "appSettings"
    deployment = properties["functionAppConfig"]["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"
    scale = properties["functionAppConfig"]["scaleAndConcurrency"]
    assert scale == {"instanceMemoryMB": "instanceMemoryMB", "maximumInstanceCount": "maximumInstanceCount"}
    assert "'azd-service-name': 'api'" in MAIN_BICEP.read_text()
    assert parameter_defaults(template)["functionAppName"] == "production-eros-gateway-api-sms-wa"
    assert set(template["outputs"]) >= {"ENDPOINT_URL", "FUNCTION_APP_NAME", "RESOURCE_GROUP_NAME"}


def test_storage_monitoring_and_vault_use_entra_only(template: dict[str, Any]) -> None:
    [storage] = resources_of_type(template, "Microsoft.Storage/storageAccounts").values()
    props = resource_body(storage)["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    [insights] = resources_of_type(template, "Microsoft.Insights/components").values()
    assert resource_body(insights)["properties"]["DisableLocalAuth"] is True
    [vault] = resources_of_type(template, "Microsoft.KeyVault/vaults").values()
    vault_props = resource_body(vault)["properties"]
    assert vault_props["enableRbacAuthorization"] is True
    assert vault_props["enableSoftDelete"] is True


def test_identity_gets_the_roles_it_needs(template: dict[str, Any]) -> None:
    roles = template["variables"]["roles"]["value"]
    assert roles["storageBlobDataOwner"] == "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
    assert roles["storageQueueDataContributor"] == "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
    assert roles["storageTableDataContributor"] == "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    assert roles["monitoringMetricsPublisher"] == "3913510d-42f4-4e42-8a64-420c390055eb"
    assert roles["keyVaultSecretsUser"] == "4633458b-17de-408a-b874-0445c86b69e6"
    granted = []
    for assignment in resources_of_type(template, "Microsoft.Authorization/roleAssignments").values():
        body = resource_body(assignment)
        granted.append((body["scope"], json.dumps(body["properties"])))
    for scope, role in [("storage", "storageBlobDataOwner"), ("storage", "storageQueueDataContributor"),
                        ("storage", "storageTableDataContributor"), ("appInsights", "monitoringMetricsPublisher"),
                        ("keyVault", "keyVaultSecretsUser")]:
        assert any(s == scope and f'"{role}"' in text and '"identity"' in text and "ServicePrincipal" in text
                   for s, text in granted), (scope, role)


def test_parameters_file_and_azure_yaml() -> None:
    parameters = json.loads(PARAMETERS_JSON.read_text())["parameters"]
    defined = set(parameter_defaults(parse_bicep(MAIN_BICEP)[MAIN_BICEP]))
    assert set(parameters) <= defined, set(parameters) - defined
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    azure_yaml = (ROOT / "azure.yaml").read_text()
    for line in ("path: infra/bicep", "  api:", "project: .", "language: python", "host: function"):
        assert line in azure_yaml, line


# ---------------------------------------------------------------------------------------------------------------
# infra/deploy.sh
# ---------------------------------------------------------------------------------------------------------------


def test_deploy_script_is_valid_bash() -> None:
    completed = subprocess.run(["bash", "-n", str(DEPLOY_SH)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "set -euo pipefail" in DEPLOY_SH.read_text()


def test_deploy_script_passes_shellcheck() -> None:
    shellcheck = iac_tool("shellcheck")
    completed = subprocess.run([str(shellcheck), str(DEPLOY_SH)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr


FAKE_AZ = r'''#!{python}
"""Stands in for az: records each call and answers the few queries deploy.sh makes."""
import json, os, shutil, sys
args = sys.argv[1:]
state = os.environ["FAKE_AZ_DIR"]
with open(os.path.join(state, "calls.jsonl"), "a") as log:
    log.write(json.dumps(args) + "\n")
joined = " ".join(args)
outputs = {{"FUNCTION_APP_NAME": "app-test", "ENDPOINT_URL": "https://app-test.azurewebsites.net",
           "STORAGE_ACCOUNT_NAME": "sttest", "KEY_VAULT_NAME": "kv-test", "SMS_PROVIDER": "twilio"}}
if args[:2] == ["account", "show"]:
    if "user.type" in joined:
        print("user")
    elif "user.name" in joined:
        print("someone@example.com")
elif args[:3] == ["ad", "signed-in-user", "show"]:
    print("11111111-2222-3333-4444-555555555555")
elif args[:3] == ["deployment", "group", "create"]:
    params = args[args.index("--parameters") + 1]
    shutil.copy(params[1:], os.path.join(state, "parameters.json"))
elif args[:3] == ["deployment", "group", "show"]:
    if not os.path.exists(os.path.join(state, "parameters.json")):
        sys.exit(3)  # no earlier deployment
    query = args[args.index("--query") + 1]
    print(outputs[query.split(".")[2]])
elif args[:3] == ["keyvault", "secret", "list"]:
    print("twilio-auth-token\nunrelated-secret")
elif args[:4] == ["functionapp", "deployment", "source", "config-zip"]:
    shutil.copy(args[args.index("--src") + 1], os.path.join(state, "app.zip"))
'''


def _fake_checkout(tmp_path: Path, with_app: bool = True) -> tuple[Path, dict[str, str]]:
    checkout = tmp_path / "checkout"
    (checkout / "infra" / "bicep").mkdir(parents=True)
    shutil.copy(DEPLOY_SH, checkout / "infra" / "deploy.sh")
    shutil.copy(MAIN_BICEP, checkout / "infra" / "bicep" / "main.bicep")
    if with_app:
        for name in ("function_app.py", "host.json", "requirements.txt"):
            (checkout / name).write_text("# stand-in\n")
        (checkout / "gateway" / "__pycache__").mkdir(parents=True)
        (checkout / "gateway" / "__init__.py").write_text("")
        (checkout / "gateway" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    (checkout / "tests").mkdir()
    (checkout / "tests" / "test_x.py").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "az"
    fake.write_text(FAKE_AZ.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "state"
    state.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SMS_", "TWILIO_", "ACS_", "AZURE_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", FAKE_AZ_DIR=str(state))
    return checkout, env


def test_deploy_script_runs_end_to_end_against_a_fake_az(tmp_path: Path) -> None:
    checkout, env = _fake_checkout(tmp_path)
    secret = 'tok"en\\with-quote-and-backslash'
    env.update(
        SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN=secret,
        SMS_ALLOW_OUTBOX_IN_AZURE="false", SMS_EXISTING_SECRETS="twilio-api-key-secret, acs-connection-string",
    )
    completed = subprocess.run(["bash", str(checkout / "infra" / "deploy.sh"), "test", "westeurope"],
                               env=env, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    state = tmp_path / "state"
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    assert any(call[:6] == ["group", "create", "--name", "rg-sms-gateway-test", "--location", "westeurope"]
               for call in calls), calls
    assert not any(secret in arg for call in calls for arg in call), "a secret reached an az command line"

    parameters = json.loads((state / "parameters.json").read_text())["parameters"]
    assert set(parameters) <= set(parameter_defaults(parse_bicep(MAIN_BICEP)[MAIN_BICEP]))
    assert parameters["twilioAuthToken"]["value"] == secret
    assert parameters["smsProvider"]["value"] == "twilio"
    assert parameters["smsAllowOutboxInAzure"]["value"] is False
    assert parameters["existingSecretNames"]["value"] == ["twilio-api-key-secret", "acs-connection-string"]
    assert parameters["deployerPrincipalId"]["value"] == "11111111-2222-3333-4444-555555555555"
    assert parameters["deployerPrincipalType"]["value"] == "User"
    assert parameters["environmentName"]["value"] == "test"

    publish = next(call for call in calls if call[:4] == ["functionapp", "deployment", "source", "config-zip"])
    assert publish[publish.index("--build-remote") + 1] == "true"
    with zipfile.ZipFile(state / "app.zip") as archive:
        names = set(archive.namelist())
    assert {"function_app.py", "host.json", "requirements.txt", "gateway/__init__.py"} <= names
    assert not any(name.endswith(".pyc") or name.startswith("tests/") for name in names), names
    assert "python -m gateway keys create" in completed.stdout
    assert "AzureWebJobsStorage__accountName=sttest" in completed.stdout
    assert not (tmp_path / "checkout" / "parameters.json").exists()


def test_deploy_script_keeps_referencing_secrets_already_in_the_vault(tmp_path: Path) -> None:
    """A redeployment without the secret in the environment must not empty the app setting."""
    checkout, env = _fake_checkout(tmp_path)
    state = tmp_path / "state"
    command = ["bash", str(checkout / "infra" / "deploy.sh"), "test"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "existingSecretNames" not in json.loads((state / "parameters.json").read_text())["parameters"]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    parameters = json.loads((state / "parameters.json").read_text())["parameters"]
    assert parameters["existingSecretNames"]["value"] == ["twilio-auth-token"]
    env["SMS_EXISTING_SECRETS"] = ""
    chosen = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert "existingSecretNames" not in json.loads((state / "parameters.json").read_text())["parameters"]


def test_deploy_script_refuses_a_checkout_without_the_app(tmp_path: Path) -> None:
    checkout, env = _fake_checkout(tmp_path, with_app=False)
    completed = subprocess.run(["bash", str(checkout / "infra" / "deploy.sh"), "test"],
                               env=env, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode != 0
    assert "function_app.py is missing" in completed.stderr


def deploy_script_package(tmp_path: Path) -> set[str]:
    """The files of the zip deploy.sh builds from this checkout, by its own build_package."""
    package = tmp_path / "app.zip"
    completed = subprocess.run(["bash", "-c", 'source "$1" && build_package "$2"', "-", str(DEPLOY_SH), str(package)],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    with zipfile.ZipFile(package) as archive:
        return set(archive.namelist())


def funcignore_package(root: Path) -> set[str]:
    """The files azd and ``func`` publish from ``root``: everything .funcignore does not exclude.

    .funcignore follows .gitignore's rules; this reads the part of them it uses: a trailing ``/`` matches
    directories only, a pattern without another ``/`` matches a name at any depth, ``*`` globs, and an
    excluded directory excludes everything in it.
    """
    patterns = [line.strip() for line in (root / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not [p for p in patterns if p.startswith("!") or "/" in p.rstrip("/")], \
        "funcignore_package reads only unanchored patterns without negation: teach it the new ones"

    def ignored(name: str, is_dir: bool) -> bool:
        return any(fnmatch.fnmatchcase(name, p.rstrip("/")) for p in patterns if is_dir or not p.endswith("/"))

    files = set()
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if not ignored(name, is_dir=True)]
        here = Path(directory).relative_to(root)
        files |= {(here / name).as_posix() for name in filenames if not ignored(name, is_dir=False)}
    return files


def top_level(files: Iterable[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in files}


def test_deploy_script_packages_the_app_and_no_dev_only_module(tmp_path: Path) -> None:
    files = deploy_script_package(tmp_path)
    assert top_level(files) == {"function_app.py", "host.json", "requirements.txt", "gateway"}, top_level(files)
    assert {"gateway/__init__.py", "gateway/settings.py", "gateway/providers/twilio.py"} <= files
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


def test_funcignore_keeps_dev_only_modules_out_of_the_azd_package() -> None:
    files = funcignore_package(ROOT)
    assert {"function_app.py", "host.json", "requirements.txt", "gateway/__init__.py"} <= files
    assert not top_level(files) & set(DEV_ONLY_MODULES), sorted(top_level(files) & set(DEV_ONLY_MODULES))
    python_modules = {name for name in top_level(files) if name.endswith(".py") or f"{name}/__init__.py" in files}
    assert python_modules == {"function_app.py", "gateway"}, "a Python module outside gateway/ would be deployed"


def test_funcignore_package_would_show_a_dev_only_module(tmp_path: Path) -> None:
    """The check above can fail: a checkout whose .funcignore lost its devhost/ line ships devhost/."""
    (tmp_path / "devhost").mkdir()
    (tmp_path / "devhost" / "__init__.py").write_text("")
    (tmp_path / "function_app.py").write_text("")
    lines = (ROOT / ".funcignore").read_text().splitlines()
    (tmp_path / ".funcignore").write_text("\n".join(line for line in lines if line != "devhost/") + "\n")
    assert "devhost/__init__.py" in funcignore_package(tmp_path)
    (tmp_path / ".funcignore").write_text("\n".join(lines) + "\n")
    assert top_level(funcignore_package(tmp_path)) == {"function_app.py", ".funcignore"}


def test_deploy_script_usage() -> None:
    completed = subprocess.run(["bash", str(DEPLOY_SH)], capture_output=True, text=True, check=False)
    assert completed.returncode == 2
    assert "usage: infra/deploy.sh <environment> [location]" in completed.stderr
