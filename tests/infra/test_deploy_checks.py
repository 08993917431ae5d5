"""The deploy's own checks, run against a stand-in Azure CLI (tests/infra/fake_az.py) on PATH.

Before anything is created, the app name is checked (infra/hooks/check-app-name.sh: azd's preprovision hook and
infra/deploy.sh): a name another app holds stops the deploy with the cut-over steps; a free name, or the name of
this environment's own app, goes ahead. After provisioning, the Key Vault references are waited for and the app
restarted (infra/hooks/resolve-vault-references.sh: azd's postprovision hook and infra/deploy.sh); a reference
that never resolves ends with a message naming the setting, not a hang. The hooks run under ``sh`` (dash on
Debian), as azd runs them on Linux and macOS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.test_infra import iac_tool

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "infra" / "hooks"
CHECK_NAME = HOOKS / "check-app-name.sh"
RESOLVE_REFERENCES = HOOKS / "resolve-vault-references.sh"
FAKE_AZ = Path(__file__).with_name("fake_az.py")
PRODUCTION_NAME = "production-eros-gateway-api-sms-wa"
SUBSCRIPTION = "0b1c2d3e-0000-4000-8000-00000000000a"
OUTPUTS = {"FUNCTION_APP_NAME": "app-test", "ENDPOINT_URL": "https://app-test.azurewebsites.net",
           "STORAGE_ACCOUNT_NAME": "sttest", "KEY_VAULT_NAME": "kv-test", "SMS_PROVIDER": "twilio",
           "RESOURCE_GROUP_NAME": "rg-sms-gateway-test", "SMS_PUBLIC_BASE_URL": "https://app-test.azurewebsites.net",
           "TWILIO_MESSAGING_SERVICE_CALLBACK_URL": "https://app-test.azurewebsites.net/api/providers/twilio/status",
           "TWILIO_INBOUND_URL": "https://app-test.azurewebsites.net/api/providers/twilio/inbound",
           "ACS_EVENTS_SYSTEM_TOPIC": "", "ACS_EVENTS_DEAD_LETTER_CONTAINER": "", "SMS_EVENTGRID_KEY_IN_VAULT": True}


class Azure:
    """A folder the fake az reads its world from and records its calls in, and the environment that uses it."""

    def __init__(self, tmp_path: Path, **world: Any) -> None:
        self.state = tmp_path / "az-state"
        self.state.mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        az = bin_dir / "az"
        az.write_text(f'#!/bin/sh\nexec "{iac_tool("python")}" "{FAKE_AZ}" "$@"\n')
        az.chmod(0o755)
        (self.state / "world.json").write_text(json.dumps({"subscription": SUBSCRIPTION, "outputs": OUTPUTS,
                                                          **world}))
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("SMS_", "TWILIO_", "ACS_", "AZURE_", "FUNCTION_APP_NAME"))}
        self.env.update(PATH=f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}", FAKE_AZ_DIR=str(self.state))

    @property
    def calls(self) -> list[list[str]]:
        log = self.state / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def index(self, *prefix: str) -> int:
        """Where the first call starting with ``prefix`` is among the calls (fails when there is none)."""
        return next(i for i, call in enumerate(self.calls) if tuple(call[:len(prefix)]) == prefix)

    def made(self, *prefix: str) -> bool:
        return any(tuple(call[:len(prefix)]) == prefix for call in self.calls)

    def run(self, script: Path, *args: str, shell: str = "sh", timeout: float = 60,
            **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([shell, str(script), *args], env={**self.env, **env}, capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL, cwd=ROOT)


def site(name: str, group: str, env_name: str | None) -> dict[str, Any]:
    return {"name": name, "resourceGroup": group, "tags": {"azd-env-name": env_name} if env_name else None}


# ---------------------------------------------------------------------------------------------------------------
# The app name
# ---------------------------------------------------------------------------------------------------------------


def test_a_free_name_passes_and_is_asked_about_as_a_site(tmp_path: Path) -> None:
    azure = Azure(tmp_path)
    completed = azure.run(CHECK_NAME, AZURE_ENV_NAME="prod")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    [ask] = [call for call in azure.calls if call[:1] == ["rest"]]
    assert ask[ask.index("--method") + 1] == "post"
    assert ask[ask.index("--url") + 1] == (f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/providers/"
                                          "Microsoft.Web/checknameavailability?api-version=2024-04-01")
    assert json.loads(ask[ask.index("--body") + 1]) == {"name": PRODUCTION_NAME, "type": "Microsoft.Web/sites"}


def test_a_name_another_app_holds_stops_with_the_cut_over_steps(tmp_path: Path) -> None:
    azure = Azure(tmp_path, name_available=False)
    completed = azure.run(CHECK_NAME, AZURE_ENV_NAME="prod", AZURE_RESOURCE_GROUP="rg-sms-gateway-prod")
    assert completed.returncode == 1
    message = completed.stderr
    assert f"the app name '{PRODUCTION_NAME}' is taken: an app outside subscription {SUBSCRIPTION} holds it" in message
    assert "Nothing has been created." in message
    interim = re.search(r"azd env set SMS_FUNCTION_APP_NAME (sms-gateway-prod-[0-9a-f]{8}) && azd up", message)
    assert interim, message
    assert f"https://{interim[1]}.azurewebsites.net" in message
    assert f"az functionapp delete --resource-group rg-sms-gateway-prod --name {interim[1]}" in message
    assert f"azd env set SMS_FUNCTION_APP_NAME {PRODUCTION_NAME} && azd up" in message
    assert '"Taking over the production name"' in message
    again = azure.run(CHECK_NAME, AZURE_ENV_NAME="prod", AZURE_RESOURCE_GROUP="rg-sms-gateway-prod")
    assert interim[1] in again.stderr, "the suggested name must not change between runs"


def test_the_old_app_in_this_subscription_is_named_with_its_delete_command(tmp_path: Path) -> None:
    azure = Azure(tmp_path, name_available=False, sites=[site(PRODUCTION_NAME, "rg-legacy", None)])
    completed = azure.run(CHECK_NAME, AZURE_ENV_NAME="prod", AZURE_RESOURCE_GROUP="rg-sms-gateway-prod")
    assert completed.returncode == 1
    assert "another app in resource group rg-legacy of this subscription holds it" in completed.stderr
    assert (f"az resource delete --resource-group rg-legacy --name {PRODUCTION_NAME} "
            "--resource-type Microsoft.Web/sites") in completed.stderr


@pytest.mark.parametrize(
    ("holder", "group", "passes"),
    [
        (site(PRODUCTION_NAME, "rg-sms-gateway-prod", "prod"), "RG-SMS-GATEWAY-PROD", True),
        (site(PRODUCTION_NAME, "rg-sms-gateway-prod", "prod"), "", True),  # azd before it asked for the group
        (site(PRODUCTION_NAME, "rg-sms-gateway-prod", "test"), "rg-sms-gateway-prod", False),
        (site(PRODUCTION_NAME, "rg-other", "prod"), "rg-sms-gateway-prod", False),
        (site(PRODUCTION_NAME, "rg-sms-gateway-prod", None), "rg-sms-gateway-prod", False),
    ],
)
def test_only_this_environments_own_app_may_hold_the_name(tmp_path: Path, holder: dict[str, Any], group: str,
                                                           passes: bool) -> None:
    """A redeployment goes ahead; an app of another environment, or of nobody's, is never deployed over."""
    azure = Azure(tmp_path, name_available=False, sites=[holder])
    completed = azure.run(CHECK_NAME, AZURE_ENV_NAME="prod", AZURE_RESOURCE_GROUP=group)
    assert (completed.returncode == 0) is passes, completed.stdout + completed.stderr
    if passes:
        assert "this environment's own app (resource group rg-sms-gateway-prod); deploying over it" in completed.stdout


