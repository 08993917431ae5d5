"""The DTOs seen from outside: their .NET type names, placeholder examples, and JSON and JSV samples.

Everything here walks the pydantic models, so a field added to a DTO is in every table, example
and sample with no other edit; a type these functions cannot spell fails loudly.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import types
import typing
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel

from gateway import jsv
from gateway.models import EMPTY_GUID

_SIMPLE_DOTNET_TYPES: dict[Any, str] = {
    str: "string",
    bool: "bool",
    int: "int",
    float: "double",
    Decimal: "decimal",
    uuid.UUID: "Guid",
    _dt.datetime: "DateTime",
    _dt.date: "DateTime",
    bytes: "byte[]",
}


def unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def dotnet_type(annotation: Any) -> str:
    """The type as the .NET DTO spells it (``List<SMSContact>``, ``Guid``), for the page's tables."""
    annotation = unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return dotnet_type(args[0])
    if origin in (list, tuple, set, frozenset):
        return f"List<{dotnet_type(args[0])}>"
    if origin is dict:
        return f"Dictionary<{dotnet_type(args[0])},{dotnet_type(args[1])}>"
    if origin is Literal:
        return dotnet_type(type(args[0]))
    if annotation in _SIMPLE_DOTNET_TYPES:
        return _SIMPLE_DOTNET_TYPES[annotation]
    if is_model(annotation) or (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        return annotation.__name__
    raise TypeError(f"no .NET spelling for {annotation!r}; teach gateway.metadata.dtos.dotnet_type")


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    annotation = unwrap_optional(annotation)
    if is_model(annotation):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def models_reachable(root: type[BaseModel]) -> list[type[BaseModel]]:
    """``root`` and every model its fields use, depth first in field order (the seed page's order)."""
    seen: list[type[BaseModel]] = []

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for info in model.model_fields.values():
            for nested in _models_in(info.annotation):
                visit(nested)

    visit(root)
    return seen


def _example_value(annotation: Any, stack: tuple[type[BaseModel], ...]) -> Any:
    """A placeholder like ServiceStack's: ``String``, ``False``, ``0``, the empty Guid, one list item.

    Times are UTC, as the gateway writes them; a naive one would not be an RFC 3339 ``date-time``.
    """
    annotation = unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _example_value(args[0], stack)
    if origin in (list, tuple, set, frozenset):
        item = _example_value(args[0], stack)
        return [] if item is None else [item]
    if origin is dict:
        return {"String": "String"}
    if origin is Literal:
        return args[0]
    if is_model(annotation):
        return None if annotation in stack else example(annotation, stack)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    placeholders: dict[Any, Any] = {
        str: "String", bool: False, int: 0, float: 0.0, Decimal: Decimal(0), uuid.UUID: EMPTY_GUID,
        _dt.datetime: _dt.datetime(1, 1, 1, tzinfo=_dt.UTC), _dt.date: _dt.date(1, 1, 1), bytes: b"",
    }
    if annotation in placeholders:
        return placeholders[annotation]
    raise TypeError(f"no placeholder for {annotation!r}; teach gateway.metadata.dtos._example_value")


def example(model: type[BaseModel], _stack: tuple[type[BaseModel], ...] = ()) -> Any:
    """An instance of ``model`` with every field set to a placeholder, for samples and examples."""
    values = {
        name: _example_value(info.annotation, (*_stack, model)) for name, info in model.model_fields.items()
    }
    return model.model_validate(values)


def json_sample(model: type[BaseModel]) -> str:
    """The example as the gateway writes it in JSON (PascalCase, N-form Guids), indented."""
    return json.dumps(example(model).model_dump(mode="json", exclude_none=True), indent=2, ensure_ascii=False)


def jsv_sample(model: type[BaseModel]) -> str:
    """The example in JSV, laid out like the seed page's sample (tabs, one property a line)."""
    return _pretty_jsv(example(model).model_dump(mode="python", exclude_none=True), 0)


def _pretty_jsv(value: Any, depth: int) -> str:
    """Indent JSV the way ServiceStack's metadata page does; every token is written by ``jsv.dumps``."""
    inner = "\t" * (depth + 1)
    if isinstance(value, Mapping):
        items = [(key, item) for key, item in value.items() if item is not None]
        if not items:
            return "{}"
        lines = []
        for key, item in items:
            text = _pretty_jsv(item, depth + 1)
            separator = f" \n{inner}" if text[:1] in "{[" and text not in ("{}", "[]") else " "
            lines.append(f"{inner}{jsv.dumps(str(key))}:{separator}{text}")
        return "{\n" + ",\n".join(lines) + "\n" + "\t" * depth + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        lines = [inner + ("" if item is None else _pretty_jsv(item, depth + 1)) for item in value]
        return "[\n" + ",\n".join(lines) + "\n" + "\t" * depth + "]"
    return jsv.dumps(value)

