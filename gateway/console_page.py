"""The console's files (``gateway/console/``): index.html at ``/console``, its scripts and styles by name.

The page is static: HTML, CSS and ES modules shipped in the package, no build step, nothing fetched from
elsewhere. What it may do is pinned by its headers, on every answer including a 404 (docs/console.md):

* ``Content-Security-Policy``: scripts, styles and API calls from this origin only, no inline script or style,
  no framing, no form posts, no ``<base>``; a script injected through a message body could not run.
* ``X-Content-Type-Options: nosniff`` (a file is only ever what its Content-Type says),
  ``Referrer-Policy: no-referrer`` (a CommId in the page's hash never leaves in a Referer).
* ``Cache-Control``: index.html ``no-cache`` (revalidated, so a deployment is seen at once), the rest for an hour.

A name is served only when it is one of the folder's files (read once per process); anything else, a path
with ``..`` or ``/`` in it included, is a 404, so no request can reach another file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gateway.errors import ApiError
from gateway.handlers import Document

FOLDER = Path(__file__).parent / "console"
INDEX = "index.html"
MEDIA_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=3600"


@cache
def shipped() -> dict[str, str]:
    """Every file the console serves, by name: its text. Read once; the folder is part of the deployment."""
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(FOLDER.iterdir())
            if path.is_file() and path.suffix in MEDIA_TYPES}


def console_file(name: str | None) -> Document:
    """``name`` (None: index.html) with its media type and headers; 404 when it is not a shipped file."""
    name = name or INDEX
    text = shipped().get(name)
    if text is None:
        raise ApiError(404, "NotFound", "No such console file",
                       headers={**SECURITY_HEADERS, "Cache-Control": PAGE_CACHE})
    cache_control = PAGE_CACHE if name == INDEX else ASSET_CACHE
    media_type = MEDIA_TYPES[Path(name).suffix]
    # Named whole: the host adds a charset to text/* only, and the SVG is UTF-8 text too.
    return Document(text, media_type=media_type, headers={**SECURITY_HEADERS, "Cache-Control": cache_control,
                                                          "Content-Type": f"{media_type}; charset=utf-8"})
