"""Every HTTP operation and route the gateway serves, in one table.

An ``Operation`` is what the gateway does (its handler), what it reads and answers (the DTOs),
which error statuses it can answer and whether it needs an API key. A ``Route`` is where it is
served: a path template and methods. ``function_app.py`` binds one function per route; the HTTP
adapter (``gateway.http``) authenticates from the operation and calls its handler, and answers 405
for a known path with the wrong method; ``/metadata`` and ``/openapi.json`` are generated from
the same objects, so none of them can drift apart. A new route is one entry here and one handler.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from gateway import handlers, idempotency, message_list
from gateway.handlers import Call, Document
from gateway.models import (
    CommResponse,
    HealthResponse,
    OptOut,
    OptOutRequest,
    OptOutsResponse,
    SMSCancelResponse,
    SMSLogResponse,
    SMSSend,
    SMSStatusResponse,
    Webhook,
    WebhookEventEntry,
    WebhookEventsResponse,
    WebhookRegistration,
    WebhookRequest,
    WireModel,
)
from gateway.providers import acs_events
from gateway.wire import Format

SEND_PATHS = ("api/sendmessage", "api/send", "api/sms/send")
FORMAT_SUFFIX = "{format:alpha}"
PREDEFINED_OPERATION = "SMSSend"
CATCH_ALL = "{*path}"

Handler = Callable[[Call], WireModel | Document]


@dataclass(frozen=True)
class PathParameter:
    """A ``{name}`` in a route's path: its type as the documents show it, and what it means."""

    name: str
    type: type
    description: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestParameter:
    """A header or query-string value an operation reads besides its DTO (the documents list it)."""

    name: str
    location: str  # "header" or "query", as OpenAPI names them
    description: str

    def __post_init__(self) -> None:
        if self.location not in ("header", "query"):
            raise ValueError(f"{self.name}: a request parameter is in the header or the query, not {self.location!r}")


FORMAT = PathParameter("format", str, "The response format (and, on the reply routes, the body's format)",
                       choices=tuple(each.value for each in Format))
"""The route-level ``{format}``: a ``.json``/``.jsv`` suffix, or the prefix of a predefined reply route."""


@dataclass(frozen=True)
class Operation:
    """What the gateway does for a request, with all the adapter and the documents need to know of it."""

    name: str  # ServiceStack's operation (request DTO) name; the documents group routes by it
    description: str
    handler: Handler
    errors: tuple[int, ...]  # every error status it can answer, the adapter's included (401, 406, 500)
    request: type[WireModel] | None = None  # the body DTO
    response: type[WireModel] | None = None  # the DTO it answers; None: the handler answers a Document
    media_type: str | None = None  # a Document's Content-Type
    path_parameters: tuple[PathParameter, ...] = ()
    parameters: tuple[RequestParameter, ...] = ()
    authenticated: bool = True
    success: int = 200  # the status a success answers: a provider callback's empty acknowledgement is 204
    documented: bool = True  # in /metadata and /openapi.json; the console's page and files are not API operations

    def __post_init__(self) -> None:
        """The declared errors must be what the adapter does, or the documents would say otherwise."""
        if 500 not in self.errors:
            raise ValueError(f"{self.name}: every operation can answer 500 (the adapter's answer to a bug)")
        if self.authenticated and 401 not in self.errors:
            raise ValueError(f"{self.name}: an operation that takes an API key answers 401, so it declares it")
        if (self.response is None) == (self.media_type is None):
            raise ValueError(f"{self.name}: an operation answers either a DTO or a Document with a media type")
        if self.refuses_unserved_formats and self.response is None:
            raise ValueError(f"{self.name}: 406 is for DTO answers; a Document has one media type")

    @property
    def refuses_unserved_formats(self) -> bool:
        """406 when the client asks only for formats we do not write; without it, the default format.

        Health declares no 406: a probe gets its answer whatever it sends in ``Accept``.
        """
        return 406 in self.errors


