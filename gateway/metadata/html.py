"""The ``/metadata`` page: every operation, route and DTO, laid out like ServiceStack's metadata page.

Generated from the route table and the DTOs: an operation's section lists its routes, whether it
needs an API key, its path parameters, a table per DTO (with each field's description) and HTTP
samples in JSON and JSV; the last section describes the errors.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import lru_cache

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.metadata.about import API_VERSION, CONTENT_TYPE_NOTE, ERROR_DESCRIPTIONS, TITLE
from gateway.metadata.dtos import dotnet_type, json_sample, jsv_sample, models_reachable
from gateway.metadata.table import route_display_paths, routes_by_operation
from gateway.models import ErrorResponse
from gateway.routes import DOCUMENTED_ROUTES, Operation, Route

DEFAULT_HOST = "your-function-app.azurewebsites.net"
SAMPLE_NOTE = (
    "The following are sample HTTP requests and responses. "
    "The placeholders shown need to be replaced with actual values."
)

# ServiceStack's SMSModel inherits LicenseeId from a base class and its page shows that class's own
# table; our model is flat (its field order is the wire order), so the page regroups those fields.
BASE_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "SMSModel": ("BaseLicenseeEnforcedServiceModel", ("LicenseeId",)),
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;
color:#222;line-height:1.4}
h1{border-bottom:2px solid #36c;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0 1.2em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f2f4f8}code,pre{font-family:ui-monospace,Consolas,monospace}
pre{background:#f6f8fa;border:1px solid #ddd;padding:.8em;overflow:auto;tab-size:4}
.auth{color:#a33;font-weight:600}.open{color:#363;font-weight:600}.method{font-weight:700}
nav ul{columns:2}
""".strip()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _dto_table(section: str, title: str, rows: list[tuple[str, str, str, bool, str]]) -> str:
    body = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(where)}</td><td>{_e(kind)}</td><td>{'Yes' if required else 'No'}</td>"
        f"<td>{_e(description)}</td></tr>"
        for name, where, kind, required, description in rows
    )
    return (
        f'<h3 id="{_e(section)}-{_e(title)}">{_e(title)} Parameters:</h3>\n<table class="dto">'
        "<tr><th>Name</th><th>Parameter</th><th>Data Type</th><th>Required</th><th>Description</th></tr>"
        f"{body}</table>\n"
    )


def _model_tables(section: str, model: type[BaseModel], where: str) -> str:
    """The model's table, then its base class's (``BASE_TABLES``), as the seed page lays them out."""
    base_name, base_fields = BASE_TABLES.get(model.__name__, ("", ()))
    missing = [name for name in base_fields if name not in model.model_fields]
    if missing:
        raise KeyError(f"BASE_TABLES names fields {model.__name__} does not have: {missing}")

    def row(name: str, info: FieldInfo) -> tuple[str, str, str, bool, str]:
        return name, where, dotnet_type(info.annotation), info.is_required(), info.description or ""

    own = [row(name, info) for name, info in model.model_fields.items() if name not in base_fields]
    out = _dto_table(section, model.__name__, own)
    if base_fields:
        out += _dto_table(section, base_name, [row(name, model.model_fields[name]) for name in base_fields])
    return out


def _request_parameters_table(op: Operation) -> str:
    """The headers and query-string values the operation reads besides its DTO."""
    rows = "".join(
        f"<tr><td>{_e(parameter.name)}</td><td>{_e(parameter.location)}</td><td>string</td><td>No</td>"
        f"<td>{_e(parameter.description)}</td></tr>"
        for parameter in op.parameters
    )
    return (
        f'<h3 id="{_e(op.name)}-request-parameters">Header and Query Parameters:</h3>\n<table class="parameters">'
        "<tr><th>Name</th><th>Parameter</th><th>Data Type</th><th>Required</th><th>Description</th></tr>"
        f"{rows}</table>\n"
    )


def _http_sample(route: Route, op: Operation, host: str, fmt: str) -> str:
    media = {"json": "application/json", "jsv": "text/jsv"}[fmt]
    render = json_sample if fmt == "json" else jsv_sample
    method = route.methods[0]
    lines = [f"{method} {route_display_paths(route)[0]} HTTP/1.1 ", f"Host: {host} ", f"Accept: {media}"]
    if op.request is not None:
        lines += [f"Content-Type: {media}", "Content-Length: length", "", render(op.request)]
    else:
        lines.append("")
    assert op.response is not None
    lines += ["HTTP/1.1 200 OK", f"Content-Type: {media}", "Content-Length: length", "", render(op.response)]
    return "\n".join(lines)


