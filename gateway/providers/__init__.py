"""SMS providers: how a batch of outbound SMS leaves the gateway.

``PROVIDERS`` is the one list of providers: each name maps to its settings (read at start-up,
only for the provider ``SMS_PROVIDER`` names, whose choices come from here) and to a factory
that imports the provider's module only when it is called, so an unused provider's SDK never
costs cold-start time. ``base`` holds the contract every provider keeps.

A provider is ``<name>.py`` (the code, with ``create``), ``<name>_settings.py`` (its ``SettingsTable``,
free of SDK imports) and one entry in ``PROVIDERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.config import SettingsTable
from gateway.providers.acs_settings import AcsSettings
from gateway.providers.base import OutboundSms, Outcome, SendResult, SmsProvider
from gateway.providers.outbox_settings import OutboxSettings
from gateway.providers.twilio_settings import TwilioSettings

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

    from gateway.settings import Settings


@dataclass(frozen=True)
class ProviderEntry:
    """A provider as the registry knows it: its settings, and how to build it from them."""

    settings: type[SettingsTable]
    create: Callable[[Settings, TableServiceClient], SmsProvider]


def _outbox(settings: Settings, tables: TableServiceClient) -> SmsProvider:
    from gateway.providers import outbox

    return outbox.create(settings, tables)


def _twilio(settings: Settings, tables: TableServiceClient) -> SmsProvider:
    from gateway.providers import twilio

    return twilio.create(settings.provider_settings, settings.provider_concurrency,  # type: ignore[arg-type]  # twilio.create checks the type
                         public_base_url=settings.public_base_url)


def _acs(settings: Settings, tables: TableServiceClient) -> SmsProvider:
    from gateway.providers import acs

    return acs.create(settings.provider_settings, settings.provider_concurrency)  # type: ignore[arg-type]  # acs.create checks the type


PROVIDERS: dict[str, ProviderEntry] = {
    "outbox": ProviderEntry(OutboxSettings, _outbox),
    "twilio": ProviderEntry(TwilioSettings, _twilio),
    "acs": ProviderEntry(AcsSettings, _acs),
}


def create_provider(settings: Settings, tables: TableServiceClient) -> SmsProvider:
    """The provider ``settings.provider`` names (``Settings`` only accepts names in ``PROVIDERS``)."""
    return PROVIDERS[settings.provider].create(settings, tables)


__all__ = ["PROVIDERS", "OutboundSms", "Outcome", "ProviderEntry", "SendResult", "SmsProvider", "create_provider"]
