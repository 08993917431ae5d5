"""Delivery receipts in the infrastructure (issue 13): the gateway's public base URL, the Event Grid key, the ACS
events topic, and the webhook subscription that has to wait for the code.

Event Grid validates a WebHook endpoint when the subscription is created: the route must answer the handshake. On a
first deployment the template runs before the code exists, so the template that provisions (main.bicep and every
module it reaches) must not create the subscription; ``infra/hooks/subscribe-acs-events.sh`` deploys
``infra/bicep/acs-events-subscription.bicep`` after the code (azd's postdeploy hook, and ``infra/deploy.sh`` after
publishing). The paths the infrastructure gives providers are read from the app's route table, not written twice.
The hooks run against the stand-in Azure CLI (``tests/infra/fake_az.py``) as in ``test_deploy_checks.py``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.routes import ROUTES
from gateway.settings import Settings
from tests.infra.bicep import BICEP_DIR, ROOT, Template, decorators, resource_body, unquote
from tests.infra.test_deploy_checks import OUTPUTS, Azure, deploy

HOOKS = ROOT / "infra" / "hooks"
SUBSCRIBE = HOOKS / "subscribe-acs-events.sh"
EVENTGRID_KEY = HOOKS / "eventgrid-key.sh"
SUBSCRIPTION_BICEP = "acs-events-subscription.bicep"
TOPIC_BICEP = "app/acs-events.bicep"
EVENT_SUBSCRIPTION_TYPES = (
    "Microsoft.EventGrid/eventSubscriptions",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions",
    "Microsoft.EventGrid/topics/eventSubscriptions",
    "Microsoft.EventGrid/domains/eventSubscriptions",
    "Microsoft.EventGrid/domains/topics/eventSubscriptions",
    "Microsoft.EventGrid/partnerTopics/eventSubscriptions",
)
SMS_EVENT_TYPES = {"Microsoft.Communication.SMSDeliveryReportReceived", "Microsoft.Communication.SMSReceived"}
KEY = "k" * 20 + "0123456789abcdef0123456789ab"  # 48 URL-safe characters
TOPIC_OUTPUTS = {**OUTPUTS, "ACS_EVENTS_SYSTEM_TOPIC": "evgt-acs-test",
                 "ACS_EVENTS_DEAD_LETTER_CONTAINER": "acs-events-deadletter"}
SUBSCRIBE_ENV = {"ACS_EVENTS_SYSTEM_TOPIC": "evgt-acs-test", "AZURE_RESOURCE_GROUP": "rg-sms-gateway-test",
                 "SMS_PUBLIC_BASE_URL": "https://app-test.azurewebsites.net", "STORAGE_ACCOUNT_NAME": "sttest",
                 "ACS_EVENTS_DEAD_LETTER_CONTAINER": "acs-events-deadletter", "KEY_VAULT_NAME": "kv-test",
                 "SMS_EVENTGRID_KEY_IN_VAULT": "true", "SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS": "0"}


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load()


def accessor(*names: str) -> Any:
    """How pycep writes ``a.b.c``: nested property accessors, the innermost on the right."""
    first, *rest = names
    if not rest:
        return first
    return {"operator": {"type": "property_accessor", "operands": {"operand_1": first,
                                                                   "operand_2": accessor(*rest)}}}


def variable(parsed: dict[str, Any], name: str) -> Any:
    return parsed["variables"][name]["value"]


def app_setting(template: Template, name: str) -> Any:
    [value] = [item["value"] for item in variable(template.main, "appSettings") if unquote(item["name"]) == name]
    return value


def provider_route(path: str) -> Any:
    """The app's route at ``path`` that a provider posts to: POST, and no API key (the provider has none)."""
    found = [route for route in ROUTES if route.path == path]
    assert found, f"{path!r} is not a route of the app (gateway/routes.py): {sorted(r.path for r in ROUTES)}"
    [route] = found
    assert "POST" in route.methods, route
    assert route.operation.authenticated is False, f"{path}: a provider cannot send the gateway's API key"
    return route


