"""Declarative settings: a settings class lists each environment variable it reads once, as a field.

``setting(...)`` makes a dataclass field that names its variable and says how the variable's text
becomes a value (a ``Kind``), the default, what it means, and whether it is a secret. ``read``
fills a class from an environment: blank means the default, and every error names the variable
(a secret's value never appears in one, nor in ``repr``). A value that is still an App Service Key
Vault reference, ``@Microsoft.KeyVault(...)``, is refused whatever its kind: the platform passes the
reference text itself while it cannot read the secret. Rules between settings of one class belong
in its ``__post_init__``. The README's settings tables, ``local.settings.json.example`` and
the Bicep template are checked against these declarations by the tests.

Starlette's ``config.py`` is the model: environment only, small, typed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, Protocol, Self, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
_SETTING = "gateway.setting"  # the key of a field's Setting in its metadata
# What App Service leaves in a setting whose Key Vault reference did not resolve: the reference itself
# ("Troubleshoot Key Vault references", learn.microsoft.com/azure/app-service/app-service-key-vault-references).
_KEY_VAULT_REFERENCE = "@microsoft.keyvault("


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names the setting."""


class Kind(Protocol[T_co]):
    """How a setting's text becomes a value. ``parse`` raises ValueError completing "<NAME> ...", e.g.
    "must be a whole number"; ``accepts`` says in a few words what text is valid (the README shows it)."""

    @property
    def accepts(self) -> str: ...

    def parse(self, text: str) -> T_co: ...


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its name, its kind, its default and what it is for."""

    name: str
    kind: Kind[T]
    default: T | None
    description: str
    secret: bool

    def read(self, env: Mapping[str, str]) -> T | None:
        """The value ``env`` gives, or the default when the variable is unset or blank."""
        text = (env.get(self.name) or "").strip()
        if not text:
            return self.default
        if text.lower().startswith(_KEY_VAULT_REFERENCE):
            raise ConfigError(
                f"{self.name} is a Key Vault reference that has not resolved: check that the app's identity has "
                "Key Vault Secrets User on the vault and that the secret exists, then restart the app"
            )
        try:
            return self.kind.parse(text)
        except ValueError as error:
            shown = "" if self.secret else f", not {text!r}"
            raise ConfigError(f"{self.name} {error}{shown}") from None

    @property
    def default_text(self) -> str:
        """The default as it would be written in the environment ("" when there is none)."""
        return as_text(self.default)


def as_text(value: object) -> str:
    """A value as environment text: booleans as true/false, 10.0 as 10, None as nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def setting(name: str, kind: Kind[T] | None = None, *, default: T | None = None, description: str,
            secret: bool = False) -> Any:
    """A dataclass field read from the environment variable ``name`` (plain text unless ``kind`` says else)."""
    declared = Setting(name, kind or Text(), default, description, secret)
    return field(default=default, repr=not secret, metadata={_SETTING: declared})


def settings_of(cls: type) -> tuple[Setting[Any], ...]:
    """The settings a class declares, in field order."""
    return tuple(item.metadata[_SETTING] for item in fields(cls) if _SETTING in item.metadata)


class SettingsTable:
    """Base of a frozen dataclass whose fields are settings; ``from_env`` reads them all."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        return read(cls, os.environ if env is None else env)


def read(cls: type[T], env: Mapping[str, str], **others: Any) -> T:
    """An instance of ``cls`` with every setting field read from ``env``; ``others`` gives the other fields."""
    values = {item.name: item.metadata[_SETTING].read(env) for item in fields(cls) if _SETTING in item.metadata}
    return cls(**values, **others)


# --- kinds ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """Any text."""

    accepts: str = "text"

    def parse(self, text: str) -> str:
        return text


@dataclass(frozen=True)
class Pattern:
    """Text that matches a regular expression, described in ``accepts``."""

    regex: str
    accepts: str

    def parse(self, text: str) -> str:
        if re.fullmatch(self.regex, text) is None:
            raise ValueError(f"must be {self.accepts}")
        return text


@dataclass(frozen=True)
class Integer:
    """A whole number, at least ``minimum`` and at most ``maximum`` when one is given."""

    minimum: int = 1
    maximum: int | None = None

    @property
    def accepts(self) -> str:
        if self.maximum is None:
            return f"a whole number, at least {self.minimum}"
        return f"a whole number from {self.minimum} to {self.maximum}"

    def parse(self, text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"must be {self.accepts}") from None
        if number < self.minimum or (self.maximum is not None and number > self.maximum):
            raise ValueError(f"must be {self.accepts}")
        return number


@dataclass(frozen=True)
class Number:
    """A number, fractions allowed: more than 0 and at most ``maximum`` (a rate: 0.5 is one every 2 s)."""

    maximum: float

    @property
    def accepts(self) -> str:
        return f"a number more than 0 and at most {self.maximum:g}"

    def parse(self, text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"must be {self.accepts}") from None
        if not 0 < number <= self.maximum:  # also refuses nan
            raise ValueError(f"must be {self.accepts}")
        return number


@dataclass(frozen=True)
class Seconds(Number):
    """A number of seconds, fractions allowed: more than 0 and at most ``maximum``."""

    @property
    def accepts(self) -> str:
        return f"a number of seconds, more than 0 and at most {self.maximum:g}"


@dataclass(frozen=True)
class Flag:
    """true or false (also 1/0, yes/no, on/off)."""

    accepts: str = "true or false"

    def parse(self, text: str) -> bool:
        lowered = text.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"must be {self.accepts}")


class Choice:
    """One of a fixed set of words, in any case."""

    def __init__(self, choices: Collection[str]) -> None:
        self.choices = tuple(choices)

    @property
    def accepts(self) -> str:
        if len(self.choices) == 1:
            return self.choices[0]
        return f"{', '.join(self.choices[:-1])} or {self.choices[-1]}"

    def parse(self, text: str) -> str:
        lowered = text.lower()
        if lowered not in self.choices:
            raise ValueError(f"must be {self.accepts}")
        return lowered


@dataclass(frozen=True)
class Url:
    """An absolute URL (https only when ``https_only``); a base URL loses its trailing slash."""

    https_only: bool = False
    base: bool = False

    @property
    def accepts(self) -> str:
        return "an https URL" if self.https_only else "an absolute http(s) URL"

    def parse(self, text: str) -> str:
        if not is_url(text, https_only=self.https_only):
            raise ValueError(f"must be {self.accepts}")
        return text.rstrip("/") if self.base else text


def is_url(text: str, *, https_only: bool = False) -> bool:
    parts = urlsplit(text)
    schemes = {"https"} if https_only else {"http", "https"}
    return parts.scheme.lower() in schemes and bool(parts.hostname)


@dataclass(frozen=True)
class ExistingFile:
    """The path of a file that exists when the settings are read."""

    accepts: str = "the path of an existing file"

    def parse(self, text: str) -> str:
        if not os.path.isfile(text):
            raise ValueError(f"must be {self.accepts}")
        return text

