"""Every setting the gateway reads, read in one place.

The README's settings table documents each name below; keep the two in step.
Settings come from the process environment (app settings in Azure,
``local.settings.json`` under Core Tools, the shell under ``gateway.devhost``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

import phonenumbers

DEV_STORAGE_CONNECTION = "UseDevelopmentStorage=true"
PROVIDER_NAMES = ("outbox", "twilio", "acs")
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
    max_delivery_attempts: int = 5
    retry_base_seconds: int = 30
    sweep_after_seconds: int = 600
    claim_timeout_seconds: int = 330
    json_casing: str = "auto"
    twilio: TwilioSettings | None = None
    acs: AcsSettings | None = None

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
            max_delivery_attempts=_int(env.get("SMS_MAX_DELIVERY_ATTEMPTS"), "SMS_MAX_DELIVERY_ATTEMPTS", 5),
            retry_base_seconds=_int(env.get("SMS_RETRY_BASE_SECONDS"), "SMS_RETRY_BASE_SECONDS", 30, minimum=0),
            sweep_after_seconds=_int(env.get("SMS_SWEEP_AFTER_SECONDS"), "SMS_SWEEP_AFTER_SECONDS", 600, minimum=60),
            json_casing=(env.get("SMS_JSON_CASING") or "auto").strip().lower(),
            claim_timeout_seconds=_int(
                env.get("SMS_CLAIM_TIMEOUT_SECONDS"), "SMS_CLAIM_TIMEOUT_SECONDS", 330, minimum=1
            ),
        )
        settings.check()
        if settings.json_casing not in {"auto", "pascal", "camel"}:
            raise ConfigError(f"SMS_JSON_CASING must be auto, pascal or camel, not {settings.json_casing!r}")
        if settings.provider == "twilio":
            settings = replace(settings, twilio=TwilioSettings.from_env(env))
        elif settings.provider == "acs":
            settings = replace(settings, acs=AcsSettings.from_env(env))
        return settings

    def check(self) -> None:
        """Refuse configurations that must not run."""
        if self.provider not in PROVIDER_NAMES:
            raise ConfigError(f"SMS_PROVIDER must be one of {', '.join(PROVIDER_NAMES)}, not {self.provider!r}")
        if self.provider == "outbox" and self.running_in_azure and not self.allow_outbox_in_azure:
            raise ConfigError(
                "SMS_PROVIDER is 'outbox', a development provider that sends nothing; "
                "choose a real provider, or set SMS_ALLOW_OUTBOX_IN_AZURE=true to run it in Azure on purpose"
            )




# --- SMS provider settings ---------------------------------------------------------------------------------------
# Read only when SMS_PROVIDER names the provider, so a deployment configures just the one it uses.

TWILIO_DEFAULT_BASE_URL = "https://api.twilio.com"
PROVIDER_DEFAULT_TIMEOUT_SECONDS = 10.0
PROVIDER_MAX_TIMEOUT_SECONDS = 120.0


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(name) or "").strip()
    return value or None


def _seconds(value: str | None, name: str, default: float) -> float:
    """A positive number of seconds (fractions allowed), bounded so a stuck call cannot hold a worker for long."""
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not 0 < number <= PROVIDER_MAX_TIMEOUT_SECONDS:
        raise ConfigError(f"{name} must be more than 0 and at most {PROVIDER_MAX_TIMEOUT_SECONDS:g}, not {value!r}")
    return number


def _twilio_sid(value: str | None, name: str, prefix: str) -> str | None:
    """Twilio SIDs are two letters and 32 hex digits; checking early turns a typo into a named ConfigError."""
    if value is None:
        return None
    hex_part = value[2:]
    if len(value) != 34 or value[:2] != prefix or any(c not in "0123456789abcdefABCDEF" for c in hex_part):
        raise ConfigError(f"{name} must be {prefix} followed by 32 hex digits")
    return value


def _http_url(value: str | None, name: str, *, https_only: bool = False) -> str | None:
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    schemes = {"https"} if https_only else {"http", "https"}
    if parts.scheme.lower() not in schemes or not parts.hostname:
        wanted = "an https URL" if https_only else "an absolute http(s) URL"
        raise ConfigError(f"{name} must be {wanted}, not {value!r}")
    return value


@dataclass(frozen=True)
class TwilioSettings:
    """Twilio Programmable Messaging: an Account SID plus either its Auth Token or an API key pair."""

    account_sid: str
    auth_token: str | None = field(default=None, repr=False)
    api_key_sid: str | None = None
    api_key_secret: str | None = field(default=None, repr=False)
    messaging_service_sid: str | None = None
    status_callback_url: str | None = None
    base_url: str = TWILIO_DEFAULT_BASE_URL
    timeout_seconds: float = PROVIDER_DEFAULT_TIMEOUT_SECONDS

    @property
    def basic_auth(self) -> tuple[str, str]:
        """HTTP Basic user and password: the API key pair when set, else Account SID and Auth Token."""
        if self.api_key_sid and self.api_key_secret:
            return self.api_key_sid, self.api_key_secret
        if self.auth_token:
            return self.account_sid, self.auth_token
        raise ConfigError("TWILIO_AUTH_TOKEN or TWILIO_API_KEY_SID with TWILIO_API_KEY_SECRET must be set")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TwilioSettings:
        env = os.environ if env is None else env
        account_sid = _twilio_sid(_text(env, "TWILIO_ACCOUNT_SID"), "TWILIO_ACCOUNT_SID", "AC")
        if account_sid is None:
            raise ConfigError("TWILIO_ACCOUNT_SID is not set: the Account SID (AC...) from the Twilio console")
        auth_token = _text(env, "TWILIO_AUTH_TOKEN")
        key_sid = _twilio_sid(_text(env, "TWILIO_API_KEY_SID"), "TWILIO_API_KEY_SID", "SK")
        key_secret = _text(env, "TWILIO_API_KEY_SECRET")
        if key_sid and not key_secret:
            raise ConfigError("TWILIO_API_KEY_SECRET is not set: it is required with TWILIO_API_KEY_SID")
        if key_secret and not key_sid:
            raise ConfigError("TWILIO_API_KEY_SID is not set: it is required with TWILIO_API_KEY_SECRET")
        if auth_token and key_sid:
            raise ConfigError(
                "TWILIO_AUTH_TOKEN and TWILIO_API_KEY_SID are both set: "
                "give the Auth Token or an API key pair, not both"
            )
        if not auth_token and not key_sid:
            raise ConfigError(
                "TWILIO_AUTH_TOKEN is not set: give the Auth Token, or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET"
            )
        base_url = _http_url(_text(env, "TWILIO_BASE_URL"), "TWILIO_BASE_URL") or TWILIO_DEFAULT_BASE_URL
        return cls(
            account_sid=account_sid,
            auth_token=auth_token,
            api_key_sid=key_sid,
            api_key_secret=key_secret,
            messaging_service_sid=_twilio_sid(
                _text(env, "TWILIO_MESSAGING_SERVICE_SID"), "TWILIO_MESSAGING_SERVICE_SID", "MG"
            ),
            status_callback_url=_http_url(_text(env, "TWILIO_STATUS_CALLBACK_URL"), "TWILIO_STATUS_CALLBACK_URL"),
            base_url=base_url.rstrip("/"),
            timeout_seconds=_seconds(
                env.get("TWILIO_TIMEOUT_SECONDS"), "TWILIO_TIMEOUT_SECONDS", PROVIDER_DEFAULT_TIMEOUT_SECONDS
            ),
        )


@dataclass(frozen=True)
class AcsSettings:
    """Azure Communication Services SMS: a connection string (access key), or an endpoint and an identity."""

    connection_string: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    client_id: str | None = None
    timeout_seconds: float = PROVIDER_DEFAULT_TIMEOUT_SECONDS
    # For tests only: a CA bundle that trusts a local fake's self-signed certificate.
    ca_bundle: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AcsSettings:
        env = os.environ if env is None else env
        connection_string = _text(env, "ACS_CONNECTION_STRING")
        endpoint = _http_url(_text(env, "ACS_ENDPOINT"), "ACS_ENDPOINT", https_only=True)
        client_id = _text(env, "ACS_CLIENT_ID")
        if connection_string and endpoint:
            raise ConfigError(
                "ACS_CONNECTION_STRING and ACS_ENDPOINT are both set: give the connection string (access key) "
                "or the endpoint (managed identity), not both"
            )
        if not connection_string and not endpoint:
            raise ConfigError(
                "ACS_CONNECTION_STRING is not set: give the resource's connection string, "
                "or ACS_ENDPOINT to authenticate with a managed identity"
            )
        if connection_string:
            _check_acs_connection_string(connection_string)
            if client_id:
                raise ConfigError("ACS_CLIENT_ID is only used with ACS_ENDPOINT (managed identity); remove it")
        ca_bundle = _text(env, "ACS_CA_BUNDLE")
        if ca_bundle is not None and not os.path.isfile(ca_bundle):
            raise ConfigError(f"ACS_CA_BUNDLE must be the path of a PEM file, and {ca_bundle!r} is not a file")
        return cls(
            connection_string=connection_string,
            endpoint=endpoint.rstrip("/") if endpoint else None,
            client_id=client_id,
            timeout_seconds=_seconds(
                env.get("ACS_TIMEOUT_SECONDS"), "ACS_TIMEOUT_SECONDS", PROVIDER_DEFAULT_TIMEOUT_SECONDS
            ),
            ca_bundle=ca_bundle,
        )


def _check_acs_connection_string(value: str) -> None:
    """The SDK's form, ``endpoint=https://...;accesskey=<base64>``; the message never echoes the key."""
    import base64
    import binascii

    parts: dict[str, str] = {}
    for element in value.split(";"):
        key, _, item = element.partition("=")
        if key.strip():
            parts[key.strip().lower()] = item.strip()
    endpoint, access_key = parts.get("endpoint"), parts.get("accesskey")
    if not endpoint or not access_key:
        raise ConfigError("ACS_CONNECTION_STRING must look like endpoint=https://<resource>/;accesskey=<key>")
    _http_url(endpoint, "ACS_CONNECTION_STRING's endpoint", https_only=True)
    try:
        base64.b64decode(access_key, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("ACS_CONNECTION_STRING's accesskey is not base64: copy the whole key") from None


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