# ---------------------------------------------------------------------------------------------------------------
# SMS_PUBLIC_BASE_URL and the Twilio callback URL
# ---------------------------------------------------------------------------------------------------------------


def test_the_public_base_url_is_the_apps_host_or_the_custom_domain(template: Template) -> None:
    """Not the site's defaultHostName (the site's settings cannot read the site): <name>.azurewebsites.net, which
    is the default host name as long as the site does not opt into unique host names."""
    assert app_setting(template, "SMS_PUBLIC_BASE_URL") == "publicBaseUrl"
    condition = variable(template.main, "publicBaseUrl")["operator"]
    assert condition["type"] == "conditional"
    assert condition["operands"]["condition"] == {"function": {"type": "empty",
                                                               "parameters": {"item_to_test": "customDomain"}}}
    assert condition["operands"]["true_value"] == "https://${appName}.azurewebsites.net"
    assert condition["operands"]["false_value"] == "https://${customDomain}"
    assert variable(template.main, "appName") == {"function": {"type": "to_lower", "parameters": {
        "string_to_change": "functionAppName"}}}
    _, site = template.only_resource("Microsoft.Web/sites")
    assert "autoGeneratedDomainNameLabelScope" not in resource_body(site)["properties"], (
        "with a unique default host name the app is no longer <name>.azurewebsites.net: SMS_PUBLIC_BASE_URL "
        "would point elsewhere")
    # Both forms are what the app's declaration accepts.
    for value in ("https://production-eros-gateway-api-sms-wa.azurewebsites.net", "https://sms.example.com"):
        assert Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "SMS_PROVIDER": "outbox",
                                  "SMS_PUBLIC_BASE_URL": value}).public_base_url == value


def test_the_outputs_give_the_twilio_callback_url_for_a_messaging_service(template: Template) -> None:
    outputs = template.main["outputs"]
    assert outputs["SMS_PUBLIC_BASE_URL"]["value"] == "publicBaseUrl"
    assert outputs["TWILIO_MESSAGING_SERVICE_CALLBACK_URL"]["value"] == "${publicBaseUrl}/${twilioStatusPath}"
    # azd keeps outputs in its environment: an output named like a parameter's variable would feed it back on the
    # next provisioning (TWILIO_STATUS_CALLBACK_URL would turn into the twilioStatusCallbackUrl parameter).
    mapped = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    variables = {re.sub(r"^\$\{(\w+).*$", r"\1", entry["value"]) for entry in mapped.values()}
    assert outputs["TWILIO_INBOUND_URL"]["value"] == "${publicBaseUrl}/${twilioInboundPath}"
    receipts = {"SMS_PUBLIC_BASE_URL", "TWILIO_MESSAGING_SERVICE_CALLBACK_URL", "TWILIO_INBOUND_URL",
                "ACS_EVENTS_SYSTEM_TOPIC",
                "ACS_EVENTS_DEAD_LETTER_CONTAINER", "SMS_EVENTGRID_KEY_IN_VAULT"}
    assert receipts <= set(outputs)
    assert not receipts & variables, receipts & variables


def test_the_twilio_callback_path_is_the_apps_route(template: Template) -> None:
    provider_route(variable(template.main, "twilioStatusPath"))


def test_the_twilio_inbound_path_is_the_apps_route(template: Template) -> None:
    provider_route(variable(template.main, "twilioInboundPath"))


# ---------------------------------------------------------------------------------------------------------------
# SMS_EVENTGRID_KEY
# ---------------------------------------------------------------------------------------------------------------


