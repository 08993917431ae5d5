"""Every setting the gateway reads, read in one place.

The README's settings table documents each name below; keep the two in step.
Settings come from the process environment (app settings in Azure,
``local.settings.json`` under Core Tools, the shell under ``gateway.devhost``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

DEV_STORAGE_CONNECTION = "UseDevelopmentStorage=true"
MAX_RECIPIENTS_CEILING = 1000  # what one communication row can hold (docs/storage.md)


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names the setting."""


def _flag(value: str | None, name: str, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _int(value: str | None, name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name} must be {bound}, not {number}")
    return number


@dataclass(frozen=True)
class StorageSettings:
    """How to reach the storage account: a connection string, or an identity-based set."""

    connection_string: str | None = None
    account_name: str | None = None
    table_service_uri: str | None = None
    queue_service_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = "AzureWebJobsStorage") -> StorageSettings:
        connection = env.get(prefix, "").strip() or None
        settings = cls(
            connection_string=connection,
            account_name=env.get(f"{prefix}__accountName") or None,
            table_service_uri=env.get(f"{prefix}__tableServiceUri") or None,
            queue_service_uri=env.get(f"{prefix}__queueServiceUri") or None,
            credential=env.get(f"{prefix}__credential") or None,
            client_id=env.get(f"{prefix}__clientId") or None,
        )
        has_uris = settings.table_service_uri and settings.queue_service_uri
        if not connection and not settings.account_name and not has_uris:
            raise ConfigError(
                f"{prefix} is not set: give a connection string (UseDevelopmentStorage=true for Azurite) "
                f"or {prefix}__accountName for an identity-based connection"
            )
        return settings


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    queue_name: str = "sms-outbound"
    table_prefix: str = "Sms"
    provider: str = "outbox"
    allow_outbox_in_azure: bool = False
    running_in_azure: bool = False
    default_sender: str | None = None
    default_region: str | None = None
    max_body_length: int = 1600
    max_recipients: int = 1000
    max_request_bytes: int = 1024 * 1024
    api_key_cache_seconds: int = 60

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
    def poison_queue_name(self) -> str:
        return f"{self.queue_name}-poison"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        region = (env.get("SMS_DEFAULT_REGION") or "").strip().upper() or None
        if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"SMS_DEFAULT_REGION must be a two-letter region code such as GB or AU, not {region!r}")
        prefix = (env.get("SMS_TABLE_PREFIX") or "Sms").strip()
        if not prefix.isalnum() or not prefix[0].isalpha():
            raise ConfigError(f"SMS_TABLE_PREFIX must be letters and digits starting with a letter, not {prefix!r}")
        settings = cls(
            storage=StorageSettings.from_env(env),
            queue_name=(env.get("SMS_QUEUE_NAME") or "sms-outbound").strip(),
            table_prefix=prefix,
            provider=(env.get("SMS_PROVIDER") or "outbox").strip().lower(),
            allow_outbox_in_azure=_flag(env.get("SMS_ALLOW_OUTBOX_IN_AZURE"), "SMS_ALLOW_OUTBOX_IN_AZURE", False),
            running_in_azure=bool(env.get("WEBSITE_INSTANCE_ID")),
            default_sender=(env.get("SMS_DEFAULT_SENDER") or "").strip() or None,
            default_region=region,
            max_body_length=_int(env.get("SMS_MAX_BODY_LENGTH"), "SMS_MAX_BODY_LENGTH", 1600),
            max_recipients=_int(
                env.get("SMS_MAX_RECIPIENTS"), "SMS_MAX_RECIPIENTS", 1000, maximum=MAX_RECIPIENTS_CEILING
            ),
            max_request_bytes=_int(env.get("SMS_MAX_REQUEST_BYTES"), "SMS_MAX_REQUEST_BYTES", 1024 * 1024),
            api_key_cache_seconds=_int(
                env.get("SMS_API_KEY_CACHE_SECONDS"), "SMS_API_KEY_CACHE_SECONDS", 60, minimum=0
            ),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse configurations that must not run."""
        if self.provider == "outbox" and self.running_in_azure and not self.allow_outbox_in_azure:
            raise ConfigError(
                "SMS_PROVIDER is 'outbox', a development provider that sends nothing; "
                "choose a real provider, or set SMS_ALLOW_OUTBOX_IN_AZURE=true to run it in Azure on purpose"
            )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()

