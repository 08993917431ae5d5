"""X-Twilio-Signature: the published vector, the URL spellings Twilio uses, and Twilio's own validator as a
development-only cross-check (the ``twilio`` package is in requirements-dev.txt, never in the app)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from gateway.providers.twilio_signature import compute, is_valid, spellings

ROOT = Path(__file__).resolve().parents[2]

# Twilio's documented example (messaging-events.md: checked by hand and with twilio 9.13's validator).
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
          ("From", "+12349013030"), ("To", "+18005551212")]
SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_the_published_vector() -> None:
    assert compute(TOKEN, URL, PARAMS) == SIGNATURE
    assert compute(TOKEN, URL, reversed(PARAMS)) == SIGNATURE  # the order sent does not matter
    assert is_valid(TOKEN, URL, PARAMS, SIGNATURE)


@pytest.mark.parametrize("url", [URL, "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                                 "https://user:secret@mycompany.com/myapp.php?foo=1&bar=2",
                                 "https://user:secret@mycompany.com:443/myapp.php?foo=1&bar=2"])
def test_the_default_port_and_credentials_do_not_matter(url: str) -> None:
    assert is_valid(TOKEN, url, PARAMS, SIGNATURE)


@pytest.mark.parametrize("url", [
    "http://mycompany.com/myapp.php?foo=1&bar=2",  # another scheme
    "https://mycompany.com:8443/myapp.php?foo=1&bar=2",  # another port
    "https://mycompany.com/myapp.php?bar=2&foo=1",  # the query as sent, not reordered
    "https://mycompany.com/myapp.php?foo=1&bar=3",
    "https://mycompany.com/myapp.php",
    "https://evil.example/myapp.php?foo=1&bar=2",
])
def test_any_other_url_is_refused(url: str) -> None:
    assert not is_valid(TOKEN, url, PARAMS, SIGNATURE)


@pytest.mark.parametrize("params", [
    PARAMS[:-1],  # a parameter left out
    [*PARAMS, ("ErrorCode", "30003")],  # one added
    [*PARAMS[:-1], ("To", "+18005551213")],  # one changed
    [(name.lower(), value) for name, value in PARAMS],  # names are case-sensitive
])
def test_changed_parameters_are_refused(params: list[tuple[str, str]]) -> None:
    assert not is_valid(TOKEN, URL, params, SIGNATURE)


@pytest.mark.parametrize(("token", "signature"), [
    ("54321", SIGNATURE), (None, SIGNATURE), ("", SIGNATURE), (TOKEN, None), (TOKEN, ""),
    (TOKEN, SIGNATURE.lower()), (TOKEN, "é" + SIGNATURE[1:]),
])
def test_wrong_missing_or_garbled_tokens_and_signatures_are_refused(token: str | None, signature: str | None) -> None:
    assert not is_valid(token, URL, PARAMS, signature)


def test_repeated_names_sign_their_values_sorted() -> None:
    url = "https://gw.example/api/providers/twilio/status"
    one = [("MediaUrl", "https://b.example/2"), ("Body", "x"), ("MediaUrl", "https://a.example/1")]
    other = [("MediaUrl", "https://a.example/1"), ("MediaUrl", "https://b.example/2"), ("Body", "x")]
    assert compute("t", url, one) == compute("t", url, other)
    assert compute("t", url, one) == RequestValidator("t").compute_signature(url, _multidict(one))
    assert compute("t", url, one) != compute("t", url, [("MediaUrl", "https://a.example/1"), ("Body", "x")])


def test_unicode_values_are_signed_as_utf8() -> None:
    url = "https://gw.example/api/providers/twilio/status?CommId=0f&Index=0"
    params = [("Body", "Grüße 👋 — ünïcode"), ("From", "+447700900123")]
    assert compute("tok", url, params) == RequestValidator("tok").compute_signature(url, dict(params))
    assert is_valid("tok", url, params, RequestValidator("tok").compute_signature(url, dict(params)))


def test_spellings() -> None:
    assert spellings("https://h.example/p?q=1") == ["https://h.example/p?q=1", "https://h.example:443/p?q=1"]
    assert spellings("http://u:p@h.example:80/p") == ["http://h.example/p", "http://h.example:80/p"]
    assert spellings("https://h.example:8443/p") == ["https://h.example:8443/p"]
    assert spellings("http://[::1]:7071/p") == ["http://[::1]:7071/p"]
    assert spellings("https://[::1]/p#rc=2") == ["https://[::1]/p#rc=2", "https://[::1]:443/p#rc=2"]
    assert spellings("https://h.example?x=1") == ["https://h.example?x=1", "https://h.example:443?x=1"]


# --- Twilio's own validator agrees ------------------------------------------------------------------------------


class _MultiDict(dict):
    """What Twilio's validator reads repeated form names from (Flask's MultiDict has ``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def _multidict(pairs: list[tuple[str, str]]) -> _MultiDict:
    grouped = _MultiDict()
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


hosts = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z][a-z0-9-]{0,8}){1,2}", fullmatch=True)
paths = st.lists(st.text("abcXYZ019-._~%", min_size=1, max_size=8), max_size=3).map(lambda parts: "/" + "/".join(parts))
queries = st.one_of(st.just(""), st.lists(st.tuples(st.text("abcQ_", min_size=1, max_size=5),
                                                    st.text("abc123%+=-", max_size=6)), min_size=1, max_size=3)
                    .map(lambda pairs: "?" + "&".join(f"{name}={value}" for name, value in pairs)))
form_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
forms = st.lists(st.tuples(st.sampled_from(["MessageSid", "MessageStatus", "To", "Body", "MediaUrl", "x"]),
                           form_text), max_size=8)


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(["https", "http"]), host=hosts, port=st.sampled_from(["", "default"]), path=paths,
       query=queries, params=forms, token=st.text(min_size=1, max_size=40))
def test_ours_and_twilios_validator_agree(scheme: str, host: str, port: str, path: str, query: str,
                                          params: list[tuple[str, str]], token: str) -> None:
    authority = host + (f":{443 if scheme == 'https' else 80}" if port else "")
    url = f"{scheme}://{authority}{path}{query}"
    theirs = RequestValidator(token)
    signature = theirs.compute_signature(url, _multidict(params))

    assert compute(token, url, params) == signature
    for spelling in spellings(url):  # Twilio's validator accepts what it signs under every spelling we accept
        assert theirs.validate(spelling, _multidict(params), signature)
        assert is_valid(token, spelling, params, signature)
    forged = theirs.compute_signature(url + "x", _multidict(params))
    assert not is_valid(token, url, params, forged)
    assert not theirs.validate(url, _multidict(params), forged)


def test_the_app_does_not_depend_on_the_twilio_package() -> None:
    assert "twilio" not in (ROOT / "requirements.txt").read_text().lower()
    # Importing the app with the package made unimportable: the bindings, every route's handler, the provider.
    code = ("import sys; sys.modules['twilio'] = None\n"
            "import function_app, gateway.handlers, gateway.providers.twilio, gateway.providers.twilio_signature\n"
            "assert not [n for n, m in sys.modules.items() if n.startswith('twilio') and m is not None]")
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "SMS_DEFAULT_SENDER": "+15005550006",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