def test_the_event_grid_key_is_a_vault_secret_given_once_and_then_kept(template: Template) -> None:
    """Given (a @secure parameter the template stores as sms-eventgrid-key) or already in the vault; never tied to
    the provider, so ACS's reports for messages sent before a switch still find the route."""
    spec = template.main["parameters"]["eventGridKey"]
    assert "secure" in decorators(spec) and spec["default"] == ""
    assert variable(template.main, "secretNames")["eventGridKey"] == "sms-eventgrid-key"
    text = template.texts["main.bicep"]
    [use] = re.findall(r"^var useEventGridKey = (.+)$", text, re.M)
    assert use == "!empty(eventGridKey) || contains(existingSecretNames, secretNames.eventGridKey)"
    value = app_setting(template, "SMS_EVENTGRID_KEY")["operator"]["operands"]
    assert value["condition"] == "useEventGridKey"
    assert value["true_value"] == "@Microsoft.KeyVault(SecretUri=${vaultSecretsUri}/${secretNames.eventGridKey})"
    assert template.module("main.bicep", "keyVault")["params"]["eventGridKey"] == "eventGridKey"
    vault = template.file("app/keyvault.bicep")
    assert "secure" in decorators(vault["parameters"]["eventGridKey"])
    secret = vault["resources"]["eventGridKeySecret"]
    assert secret["config"]["condition"] == {"operator": {"type": "not", "operands": {"bool_value": {
        "function": {"type": "empty", "parameters": {"item_to_test": "eventGridKey"}}}}}}
    body = resource_body(secret)
    assert body["name"] == accessor("secretNames", "eventGridKey")
    assert body["properties"]["value"] == "eventGridKey"
    mapped = json.loads((BICEP_DIR / "main.parameters.json").read_text())["parameters"]
    assert mapped["eventGridKey"] == {"value": "${SMS_EVENTGRID_KEY}"}
    assert template.main["outputs"]["SMS_EVENTGRID_KEY_IN_VAULT"]["value"] == "useEventGridKey"


# ---------------------------------------------------------------------------------------------------------------
# The system topic (provisioned) and the subscription (after the code)
# ---------------------------------------------------------------------------------------------------------------


def provisioned_files(template: Template, start: str = "main.bicep") -> Iterator[str]:
    """main.bicep and every module it reaches: what one provisioning deploys."""
    seen, queue = set(), [start]
    while queue:
        file = queue.pop()
        if file in seen:
            continue
        seen.add(file)
        yield file
        folder = Path(file).parent
        for module in template.file(file).get("modules", {}).values():
            queue.append((folder / module["detail"]["path"]).as_posix())


def subscriptions_in(template: Template, files: Iterator[str]) -> list[str]:
    wanted = set(files)
    return [f"{file}: {name}" for kind in EVENT_SUBSCRIPTION_TYPES
            for file, name, _ in template.resources(kind) if file in wanted]


def test_provisioning_creates_no_event_subscription(template: Template) -> None:
    """Its webhook validation would run before the code exists and fail the first deployment."""
    provisioned = list(provisioned_files(template))
    assert {"main.bicep", TOPIC_BICEP, "app/function.bicep"} <= set(provisioned)
    assert SUBSCRIPTION_BICEP not in provisioned
    assert subscriptions_in(template, iter(provisioned)) == []
    assert subscriptions_in(template, iter(template.files)) == [f"{SUBSCRIPTION_BICEP}: subscription"]


def test_the_check_sees_a_subscription_in_a_provisioned_module(tmp_path: Path) -> None:
    copy = tmp_path / "bicep"
    shutil.copytree(BICEP_DIR, copy)
    topic = copy / TOPIC_BICEP
    topic.write_text(topic.read_text() + """
resource early 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'early'
  properties: {}
}
""")
    edited = Template.load(copy)
    assert subscriptions_in(edited, provisioned_files(edited)) == [f"{TOPIC_BICEP}: early"]