@dataclass(frozen=True)
class Route:
    """Where an operation is served, and how this path asks for it (immediate delivery, a body format)."""

    name: str  # the function's name: unique, stable, shown in logs
    path: str  # the route template, whole (host.json routePrefix is "")
    methods: tuple[str, ...]
    operation: Operation
    immediate: bool = False  # a send delivers inside the request
    predefined: bool = False  # /json/reply/X style: the path names the body's format
    summary: str = ""
    format_suffix: bool = True  # a .json/.jsv suffix on a path value names the answer's format (not a file's name)

    def __post_init__(self) -> None:
        """Every ``{name}`` in the path is described: by the operation, or it is the route's ``{format}``."""
        names = [parameter.name for parameter in self.parameters]
        unknown = [name for name in _parameter_names(self.path) if name not in names]
        if unknown:
            raise ValueError(f"route {self.name!r}: path parameter {unknown[0]!r} is not one of "
                             f"{self.operation.name}'s path_parameters")
        missing = [parameter.name for parameter in self.operation.path_parameters if parameter.name not in names]
        if missing:
            raise ValueError(f"route {self.name!r}: the path has no {{{missing[0]}}}")
        if self.predefined and FORMAT.name not in names:
            raise ValueError(f"route {self.name!r}: a predefined route names the format in its path")

    @property
    def parameters(self) -> tuple[PathParameter, ...]:
        """The path's parameters, in the order the path names them."""
        known = {parameter.name: parameter for parameter in (*self.operation.path_parameters, FORMAT)}
        return tuple(known[name] for name in _parameter_names(self.path) if name in known)

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


def _parameter_names(path: str) -> list[str]:
    """``api/sms/{commId}.{format:alpha}`` -> ``["commId", "format"]``."""
    return re.findall(r"\{(\w+)(?::[^}]*)?\}", path)


IDEMPOTENCY_PARAMETERS = (
    RequestParameter(
        idempotency.HEADER, "header",
        "Makes a retry safe (the IETF httpapi draft's header). The same key from the same licensee within "
        f"{idempotency.WINDOW.total_seconds() / 3600:g} hours answers the first request's CommResponse (an "
        "immediate send: its current outcome) and stores and sends nothing new; the same key with a different "
        "request answers 422, and one whose first request is still being accepted or delivered 409. "
        f"{idempotency.KEY_SYNTAX[0].upper()}{idempotency.KEY_SYNTAX[1:]}; anything else answers 400.",
    ),
    RequestParameter(
        idempotency.QUERY_PARAMETER, "query",
        f"The {idempotency.HEADER} for clients that cannot set headers, such as HTML form posts; sent with the "
        "header, it must name the same key.",
    ),
)

