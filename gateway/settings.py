"""The gateway's settings: one declaration per environment variable, read once at start-up.

Each field made with ``setting(...)`` is one row of the settings table (name, kind and bounds,
default, meaning, secret or not); ``gateway/config.py`` reads them. Storage and the gateway's own
settings are here; each provider declares its own next to its code (``gateway/providers/<name>_settings.py``)
and only the chosen provider's are read. ``SETTING_GROUPS`` is every setting the app reads, and the
README's settings tables, ``local.settings.json.example`` and ``infra/bicep/main.bicep`` are checked
against it by the tests. Settings come from the process environment (app settings in Azure,
``local.settings.json`` under Core Tools, the shell under the local host).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache
from typing import Any

import phonenumbers

from gateway.config import (
    Choice,
    ConfigError,
    Flag,
    Integer,
    Number,
    Pattern,
    Setting,
    SettingsTable,
    Url,
    read,
    setting,
    settings_of,
)
from gateway.providers import PROVIDERS
from gateway.providers.outbox_settings import OutboxSettings

MAX_RECIPIENTS_CEILING = 1000  # what one communication row can hold (docs/storage.md)
# The longest claim: a delivery run starts no batch after delivery.RUN_SECONDS (120 s), so with a batch's claim it
# ends inside host.json's functionTimeout (5 minutes), with room to record (tests/unit/test_recovery_bounds.py).
MAX_SCHEDULE_AHEAD = timedelta(days=35)  # the furthest a SendAt may be (docs/messages.md, "Scheduled sends")
MAX_CLAIM_TIMEOUT_SECONDS = 150
WORKER_DEFAULT_THREADS = min(32, (os.cpu_count() or 1) + 4)
"""The Functions Python worker's threads when ``PYTHON_THREADPOOL_THREAD_COUNT`` is unset: on Python 3.9 and
later it passes ``max_workers=None`` to its ``ThreadPoolExecutor``, whose default this is."""


class Region:
    """A region phonenumbers knows (GB, AU, ...), in any case."""

    accepts = "a two-letter region code such as GB or AU"

    def parse(self, text: str) -> str:
        region = text.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"must be {self.accepts}")
        return region


@dataclass(frozen=True)
class StorageSettings(SettingsTable):
    """How to reach the storage account: a connection string, or an identity-based set.

    The Functions host reads the same ``AzureWebJobsStorage`` family, so one account serves both.
    """

    connection_string: str | None = setting(
        "AzureWebJobsStorage", secret=True,
        description="storage connection string (`UseDevelopmentStorage=true` for Azurite); "
        "or the identity-based settings below",
    )
    account_name: str | None = setting(
        "AzureWebJobsStorage__accountName",
        description="identity-based connection: the account name, from which the endpoints are derived",
    )
    table_service_uri: str | None = setting(
        "AzureWebJobsStorage__tableServiceUri",
        description="identity-based connection: the table endpoint, instead of the derived one",
    )
    queue_service_uri: str | None = setting(
        "AzureWebJobsStorage__queueServiceUri",
        description="identity-based connection: the queue endpoint, instead of the derived one",
    )
    credential: str | None = setting(
        "AzureWebJobsStorage__credential", Choice(["managedidentity"]),
        description="identity-based connection: a managed identity; unset, the default credential chain",
    )
    client_id: str | None = setting(
        "AzureWebJobsStorage__clientId",
        description="identity-based connection: the user-assigned identity's client id",
    )

    @property
    def is_emulator(self) -> bool:
        """Whether this is the local storage emulator (Azurite), whose well-known account no deployment uses."""
        text = (self.connection_string or "").replace(" ", "").lower()
        return "usedevelopmentstorage=true" in text or "accountname=devstoreaccount1" in text

    def __post_init__(self) -> None:
        has_uris = self.table_service_uri and self.queue_service_uri
        if not self.connection_string and not self.account_name and not has_uris:
            raise ConfigError(
                "AzureWebJobsStorage is not set: give a connection string (UseDevelopmentStorage=true for Azurite) "
                "or AzureWebJobsStorage__accountName for an identity-based connection"
            )


@dataclass(frozen=True)
class Settings:
    """Everything the gateway reads: storage, its own settings, and the chosen provider's."""

    storage: StorageSettings
    queue_name: str = setting(
        "SMS_QUEUE_NAME", default="sms-outbound",
        description="the delivery queue (its poison queue is `<name>-poison`); set it even to the default: "
        "the queue triggers read it too",
    )
    table_prefix: str = setting(
        "SMS_TABLE_PREFIX", Pattern("[A-Za-z][A-Za-z0-9]*", "letters and digits starting with a letter"),
        default="Sms",
        description="prefix of the tables `<prefix>Communications`, `<prefix>ApiKeys`, `<prefix>Outbox`, "
        "`<prefix>SenderPacing`, `<prefix>MessageIndex`, `<prefix>ReceiptChecks`, `<prefix>OptOuts`, "
        "`<prefix>Inbound`, `<prefix>ReplyIndex`, `<prefix>Webhooks`, `<prefix>WebhookEvents`, "
        "`<prefix>Schedule`, `<prefix>MessageLog`, `<prefix>OpenWork`",
    )
    provider: str = setting(
        "SMS_PROVIDER", Choice(PROVIDERS), default="outbox",
        description="which provider delivers ([Providers](#providers)); `outbox` records and sends nothing",
    )
    default_sender: str | None = setting(
        "SMS_DEFAULT_SENDER", description="sender used when a request has no `From.PhoneNumber`"
    )
    default_region: str | None = setting(
        "SMS_DEFAULT_REGION", Region(), description="region for numbers written without `+` and country code"
    )
    max_body_length: int = setting(
        "SMS_MAX_BODY_LENGTH", Integer(), default=1600, description="longest `MessageBody`, in characters"
    )
    max_segments: int = setting(
        "SMS_MAX_SEGMENTS", Integer(maximum=255), default=10,
        description="most segments (billed parts) one recipient's message may take: GSM-7 153 characters a part, "
        "UCS-2 67 ([docs/messages.md](docs/messages.md#segments)); a longer body is a 400",
    )
    smart_encoding: bool = setting(
        "SMS_SMART_ENCODING", Flag(), default=True,
        description="replace look-alike characters (curly quotes, long dashes, odd spaces, the ellipsis) with their "
        "GSM-7 equivalents when nothing else in the body needs UCS-2 "
        "([docs/messages.md](docs/messages.md#smart-encoding))",
    )
    max_recipients: int = setting(
        "SMS_MAX_RECIPIENTS", Integer(maximum=MAX_RECIPIENTS_CEILING), default=1000,
        description="most recipients in one request",
    )
    max_request_bytes: int = setting(
        "SMS_MAX_REQUEST_BYTES", Integer(), default=1024 * 1024, description="largest request body, in bytes"
    )
    json_casing: str = setting(
        "SMS_JSON_CASING", Choice(["auto", "pascal", "camel"]), default="auto",
        description="casing of responses: auto as the request (camelCase for a camelCase JSON body, PascalCase "
        "otherwise), pascal as the reference page, camel as .NET Core ServiceStack hosts; per request "
        "`?jsconfig=tc:cc` or `tc:pc` wins",
    )
    api_key_cache_seconds: int = setting(
        "SMS_API_KEY_CACHE_SECONDS", Integer(minimum=0), default=60,
        description="how long a key look-up is cached (and a revocation can take)",
    )
    max_delivery_attempts: int = setting(
        "SMS_MAX_DELIVERY_ATTEMPTS", Integer(), default=5,
        description="delivery runs before a message goes to the poison queue and its communication ends `Failed`",
    )
    retry_base_seconds: int = setting(
        "SMS_RETRY_BASE_SECONDS", Integer(minimum=0), default=30,
        description="first retry delay, doubled each attempt; a provider's `Retry-After` wins when longer",
    )
    claim_timeout_seconds: int = setting(
        "SMS_CLAIM_TIMEOUT_SECONDS", Integer(maximum=MAX_CLAIM_TIMEOUT_SECONDS), default=60,
        description="how long a worker's claim on recipients protects them from other workers; a batch starts no "
        "provider call that could outlast it, so it must be longer than one call",
    )
    sweep_after_seconds: int = setting(
        "SMS_SWEEP_AFTER_SECONDS", Integer(), default=60,
        description="how long a communication must be unchanged (and past its next scheduled run) before the sweep "
        "queues it again",
    )
    sweep_schedule: str = setting(
        "SMS_SWEEP_SCHEDULE", Pattern(r"\S+(\s+\S+){5}", "an NCRONTAB expression of six fields, seconds first"),
        default="0 * * * * *",
        description="when the sweep runs (UTC); set it even to the default: the timer trigger reads it too",
    )
    receipt_check_schedule: str = setting(
        "SMS_RECEIPT_CHECK_SCHEDULE", Pattern(r"\S+(\s+\S+){5}", "an NCRONTAB expression of six fields, seconds first"),
        default="0 */5 * * * *",
        description="when the missing-receipt check runs (UTC); set it even to the default: the timer trigger reads "
        "it too",
    )
    receipt_check_after_minutes: int = setting(
        "SMS_RECEIPT_CHECK_AFTER_MINUTES", Integer(minimum=1), default=30,
        description="how long after a send with no final receipt the provider is first asked about it (Twilio); "
        "each later wait is twice the one before",
    )
    receipt_give_up_hours: int = setting(
        "SMS_RECEIPT_GIVE_UP_HOURS", Integer(minimum=1), default=72,
        description="how long after a send the provider is still asked; then the recipient stays `Sent` (no receipt)",
    )
    receipt_checks_per_run: int = setting(
        "SMS_RECEIPT_CHECKS_PER_RUN", Integer(minimum=1, maximum=1000), default=200,
        description="most messages one run of the missing-receipt check asks the provider about",
    )
    reply_window_hours: int = setting(
        "SMS_REPLY_WINDOW_HOURS", Integer(minimum=1, maximum=24 * 90), default=72,
        description="how long after a send a message from its recipient to its sender number is taken as a reply "
        "to it ([docs/replies.md](docs/replies.md)); older, it is kept unmatched",
    )
    instance_id: str | None = setting(
        "WEBSITE_INSTANCE_ID",
        description="set by Azure on every instance of the app: how the app knows it runs in Azure, where Bicep "
        "created its tables and queues (elsewhere the first request creates them) and the outbox refuses to run",
    )
    worker_threads: int | None = setting(
        "PYTHON_THREADPOOL_THREAD_COUNT", Integer(),
        description="the Functions Python worker's threads for function calls (its own setting; unset, Python's "
        "default of CPUs + 4, at most 32): the storage connection pool is sized to match",
    )
    sender_rate_per_second: float | None = setting(
        "SMS_SENDER_RATE_PER_SECOND", Number(maximum=10_000),
        description="messages per second per sender number or sender id, held across all instances "
        "([docs/delivery.md](docs/delivery.md#pacing)); unset, no pacing",
    )
    provider_concurrency: int | None = setting(
        "SMS_PROVIDER_CONCURRENCY", Integer(maximum=100),
        description="provider calls in flight at once within one batch, each its own pooled connection; unset, the "
        "provider's default: twilio 10 (a request per recipient), acs 1 (a request carries the batch), outbox 1 "
        "(a table transaction carries the batch)",
    )
    public_base_url: str | None = setting(
        "SMS_PUBLIC_BASE_URL", Url(base=True),
        description="the gateway's public URL, such as `https://<app>.azurewebsites.net`: the base of every URL given "
        "to a provider (Twilio's `StatusCallback`) and the URL Twilio's signatures are checked against; unset, "
        "providers are given no callback URL",
    )
    eventgrid_key: str | None = setting(
        "SMS_EVENTGRID_KEY", Pattern(r"[A-Za-z0-9_-]{32,}", "at least 32 letters, digits, - or _"), secret=True,
        description="the `key` Event Grid must give in the query of `/api/providers/acs/events` (a Key Vault "
        "reference in Azure); unset, that route answers 404",
    )
    webhook_queue_name: str = setting(
        "SMS_WEBHOOK_QUEUE_NAME", default="sms-webhooks",
        description="the queue of webhook events waiting to be sent (its poison queue is `<name>-poison`); set it even "
        "to the default: the queue triggers read it too ([docs/webhooks.md](docs/webhooks.md))",
    )
    webhook_retry_base_seconds: int = setting(
        "SMS_WEBHOOK_RETRY_BASE_SECONDS", Integer(minimum=1), default=30,
        description="first retry delay of a webhook event its endpoint did not take, doubled each attempt; retried "
        "until 24 hours after the first attempt, then kept as failed ([docs/webhooks.md](docs/webhooks.md#retries))",
    )
    webhook_allow_private: bool = setting(
        "SMS_WEBHOOK_ALLOW_PRIVATE", Flag(), default=False,
        description="let a licensee's webhook URL resolve to a private, loopback or link-local address, for local "
        "development with a receiver on the same machine ([docs/webhooks.md](docs/webhooks.md#registering)); "
        "never in production",
    )
    retention_days: int = setting(
        "SMS_RETENTION_DAYS", Integer(minimum=1, maximum=3650), default=90,
        description="how long a communication is kept after it was accepted; then the retention timer deletes it "
        "with its recipients, receipts, replies, webhook events and index rows (never the opt-out list). More than "
        "35 days plus the longer of `SMS_RECEIPT_GIVE_UP_HOURS` and `SMS_REPLY_WINDOW_HOURS` (38 at their defaults) "
        "([docs/log.md](docs/log.md#retention))",
    )
    retention_schedule: str = setting(
        "SMS_RETENTION_SCHEDULE", Pattern(r"\S+(\s+\S+){5}", "an NCRONTAB expression of six fields, seconds first"),
        default="0 */5 * * * *",
        description="when the retention timer runs (UTC), each run deleting at most a bounded batch; set it even to "
        "the default: the timer trigger reads it too",
    )
    provider_settings: SettingsTable | None = None  # the chosen provider's, as PROVIDERS declares them

    def __post_init__(self) -> None:
        self._check_retention()
        call_seconds = getattr(self.provider_settings, "call_seconds", None)  # providers with a per-call time-out
        if call_seconds is not None and self.claim_timeout_seconds <= call_seconds:
            raise ConfigError(
                f"SMS_CLAIM_TIMEOUT_SECONDS ({self.claim_timeout_seconds}) must be longer than one {self.provider} "
                f"call, which can take {call_seconds:g} s (its connect and read time-outs): a claim shorter than "
                "that lets no call start"
            )

    def _check_retention(self) -> None:
        """Retention counts from the accept, so it must outlast the longest a communication can still change: sent
        up to ``MAX_SCHEDULE_AHEAD`` later, then receipts and replies for their hours. Shorter, it would delete a
        scheduled send before it went, or a communication a receipt or reply was still to reach."""
        changing = MAX_SCHEDULE_AHEAD + timedelta(hours=max(self.receipt_give_up_hours, self.reply_window_hours))
        if timedelta(days=self.retention_days) <= changing:
            raise ConfigError(
                f"SMS_RETENTION_DAYS ({self.retention_days}) must be more than {changing / timedelta(days=1):g} days: "
                f"a send may be scheduled {MAX_SCHEDULE_AHEAD.days} days ahead and then take receipts for "
                f"SMS_RECEIPT_GIVE_UP_HOURS ({self.receipt_give_up_hours}) and replies for SMS_REPLY_WINDOW_HOURS "
                f"({self.reply_window_hours}); retention would delete it while it can still change"
            )

    @property
    def running_in_azure(self) -> bool:
        return bool(self.instance_id)

    @property
    def webhooks_need_https(self) -> bool:
        """Webhook URLs must be https in Azure and against any real storage account (an operator's CLI run against
        production); only a local run on Azurite may register and post to http."""
        return self.running_in_azure or not self.storage.is_emulator

    @property
    def concurrent_calls(self) -> int:
        """How many function calls one process runs at once: the Python worker's thread count."""
        return self.worker_threads or WORKER_DEFAULT_THREADS

    @property
    def communications_table(self) -> str:
        return f"{self.table_prefix}Communications"

    @property
    def api_keys_table(self) -> str:
        return f"{self.table_prefix}ApiKeys"

    @property
    def outbox_table(self) -> str:
        return f"{self.table_prefix}Outbox"

    @property
    def sender_pacing_table(self) -> str:
        return f"{self.table_prefix}SenderPacing"

    @property
    def message_index_table(self) -> str:
        return f"{self.table_prefix}MessageIndex"

    @property
    def receipt_checks_table(self) -> str:
        return f"{self.table_prefix}ReceiptChecks"

    @property
    def optouts_table(self) -> str:
        return f"{self.table_prefix}OptOuts"

    @property
    def inbound_table(self) -> str:
        return f"{self.table_prefix}Inbound"

    @property
    def reply_index_table(self) -> str:
        return f"{self.table_prefix}ReplyIndex"

    @property
    def webhooks_table(self) -> str:
        return f"{self.table_prefix}Webhooks"

    @property
    def poison_queue_name(self) -> str:
        return f"{self.queue_name}-poison"

    @property
    def webhook_events_table(self) -> str:
        return f"{self.table_prefix}WebhookEvents"

    @property
    def schedule_table(self) -> str:
        return f"{self.table_prefix}Schedule"

    @property
    def message_log_table(self) -> str:
        return f"{self.table_prefix}MessageLog"

    @property
    def open_work_table(self) -> str:
        return f"{self.table_prefix}OpenWork"

    @property
    def webhook_poison_queue_name(self) -> str:
        return f"{self.webhook_queue_name}-poison"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Storage, the gateway's settings, then the settings of the provider ``SMS_PROVIDER`` names."""
        env = os.environ if env is None else env
        settings = read(cls, env, storage=StorageSettings.from_env(env))
        provider_settings = PROVIDERS[settings.provider].settings.from_env(env)
        if isinstance(provider_settings, OutboxSettings):
            provider_settings.check_host(running_in_azure=settings.running_in_azure)
        return replace(settings, provider_settings=provider_settings)


