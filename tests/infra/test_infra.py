"""Offline checks of the infrastructure: the Bicep template, its parameters, azd and the az deploy script.

The template is ``infra/bicep/main.bicep`` and the modules it wires in ``infra/bicep/app/``; ``tests/infra/bicep.py``
parses them with pycep-parser and checkov scans them, both from their own virtualenv. Cross-checks tie the template
to the code: queue and table names, the Python version, and the app's declared settings
(``gateway.settings.SETTING_GROUPS``): every one is an app setting unless exempt, parameter defaults and bounds
agree with the declarations, and secrets are Key Vault references. ``local.settings.json.example`` is checked
against the same declarations. What Flex Consumption refuses is checked by ``test_flex_rules.py``.
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
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Choice, ConfigError, Integer, Setting, as_text
from gateway.settings import SETTING_GROUPS
from tests.infra.bicep import (
    BICEP_DIR,
    MAIN_BICEP,
    ROOT,
    Template,
    bicep_files,
    decorators,
    evaluate_string,
    iac_tool,
    loop_source,
    parameter_defaults,
    parse_bicep,
    resource_body,
    unquote,
)

PARAMETERS_JSON = BICEP_DIR / "main.parameters.json"
DEPLOY_SH = ROOT / "infra" / "deploy.sh"
LOCAL_SETTINGS_EXAMPLE = ROOT / "local.settings.json.example"
FUNCTION_BICEP = "app/function.bicep"

# Declared settings the template must not set, with the reason.
NOT_APP_SETTINGS = {
    "AzureWebJobsStorage": "connection-string form for Azurite and local runs; Azure uses the identity-based "
    "AzureWebJobsStorage__* settings because the account refuses shared keys",
    "WEBSITE_INSTANCE_ID": "set by the platform on every instance",
    "PYTHON_THREADPOOL_THREAD_COUNT": "the Python worker's own setting, left to its default (CPUs + 4, at most 32), "
    "which the storage connection pool is sized for",
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
    "AzureWebJobsStorage__credential": "in Azure the app connects with its user-assigned managed identity",
}
# Declared settings local.settings.json.example sets to other than the app's default, with the reason.
EXAMPLE_CHOICES = {
    "AzureWebJobsStorage": "Azurite, the local storage emulator",
    "SMS_DEFAULT_SENDER": "Twilio's test number, so a local send needs no From",
    "SMS_WEBHOOK_ALLOW_PRIVATE": "a developer's webhook receiver listens on this machine (http://127.0.0.1:…)",
}
# Settings that would bring shared-key storage back (the account refuses shared keys). The settings Flex
# Consumption refuses are rules in tests/infra/flex_rules.py.
FORBIDDEN_APP_SETTINGS = {"AzureWebJobsStorage"}
# Template parameters main.parameters.json leaves to their defaults, with the reason.
UNMAPPED_PARAMETERS = {
    "existingSecretNames": "an array: azd before Azure/azure-dev#6694 passes an environment value to it as a "
    "string and the deployment fails; docs/deploy.md shows how to set it in main.parameters.json",
}


@pytest.fixture(scope="module")
def template() -> Template:
    """Every file of infra/bicep as pycep parses it."""
    return Template.load()


# ---------------------------------------------------------------------------------------------------------------
# Reading the template
# ---------------------------------------------------------------------------------------------------------------

# Where the app settings are: the gateway's in main.bicep, the Functions host's in the function app's module.
SETTINGS_VARIABLES = (("main.bicep", "appSettings"), (FUNCTION_BICEP, "hostSettings"))


def template_app_settings(template: Template) -> list[tuple[str, Any, str]]:
    """(name, value expression, file) of each app setting the template sets, in order."""
    settings = []
    for file, variable_name in SETTINGS_VARIABLES:
        variable = template.file(file).get("variables", {}).get(variable_name)
        assert variable is not None, f"{file} has no `{variable_name}` variable: keep its app settings in it"
        items = variable["value"]
        assert isinstance(items, list), f"`{variable_name}` must be a list of {{name, value}} objects"
        for item in items:
            assert isinstance(item, dict) and set(item) == {"name", "value"}, f"not a {{name, value}} object: {item}"
            settings.append((unquote(item["name"]), item["value"], file))
    return settings


def template_app_setting_names(template: Template) -> list[str]:
    return [name for name, _, _ in template_app_settings(template)]


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
    bounds_of = decorators(spec)
    kind = declared.kind
    if isinstance(kind, Choice) and set(bounds_of.get("allowed") or []) != set(kind.choices):
        problems.append(f"{declared.name}: parameter {parameter} must be @allowed({list(kind.choices)}), "
                        f"not {bounds_of.get('allowed')}")
    if isinstance(kind, Integer):
        bounds = (bounds_of.get("min_value"), bounds_of.get("max_value"))
        if bounds != (kind.minimum, kind.maximum):
            problems.append(f"{declared.name}: parameter {parameter} must have @minValue({kind.minimum})"
                            + (f" @maxValue({kind.maximum})" if kind.maximum is not None else "")
                            + f", not (min, max) = {bounds}")
    return problems


def template_problems(template: Template) -> list[str]:
    """Where the template's app settings disagree with the declared settings; each problem starts with the name.

    A value that is one of main.bicep's parameters is checked through the parameter (default, @allowed, bounds);
    a literal is checked as it is; other expressions (a module's parameters, names, endpoints) are not evaluated.
    """
    declared = declared_settings()
    settings = template_app_settings(template)
    user_parameters = template.main.get("parameters", {})
    names = [name for name, _, _ in settings]
    problems = [f"{name}: not in the app settings" for name in sorted(missing_from_template(declared, names))]
    for name, value, file in settings:
        setting = declared.get(name)
        if setting is None:
            if not is_host_setting(name):
                problems.append(f"{name}: in the app settings, but neither the app nor the Functions host reads it")
            continue
        if setting.secret:
            if not is_vault_reference(value):
                problems.append(f"{name}: a secret, so its value must be a Key Vault reference")
            continue
        parsed = template.file(file)
        opaque = set(parsed.get("parameters", {})) | set(parsed.get("variables", {}))
        parameter = parameter_of(value, user_parameters) if file == "main.bicep" else None
        if parameter is not None:
            problems += parameter_problems(setting, parameter, user_parameters[parameter])
        elif isinstance(value, str) and value not in opaque and "${" not in value:
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


def test_queue_and_table_names_match_the_code(template: Template) -> None:
    settings = _default_settings()
    variables = template.main["variables"]
    queues = {evaluate_string(v, template.main) for v in variables["queueNames"]["value"]}
    tables = {evaluate_string(v, template.main) for v in variables["tableNames"]["value"]}
    assert queues == {settings.queue_name, settings.poison_queue_name, settings.webhook_queue_name,
                      settings.webhook_poison_queue_name}
    # Every table the app names (each a Settings property ending in _table), and no other.
    assert tables == {getattr(settings, name) for name in dir(type(settings)) if name.endswith("_table")}, tables
    # ...and the storage module really creates them from those lists.
    params = template.module("main.bicep", "storage")["params"]
    assert (params["queueNames"], params["tableNames"]) == ("queueNames", "tableNames")
    storage = template.file("app/storage.bicep")
    [(_, queues_resource)] = [(f, r) for f, _, r in template.resources(
        "Microsoft.Storage/storageAccounts/queueServices/queues")]
    [(_, tables_resource)] = [(f, r) for f, _, r in template.resources(
        "Microsoft.Storage/storageAccounts/tableServices/tables")]
    assert loop_source(queues_resource) == "queueNames" and "queueNames" in storage["parameters"]
    assert loop_source(tables_resource) == "tableNames" and "tableNames" in storage["parameters"]


def test_template_agrees_with_the_declared_settings(template: Template) -> None:
    problems = template_problems(template)
    assert not problems, "the template's app settings disagree with the declared settings:\n" + "\n".join(problems)
    names = template_app_setting_names(template)
    assert len(names) == len(set(names)), "a setting appears twice in the app settings"


def test_the_function_app_gets_every_app_setting(template: Template) -> None:
    """main.bicep's appSettings reach the app: passed to the module and concatenated after the host's."""
    assert template.module("main.bicep", "functionApp")["params"]["appSettings"] == "appSettings"
    _, site = template.only_resource("Microsoft.Web/sites")
    value = resource_body(site)["properties"]["siteConfig"]["appSettings"]
    assert value["function"]["type"] == "concat", value
    assert list(value["function"]["parameters"].values()) == ["hostSettings", "appSettings"], value


def test_template_sets_the_identity_based_storage_settings(template: Template) -> None:
    names = set(template_app_setting_names(template))
    for suffix in ("accountName", "credential", "clientId", "blobServiceUri", "queueServiceUri", "tableServiceUri"):
        assert f"AzureWebJobsStorage__{suffix}" in names
    assert {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"} <= names
    assert not names & FORBIDDEN_APP_SETTINGS, names & FORBIDDEN_APP_SETTINGS


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once in main.bicep"
    return text.replace(old, new)


def test_the_template_check_catches_each_kind_of_drift(tmp_path: Path) -> None:
    """The checks must fail when the template drifts: run them against a copy with an edited main.bicep."""
    copy = tmp_path / "bicep"
    shutil.copytree(BICEP_DIR, copy)
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
    (copy / "main.bicep").write_text(text)
    edited = Template.load(copy)
    names = template_app_setting_names(edited)
    assert missing_from_template(declared_settings(), names) == {"SMS_QUEUE_NAME"}
    problems = template_problems(edited)
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


def test_python_version_matches(template: Template) -> None:
    local = (ROOT / ".python-version").read_text().strip()
    file, site = template.only_resource("Microsoft.Web/sites")
    assert file == FUNCTION_BICEP
    runtime = resource_body(site)["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": local}


# ---------------------------------------------------------------------------------------------------------------
# The hosting the brief asks for
# ---------------------------------------------------------------------------------------------------------------


def test_function_app_is_flex_consumption_and_locked_down(template: Template) -> None:
    _, plan = template.only_resource("Microsoft.Web/serverfarms")
    assert resource_body(plan)["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert resource_body(plan)["properties"]["reserved"] is True
    _, site = template.only_resource("Microsoft.Web/sites")
    body = resource_body(site)
    assert body["kind"] == "functionapp,linux"
    assert body["identity"]["type"] == "UserAssigned"
    properties = body["properties"]
    assert properties["httpsOnly"] is True
    assert properties["keyVaultReferenceIdentity"] == "identityId"
    assert {key: value for key, value in properties["siteConfig"].items() if key != "appSettings"} == {
        "minTlsVersion": "1.2", "http20Enabled": True}
    deployment = properties["functionAppConfig"]["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"
    scale = properties["functionAppConfig"]["scaleAndConcurrency"]
    assert scale == {"instanceMemoryMB": "instanceMemoryMB", "maximumInstanceCount": "maximumInstanceCount"}
    params = template.module("main.bicep", "functionApp")["params"]
    assert (params["instanceMemoryMB"], params["maximumInstanceCount"]) == ("instanceMemoryMB", "maximumInstanceCount")
    assert "'azd-service-name': 'api'" in template.texts[FUNCTION_BICEP]
    assert parameter_defaults(template.main)["functionAppName"] == "production-eros-gateway-api-sms-wa"
    assert set(template.main["outputs"]) >= {"ENDPOINT_URL", "FUNCTION_APP_NAME", "RESOURCE_GROUP_NAME"}


def test_the_function_app_starts_after_its_roles_and_secrets(template: Template) -> None:
    """Module outputs order most of the deployment; the roles and the vault secrets need an explicit dependsOn."""
    assert set(template.module("main.bicep", "functionApp")["dependsOn"]) >= {"rbac", "keyVault"}


def test_storage_monitoring_and_vault_use_entra_only(template: Template) -> None:
    _, storage = template.only_resource("Microsoft.Storage/storageAccounts")
    props = resource_body(storage)["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    _, insights = template.only_resource("Microsoft.Insights/components")
    assert resource_body(insights)["properties"]["DisableLocalAuth"] is True
    _, vault = template.only_resource("Microsoft.KeyVault/vaults")
    vault_props = resource_body(vault)["properties"]
    assert vault_props["enableRbacAuthorization"] is True
    assert vault_props["enableSoftDelete"] is True


def test_storage_redundancy_defaults_to_what_every_region_offers(template: Template) -> None:
    """ZRS/GZRS only where the region has zones (tests/infra/flex_rules.py cites the region lists)."""
    spec = template.main["parameters"]["storageSku"]
    assert spec["default"] == "Standard_LRS"
    assert set(decorators(spec)["allowed"]) == {"Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_GZRS"}
    assert template.module("main.bicep", "storage")["params"]["sku"] == "storageSku"


def test_identity_gets_the_roles_it_needs(template: Template) -> None:
    rbac = template.file("app/rbac.bicep")
    roles = rbac["variables"]["roles"]["value"]
    assert roles["storageBlobDataOwner"] == "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
    assert roles["storageQueueDataContributor"] == "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
    assert roles["storageTableDataContributor"] == "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    assert roles["monitoringMetricsPublisher"] == "3913510d-42f4-4e42-8a64-420c390055eb"
    assert roles["keyVaultSecretsUser"] == "4633458b-17de-408a-b874-0445c86b69e6"
    granted = []
    for file, _, assignment in template.resources("Microsoft.Authorization/roleAssignments"):
        body = resource_body(assignment)
        granted.append((file, body["scope"], json.dumps(body["properties"])))
    for scope, role in [("storage", "storageBlobDataOwner"), ("storage", "storageQueueDataContributor"),
                        ("storage", "storageTableDataContributor"), ("appInsights", "monitoringMetricsPublisher"),
                        ("keyVault", "keyVaultSecretsUser")]:
        assert any(f == "app/rbac.bicep" and s == scope and f'"{role}"' in text and '"principalId": "principalId"'
                   in text and "ServicePrincipal" in text for f, s, text in granted), (scope, role)
    principal = json.dumps(template.module("main.bicep", "rbac")["params"]["principalId"])
    assert '"identity"' in principal and '"principalId"' in principal, principal


def test_communication_services_role_is_scoped_to_that_resource(template: Template) -> None:
    """Contributor on the one resource (app/communication.bicep and docs/deploy.md say why nothing narrower)."""
    [(file, _, assignment)] = [
        found for found in template.resources("Microsoft.Authorization/roleAssignments")
        if found[0] == "app/communication.bicep"]
    body = resource_body(assignment)
    assert body["scope"] == "communicationService"
    assert template.file(file)["variables"]["contributorRoleId"]["value"] == "b24988ac-6180-42a0-ab88-20f7382dd24c"
    assert "Communication and Email Service Owner" in template.texts[file]
    assert "Least privilege on Communication Services" in (ROOT / "docs" / "deploy.md").read_text()


# Parameters whose environment value azd always has (it asks for the environment and region), or asks for when it
# is unset because the template gives no default: the provider (provider_choice_problems checks it has none).
AZD_SETS_OR_ASKS = ("environmentName", "location", "smsProvider")
_SUBSTITUTION = re.compile(r"^\$\{(?P<variable>\w+)(=(?P<default>[^}]*))?\}$")


def test_parameters_file_maps_every_parameter_with_the_template_default() -> None:
    """azd users can set every parameter from an environment value; unset, the template's default applies."""
    parameters = json.loads(PARAMETERS_JSON.read_text())["parameters"]
    main = parse_bicep(MAIN_BICEP)[MAIN_BICEP]
    specs = main["parameters"]
    assert set(parameters) <= set(specs), set(parameters) - set(specs)
    assert set(specs) - set(parameters) == set(UNMAPPED_PARAMETERS), set(specs) - set(parameters)
    variables = []
    for name, entry in parameters.items():
        match = _SUBSTITUTION.match(entry["value"])
        assert match, f"{name}: {entry['value']!r} is not ${{VARIABLE}} or ${{VARIABLE=default}}"
        variables.append(match["variable"])
        default = specs[name].get("default")
        if match["default"] is not None:
            assert match["default"] == as_text(default), (name, match["default"], default)
        elif name not in AZD_SETS_OR_ASKS:
            assert default == "", f"{name}: unset means '', so the template's default must be '' too, not {default!r}"
    assert len(variables) == len(set(variables)), "two parameters read the same environment value"


def test_parameters_file_and_azure_yaml() -> None:
    parameters = json.loads(PARAMETERS_JSON.read_text())["parameters"]
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    azure_yaml = (ROOT / "azure.yaml").read_text()
    for line in ("path: infra/bicep", "  api:", "project: .", "language: python", "host: function"):
        assert line in azure_yaml, line


# ---------------------------------------------------------------------------------------------------------------
# The provider: a choice made at deploy time, never a default that sends nothing
# ---------------------------------------------------------------------------------------------------------------

OUTBOX_ONLY_BY_NAME = re.compile(
    r"name: 'SMS_ALLOW_OUTBOX_IN_AZURE'\n    value: smsProvider == 'outbox' \? 'true' : 'false'\n")


def provider_choice_problems(text: str, parsed: dict[str, Any], parameters_file: dict[str, Any]) -> list[str]:
    """Why a deployment could end up on a provider nobody chose, or on the outbox without asking for it by name.

    azd prompts for a parameter that has no default when main.parameters.json maps it to an unset variable
    (a `${VAR}` without `=default`), offering @allowed's values as a list.
    """
    problems = []
    spec = parsed["parameters"]["smsProvider"]
    if spec.get("default") is not None:
        problems.append(f"smsProvider has the default {spec['default']!r}: the provider must be chosen")
    mapped = parameters_file["parameters"].get("smsProvider", {}).get("value")
    if mapped != "${SMS_PROVIDER}":
        problems.append(f"main.parameters.json maps smsProvider to {mapped!r}, not '${{SMS_PROVIDER}}' (azd asks)")
    if not OUTBOX_ONLY_BY_NAME.search(text):
        problems.append("SMS_ALLOW_OUTBOX_IN_AZURE must be true exactly when smsProvider is 'outbox'")
    if [name for name in parsed["parameters"] if "outbox" in name.lower()]:
        problems.append("a parameter other than smsProvider lets the outbox run in Azure")
    return problems


def test_the_provider_is_chosen_at_deploy_time_and_the_outbox_only_by_name(template: Template) -> None:
    parameters = json.loads(PARAMETERS_JSON.read_text())
    assert provider_choice_problems(template.texts["main.bicep"], template.main, parameters) == []


def test_the_provider_check_fails_on_a_silent_default(tmp_path: Path) -> None:
    """The template as it was: a default provider that sends nothing, and the outbox allowed by a second flag."""
    text = MAIN_BICEP.read_text()
    text = _edit(text, "param smsProvider string\n", "param smsProvider string = 'outbox'\n\n"
                 "param smsAllowOutboxInAzure bool = true\n")
    text = _edit(text, "value: smsProvider == 'outbox' ? 'true' : 'false'",
                 "value: smsAllowOutboxInAzure ? 'true' : 'false'")
    edited = tmp_path / "main.bicep"
    edited.write_text(text)
    parameters = {"parameters": {"smsProvider": {"value": "${SMS_PROVIDER=outbox}"}}}
    problems = provider_choice_problems(text, parse_bicep(edited)[edited], parameters)
    assert [problem.split(" ")[0] for problem in problems] == [
        "smsProvider", "main.parameters.json", "SMS_ALLOW_OUTBOX_IN_AZURE", "a"], problems


def test_deploy_script_knows_the_providers_the_app_does() -> None:
    from gateway.providers import PROVIDERS

    [line] = [line for line in DEPLOY_SH.read_text().splitlines() if line.startswith("PROVIDERS=(")]
    assert set(line.removeprefix("PROVIDERS=(").removesuffix(")").split()) == set(PROVIDERS)


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
           "STORAGE_ACCOUNT_NAME": "sttest", "KEY_VAULT_NAME": "kv-test",
           "SMS_PUBLIC_BASE_URL": "https://app-test.azurewebsites.net", "ACS_EVENTS_SYSTEM_TOPIC": "",
           "ACS_EVENTS_DEAD_LETTER_CONTAINER": "", "SMS_EVENTGRID_KEY_IN_VAULT": "true",
           "TWILIO_MESSAGING_SERVICE_CALLBACK_URL": "https://app-test.azurewebsites.net/api/providers/twilio/status",
           "TWILIO_INBOUND_URL": "https://app-test.azurewebsites.net/api/providers/twilio/inbound"}}
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
    with open(os.path.join(state, "parameters.json")) as deployed:
        outputs["SMS_PROVIDER"] = json.load(deployed)["parameters"]["smsProvider"]["value"]
    query = args[args.index("--query") + 1]
    print(outputs[query.split(".")[2]])