SEND = Operation(
    "SMSSend", "Saves the specified SMS and sends it for background processing", handlers.send,
    errors=(400, 401, 403, 406, 409, 413, 415, 422, 500, 503), request=SMSSend, response=CommResponse,
    parameters=IDEMPOTENCY_PARAMETERS,
)
STATUS = Operation(
    "SMSStatus",
    "A communication's status, its counts and every recipient's status, provider message id and error, found by "
    "the CommId SMSSend returned. Another licensee's communication answers 404.",
    handlers.status_by_id, errors=(401, 404, 406, 500, 503), response=SMSStatusResponse,
    path_parameters=(PathParameter("commId", uuid.UUID, "The CommId SMSSend returned, in N, D, B or P form"),),
)
STATUS_BY_REFERENCE = Operation(
    "SMSStatusByReference", "The same as SMSStatus, found by the short Reference SMSSend returned.",
    handlers.status_by_reference, errors=(401, 404, 406, 500, 503), response=SMSStatusResponse,
    path_parameters=(PathParameter("reference", str, "The Reference SMSSend returned (case-insensitive)"),),
)
RESEND = Operation(
    "SMSResend",
    "Sends a communication again to the recipients it did not reach: a new communication, queued like a fresh send "
    "(the opt-out list and pacing apply), of the recipients whose status is Failed, Undelivered or Expired (not "
    "OptedOut, Canceled, Sent, Delivered or still open), with the original's sender, body, reply flags, Notes, "
    "LinkedObjectId and SuiteId. Its ResentFrom names the original, whose ResentAs lists it. Answers the new "
    "communication's CommResponse. Another licensee's communication answers 404; 409 NothingToResend when no "
    "recipient is in those states, 409 AlreadyResent when an earlier resend carried every one of them (resend that "
    "one).",
    handlers.resend, errors=(400, 401, 404, 406, 409, 422, 500, 503), response=CommResponse,
    path_parameters=STATUS.path_parameters, parameters=IDEMPOTENCY_PARAMETERS,
)
CANCEL = Operation(
    "SMSCancel",
    "Cancels every recipient of a communication not yet handed to the provider (they end Canceled; a scheduled "
    "send canceled before its SendAt sends nothing and ends Canceled); recipients already sent, or being sent "
    "this moment, are unchanged. Answers how many it canceled (0 when nothing was left). Another licensee's "
    "communication answers 404.",
    handlers.cancel, errors=(401, 404, 406, 500, 503), response=SMSCancelResponse,
    path_parameters=STATUS.path_parameters,
)
MESSAGE_LOG = Operation(
    "SMSLog",
    "The caller's communications, newest first (by when they were accepted), each with its status and counts as "
    "they are now; another licensee's are never listed. A page holds at most Top; follow ContinuationToken for the "
    "next. With Status, a page may hold fewer than Top and still have a next one. Communications older than "
    "SMS_RETENTION_DAYS are deleted, so not listed.",
    handlers.message_log, errors=(400, 401, 406, 500, 503), response=SMSLogResponse,
    parameters=(
        RequestParameter("Top", "query", f"How many per page, 1 to {message_list.MAX_TOP} "
                                         f"(default {message_list.DEFAULT_TOP})"),
        RequestParameter("ContinuationToken", "query", "The previous page's ContinuationToken: the next page"),
        RequestParameter("Status", "query", "Only communications whose status is now this one (Queued, Sent, "
                                            "Delivered, …; case-insensitive)"),
        RequestParameter("Since", "query", "Only those accepted at or after this time (ISO 8601; no offset: UTC)"),
        RequestParameter("Until", "query", "Only those accepted before this time (ISO 8601; no offset: UTC)"),
        RequestParameter("PhoneNumber", "query", "Only communications sent to this recipient (read as a recipient's "
                                                 "number on send; write + as %2B)"),
    ),
)
HEALTH = Operation(
    "Health", "Answers 200, naming the active SMS provider, when storage answers, and 503 when it does not; "
    "needs no API key.", handlers.health,
    errors=(500, 503), response=HealthResponse, authenticated=False,
)
METADATA = Operation(
    "Metadata", "This page: every operation, route and DTO, for people.", handlers.metadata_page,
    errors=(500,), media_type="text/html", authenticated=False,
)
OPENAPI = Operation(
    "OpenApi", "An OpenAPI 3.1 description of every route, for code generators and API tools.",
    handlers.openapi_spec, errors=(500,), media_type="application/json", authenticated=False,
)
COMMUNICATION_EVENTS = Operation(
    "SMSWebhookEvents",
    "The webhook events the gateway made for one of the caller's communications (sent, delivered, failed, reply, "
    "completed…), whatever became of them (Pending, Delivered or Failed), oldest first; none when no webhook was "
    "registered while it changed. Found from the communication's own rows, never by a scan. Another licensee's "
    "communication answers 404.",
    handlers.communication_events, errors=(401, 404, 406, 500, 503), response=WebhookEventsResponse,
    path_parameters=STATUS.path_parameters,
)
CONSOLE = Operation(
    "Console",
    "The console: a page in the browser over this API (docs/console.md); its files need no API key, the page "
    "sends the key the user pastes with each API call. Not an API operation, so not in these documents.",
    handlers.console_page, errors=(404, 500), media_type="text/html", authenticated=False, documented=False,
    path_parameters=(PathParameter("file", str, "One of the console's shipped files (app.js, console.css, …)"),),
)
CONSOLE_INDEX = Operation(
    "ConsoleIndex", CONSOLE.description, handlers.console_page, errors=(500,), media_type="text/html",
    authenticated=False, documented=False,
)