def test_the_topic_publishes_the_created_acs_resources_events(template: Template) -> None:
    module = template.main["modules"]["acsEvents"]
    assert module["config"]["condition"] == "createCommunicationService"
    assert resource_body(module)["params"]["communicationServiceName"] == "communicationServiceName"
    assert resource_body(module)["dependsOn"] == ["communication"]
    assert resource_body(template.main["modules"]["communication"])["params"]["name"] == "communicationServiceName"
    file, topic = template.only_resource("Microsoft.EventGrid/systemTopics")
    assert file == TOPIC_BICEP
    body = resource_body(topic)
    assert body["location"] == "global", "a system topic lives where its source does; ACS is global"
    assert body["identity"] == {"type": "SystemAssigned"}
    assert body["properties"]["topicType"] == "Microsoft.Communication.CommunicationServices"
    assert body["properties"]["source"] == accessor("communicationService", "id")
    _, communication = template.only_resource("Microsoft.Communication/communicationServices")
    assert resource_body(communication)["location"] == "global"


def test_the_topic_may_write_dead_letters_to_its_container_only(template: Template) -> None:
    [(_, _, assignment)] = [found for found in template.resources("Microsoft.Authorization/roleAssignments")
                            if found[0] == TOPIC_BICEP]
    body = resource_body(assignment)
    assert body["scope"] == "deadLetterContainer"
    assert body["properties"]["principalId"] == accessor("systemTopic", "identity", "principalId")
    # Storage Blob Data Contributor ("Add managed identity to a role on Azure Event Grid destination": Blob storage).
    assert variable(template.file(TOPIC_BICEP), "storageBlobDataContributorRoleId") == (
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe")
    assert template.module("main.bicep", "storage")["params"]["deadLetterContainerName"] == (
        "acsEventsDeadLetterContainerName")
    assert template.main["outputs"]["ACS_EVENTS_DEAD_LETTER_CONTAINER"]["value"] == (
        "acsEventsDeadLetterContainerName")


def test_the_acs_events_path_is_the_apps_route(template: Template) -> None:
    provider_route(variable(template.file(SUBSCRIPTION_BICEP), "eventsPath"))


def test_the_subscription_sends_both_sms_events_to_the_route_with_the_key(template: Template) -> None:
    parsed = template.file(SUBSCRIPTION_BICEP)
    key = parsed["parameters"]["eventGridKey"]
    assert "secure" in decorators(key) and decorators(key)["min_length"] == 32
    body = resource_body(parsed["resources"]["subscription"])
    properties = body["properties"]
    destination = properties["destination"]
    assert destination["endpointType"] == "WebHook"
    assert destination["properties"]["endpointUrl"] == "${publicBaseUrl}/${eventsPath}?key=${eventGridKey}"
    assert properties["eventDeliverySchema"] == "EventGridSchema"
    assert properties["filter"] == {"includedEventTypes": "eventTypes"}
    assert set(variable(parsed, "eventTypes")) == SMS_EVENT_TYPES
    assert properties["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    dead_letter = properties["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    assert dead_letter["deadLetterDestination"]["endpointType"] == "StorageBlob"
    assert dead_letter["deadLetterDestination"]["properties"]["blobContainerName"] == "deadLetterContainerName"


def test_the_hook_feeds_the_subscription_what_the_provisioning_outputs(template: Template) -> None:
    """Every parameter of the subscription template, and from outputs azd keeps (or deploy.sh passes) by name."""
    parameters = set(template.file(SUBSCRIPTION_BICEP)["parameters"])
    for script in (SUBSCRIBE, SUBSCRIBE.with_suffix(".ps1")):
        written = set(re.findall(r'"?(\w+)"?\s*[:=]\s*[@{]+\s*"?value"?\s*[:=]', script.read_text()))
        assert written == parameters, (script.name, written ^ parameters)
    outputs = set(template.main["outputs"])
    read = set(re.findall(r"\$\{(\w+):-", SUBSCRIBE.read_text()))
    assert read - outputs == {"AZURE_RESOURCE_GROUP", "SMS_EVENTGRID_KEY", "SMS_EVENTS_SUBSCRIBE_ATTEMPTS",
                              "SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS"}, read - outputs
    deploy_sh = (ROOT / "infra" / "deploy.sh").read_text()
    for name in read & outputs:
        assert f"{name}=" in deploy_sh, f"deploy.sh does not pass {name} to the subscription hook"


# ---------------------------------------------------------------------------------------------------------------
# infra/hooks/subscribe-acs-events.sh
# ---------------------------------------------------------------------------------------------------------------


def deployments(azure: Azure) -> list[list[str]]:
    return [call for call in azure.calls if call[:3] == ["deployment", "group", "create"]]


def subscription_parameters(azure: Azure) -> dict[str, Any]:
    file = azure.state / "acs-events-subscription.parameters.json"
    return {name: entry["value"] for name, entry in json.loads(file.read_text())["parameters"].items()}


def test_without_a_topic_there_is_nothing_to_subscribe(tmp_path: Path) -> None:
    azure = Azure(tmp_path)
    completed = azure.run(SUBSCRIBE, **{**SUBSCRIBE_ENV, "ACS_EVENTS_SYSTEM_TOPIC": ""})
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no subscription to create" in completed.stdout
    assert azure.calls == []


def test_the_subscription_is_deployed_with_the_key_in_a_file(tmp_path: Path) -> None:
    azure = Azure(tmp_path)
    completed = azure.run(SUBSCRIBE, **SUBSCRIBE_ENV, SMS_EVENTGRID_KEY=KEY)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    [call] = deployments(azure)
    assert call[call.index("--resource-group") + 1] == "rg-sms-gateway-test"
    assert call[call.index("--template-file") + 1] == str(BICEP_DIR / SUBSCRIPTION_BICEP)
    assert subscription_parameters(azure) == {
        "systemTopicName": "evgt-acs-test", "publicBaseUrl": "https://app-test.azurewebsites.net",
        "eventGridKey": KEY, "storageAccountName": "sttest", "deadLetterContainerName": "acs-events-deadletter"}
    assert not any(KEY in arg for call in azure.calls for arg in call), "the key reached an az command line"
    assert KEY not in completed.stdout + completed.stderr
    assert "subscribed" in completed.stdout


def test_the_key_is_read_from_the_vault_when_not_given(tmp_path: Path) -> None:
    azure = Azure(tmp_path, vault_values={"sms-eventgrid-key": KEY})
    completed = azure.run(SUBSCRIBE, **SUBSCRIBE_ENV)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    read = azure.index("keyvault", "secret", "show")
    assert azure.calls[read][3:7] == ["--vault-name", "kv-test", "--name", "sms-eventgrid-key"]
    assert subscription_parameters(azure)["eventGridKey"] == KEY
    (tmp_path / "missing").mkdir()
    missing = Azure(tmp_path / "missing")
    failed = missing.run(SUBSCRIBE, **SUBSCRIBE_ENV)
    assert failed.returncode == 1
    assert "could not read sms-eventgrid-key from kv-test" in failed.stderr
    assert deployments(missing) == []


def test_a_validation_that_fails_while_the_app_starts_is_tried_again(tmp_path: Path) -> None:
    azure = Azure(tmp_path, validation_failures=2)
    completed = azure.run(SUBSCRIBE, **SUBSCRIBE_ENV, SMS_EVENTGRID_KEY=KEY, SMS_EVENTS_SUBSCRIBE_ATTEMPTS="3")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert len(deployments(azure)) == 3
    assert "not yet (attempt 1 of 3)" in completed.stderr and "not yet (attempt 2 of 3)" in completed.stderr


def test_a_validation_that_never_succeeds_ends_with_what_to_check(tmp_path: Path) -> None:
    azure = Azure(tmp_path, validation_failures=99)
    completed = azure.run(SUBSCRIBE, **SUBSCRIBE_ENV, SMS_EVENTGRID_KEY=KEY, SMS_EVENTS_SUBSCRIBE_ATTEMPTS="2")
    assert completed.returncode == 1
    assert len(deployments(azure)) == 2
    assert "could not create the subscription after 2 attempts" in completed.stderr
    assert "GET https://app-test.azurewebsites.net/api/health" in completed.stderr
    assert "Webhook validation handshake failed" in completed.stderr  # az's own error stays on the screen
    assert KEY not in completed.stderr


@pytest.mark.parametrize(("env", "message"), [
    ({"SMS_EVENTGRID_KEY_IN_VAULT": "false"}, "the deployment set no Event Grid key on the app"),
    ({"SMS_EVENTGRID_KEY": "short"}, "at least 32 characters"),
    ({"SMS_EVENTGRID_KEY": KEY + '"'}, "letters, digits, - or _ only"),
    ({"SMS_PUBLIC_BASE_URL": "https://app-test.azurewebsites.net/"}, "without a trailing slash"),
    ({"SMS_PUBLIC_BASE_URL": "http://app-test.azurewebsites.net"}, "must be https://<host>"),
    ({"AZURE_RESOURCE_GROUP": ""}, "AZURE_RESOURCE_GROUP is not set"),
], ids=["no-key-on-the-app", "short-key", "quote-in-key", "trailing-slash", "http", "no-group"])
def test_what_cannot_work_is_refused_before_asking_azure(tmp_path: Path, env: dict[str, str], message: str) -> None:
    azure = Azure(tmp_path)
    completed = azure.run(SUBSCRIBE, **{**SUBSCRIBE_ENV, "SMS_EVENTGRID_KEY": KEY, **env})
    assert completed.returncode == 1
    assert message in completed.stderr, completed.stderr
    assert deployments(azure) == []


# ---------------------------------------------------------------------------------------------------------------
# infra/hooks/eventgrid-key.sh (azd's preprovision)
# ---------------------------------------------------------------------------------------------------------------

FAKE_AZD = """#!/bin/sh
printf '%s\\n' "$*" >>"$FAKE_AZ_DIR/azd-calls"
"""


def with_azd(azure: Azure) -> None:
    """A stand-in azd next to the fake az, recording its arguments."""
    azd = Path(azure.env["PATH"].split(":")[0]) / "azd"
    azd.write_text(FAKE_AZD)
    azd.chmod(0o755)


def azd_calls(azure: Azure) -> list[str]:
    calls = azure.state / "azd-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_azd_gets_a_new_key_once(tmp_path: Path) -> None:
    azure = Azure(tmp_path)
    with_azd(azure)
    completed = azure.run(EVENTGRID_KEY)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    [call] = azd_calls(azure)
    assert re.fullmatch(r"env set SMS_EVENTGRID_KEY [0-9a-f]{64}", call), call
    assert call.split()[-1] not in completed.stdout + completed.stderr
    again = azure.run(EVENTGRID_KEY)
    assert azd_calls(azure)[1].split()[-1] != call.split()[-1], "two keys alike: not random"
    assert again.returncode == 0
    kept = azure.run(EVENTGRID_KEY, SMS_EVENTGRID_KEY=KEY)
    assert kept.returncode == 0 and len(azd_calls(azure)) == 2, "a key the environment holds is kept"


def test_a_malformed_key_in_the_azd_environment_is_refused(tmp_path: Path) -> None:
    azure = Azure(tmp_path)
    with_azd(azure)
    completed = azure.run(EVENTGRID_KEY, SMS_EVENTGRID_KEY="not a key")
    assert completed.returncode == 1
    assert "SMS_EVENTGRID_KEY must be letters, digits, - or _ only" in completed.stderr
    assert azd_calls(azure) == []


# ---------------------------------------------------------------------------------------------------------------
# infra/deploy.sh: the key, the subscription after the code, the Twilio URL
# ---------------------------------------------------------------------------------------------------------------


def main_parameters(azure: Azure) -> dict[str, Any]:
    return json.loads((azure.state / "parameters.json").read_text())["parameters"]


def test_deploy_generates_the_key_and_subscribes_after_publishing(tmp_path: Path) -> None:
    azure = Azure(tmp_path, outputs=TOPIC_OUTPUTS)
    completed = deploy(azure, tmp_path, SMS_PROVIDER="acs", SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS="0")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    key = main_parameters(azure)["eventGridKey"]["value"]
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert subscription_parameters(azure)["eventGridKey"] == key
    assert not any(key in arg for call in azure.calls for arg in call), "the key reached an az command line"
    provision, subscribe = deployments(azure)
    assert Path(provision[provision.index("--template-file") + 1]).name == "main.bicep"
    assert Path(subscribe[subscribe.index("--template-file") + 1]).name == SUBSCRIPTION_BICEP
    assert azure.index("functionapp", "deployment", "source", "config-zip") < azure.calls.index(subscribe)
    assert re.search(r"status callback URL:\n\s+https://app-test\.azurewebsites\.net/api/providers/twilio/status\n",
                     completed.stdout), completed.stdout


def test_deploy_keeps_the_vaults_key_and_takes_a_new_one_to_rotate(tmp_path: Path) -> None:
    world = {"outputs": TOPIC_OUTPUTS, "vault_secrets": ["sms-eventgrid-key"],
             "vault_values": {"sms-eventgrid-key": KEY}}
    azure = Azure(tmp_path, **world)
    first = deploy(azure, tmp_path, SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS="0")
    assert first.returncode == 0, first.stdout + first.stderr
    again = deploy(azure, tmp_path / "again", SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS="0")
    assert again.returncode == 0, again.stdout + again.stderr
    parameters = main_parameters(azure)
    assert "eventGridKey" not in parameters
    assert parameters["existingSecretNames"]["value"] == ["sms-eventgrid-key"]
    assert "Event Grid key: the one in the vault" in again.stdout
    assert subscription_parameters(azure)["eventGridKey"] == KEY
    rotated = "r" * 40
    third = deploy(azure, tmp_path / "third", SMS_EVENTGRID_KEY=rotated, SMS_EVENTS_SUBSCRIBE_WAIT_SECONDS="0")
    assert third.returncode == 0, third.stdout + third.stderr
    assert main_parameters(azure)["eventGridKey"]["value"] == rotated
    assert "sms-eventgrid-key" not in main_parameters(azure).get("existingSecretNames", {}).get("value", [])
    assert subscription_parameters(azure)["eventGridKey"] == rotated


def test_deploy_refuses_a_malformed_key_before_deploying(tmp_path: Path) -> None:
    azure = Azure(tmp_path)
    completed = deploy(azure, tmp_path, SMS_EVENTGRID_KEY="too-short")
    assert completed.returncode == 1
    assert "SMS_EVENTGRID_KEY must be at least 32 letters, digits, - or _" in completed.stderr
    assert deployments(azure) == []


# ---------------------------------------------------------------------------------------------------------------
# The PowerShell twins
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [SUBSCRIBE, EVENTGRID_KEY], ids=lambda path: path.stem)
def test_each_twin_reads_the_same_settings_and_runs_the_same_commands(script: Path) -> None:
    def contract(script_text: str) -> set[str]:
        text = "\n".join(line for line in script_text.splitlines() if not line.lstrip().startswith("#"))
        names = set(re.findall(r"(?:\$\{|\$env:)([A-Z][A-Z0-9_]+)", text))
        commands = {" ".join(match.split()) for match in re.findall(r"\baz[d]? (?:[a-z-]+ ){1,4}", text)
                    if not match.startswith(("az is", "azd is", "azd env get-value", "azd hooks run"))}
        files = set(re.findall(r"[\w-]+\.bicep|sms-eventgrid-key|acs-events-subscription", text))
        return names | commands | files

    posix, windows = contract(script.read_text()), contract(script.with_suffix(".ps1").read_text())
    assert posix == windows, posix ^ windows
    assert len(posix) >= 3, posix