elif args[:3] == ["keyvault", "secret", "list"]:
    print("twilio-auth-token\nunrelated-secret")
elif args[:4] == ["functionapp", "deployment", "source", "config-zip"]:
    shutil.copy(args[args.index("--src") + 1], os.path.join(state, "app.zip"))
elif args[0] == "rest" and "checknameavailability" in joined:
    print("true")  # the app name is free (tests/infra/test_deploy_checks.py covers the rest)
'''


def _fake_checkout(tmp_path: Path, with_app: bool = True) -> tuple[Path, dict[str, str]]:
    checkout = tmp_path / "checkout"
    (checkout / "infra" / "bicep").mkdir(parents=True)
    shutil.copy(DEPLOY_SH, checkout / "infra" / "deploy.sh")
    shutil.copy(MAIN_BICEP, checkout / "infra" / "bicep" / "main.bicep")
    shutil.copytree(ROOT / "infra" / "hooks", checkout / "infra" / "hooks")
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


def run_deploy(checkout: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """deploy.sh from a fake checkout, as a pipeline runs it: no terminal to ask on."""
    return subprocess.run(["bash", str(checkout / "infra" / "deploy.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def az_calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "state" / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def deployed_provider(tmp_path: Path) -> str:
    return json.loads((tmp_path / "state" / "parameters.json").read_text())["parameters"]["smsProvider"]["value"]


def test_deploy_script_without_a_provider_stops_before_touching_azure(tmp_path: Path) -> None:
    checkout, env = _fake_checkout(tmp_path)
    completed = run_deploy(checkout, env, "test")
    assert completed.returncode == 1
    assert "no SMS provider chosen: pass --provider twilio|acs|outbox or set SMS_PROVIDER" in completed.stderr
    assert az_calls(tmp_path) == []


def test_deploy_script_refuses_a_provider_it_does_not_know(tmp_path: Path) -> None:
    checkout, env = _fake_checkout(tmp_path)
    completed = run_deploy(checkout, env, "--provider", "sendgrid", "test")
    assert completed.returncode == 1
    assert "unknown SMS provider 'sendgrid': choose one of twilio acs outbox" in completed.stderr
    assert az_calls(tmp_path) == []


def test_deploy_script_takes_the_provider_flag_before_the_variable(tmp_path: Path) -> None:
    checkout, env = _fake_checkout(tmp_path)
    env["SMS_PROVIDER"] = "twilio"
    completed = run_deploy(checkout, env, "--provider=ACS", "test")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert deployed_provider(tmp_path) == "acs"
    assert "==> SMS provider: acs" in completed.stdout


def test_deploy_script_asks_for_the_provider_on_a_terminal(tmp_path: Path) -> None:
    import pty

    checkout, env = _fake_checkout(tmp_path)
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"outbox\n")
        completed = subprocess.run(["bash", str(checkout / "infra" / "deploy.sh"), "test"], env=env, stdin=terminal,
                                   capture_output=True, text=True, timeout=120, check=False)
        prompt = os.read(controller, 4096).decode(errors="replace")
    finally:
        os.close(controller)
        os.close(terminal)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "SMS provider (twilio, acs, or outbox, which sends nothing): " in completed.stderr + prompt
    assert deployed_provider(tmp_path) == "outbox"
    assert "the provider is outbox: messages are recorded in the Outbox table and not sent" in completed.stdout


def test_deploy_script_runs_end_to_end_against_a_fake_az(tmp_path: Path) -> None:
    checkout, env = _fake_checkout(tmp_path)
    secret = 'tok"en\\with-quote-and-backslash'
    env.update(
        SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN=secret,
        SMS_EXISTING_SECRETS="twilio-api-key-secret, acs-connection-string",
    )
    completed = run_deploy(checkout, env, "test", "westeurope")
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
    assert "smsAllowOutboxInAzure" not in parameters
    assert parameters["existingSecretNames"]["value"] == ["twilio-api-key-secret", "acs-connection-string"]
    assert parameters["deployerPrincipalId"]["value"] == "11111111-2222-3333-4444-555555555555"
    assert parameters["deployerPrincipalType"]["value"] == "User"
    assert parameters["environmentName"]["value"] == "test"
    # A first deployment makes the Event Grid key (the vault has none yet) and passes it like the other secrets.
    key = parameters["eventGridKey"]["value"]
    assert re.fullmatch(r"[0-9a-f]{64}", key), key
    assert not any(key in arg for call in calls for arg in call), "the Event Grid key reached an az command line"
    assert key not in completed.stdout + completed.stderr
    assert "https://app-test.azurewebsites.net/api/providers/twilio/status" in completed.stdout

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
    env["SMS_PROVIDER"] = "twilio"
    state = tmp_path / "state"
    command = ["bash", str(checkout / "infra" / "deploy.sh"), "test"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False,
                           stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "existingSecretNames" not in json.loads((state / "parameters.json").read_text())["parameters"]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False,
                           stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stdout + again.stderr
    parameters = json.loads((state / "parameters.json").read_text())["parameters"]
    assert parameters["existingSecretNames"]["value"] == ["twilio-auth-token"]
    env["SMS_EXISTING_SECRETS"] = ""
    chosen = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False,
                            stdin=subprocess.DEVNULL)
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert "existingSecretNames" not in json.loads((state / "parameters.json").read_text())["parameters"]


def test_deploy_script_refuses_a_checkout_without_the_app(tmp_path: Path) -> None:
    checkout, env = _fake_checkout(tmp_path, with_app=False)
    completed = run_deploy(checkout, env, "--provider", "acs", "test")
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


def console_files() -> set[str]:
    """What ``/console`` serves (gateway/console/), as package paths; index.html and app.js at least."""
    from gateway.console_page import FOLDER, shipped

    names = {f"{FOLDER.relative_to(ROOT).as_posix()}/{name}" for name in shipped()}
    assert {"gateway/console/index.html", "gateway/console/app.js"} <= names
    return names


def top_level(files: Iterable[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in files}


def test_deploy_script_packages_the_app_and_no_dev_only_module(tmp_path: Path) -> None:
    files = deploy_script_package(tmp_path)
    assert top_level(files) == {"function_app.py", "host.json", "requirements.txt", "gateway"}, top_level(files)
    assert {"gateway/__init__.py", "gateway/settings.py", "gateway/providers/twilio.py"} <= files
    assert console_files() <= files, "the console's page, scripts and styles ship in the package"
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


def test_funcignore_keeps_dev_only_modules_out_of_the_azd_package() -> None:
    files = funcignore_package(ROOT)
    assert {"function_app.py", "host.json", "requirements.txt", "gateway/__init__.py"} <= files
    assert console_files() <= files, "the console's page, scripts and styles ship in the package"
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
    assert "usage: infra/deploy.sh [--provider twilio|acs|outbox] <environment> [location]" in completed.stderr