def test_a_name_app_service_refuses_is_reported_with_its_reason(tmp_path: Path) -> None:
    azure = Azure(tmp_path, name_available=False, reason="Invalid", message="The name 'x' is reserved.")
    completed = azure.run(CHECK_NAME, AZURE_ENV_NAME="prod", SMS_FUNCTION_APP_NAME="microsoft-app")
    assert completed.returncode == 1
    assert completed.stderr.strip() == (
        "check-app-name: App Service refuses the name 'microsoft-app': The name 'x' is reserved.")


@pytest.mark.parametrize("name", ["-leading", "trailing-", "under_score", "dotted.name", "x", "a" * 61])
def test_a_malformed_name_is_refused_without_asking_azure(tmp_path: Path, name: str) -> None:
    azure = Azure(tmp_path)
    completed = azure.run(CHECK_NAME, AZURE_ENV_NAME="prod", SMS_FUNCTION_APP_NAME=name)
    assert completed.returncode == 1
    assert f"'{name}' is not a valid app name" in completed.stderr
    assert azure.calls == []


def test_a_signed_out_cli_stops_the_check_with_what_to_do(tmp_path: Path) -> None:
    azure = Azure(tmp_path, signed_out=True)
    completed = azure.run(CHECK_NAME, AZURE_ENV_NAME="prod")
    assert completed.returncode == 1
    assert "check-app-name: not signed in to the Azure CLI: run az login" in completed.stderr


