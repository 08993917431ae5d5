"""HTTP trigger routes as the host matches them: ASP.NET-style templates, constraints and precedence.

A function's route is ``extensions.http.routePrefix`` plus its declared ``route`` (its name when it
declares none). Among the routes that match a path, the most specific wins (literal before parameter,
constrained before plain, catch-all last); a path that only other methods serve is a 405.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from devhost.errors import DevHostError
from devhost.functions import FunctionSpec

DEFAULT_ROUTE_PREFIX = "api"


def route_prefix(host_json: Mapping[str, Any]) -> str:
    """``extensions.http.routePrefix`` without surrounding slashes (default ``api``)."""
    section = (host_json.get("extensions") or {}).get("http") or {}
    prefix = section.get("routePrefix", DEFAULT_ROUTE_PREFIX)
    return str(prefix if prefix is not None else DEFAULT_ROUTE_PREFIX).strip("/")



_GUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
                   r"|^\{[0-9a-fA-F-]{36}\}$|^\([0-9a-fA-F-]{36}\)$")


def _is_number(value: str, kind: Callable[[str], object]) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def _constraint(text: str) -> Callable[[str], bool] | None:
    """A predicate for one ASP.NET route constraint; None for those we do not check (they pass)."""
    name, _, argument = text.partition("(")
    argument = argument.removesuffix(")")
    name = name.lower()
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: re.fullmatch(r"-?\d+", v) is not None and -2**31 <= int(v) < 2**31,
        "long": lambda v: re.fullmatch(r"-?\d+", v) is not None and -2**63 <= int(v) < 2**63,
        "guid": lambda v: _GUID.match(v) is not None,
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "bool": lambda v: v.lower() in {"true", "false"},
        "decimal": lambda v: _is_number(v, float),
        "double": lambda v: _is_number(v, float),
        "float": lambda v: _is_number(v, float),
    }
    if name in simple:
        return simple[name]
    numbers = [int(part) for part in argument.split(",") if part.strip().lstrip("-").isdigit()]
    if name == "minlength" and len(numbers) == 1:
        return lambda v: len(v) >= numbers[0]
    if name == "maxlength" and len(numbers) == 1:
        return lambda v: len(v) <= numbers[0]
    if name == "length" and len(numbers) in (1, 2):
        low, high = numbers[0], numbers[-1]
        return lambda v: low <= len(v) <= high
    if name in {"min", "max", "range"} and numbers:
        low = numbers[0] if name != "max" else -(2**63)
        high = numbers[-1] if name != "min" else 2**63
        return lambda v: re.fullmatch(r"-?\d+", v) is not None and low <= int(v) <= high
    if name == "regex" and argument:
        pattern = re.compile(argument, re.IGNORECASE)
        return lambda v: pattern.search(v) is not None
    return None


@dataclass(frozen=True)
class _Parameter:
    name: str
    checks: tuple[Callable[[str], bool], ...]
    optional: bool
    default: str | None
    catch_all: bool


@dataclass(frozen=True)
class _Segment:
    """One ``/``-separated part of a route template: a literal, one parameter, or a mix of both."""

    pattern: re.Pattern[str]
    parameters: tuple[_Parameter, ...]
    whole: _Parameter | None  # the parameter when the segment is exactly one (``{id}``), else None

    @property
    def rank(self) -> int:
        """ASP.NET-like precedence, lower wins: literal, mixed, constrained, plain, catch-all."""
        if not self.parameters:
            return 1
        parameter = self.whole
        if parameter is None:
            return 2
        if parameter.catch_all:
            return 5
        return 3 if parameter.checks else 4


_PARAMETER = re.compile(r"\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


def _split_constraints(text: str) -> list[str]:
    """``name:int:min(1)`` -> [``name``, ``int``, ``min(1)``], not splitting inside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    parts.append(current)
    return parts