TWILIO_STATUS = Operation(
    "TwilioStatusCallback",
    "For Twilio, not for clients: Twilio's status callback for a message the gateway sent (a form, signed with "
    "the account's Auth Token in X-Twilio-Signature over SMS_PUBLIC_BASE_URL plus this path and query). Every "
    "create names this URL when SMS_PUBLIC_BASE_URL is set. Answers 204 once the receipt is stored, also for a "
    "message the gateway does not know; 403 when the signature is not Twilio's (or TWILIO_AUTH_TOKEN is unset); "
    "400 when a signed callback has no MessageSid or MessageStatus.",
    handlers.twilio_status, errors=(400, 403, 500, 503), media_type="text/plain", authenticated=False, success=204,
    parameters=(
        RequestParameter("X-Twilio-Signature", "header",
                         "Base64 HMAC-SHA1 of the URL and the sorted form parameters, keyed with the Auth Token"),
        RequestParameter("CommId", "query", "The communication the message belongs to, as the gateway gave it"),
        RequestParameter("Index", "query", "The recipient's position in it, as the gateway gave it"),
    ),
)
TWILIO_INBOUND = Operation(
    "TwilioInbound",
    "For Twilio, not for clients: a message a phone sent to one of the gateway's Twilio numbers (the URL to "
    "configure on the number or Messaging Service; a form signed like the status callback). Answers an empty TwiML "
    "<Response/> (no automatic reply) once the message is stored, matched to the communication it answers and, for "
    "STOP or START, applied to the opt-out list; a repeat changes nothing. 403 when the signature is not Twilio's "
    "(or TWILIO_AUTH_TOKEN is unset); 400 when a signed message has no MessageSid, From or To.",
    handlers.twilio_inbound, errors=(400, 403, 500, 503), media_type="text/xml", authenticated=False,
    parameters=TWILIO_STATUS.parameters[:1],  # X-Twilio-Signature
)
ACS_EVENTS = Operation(
    "AcsEvents",
    "Azure Event Grid delivers Azure Communication Services SMS events here: the subscription's validation "
    "handshake, answered {\"validationResponse\": …}, and delivery reports, each applied to its recipient "
    "(idempotently: a repeated or late report changes nothing more). Other event types are accepted and ignored. "
    "Needs no API key but the key query parameter; answers 404 while SMS_EVENTGRID_KEY is unset.",
    handlers.acs_events_delivery, errors=(400, 401, 404, 413, 500, 503), media_type="application/json",
    parameters=(RequestParameter(acs_events.KEY_PARAMETER, "query",
                                 "SMS_EVENTGRID_KEY, as the Event Grid subscription's endpoint URL carries it"),),
    authenticated=False,
)
OPTOUTS_LIST = Operation(
    "OptOutList",
    "The caller's licensee's opt-out list: every number a send will not reach (the recipient ends OptedOut, with "
    "no provider call), with when and why it was added (a STOP keyword, the provider's refusal, the licensee's "
    "own systems, an operator). Another licensee's list is never shown.",
    handlers.optouts_list, errors=(401, 406, 500, 503), response=OptOutsResponse,
)
OPTOUTS_ADD = Operation(
    "OptOutAdd",
    "Adds a number to the caller's licensee's opt-out list, from the licensee's own systems; answers the entry. "
    "Adding a number already listed records it again as the API's. A number is read as a recipient's is.",
    handlers.optouts_add, errors=(400, 401, 406, 413, 415, 500, 503), request=OptOutRequest, response=OptOut,
)
OPTOUTS_REMOVE = Operation(
    "OptOutRemove",
    "Takes a number off the caller's licensee's opt-out list, so sends reach it again; answers the entry removed, "
    "404 when the number is not on the list.",
    handlers.optouts_remove, errors=(400, 401, 404, 406, 500, 503), response=OptOut,
    path_parameters=(PathParameter("phoneNumber", str, "The number, international (+ and country code, as + or "
                                   "%2B) or national with SMS_DEFAULT_REGION"),),
)

