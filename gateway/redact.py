"""What a log line may say about a person: a phone number's last four digits, nothing more.

Log lines never carry a message body or an API key; text that comes from outside (a provider's
error message, an exception) goes through ``brief`` first, because services quote numbers back
and URLs carry query strings. Standard library only, so any module can use it at no cold-start cost.
"""

from __future__ import annotations

import re


def mask_phone(number: str | None) -> str:
    """All but the last four digits hidden: enough to match a complaint, not enough to reuse."""
    if not number:
        return "<none>"
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + "".join(digits[-4:])


# A run of digits (spaces, dashes, brackets allowed) standing alone: a hex id's digits are not a number.
_NUMBER_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])\+?\d[\d ()-]{4,}\d(?![0-9A-Za-z])")
_QUERY_IN_TEXT = re.compile(r"(?<=\S)\?[^\s?#=&'\"<>]+=[^\s'\"<>]*")  # ?name=value&... after a path or URL


def mask_text(text: str | None) -> str:
    """Outside text with every phone-like number masked and every URL's query string cut."""
    if not text:
        return ""
    text = _QUERY_IN_TEXT.sub("?…", text)
    return _NUMBER_IN_TEXT.sub(lambda match: mask_phone(match.group(0)), text)


def brief(text: str | None, limit: int = 300) -> str:
    """Outside text fit for a log line: masked, and cut short (services may echo the request)."""
    masked = mask_text(text)
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"


def describe(error: BaseException) -> str:
    """An exception for a log line: its type and its masked, shortened message."""
    return f"{type(error).__name__}: {brief(str(error))}"