class RouteTemplate:
    """An HTTP trigger route such as ``api/sms/{commId}``, ``items/{id:guid}`` or ``files/{*path}``.

    Literal text matches case-insensitively, like the host.  Constraints int, long, guid, alpha,
    bool, decimal/double/float, (min|max)length, length, min, max, range and regex are honoured;
    others (e.g. datetime) are accepted without checking.
    """

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        texts = self.template.split("/") if self.template else []
        self.segments: tuple[_Segment, ...] = tuple(self._compile_segment(text) for text in texts)
        for index, segment in enumerate(self.segments):
            if any(parameter.catch_all for parameter in segment.parameters) and (
                    segment.whole is None or index != len(self.segments) - 1):
                raise DevHostError(f"route {template!r}: a catch-all parameter must be the whole last segment")

    @staticmethod
    def _compile_segment(text: str) -> _Segment:
        regex = ""
        parameters: list[_Parameter] = []
        position = 0
        matches = list(_PARAMETER.finditer(text))
        for match in matches:
            regex += re.escape(text[position:match.start()])
            position = match.end()
            name, *constraints = _split_constraints(match.group(1))
            name, _, default = name.partition("=")
            catch_all = name.startswith("*")
            optional = name.endswith("?")
            name = name.lstrip("*").rstrip("?")
            if not name.isidentifier():
                raise DevHostError(f"route parameter {match.group(0)!r} has a name Python regexes cannot use")
            checks = tuple(check for check in map(_constraint, constraints) if check is not None)
            parameters.append(_Parameter(name, checks, optional or bool(default), default or None, catch_all))
            regex += f"(?P<{name}>.*)" if catch_all else f"(?P<{name}>.+?)"
        regex += re.escape(text[position:])
        whole = parameters[0] if len(matches) == 1 and matches[0].group(0) == text else None
        return _Segment(re.compile(regex, re.IGNORECASE | re.DOTALL), tuple(parameters), whole)

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(segment.rank for segment in self.segments)

    def match(self, path_segments: list[str]) -> dict[str, str] | None:
        """Route values when these decoded path segments fit the template, else None."""
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            whole = segment.whole
            if whole is not None and whole.catch_all:
                rest = "/".join(path_segments[index:]) or whole.default or ""
                if rest and not all(check(rest) for check in whole.checks):
                    return None
                if rest:
                    values[whole.name] = rest
                return values
            if index >= len(path_segments):
                # Only trailing optional parameters may be left out.
                for missing in self.segments[index:]:
                    if missing.whole is None or not missing.whole.optional:
                        return None
                    if missing.whole.default is not None:
                        values[missing.whole.name] = missing.whole.default
                return values
            found = segment.pattern.fullmatch(path_segments[index])
            if found is None:
                return None
            for parameter in segment.parameters:
                value = found.group(parameter.name)
                if not all(check(value) for check in parameter.checks):
                    return None
                values[parameter.name] = value
        if len(path_segments) > len(self.segments):
            return None
        return values


@dataclass(frozen=True)
class HttpRoute:
    """An HTTP-triggered function at its full route (route prefix included)."""

    spec: FunctionSpec
    template: RouteTemplate
    methods: frozenset[str]  # empty: every method

    def allows(self, method: str) -> bool:
        return not self.methods or method in self.methods


class RouteNotFound(LookupError):
    """No route matches the path (404)."""


class MethodNotAllowed(LookupError):
    """Routes match the path, but none for this method (405); ``allowed`` lists theirs."""

    def __init__(self, allowed: Iterable[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = sorted(set(allowed))


class Router:
    """Picks the function for a request: best precedence among routes that match path and method."""

    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        self.routes = sorted(routes, key=lambda route: (route.template.precedence, route.template.template.lower()))

    @classmethod
    def for_functions(cls, specs: Iterable[FunctionSpec], prefix: str) -> Router:
        routes = []
        for spec in specs:
            declared = str(spec.trigger.get("route") or spec.name).strip("/")
            full = f"{prefix}/{declared}".strip("/") if prefix else declared
            methods = frozenset(str(method).upper() for method in spec.trigger.get("methods") or ())
            routes.append(HttpRoute(spec, RouteTemplate(full), methods))
        return cls(routes)

    def resolve(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]]:
        """The route and its route values for ``path`` (URL-encoded, no query string)."""
        trimmed = path.strip("/")
        segments = [urllib.parse.unquote(part) for part in trimmed.split("/")] if trimmed else []
        allowed: list[str] = []
        for route in self.routes:
            values = route.template.match(segments)
            if values is None:
                continue
            if route.allows(method):
                return route, values
            allowed.extend(route.methods)
        if allowed:
            raise MethodNotAllowed(allowed)
        raise RouteNotFound(path)