WEBHOOK_SET = Operation(
    "WebhookSet",
    "Registers where the caller's licensee's events are posted (Standard Webhooks: signed, retried) and answers "
    "the URL with a new signing secret, shown only now. A licensee has one webhook: a new PUT replaces the URL and "
    "rotates the secret, the one it replaces signing beside it for 24 hours. The URL must be https in Azure, and its "
    "host must resolve to public addresses only (not private, loopback or link-local) unless "
    "SMS_WEBHOOK_ALLOW_PRIVATE is set; otherwise a 400 naming Url says why.",
    handlers.webhook_set, errors=(400, 401, 406, 413, 415, 500, 503), request=WebhookRequest,
    response=WebhookRegistration,
)
WEBHOOK_SHOW = Operation(
    "WebhookShow",
    "The caller's licensee's webhook URL (never its secret); 404 when none is registered.",
    handlers.webhook_show, errors=(401, 404, 406, 500, 503), response=Webhook,
)
WEBHOOK_DELETE = Operation(
    "WebhookDelete",
    "Removes the caller's licensee's webhook and its secrets, so no more events are posted; answers the URL "
    "removed, 404 when none is registered.",
    handlers.webhook_delete, errors=(401, 404, 406, 500, 503), response=Webhook,
)
WEBHOOK_EVENTS_LIST = Operation(
    "WebhookEventList",
    "The caller's licensee's webhook events whose retries ended without the endpoint taking them (status=failed, "
    "the default and only status listed), newest first, at most 100, each with its attempts and last error; "
    "another licensee's events are never shown.",
    handlers.webhook_events_list, errors=(400, 401, 406, 500, 503), response=WebhookEventsResponse,
    parameters=(RequestParameter(handlers.WEBHOOK_STATUS_PARAMETER, "query", "failed (the default)"),),
)
WEBHOOK_EVENT_RETRY = Operation(
    "WebhookEventRetry",
    "Sends one of the caller's Failed webhook events again, with the same webhook-id and a fresh round of retries; "
    "answers the event, now Pending. 404 for an event that is not the caller's, 409 for one that is not Failed.",
    handlers.webhook_event_retry, errors=(401, 404, 406, 409, 500, 503), response=WebhookEventEntry,
    path_parameters=(PathParameter("eventId", str, "The event's id (the webhook-id header, evt_…)"),),
)


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
            routes.append(Route(name, full, ("POST",), SEND, immediate=immediate, summary=summary))
            routes.append(
                Route(f"{name}_suffix", f"{full}.{FORMAT_SUFFIX}", ("POST",), SEND, immediate=immediate,
                      summary=summary + " (response format from the .json/.jsv suffix)")
            )
    return routes


