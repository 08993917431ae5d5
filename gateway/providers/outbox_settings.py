"""The outbox's settings: whether it may run in Azure, where it would silently send nothing."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import ConfigError, Flag, SettingsTable, setting


@dataclass(frozen=True)
class OutboxSettings(SettingsTable):
    """Read when ``SMS_PROVIDER=outbox``; the outbox refuses to start in Azure unless allowed."""

    allow_in_azure: bool = setting(
        "SMS_ALLOW_OUTBOX_IN_AZURE", Flag(), default=False,
        description="let the outbox run in Azure, where it sends nothing; without it the app refuses to start there",
    )
    instance_id: str | None = setting(
        "WEBSITE_INSTANCE_ID",
        description="set by Azure on every instance of the app: how the outbox knows it runs in Azure",
    )

    def __post_init__(self) -> None:
        if self.instance_id and not self.allow_in_azure:
            raise ConfigError(
                "SMS_PROVIDER is 'outbox', a development provider that sends nothing; "
                "choose a real provider, or set SMS_ALLOW_OUTBOX_IN_AZURE=true to run it in Azure on purpose"
            )