def test_the_check_knows_the_templates_default_name() -> None:
    bicep = (ROOT / "infra" / "bicep" / "main.bicep").read_text()
    [template_default] = re.findall(r"^param functionAppName string = '([^']+)'$", bicep, re.M)
    parameters = json.loads((ROOT / "infra" / "bicep" / "main.parameters.json").read_text())["parameters"]
    assert template_default == PRODUCTION_NAME
    assert parameters["functionAppName"]["value"] == "${SMS_FUNCTION_APP_NAME=" + PRODUCTION_NAME + "}"
    for script in (CHECK_NAME, CHECK_NAME.with_suffix(".ps1")):
        assert re.search(rf"^\$?PRODUCTION_NAME\s*=\s*'?{PRODUCTION_NAME}'?$", script.read_text(), re.M), script


# ---------------------------------------------------------------------------------------------------------------
# Key Vault references
# ---------------------------------------------------------------------------------------------------------------

APP_ENV = {"FUNCTION_APP_NAME": "app-test", "AZURE_RESOURCE_GROUP": "rg-sms-gateway-test",
           "SMS_VAULT_REFERENCE_POLL_SECONDS": "1"}


def test_the_app_restarts_once_every_reference_has_resolved(tmp_path: Path) -> None:
    azure = Azure(tmp_path, references={"TWILIO_AUTH_TOKEN": ["AccessToKeyVaultDenied", "AccessToKeyVaultDenied",
                                                              "Resolved"]})
    completed = azure.run(RESOLVE_REFERENCES, **APP_ENV)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    refreshes = [i for i, call in enumerate(azure.calls) if call[:1] == ["rest"] and "/refresh?" in " ".join(call)]
    assert len(refreshes) == 3
    site = (f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-sms-gateway-test/"
            "providers/Microsoft.Web/sites/app-test/config/configreferences/appsettings")
    assert azure.calls[refreshes[0]][azure.calls[refreshes[0]].index("--url") + 1] == (
        f"{site}/refresh?api-version=2022-03-01")
    assert any(call[call.index("--url") + 1] == f"{site}?api-version=2024-04-01"
               for call in azure.calls if call[:1] == ["rest"])
    restart = azure.index("functionapp", "restart")
    assert restart > refreshes[-1]
    assert azure.calls[restart][2:] == ["--resource-group", "rg-sms-gateway-test", "--name", "app-test", "-o", "none"]
    assert "not yet resolved: TWILIO_AUTH_TOKEN: AccessToKeyVaultDenied" in completed.stdout


def test_a_reference_that_never_resolves_ends_with_a_message_naming_it(tmp_path: Path) -> None:
    azure = Azure(tmp_path, references={"TWILIO_AUTH_TOKEN": ["AccessToKeyVaultDenied"],
                                        "ACS_CONNECTION_STRING": ["Resolved"]})
    completed = azure.run(RESOLVE_REFERENCES, **APP_ENV, SMS_VAULT_REFERENCE_WAIT_SECONDS="2", timeout=30)
    assert completed.returncode == 1
    message = completed.stderr
    assert ("resolve-vault-references: after 2 s these app settings of app-test still hold unresolved Key Vault "
            "references:\n  TWILIO_AUTH_TOKEN: AccessToKeyVaultDenied\n") in message
    assert "ACS_CONNECTION_STRING" not in message
    assert "Key Vault Secrets User" in message
    assert ("Then run: FUNCTION_APP_NAME=app-test AZURE_RESOURCE_GROUP=rg-sms-gateway-test "
            "sh infra/hooks/resolve-vault-references.sh") in message
    assert not azure.made("functionapp", "restart")


def test_a_missing_secret_fails_at_once_instead_of_waiting(tmp_path: Path) -> None:
    azure = Azure(tmp_path, references={"TWILIO_API_KEY_SECRET": ["SecretNotFound"]})
    completed = azure.run(RESOLVE_REFERENCES, **APP_ENV, SMS_VAULT_REFERENCE_WAIT_SECONDS="600", timeout=30)
    assert completed.returncode == 1
    assert "reference what the vault does not hold:\n  TWILIO_API_KEY_SECRET: SecretNotFound\n" in completed.stderr
    assert len([call for call in azure.calls if "/refresh?" in " ".join(call)]) == 1
    assert not azure.made("functionapp", "restart")


