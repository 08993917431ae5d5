"""The settings table: how a declared setting is read, the gateway's and each provider's rules, and the README.

The README's settings tables are generated from ``SETTING_GROUPS`` (``expected_rows``) and compared row
by row, so a new setting, a changed default or a new provider shows up here until the README says so.
``local.settings.json.example`` and ``infra/bicep/main.bicep`` are checked in ``tests/infra/test_infra.py``.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config import (
    Choice,
    ConfigError,
    ExistingFile,
    Flag,
    Integer,
    Pattern,
    Seconds,
    Setting,
    SettingsTable,
    Url,
    setting,
    settings_of,
)
from gateway.providers import PROVIDERS
from gateway.providers.outbox_settings import OutboxSettings
from gateway.providers.twilio_settings import TwilioSettings
from gateway.settings import SETTING_GROUPS, Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


# --- the machinery ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample(SettingsTable):
    name: str = setting("X_NAME", default="n", description="a name")
    count: int = setting("X_COUNT", Integer(minimum=0, maximum=9), default=3, description="a count")
    on: bool = setting("X_ON", Flag(), default=False, description="a switch")
    mode: str = setting("X_MODE", Choice(["fast", "slow"]), default="fast", description="a mode")
    code: str | None = setting("X_CODE", Pattern("[A-Z]{2}", "two capitals"), description="a code")
    wait: float = setting("X_WAIT", Seconds(maximum=5.0), default=1.0, description="a wait")
    url: str | None = setting("X_URL", Url(https_only=True, base=True), description="a URL")
    path: str | None = setting("X_PATH", ExistingFile(), description="a file")
    key: str | None = setting("X_KEY", Pattern("k-[0-9]+", "k- and digits"), secret=True, description="a secret")


def test_blank_or_missing_means_the_default_and_text_is_parsed_by_kind(tmp_path: Path) -> None:
    assert Sample.from_env({"X_NAME": "  ", "X_COUNT": ""}) == Sample()
    file = tmp_path / "f.pem"
    file.write_text("x")
    read = Sample.from_env({
        "X_NAME": " spaced ", "X_COUNT": "0", "X_ON": "Yes", "X_MODE": "SLOW", "X_CODE": "GB", "X_WAIT": "0.5",
        "X_URL": "https://example.net/base/", "X_PATH": str(file), "X_KEY": "k-1",
    })
    assert read == Sample(name="spaced", count=0, on=True, mode="slow", code="GB", wait=0.5,
                          url="https://example.net/base", path=str(file), key="k-1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"X_COUNT": "many"}, "X_COUNT must be a whole number from 0 to 9, not 'many'"),
        ({"X_COUNT": "10"}, "X_COUNT must be a whole number from 0 to 9, not '10'"),
        ({"X_ON": "maybe"}, "X_ON must be true or false, not 'maybe'"),
        ({"X_MODE": "medium"}, "X_MODE must be fast or slow, not 'medium'"),
        ({"X_CODE": "gb"}, "X_CODE must be two capitals, not 'gb'"),
        ({"X_WAIT": "0"}, "X_WAIT must be a number of seconds, more than 0 and at most 5, not '0'"),
        ({"X_WAIT": "nan"}, "X_WAIT must be a number of seconds, more than 0 and at most 5, not 'nan'"),
        ({"X_URL": "http://example.net"}, "X_URL must be an https URL, not 'http://example.net'"),
        ({"X_PATH": "/no/such/file"}, "X_PATH must be the path of an existing file, not '/no/such/file'"),
        ({"X_KEY": "k-oops-SECRET"}, "X_KEY must be k- and digits"),
    ],
)
def test_errors_name_the_setting_and_never_echo_a_secret(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Sample.from_env(env)
    assert str(raised.value) == message


UNRESOLVED = "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/y)"


@pytest.mark.parametrize("name", ["X_NAME", "X_COUNT", "X_KEY"])
def test_an_unresolved_key_vault_reference_is_refused_whatever_the_kind(name: str) -> None:
    """App Service passes the reference text itself until the app's identity can read the secret."""
    with pytest.raises(ConfigError) as raised:
        Sample.from_env({name: f"  {UNRESOLVED.lower()}"})
    message = str(raised.value)
    assert message.startswith(f"{name} is a Key Vault reference that has not resolved: ")
    assert "Key Vault Secrets User" in message and "restart the app" in message
    assert "kv-x" not in message and "\n" not in message


def test_text_that_only_mentions_key_vault_is_a_value() -> None:
    assert Sample.from_env({"X_NAME": "see @Microsoft.KeyVault(...)"}).name == "see @Microsoft.KeyVault(...)"


def test_repr_hides_secrets_and_the_table_lists_fields_in_order() -> None:
    assert "k-123" not in repr(Sample(key="k-123"))
    declared = settings_of(Sample)
    assert [s.name for s in declared] == ["X_NAME", "X_COUNT", "X_ON", "X_MODE", "X_CODE", "X_WAIT", "X_URL",
                                          "X_PATH", "X_KEY"]
    assert [s.default_text for s in declared[:4]] == ["n", "3", "false", "fast"]
    assert declared[-1].secret and not declared[0].secret


