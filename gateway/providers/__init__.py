"""SMS providers: how a batch of outbound SMS leaves the gateway.

``base`` holds the contract every provider keeps; ``create_provider`` picks the one the
settings name and imports its module only then, so an unused provider's SDK never
costs cold-start time.
"""

from __future__ import annotations

from collections.abc import Callable

from azure.data.tables import TableServiceClient

from gateway.providers.base import OutboundSms, Outcome, SendResult, SmsProvider
from gateway.settings import ConfigError, Settings


def _outbox(settings: Settings, tables: TableServiceClient) -> SmsProvider:
    from gateway.providers import outbox

    return outbox.create(settings, tables)


def _twilio(settings: Settings, tables: TableServiceClient) -> SmsProvider:
    from gateway.providers import twilio

    assert settings.twilio is not None  # Settings.from_env reads them when SMS_PROVIDER=twilio
    return twilio.create(settings.twilio)


def _acs(settings: Settings, tables: TableServiceClient) -> SmsProvider:
    from gateway.providers import acs

    assert settings.acs is not None  # Settings.from_env reads them when SMS_PROVIDER=acs
    return acs.create(settings.acs)


PROVIDERS: dict[str, Callable[[Settings, TableServiceClient], SmsProvider]] = {
    "outbox": _outbox,
    "twilio": _twilio,
    "acs": _acs,
}


def create_provider(settings: Settings, tables: TableServiceClient) -> SmsProvider:
    factory = PROVIDERS.get(settings.provider)
    if factory is None:
        raise ConfigError(f"SMS_PROVIDER must be one of {', '.join(sorted(PROVIDERS))}, not {settings.provider!r}")
    return factory(settings, tables)


__all__ = ["PROVIDERS", "OutboundSms", "Outcome", "SendResult", "SmsProvider", "create_provider"]