def test_an_app_without_references_is_not_restarted(tmp_path: Path) -> None:
    azure = Azure(tmp_path)
    completed = azure.run(RESOLVE_REFERENCES, **APP_ENV)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no Key Vault references: nothing to restart" in completed.stdout
    assert not azure.made("functionapp", "restart")


def test_an_unreadable_status_is_waited_out_too(tmp_path: Path) -> None:
    azure = Azure(tmp_path, failing=["rest --method get"])
    completed = azure.run(RESOLVE_REFERENCES, **APP_ENV, SMS_VAULT_REFERENCE_WAIT_SECONDS="1", timeout=30)
    assert completed.returncode == 1
    assert "(their status could not be read: the error is above)" in completed.stderr


# ---------------------------------------------------------------------------------------------------------------
# infra/deploy.sh runs both
# ---------------------------------------------------------------------------------------------------------------


def fake_checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    for part in ("infra", "gateway"):
        shutil.copytree(ROOT / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("function_app.py", "host.json", "requirements.txt"):
        shutil.copy(ROOT / name, checkout / name)
    return checkout


def deploy(azure: Azure, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    env = {"SMS_PROVIDER": "twilio", "SMS_VAULT_REFERENCE_POLL_SECONDS": "1", **env}
    return azure.run(fake_checkout(tmp_path) / "infra" / "deploy.sh", "test", "westeurope", shell="bash",
                     timeout=120, **env)


def test_deploy_stops_before_creating_anything_when_the_name_is_taken(tmp_path: Path) -> None:
    azure = Azure(tmp_path, name_available=False)
    completed = deploy(azure, tmp_path)
    assert completed.returncode != 0
    assert not azure.made("group", "create") and not azure.made("deployment", "group", "create")
    # The steps repeat the provider chosen: run again as printed, the deploy does not ask a second time.
    assert re.search(r"SMS_FUNCTION_APP_NAME=sms-gateway-test-[0-9a-f]{8} infra/deploy\.sh --provider twilio test "
                     r"westeurope", completed.stderr), completed.stderr
    assert f"SMS_FUNCTION_APP_NAME={PRODUCTION_NAME} infra/deploy.sh --provider twilio test westeurope" in \
        completed.stderr


@pytest.mark.parametrize(
    "world",
    [
        {"name_available": True},
        {"name_available": False, "sites": [site(PRODUCTION_NAME, "rg-sms-gateway-test", "test")]},
    ],
    ids=["free", "this-environments-own-app"],
)
def test_deploy_goes_ahead_and_restarts_after_the_references_resolve(tmp_path: Path, world: dict[str, Any]) -> None:
    azure = Azure(tmp_path, **world, references={"TWILIO_AUTH_TOKEN": ["AccessToKeyVaultDenied", "Resolved"]})
    completed = deploy(azure, tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    name_check = next(i for i, call in enumerate(azure.calls) if "checknameavailability" in " ".join(call))
    created = azure.index("group", "create")
    deployed = azure.index("deployment", "group", "create")
    refreshed = next(i for i, call in enumerate(azure.calls) if "/refresh?" in " ".join(call))
    restarted = azure.index("functionapp", "restart")
    published = azure.index("functionapp", "deployment", "source", "config-zip")
    assert name_check < created < deployed < refreshed < restarted < published


def test_deploy_prints_the_dns_records_a_custom_domain_needs(tmp_path: Path) -> None:
    records = {"CUSTOM_DOMAIN_TXT_NAME": "_dnsauth.sms.example.com", "CUSTOM_DOMAIN_TXT_VALUE": "token-123",
               "CUSTOM_DOMAIN_CNAME_TARGET": "api-test-abc.z01.azurefd.net"}
    azure = Azure(tmp_path, name_available=True, outputs={**OUTPUTS, **records})
    completed = deploy(azure, tmp_path, SMS_CUSTOM_DOMAIN="sms.example.com")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert re.search(r"TXT\s+_dnsauth\.sms\.example\.com\s+token-123", completed.stdout), completed.stdout
    assert re.search(r"CNAME\s+sms\.example\.com\s+api-test-abc\.z01\.azurefd\.net", completed.stdout)
    (tmp_path / "plain").mkdir()
    without = deploy(Azure(tmp_path / "plain", name_available=True), tmp_path / "plain")
    assert "CNAME" not in without.stdout


def test_deploy_stops_with_the_message_when_a_reference_never_resolves(tmp_path: Path) -> None:
    azure = Azure(tmp_path, references={"TWILIO_AUTH_TOKEN": ["AccessToKeyVaultDenied"]})
    completed = deploy(azure, tmp_path, SMS_VAULT_REFERENCE_WAIT_SECONDS="1")
    assert completed.returncode != 0
    assert "TWILIO_AUTH_TOKEN: AccessToKeyVaultDenied" in completed.stderr
    assert not azure.made("functionapp", "restart")
    assert not azure.made("functionapp", "deployment", "source", "config-zip")


# ---------------------------------------------------------------------------------------------------------------
# azd runs them as hooks
# ---------------------------------------------------------------------------------------------------------------


# What azd runs, in order, at each event (azure.yaml): the name check before the key, so that a taken name stops
# the deploy before anything is kept; the subscription after the code, whose validation the code must answer.
AZD_HOOKS = {
    "preprovision": ("check-app-name", "eventgrid-key"),
    "postprovision": ("resolve-vault-references",),
    "postdeploy": ("subscribe-acs-events",),
}


def test_azure_yaml_runs_the_hooks_in_order() -> None:
    """azd runs a POSIX hook as an executable file (so it needs its exec bit and #!) and a Windows one with pwsh;
    interactive, so the steps and messages reach the terminal instead of azd's eight-line preview. An event with
    several hooks lists them (schemas/v1.0/azure.yaml.json, definitions.hooks: a hook or a list of hooks)."""
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text())["hooks"]
    assert set(hooks) == set(AZD_HOOKS)
    for event, scripts in AZD_HOOKS.items():
        expected = [{
            "posix": {"shell": "sh", "run": f"infra/hooks/{script}.sh", "interactive": True},
            "windows": {"shell": "pwsh", "run": f"infra/hooks/{script}.ps1", "interactive": True},
        } for script in scripts]
        assert hooks[event] == (expected if len(expected) > 1 else expected[0]), event
        for script in scripts:
            path = HOOKS / f"{script}.sh"
            assert path.read_text().startswith("#!/bin/sh\n")
            assert os.access(path, os.X_OK), f"{path} is not executable"
            assert (HOOKS / f"{script}.ps1").is_file()


def test_the_hooks_pass_shellcheck() -> None:
    scripts = sorted(HOOKS.glob("*.sh"))
    assert {path.stem for path in scripts} == {script for names in AZD_HOOKS.values() for script in names}
    completed = subprocess.run([str(iac_tool("shellcheck")), *map(str, scripts)],
                               capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr


POWERSHELL_SYNTAX = r'''
import sys
import tree_sitter_powershell
from tree_sitter import Language, Parser

parser = Parser(Language(tree_sitter_powershell.language()))
for path in sys.argv[1:]:
    tree = parser.parse(open(path, "rb").read())
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            print(f"{path}:{node.start_point[0] + 1}: cannot parse {node.text[:60]!r}")
        stack.extend(node.children)
'''


def powershell_syntax_errors(*paths: Path) -> list[str]:
    """What a PowerShell grammar (tree-sitter's) cannot parse in the scripts; no pwsh here to run them."""
    completed = subprocess.run([str(iac_tool("python")), "-c", POWERSHELL_SYNTAX, *map(str, paths)],
                               capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def test_the_windows_twins_parse_as_powershell(tmp_path: Path) -> None:
    """The .ps1 twins cannot run here; at least they parse, and the parse would show a slip."""
    twins = sorted(HOOKS.glob("*.ps1"))
    assert [path.stem for path in twins] == sorted(script for names in AZD_HOOKS.values() for script in names)
    assert powershell_syntax_errors(*twins) == []
    broken = tmp_path / "broken.ps1"
    broken.write_text(twins[0].read_text().replace("foreach ($site in", "foreach ($site in {", 1))
    assert powershell_syntax_errors(broken)


@pytest.mark.parametrize("script", [CHECK_NAME, RESOLVE_REFERENCES], ids=lambda path: path.stem)
def test_each_twin_calls_the_same_apis(script: Path) -> None:
    """The same endpoints, API versions and role in the POSIX script and its PowerShell twin."""
    def apis(text: str) -> set[str]:
        return set(re.findall(r"\d{4}-\d{2}-\d{2}|Microsoft\.Web/\w+|/config/[\w/]+|Key Vault Secrets User", text))

    posix, windows = apis(script.read_text()), apis(script.with_suffix(".ps1").read_text())
    assert posix == windows
    assert len(posix) >= 3, posix
