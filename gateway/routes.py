"""Every HTTP route the gateway serves, in one table.

``function_app.py`` binds one function per entry; the HTTP adapter uses the same table to
answer 405 for a known path with the wrong method, and the metadata page and OpenAPI
document are generated from it, so the three cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

SEND_PATHS = ("api/sendmessage", "api/send", "api/sms/send")
FORMAT_SUFFIX = "{format:alpha}"
PREDEFINED_OPERATION = "SMSSend"


@dataclass(frozen=True)
class Route:
    name: str  # the function's name: unique, stable, shown in logs
    path: str  # the route template, whole (host.json routePrefix is "")
    methods: tuple[str, ...]
    operation: str  # SMSSend, SMSStatus, SMSStatusByReference, Health, Metadata, OpenApi
    immediate: bool = False
    predefined: bool = False  # /json/reply/X style: the path names the body's format
    authenticated: bool = True
    summary: str = ""

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """The path template as a regex: ``{name}`` is one segment, ``{name:alpha}`` letters only."""
        parts = re.split(r"(\{[^}]+\})", self.path)
        regex = "".join(
            ("[A-Za-z]+" if part.endswith(":alpha}") else "[^/]+") if part.startswith("{") else re.escape(part)
            for part in parts
        )
        return re.compile(regex, re.IGNORECASE)

    def matches(self, path: str) -> bool:
        return self.pattern.fullmatch(path.strip("/")) is not None


def _send_routes() -> list[Route]:
    routes: list[Route] = []
    for path in SEND_PATHS:
        for immediate in (False, True):
            full = f"{path}/immediate" if immediate else path
            name = full.removeprefix("api/").replace("/", "_")
            summary = (
                "Store the SMS and deliver it inside the request"
                if immediate
                else "Store the SMS and queue it for background delivery"
            )
            routes.append(Route(name, full, ("POST",), "SMSSend", immediate=immediate, summary=summary))
            routes.append(
                Route(f"{name}_suffix", f"{full}.{FORMAT_SUFFIX}", ("POST",), "SMSSend", immediate=immediate,
                      summary=summary + " (response format from the .json/.jsv suffix)")
            )
    return routes


ROUTES: tuple[Route, ...] = (
    *_send_routes(),
    Route("predefined_api", f"api/{PREDEFINED_OPERATION}", ("POST",), "SMSSend",
          summary="ServiceStack's predefined route for the SMSSend DTO: queue for background delivery"),
    Route("predefined_reply", f"{{format:alpha}}/reply/{PREDEFINED_OPERATION}", ("POST",), "SMSSend",
          predefined=True, summary="ServiceStack's /json/reply and /jsv/reply routes: queue for background delivery"),
    Route("predefined_api_reply", f"api/{{format:alpha}}/reply/{PREDEFINED_OPERATION}", ("POST",), "SMSSend",
          predefined=True, summary="The predefined reply routes under /api: queue for background delivery"),
    Route("status_by_id", "api/sms/{commId}", ("GET",), "SMSStatus",
          summary="A communication's status and each recipient's, by CommId"),
    Route("status_by_reference", "api/sms/reference/{reference}", ("GET",), "SMSStatusByReference",
          summary="A communication's status and each recipient's, by Reference"),
    Route("health", "api/health", ("GET",), "Health", authenticated=False,
          summary="200 when storage answers, 503 when it does not"),
    Route("metadata", "metadata", ("GET",), "Metadata", authenticated=False,
          summary="This service's operations, routes and DTOs, for people"),
    Route("openapi", "openapi.json", ("GET",), "OpenApi", authenticated=False,
          summary="An OpenAPI 3.1 description of every route"),
)

CATCH_ALL = "{*path}"
