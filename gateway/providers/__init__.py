"""SMS providers: how a batch of outbound SMS leaves the gateway.

``base`` holds the contract every provider keeps; ``create_provider`` picks the one the
settings name and imports its module only then, so an unused provider's SDK never
costs cold-start time.
"""

from __future__ import annotations

import importlib

from gateway.providers.base import OutboundSms, Outcome, SendResult, SmsProvider
from gateway.settings import ConfigError, Settings

# provider name -> "module:factory"; the factory takes (settings, storage clients) and returns an SmsProvider
PROVIDERS: dict[str, str] = {
    "outbox": "gateway.providers.outbox:create",
}


def create_provider(settings: Settings, tables: object) -> SmsProvider:
    target = PROVIDERS.get(settings.provider)
    if target is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"SMS_PROVIDER must be one of {known}, not {settings.provider!r}")
    module_name, factory_name = target.split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(settings, tables)


__all__ = ["PROVIDERS", "OutboundSms", "Outcome", "SendResult", "SmsProvider", "create_provider"]