# --- the gateway's settings -----------------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = Settings.from_env(STORAGE)
    assert (settings.queue_name, settings.poison_queue_name, settings.outbox_table) == (
        "sms-outbound", "sms-outbound-poison", "SmsOutbox")
    assert (settings.provider, settings.max_recipients, settings.json_casing) == ("outbox", 1000, "auto")
    assert settings.provider_settings == OutboxSettings(allow_in_azure=False)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SMS_PROVIDER": "sms"}, "SMS_PROVIDER must be outbox, twilio or acs, not 'sms'"),
        ({"SMS_MAX_RECIPIENTS": "1001"}, "SMS_MAX_RECIPIENTS must be a whole number from 1 to 1000"),
        ({"SMS_MAX_BODY_LENGTH": "0"}, "SMS_MAX_BODY_LENGTH must be a whole number, at least 1"),
        ({"SMS_API_KEY_CACHE_SECONDS": "-1"}, "SMS_API_KEY_CACHE_SECONDS must be a whole number, at least 0"),
        ({"SMS_SWEEP_AFTER_SECONDS": "0"}, "SMS_SWEEP_AFTER_SECONDS must be a whole number, at least 1"),
        ({"SMS_SWEEP_SCHEDULE": "*/5 * * * *"}, "SMS_SWEEP_SCHEDULE must be an NCRONTAB expression of six fields"),
        ({"SMS_CLAIM_TIMEOUT_SECONDS": "151"}, "SMS_CLAIM_TIMEOUT_SECONDS must be a whole number from 1 to 150"),
        ({"SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "a" * 32, "TWILIO_AUTH_TOKEN": "t",
          "TWILIO_TIMEOUT_SECONDS": "30"},
         r"SMS_CLAIM_TIMEOUT_SECONDS \(60\) must be longer than one twilio call, which can take 60 s"),
        ({"SMS_PROVIDER": "acs", "ACS_ENDPOINT": "https://acs.example.com", "SMS_CLAIM_TIMEOUT_SECONDS": "20"},
         r"SMS_CLAIM_TIMEOUT_SECONDS \(20\) must be longer than one acs call, which can take 20 s"),
        ({"SMS_JSON_CASING": "snake"}, "SMS_JSON_CASING must be auto, pascal or camel"),
        ({"SMS_DEFAULT_REGION": "XX"}, "SMS_DEFAULT_REGION must be a two-letter region code"),
        ({"SMS_TABLE_PREFIX": "1st"}, "SMS_TABLE_PREFIX must be letters and digits starting with a letter"),
        ({"SMS_ALLOW_OUTBOX_IN_AZURE": "perhaps"}, "SMS_ALLOW_OUTBOX_IN_AZURE must be true or false"),
        ({"AzureWebJobsStorage": ""}, "AzureWebJobsStorage is not set"),
        ({"AzureWebJobsStorage__credential": "certificate"}, "AzureWebJobsStorage__credential must be managedidentity"),
    ],
)
def test_invalid_settings_stop_start_up_naming_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env({**STORAGE, **env})


def test_names_are_normalised() -> None:
    settings = Settings.from_env({**STORAGE, "SMS_PROVIDER": " OUTBOX ", "SMS_DEFAULT_REGION": "gb",
                                  "SMS_JSON_CASING": "Camel"})
    assert (settings.provider, settings.default_region, settings.json_casing) == ("outbox", "GB", "camel")


def test_the_outbox_refuses_azure_unless_allowed() -> None:
    in_azure = {**STORAGE, "WEBSITE_INSTANCE_ID": "0123abcd"}
    with pytest.raises(ConfigError, match="SMS_ALLOW_OUTBOX_IN_AZURE=true"):
        Settings.from_env(in_azure)
    allowed = Settings.from_env({**in_azure, "SMS_ALLOW_OUTBOX_IN_AZURE": "true"})
    assert allowed.provider_settings == OutboxSettings(allow_in_azure=True)
    assert allowed.running_in_azure and not Settings.from_env(STORAGE).running_in_azure


def test_only_the_chosen_providers_settings_are_read() -> None:
    broken_twilio = {**STORAGE, "TWILIO_TIMEOUT_SECONDS": "forever"}
    assert Settings.from_env(broken_twilio).provider == "outbox"
    with pytest.raises(ConfigError, match="TWILIO_TIMEOUT_SECONDS"):
        Settings.from_env({**broken_twilio, "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
                           "TWILIO_AUTH_TOKEN": "token"})
    in_azure = {**STORAGE, "SMS_PROVIDER": "twilio", "WEBSITE_INSTANCE_ID": "0123abcd",
                "TWILIO_ACCOUNT_SID": "AC" + "a" * 32, "TWILIO_AUTH_TOKEN": "token"}
    chosen = Settings.from_env(in_azure)  # the outbox's rule does not apply to another provider
    assert isinstance(chosen.provider_settings, TwilioSettings)
    assert chosen.provider_settings.base_url == "https://api.twilio.com"