ROUTES: tuple[Route, ...] = (
    *_send_routes(),
    Route("predefined_api", f"api/{PREDEFINED_OPERATION}", ("POST",), SEND,
          summary="ServiceStack's predefined route for the SMSSend DTO: queue for background delivery"),
    Route("predefined_reply", f"{{format:alpha}}/reply/{PREDEFINED_OPERATION}", ("POST",), SEND,
          predefined=True, summary="ServiceStack's /json/reply and /jsv/reply routes: queue for background delivery"),
    Route("predefined_api_reply", f"api/{{format:alpha}}/reply/{PREDEFINED_OPERATION}", ("POST",), SEND,
          predefined=True, summary="The predefined reply routes under /api: queue for background delivery"),
    Route("message_log", "api/sms", ("GET",), MESSAGE_LOG,
          summary="The caller's communications, newest first, a page at a time"),
    Route("status_by_id", "api/sms/{commId}", ("GET",), STATUS,
          summary="A communication's status and each recipient's, by CommId"),
    Route("cancel", "api/sms/{commId}", ("DELETE",), CANCEL,
          summary="Cancel a communication's recipients not yet handed to the provider"),
    Route("resend", "api/sms/{commId}/resend", ("POST",), RESEND,
          summary="Send a communication again to the recipients it did not reach, as a new communication"),
    Route("communication_events", "api/sms/{commId}/events", ("GET",), COMMUNICATION_EVENTS,
          summary="The webhook events made for a communication, whatever became of them"),
    Route("status_by_reference", "api/sms/reference/{reference}", ("GET",), STATUS_BY_REFERENCE,
          summary="A communication's status and each recipient's, by Reference"),
    Route("health", "api/health", ("GET",), HEALTH, summary="200 when storage answers, 503 when it does not"),
    Route("metadata", "metadata", ("GET",), METADATA,
          summary="This service's operations, routes and DTOs, for people"),
    Route("openapi", "openapi.json", ("GET",), OPENAPI, summary="An OpenAPI 3.1 description of every route"),
    Route("twilio_status", "api/providers/twilio/status", ("POST",), TWILIO_STATUS,
          summary="Twilio's delivery receipts (status callbacks), signed by Twilio; not for clients"),
    Route("twilio_inbound", "api/providers/twilio/inbound", ("POST",), TWILIO_INBOUND,
          summary="Messages phones send to the gateway's Twilio numbers (replies, STOP), signed by Twilio; not for "
          "clients"),
    Route("acs_events", "api/providers/acs/events", ("POST",), ACS_EVENTS,
          summary="Event Grid's deliveries of ACS SMS events: the validation handshake and delivery reports"),
    Route("optouts_list", "api/optouts", ("GET",), OPTOUTS_LIST, summary="The caller's opt-out list"),
    Route("optouts_add", "api/optouts", ("POST",), OPTOUTS_ADD, summary="Add a number to the caller's opt-out list"),
    Route("optouts_remove", "api/optouts/{phoneNumber}", ("DELETE",), OPTOUTS_REMOVE,
          summary="Take a number off the caller's opt-out list"),
    Route("webhook_set", "api/webhook", ("PUT",), WEBHOOK_SET,
          summary="Register the caller's webhook URL; answers a new signing secret"),
    Route("webhook_show", "api/webhook", ("GET",), WEBHOOK_SHOW, summary="The caller's webhook URL"),
    Route("webhook_delete", "api/webhook", ("DELETE",), WEBHOOK_DELETE, summary="Remove the caller's webhook"),
    Route("webhook_events_list", "api/webhook/events", ("GET",), WEBHOOK_EVENTS_LIST,
          summary="The caller's webhook events that failed for good, newest first"),
    Route("webhook_event_retry", "api/webhook/events/{eventId}/retry", ("POST",), WEBHOOK_EVENT_RETRY,
          summary="Send a failed webhook event again"),
    Route("console", "console", ("GET",), CONSOLE_INDEX, summary="The console's page"),
    Route("console_file", "console/{file}", ("GET",), CONSOLE, format_suffix=False,
          summary="One of the console's scripts, style sheets and images"),
)

DOCUMENTED_ROUTES: tuple[Route, ...] = tuple(route for route in ROUTES if route.operation.documented)
"""What /metadata and /openapi.json describe: every route but the console's (a page for people, not an API)."""
