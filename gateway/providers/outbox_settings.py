"""The outbox's settings: whether it may run in Azure, where it would silently send nothing.

Whether the app runs in Azure is the gateway's setting ``WEBSITE_INSTANCE_ID``; ``Settings`` applies this
rule, because it holds both."""

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

    def check_host(self, *, running_in_azure: bool) -> None:
        """Refuse Azure unless allowed (``Settings`` calls this: it knows where the app runs)."""
        if running_in_azure and not self.allow_in_azure:
            raise ConfigError(
                "SMS_PROVIDER is 'outbox', a development provider that sends nothing; "
                "choose a real provider, or set SMS_ALLOW_OUTBOX_IN_AZURE=true to run it in Azure on purpose"
            )
