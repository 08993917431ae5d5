"""What both documents say of the service as a whole: its name and version, and what each error status means."""

from __future__ import annotations

TITLE = "SMS Gateway API"
API_VERSION = "0.1.0"  # the project's version (pyproject.toml); a test keeps the two equal
CONTENT_TYPE_NOTE = (
    "To override the Content-type in your clients, use the HTTP Accept Header, append the .jsv suffix or ?format=jsv"
)

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request is malformed or invalid: every offending field is listed in Errors",
    401: "No API key, or an unknown or revoked one (Event Grid's deliveries: no key, or not SMS_EVENTGRID_KEY)",
    403: "The API key may not act for the licensee the request names (Twilio's callbacks: the X-Twilio-Signature "
         "is not Twilio's)",
    404: "No such resource for this licensee (Event Grid's deliveries: SMS_EVENTGRID_KEY is not set)",
    405: "The path exists but does not answer this method",
    406: "None of the formats the Accept header names can be produced (json and jsv can)",
    409: "The first request with this Idempotency-Key is still being accepted or delivered; retry with the same "
         "key after Retry-After (SMSResend: also NothingToResend or AlreadyResent, with no Retry-After)",
    413: "The request body is larger than SMS_MAX_REQUEST_BYTES (Event Grid's deliveries: 2 MiB)",
    415: "The request's Content-Type is not one this route reads",
    422: "This Idempotency-Key was used with a different request within its window; a new send needs a new key",
    500: "An unexpected error; Meta.CorrelationId finds it in the logs",
    503: "Storage is not answering; try again after Retry-After. ErrorCode ServiceUnavailable: nothing was "
         "accepted. OutcomeUnknown: the send may have been accepted; retry it with the same Idempotency-Key",
}
"""Every status an error can have. 405 is no operation's: it answers the methods no route has."""