# Every setting the app reads, by group: the README's tables, local.settings.json.example and main.bicep
# are checked against it. A provider's settings are read only when SMS_PROVIDER names it.
SETTING_GROUPS: dict[str, tuple[Setting[Any], ...]] = {
    "storage": settings_of(StorageSettings),
    "gateway": settings_of(Settings),
    **{f"provider {name}": settings_of(entry.settings) for name, entry in PROVIDERS.items()},
}

__all__ = ["SETTING_GROUPS", "ConfigError", "Settings", "StorageSettings", "get_settings", "load_local_settings"]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()


# --- local.settings.json, for commands run from a checkout -------------------------------------------------------


def load_local_settings(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> None:
    """Copy local.settings.json's ``Values`` into ``env`` (default ``os.environ``), as ``func start`` does.

    ``python -m gateway`` reads the same settings as the app this way; in Azure there is no such file.
    A variable already set wins, so a shell export overrides the file; an absent file changes nothing.
    """
    import json
    from pathlib import Path

    file = Path(path)
    if not file.exists():
        return
    try:
        document = json.loads(file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{file} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{file} must hold a JSON object")
    if document.get("IsEncrypted"):
        raise ConfigError(f"{file} is encrypted (IsEncrypted: true); decrypt it with Core Tools first")
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{file}: Values must be an object of name: string")
    target = os.environ if env is None else env
    for name, value in values.items():
        if name in target:
            continue
        if isinstance(value, bool):
            target[name] = "true" if value else "false"
        else:
            target[name] = "" if value is None else str(value)
