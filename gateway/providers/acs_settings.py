"""Azure Communication Services' settings, read only when ``SMS_PROVIDER=acs``; the SDK loads later.

A connection string (requests signed with its access key), or an endpoint and a managed identity.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from gateway.config import ConfigError, ExistingFile, Seconds, SettingsTable, Url, is_url, setting


class AcsConnectionString:
    """The SDK's form, ``endpoint=https://...;accesskey=<base64>``; errors never echo the key."""

    accepts = "endpoint=https://…/;accesskey=…"

    def parse(self, text: str) -> str:
        parts: dict[str, str] = {}
        for element in text.split(";"):
            key, _, item = element.partition("=")
            if key.strip():
                parts[key.strip().lower()] = item.strip()
        endpoint, access_key = parts.get("endpoint"), parts.get("accesskey")
        if not endpoint or not access_key:
            raise ValueError("must look like endpoint=https://<resource>/;accesskey=<key>")
        if not is_url(endpoint, https_only=True):
            raise ValueError("has an endpoint that is not an https URL")
        try:
            base64.b64decode(access_key, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("has an accesskey that is not base64: copy the whole key") from None
        return text


@dataclass(frozen=True)
class AcsSettings(SettingsTable):
    """Azure Communication Services SMS: a connection string (access key), or an endpoint and an identity."""

    connection_string: str | None = setting(
        "ACS_CONNECTION_STRING", AcsConnectionString(), secret=True,
        description="the resource's connection string (a Key Vault reference in Azure); or the endpoint below",
    )
    endpoint: str | None = setting(
        "ACS_ENDPOINT", Url(https_only=True, base=True),
        description="the resource's endpoint, to sign in with a managed identity instead of the access key",
    )
    client_id: str | None = setting(
        "ACS_CLIENT_ID",
        description="with `ACS_ENDPOINT`: the user-assigned identity's client id (else the default credential chain)",
    )
    timeout_seconds: float = setting(
        "ACS_TIMEOUT_SECONDS", Seconds(maximum=120.0), default=10.0,
        description="connect and read time-out of each call",
    )
    ca_bundle: str | None = setting(
        "ACS_CA_BUNDLE", ExistingFile(),
        description="for tests only: a CA file that trusts the local ACS fake's certificate; never set in Azure",
    )

    def __post_init__(self) -> None:
        if self.connection_string and self.endpoint:
            raise ConfigError(
                "ACS_CONNECTION_STRING and ACS_ENDPOINT are both set: give the connection string (access key) "
                "or the endpoint (managed identity), not both"
            )
        if not self.connection_string and not self.endpoint:
            raise ConfigError(
                "ACS_CONNECTION_STRING is not set: give the resource's connection string, "
                "or ACS_ENDPOINT to authenticate with a managed identity"
            )
        if self.connection_string and self.client_id:
            raise ConfigError("ACS_CLIENT_ID is only used with ACS_ENDPOINT (managed identity); remove it")
