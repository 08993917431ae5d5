"""The console's shipped files (gateway/console/) checked as text: what the Content-Security-Policy relies on (no
inline script or style, nothing from another origin, no markup built from strings), every module import and page
reference resolving to a shipped file, the contract's sign-in field, and the serving rules without a socket."""

from __future__ import annotations

import re

import pytest

from gateway.console_page import ASSET_CACHE, CONTENT_SECURITY_POLICY, PAGE_CACHE, console_file, shipped
from gateway.errors import ApiError
from gateway.metadata.openapi import build_openapi
from gateway.routes import DOCUMENTED_ROUTES, ROUTES

IMPORT = re.compile(r"""^\s*import\s[^;]*?from\s+["']([^"']+)["']""", re.MULTILINE)
SCRIPTS = {name: text for name, text in shipped().items() if name.endswith(".js")}


def code_only(text: str) -> str:
    """A script without its comments (they cite the providers' pages by URL)."""
    return re.sub(r"^\s*//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL), flags=re.MULTILINE)


def test_the_page_has_no_inline_script_or_style_and_loads_only_its_own_files() -> None:
    page = shipped()["index.html"]
    assert re.findall(r"<script\b[^>]*>", page) == ['<script type="module" src="/console/app.js">']
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+=", page, flags=re.IGNORECASE)  # no inline event handlers
    references = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert references and all(ref.startswith("/console/") or ref == "/metadata" for ref in references), references
    assert {ref.removeprefix("/console/") for ref in references if ref.startswith("/console/")} <= set(shipped())


def test_the_sign_in_field_is_a_labelled_password_input() -> None:
    page = shipped()["index.html"]
    assert re.search(r'<label for="api-key">[^<]+</label>', page)
    assert re.search(r'<input id="api-key"[^>]*type="password"', page)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_module_imports_only_shipped_modules_and_builds_no_markup_from_strings(name: str) -> None:
    code = code_only(SCRIPTS[name])
    for target in IMPORT.findall(code):
        assert target.startswith("./") and target.removeprefix("./") in SCRIPTS, (name, target)
    assert "innerHTML" not in code and "outerHTML" not in code and "insertAdjacentHTML" not in code
    assert "eval(" not in code and "new Function" not in code
    assert ".style." not in code and '"style"' not in code  # style-src 'self': no inline styles either
    # Nothing from another origin: the only absolute URL is SVG's namespace name, which is never fetched.
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg\b)[\w.-]+", code), name
    assert "fetch(" not in code or name == "api.js"  # every request goes through api.js, to this origin


def test_the_key_is_kept_in_session_storage_only() -> None:
    code = "\n".join(code_only(text) for text in SCRIPTS.values())
    assert "localStorage" not in code and "document.cookie" not in code
    assert "sessionStorage" in code_only(SCRIPTS["session.js"])
    assert re.search(r"Authorization: `Bearer \$\{", code_only(SCRIPTS["api.js"]))


def test_the_error_table_explains_the_codes_support_staff_meet() -> None:
    table = SCRIPTS["error-codes.js"]
    for code in ("30001", "30002", "30003", "30004", "30005", "30006", "30007", "30008", "30010", "30032", "30034",
                 "21211", "21408", "21610", "21612", "21614"):
        assert re.search(rf'"{code}": "[^"]+\.",', table), code
    assert "twilio.com/docs/api/errors" in table and "learn.microsoft.com" in table  # the sources, cited


def test_a_file_is_served_with_its_type_and_headers_and_anything_else_is_a_404() -> None:
    page = console_file(None)
    assert page.media_type == "text/html" and page.text == shipped()["index.html"]
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["Cache-Control"] == PAGE_CACHE
    script = console_file("app.js")
    assert script.media_type == "text/javascript" and script.headers["Cache-Control"] == ASSET_CACHE
    for name in ("../console_page.py", "..", "console_page.py", "APP.JS", "", "app.js/", "/etc/passwd"):
        if not name:
            continue
        with pytest.raises(ApiError) as refused:
            console_file(name)
        assert refused.value.status == 404 and refused.value.headers["X-Content-Type-Options"] == "nosniff"


def test_the_console_is_routed_but_not_documented() -> None:
    console = [route for route in ROUTES if route.path.startswith("console")]
    assert [route.path for route in console] == ["console", "console/{file}"]
    assert not any(route.operation.authenticated for route in console)
    assert not set(console) & set(DOCUMENTED_ROUTES)
    assert not [path for path in build_openapi(DOCUMENTED_ROUTES)["paths"] if "console" in path]
