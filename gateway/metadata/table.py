"""The route table as both documents present it: its operations in order, its paths as clients write them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.routes import FORMAT, FORMAT_SUFFIX, Operation, Route


def routes_by_operation(routes: Sequence[Route]) -> dict[Operation, list[Route]]:
    """The routes grouped by operation, the operations in the order the table first names them."""
    grouped: dict[Operation, list[Route]] = {}
    for route in routes:
        grouped.setdefault(route.operation, []).append(route)
    names = [operation.name for operation in grouped]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"two different operations are both named {name!r}")
    return grouped


def _strip_constraints(path: str) -> str:
    """``{format:alpha}`` -> ``{format}``: the Functions route constraint means nothing to clients."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def openapi_path(route: Route) -> str:
    """The route's template as an OpenAPI path: leading slash, constraints stripped."""
    return "/" + _strip_constraints(route.path)


def route_display_paths(route: Route) -> list[str]:
    """How the page shows a route: ``/api/send.json|.jsv`` for a suffix, one line per reply format."""
    path = openapi_path(route)
    suffix = "." + _strip_constraints(FORMAT_SUFFIX)
    if path.endswith(suffix):
        return [path.removesuffix(suffix) + "|".join(f".{choice}" for choice in FORMAT.choices)]
    if "{format}" in path:
        return [path.replace("{format}", choice) for choice in FORMAT.choices]
    return [path]