def _operation_section(op: Operation, routes: list[Route], host: str) -> str:
    name = op.name
    out = [f'<section id="op-{_e(name)}">\n<h2>{_e(name)}</h2>\n<p class="description">{_e(op.description)}</p>\n']
    out.append('<p class="auth">Requires Authentication</p>\n' if op.authenticated
               else '<p class="open">No authentication required</p>\n')
    out.append("<p>The following routes are available for this service:</p>\n<table class=\"routes\">"
               "<tr><th>Method</th><th>Route</th><th>Description</th></tr>")
    for route in routes:
        for path in route_display_paths(route):
            out.append(f'<tr><td class="method">{_e(", ".join(route.methods))}</td><td><code>{_e(path)}</code></td>'
                       f"<td>{_e(route.summary)}</td></tr>")
    out.append("</table>\n")
    errors = ", ".join(f'<a href="#error-{code}">{code}</a>' for code in sorted(op.errors))
    out.append(f'<p class="errors">Error statuses it can answer: {errors}</p>\n')
    if op.path_parameters:
        rows = [(parameter.name, "path", dotnet_type(parameter.type), True, parameter.description)
                for parameter in op.path_parameters]
        out.append(_dto_table(name, name, rows))
    if op.parameters:
        out.append(_request_parameters_table(op))
    if op.request is not None:
        for index, model in enumerate(models_reachable(op.request)):
            out.append(_model_tables(name, model, "body" if index == 0 else "form"))
    if op.response is not None:
        for model in models_reachable(op.response):
            out.append(_model_tables(name, model, "form"))
        out.append(f"<p>{_e(CONTENT_TYPE_NOTE)}</p>\n")
        for fmt, label in (("json", "HTTP + JSON"), ("jsv", "HTTP + JSV")):
            out.append(f'<h3>{_e(label)}</h3>\n<p>{_e(SAMPLE_NOTE)}</p>\n'
                       f'<pre class="sample-{fmt}">{_e(_http_sample(routes[0], op, host, fmt))}</pre>\n')
    out.append("</section>\n")
    return "".join(out)


def _auth_section() -> str:
    return (
        '<section id="authentication">\n<h2>Authentication</h2>\n'
        "<p>Operations marked <em>Requires Authentication</em> need an API key, sent in any one of three ways:</p>\n"
        "<ul><li><code>Authorization: Bearer &lt;key&gt;</code></li>"
        "<li>HTTP Basic, with the key as user name and an empty password "
        "(<code>Authorization: Basic base64(&lt;key&gt;:)</code>)</li>"
        "<li><code>X-Api-Key: &lt;key&gt;</code></li></ul>\n"
        "<p>A missing, unknown or revoked key answers 401 with a <code>WWW-Authenticate</code> header. "
        "A key acts for one licensee: a request naming another licensee answers 403.</p>\n</section>\n"
    )


def _errors_section() -> str:
    codes = "".join(f'<tr id="error-{code}"><td>{code}</td><td>{_e(text)}</td></tr>'
                    for code, text in ERROR_DESCRIPTIONS.items())
    tables = "".join(_model_tables("errors", model, "form") for model in models_reachable(ErrorResponse))
    sample = _e(json_sample(ErrorResponse))
    return (
        '<section id="errors">\n<h2>Errors</h2>\n<p>Every error answers ServiceStack\'s ResponseStatus shape, '
        "in the response format the request asked for.</p>\n"
        f"<table><tr><th>Status</th><th>When</th></tr>{codes}</table>\n{tables}"
        f'<pre class="sample-error">{sample}</pre>\n</section>\n'
    )


@lru_cache(maxsize=16)
def metadata_html(host: str | None = None) -> str:
    """The page for the gateway's route table, with ``host`` in the samples; built once per host."""
    return build_page(DOCUMENTED_ROUTES, host)


def build_page(routes: Sequence[Route], host: str | None = None) -> str:
    """The ``/metadata`` page for ``routes``: operations, routes, DTO tables and samples, like ServiceStack's."""
    host = host or DEFAULT_HOST
    grouped = routes_by_operation(routes)
    nav = "".join(f'<li><a href="#op-{_e(op.name)}">{_e(op.name)}</a></li>' for op in grouped)
    sections = "".join(_operation_section(op, group, host) for op, group in grouped.items())
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(TITLE)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        f"<h1>{_e(TITLE)}</h1>\n<p>Version {_e(API_VERSION)}. The same description for machines: "
        '<a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>\n'
        f"<nav><h2>Operations</h2><ul>{nav}</ul></nav>\n"
        f"{_auth_section()}{sections}{_errors_section()}</body>\n</html>\n"
    )
