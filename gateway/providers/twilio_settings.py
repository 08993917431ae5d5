"""Twilio's settings, read only when ``SMS_PROVIDER=twilio``; ``twilio.py`` (and ``requests``) loads later.

An Account SID plus its Auth Token, an API key pair, or both: REST calls use the API key pair when there is one,
else the Auth Token; Twilio signs its status callbacks with the Auth Token whatever the REST calls use, so the
gateway needs the token to accept them. SIDs are checked for their form so a typo stops start-up with the
setting's name instead of failing every send.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import ConfigError, Pattern, Seconds, SettingsTable, Url, setting


def _sid(prefix: str) -> Pattern:
    """Twilio's SIDs: two letters that say what it identifies, then 32 hex digits."""
    return Pattern(rf"{prefix}[0-9a-fA-F]{{32}}", f"{prefix} followed by 32 hex digits")


@dataclass(frozen=True)
class TwilioSettings(SettingsTable):
    """Twilio Programmable Messaging: an Account SID plus its Auth Token, an API key pair, or both."""

    account_sid: str | None = setting(
        "TWILIO_ACCOUNT_SID", _sid("AC"), description="the account; always the account in the API's URLs"
    )
    auth_token: str | None = setting(
        "TWILIO_AUTH_TOKEN", secret=True,
        description="the account's Auth Token (a Key Vault reference in Azure): authenticates REST calls unless the "
        "API key pair below is set, and checks the signature of Twilio's status callbacks (without it they answer "
        "403)",
    )
    api_key_sid: str | None = setting(
        "TWILIO_API_KEY_SID", _sid("SK"),
        description="an API key for the REST calls, instead of the Auth Token (which still checks callbacks)",
    )
    api_key_secret: str | None = setting(
        "TWILIO_API_KEY_SECRET", secret=True, description="that API key's secret (a Key Vault reference in Azure)"
    )
    messaging_service_sid: str | None = setting(
        "TWILIO_MESSAGING_SERVICE_SID", _sid("MG"),
        description="send through a Messaging Service, which picks the sender, instead of a `From` number",
    )
    status_callback_url: str | None = setting(
        "TWILIO_STATUS_CALLBACK_URL", Url(),
        description="sent as `StatusCallback` with every message instead of the gateway's own callback URL "
        "(`SMS_PUBLIC_BASE_URL`), for a receiver of your own",
    )
    base_url: str = setting(
        "TWILIO_BASE_URL", Url(base=True), default="https://api.twilio.com",
        description="the API's base URL (tests point it at the local fake)",
    )
    timeout_seconds: float = setting(
        "TWILIO_TIMEOUT_SECONDS", Seconds(maximum=120.0), default=10.0,
        description="connect and read time-out of each request",
    )

    def __post_init__(self) -> None:
        if self.account_sid is None:
            raise ConfigError("TWILIO_ACCOUNT_SID is not set: the Account SID (AC...) from the Twilio console")
        if self.api_key_sid and not self.api_key_secret:
            raise ConfigError("TWILIO_API_KEY_SECRET is not set: it is required with TWILIO_API_KEY_SID")
        if self.api_key_secret and not self.api_key_sid:
            raise ConfigError("TWILIO_API_KEY_SID is not set: it is required with TWILIO_API_KEY_SECRET")
        if not self.auth_token and not self.api_key_sid:
            raise ConfigError(
                "TWILIO_AUTH_TOKEN is not set: give the Auth Token, or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET"
            )

    @property
    def call_seconds(self) -> float:
        """The longest one request can take: its connect time-out, then its read time-out."""
        return 2 * self.timeout_seconds

    @property
    def basic_auth(self) -> tuple[str, str]:
        """HTTP Basic user and password: the API key pair when set, else Account SID and Auth Token."""
        if self.api_key_sid and self.api_key_secret:
            return self.api_key_sid, self.api_key_secret
        return self.account_sid, self.auth_token  # type: ignore[return-value]  # __post_init__ requires both