def test_the_provider_names_come_from_the_registry() -> None:
    [provider] = [s for s in SETTING_GROUPS["gateway"] if s.name == "SMS_PROVIDER"]
    assert isinstance(provider.kind, Choice)
    assert provider.kind.choices == tuple(PROVIDERS) == ("outbox", "twilio", "acs")
    assert [group for group in SETTING_GROUPS if group.startswith("provider ")] == [
        f"provider {name}" for name in PROVIDERS]


def test_reading_settings_loads_no_provider_module_or_sdk() -> None:
    """Each provider's settings are read without importing its code: the SDK loads only when it is built."""
    code = (
        "import sys\n"
        "from gateway.settings import Settings\n"
        "env = {'AzureWebJobsStorage': 'UseDevelopmentStorage=true', 'SMS_PROVIDER': 'acs',\n"
        "       'ACS_ENDPOINT': 'https://x.communication.azure.com', 'TWILIO_ACCOUNT_SID': 'AC' + 'a' * 32}\n"
        "Settings.from_env(env)\n"
        "Settings.from_env({**env, 'SMS_PROVIDER': 'twilio', 'TWILIO_AUTH_TOKEN': 't'})\n"
        "print(sorted(m for m in sys.modules if m.startswith(('azure.communication', 'azure.identity',\n"
        "      'gateway.providers.twilio', 'gateway.providers.acs')) and not m.endswith('_settings')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _every_setting() -> list[Setting[object]]:
    return [s for group in SETTING_GROUPS.values() for s in group]


def test_every_setting_is_declared_once() -> None:
    names = [s.name for s in _every_setting()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert all(s.description and not s.description.endswith(".") for s in _every_setting())


# --- the README ----------------------------------------------------------------------------------------------------


def readme_row(declared: Setting[object]) -> str:
    """The README's row for a setting: name, default, what it accepts, what it means."""
    default = f"`{declared.default_text}`" if declared.default is not None else "—"
    accepts = declared.kind.accepts + (", secret" if declared.secret else "")
    return f"| `{declared.name}` | {default} | {accepts} | {declared.description} |"


def expected_rows() -> list[str]:
    return [readme_row(s) for s in _every_setting()]


def documented_rows(readme: str) -> list[str]:
    """The setting rows of the README's Settings section, in order (each starts with a backticked name)."""
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def readme_problems(readme: str) -> list[str]:
    """How the README's settings tables differ from the declared settings; each problem starts with the name."""
    documented = {row.split("`")[1]: row for row in documented_rows(readme)}
    expected = {row.split("`")[1]: row for row in expected_rows()}
    problems = [f"{name}: no row in the README" for name in expected if name not in documented]
    problems += [f"{name}: in the README, but the app declares no such setting" for name in documented
                 if name not in expected]
    problems += [f"{name}: the row should read\n{row}" for name, row in expected.items()
                 if name in documented and documented[name] != row]
    if not problems and list(documented) != list(expected):
        problems.append("rows: not in the order the settings are declared")
    return problems


def test_the_readme_documents_every_setting_as_declared() -> None:
    problems = readme_problems(README.read_text())
    assert not problems, "README.md's settings tables disagree with the declared settings:\n" + "\n".join(
        problems) + "\n\nThe rows, generated:\n" + "\n".join(expected_rows())


def test_the_readme_check_catches_a_missing_row_a_wrong_default_and_a_stray_row() -> None:
    text = README.read_text()
    queue_row = next(row for row in documented_rows(text) if row.startswith("| `SMS_QUEUE_NAME` |"))
    timeout_row = next(row for row in documented_rows(text) if row.startswith("| `TWILIO_TIMEOUT_SECONDS` |"))
    edited = (text.replace(queue_row + "\n", "")
              .replace(timeout_row, timeout_row.replace("`10`", "`30`"))
              .replace("| `SMS_PROVIDER` |", "| `SMS_RETIRED` | — | text | gone |\n| `SMS_PROVIDER` |"))
    assert sorted(problem.split(":")[0] for problem in readme_problems(edited)) == [
        "SMS_QUEUE_NAME", "SMS_RETIRED", "TWILIO_TIMEOUT_SECONDS"]
    reordered = text.replace(queue_row + "\n", "").replace("| `SMS_PROVIDER` |", queue_row + "\n| `SMS_PROVIDER` |")
    assert readme_problems(reordered) == ["rows: not in the order the settings are declared"]


@pytest.mark.parametrize(("days", "hours", "refused"), [
    ("38", {}, True),  # 35 + 72 hours is 38 days: not more
    ("39", {}, False),
    ("39", {"SMS_REPLY_WINDOW_HOURS": "100"}, True),  # the longer window wins
    ("40", {"SMS_RECEIPT_GIVE_UP_HOURS": "100"}, False),
    ("40", {"SMS_RECEIPT_GIVE_UP_HOURS": "120"}, True),
])
def test_retention_must_outlast_what_can_still_change_a_communication(days: str, hours: dict[str, str],
                                                                       refused: bool) -> None:
    env = {**STORAGE, "SMS_RETENTION_DAYS": days, **hours}
    if not refused:
        assert Settings.from_env(env).retention_days == int(days)
        return
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert "SMS_RETENTION_DAYS" in str(raised.value) and "35 days" in str(raised.value)
