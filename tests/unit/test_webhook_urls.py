"""Which webhook URLs are refused: every kind of non-public address, literal or resolved, and malformed URLs."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from gateway.webhook_urls import RefusedUrl, UnresolvableHost, check_url, checked_addresses, resolve_host

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def resolver(*addresses: str):
    """A resolver that answers ``addresses`` for any name, recording what it was asked."""
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return list(addresses)

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


def refuse(url: str, *, resolve=None, require_https: bool = False) -> str:
    with pytest.raises(RefusedUrl) as refused:
        check_url(url, allow_private=False, require_https=require_https, resolve=resolve or resolver(PUBLIC_V4))
    return str(refused.value)


@pytest.mark.parametrize(("host", "why"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("[::1]", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.10", "private"), ("[fd00::1]", "private"),
    ("169.254.169.254", "link-local"), ("[fe80::1]", "link-local"), ("[fe80::1%25eth0]", "link-local"),
    ("224.0.0.1", "multicast"), ("[ff02::1]", "multicast"), ("239.1.2.3", "multicast"),
    ("0.0.0.0", "unspecified"), ("[::]", "unspecified"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("100.64.0.1", "not a public address"), ("192.0.2.1", "private"), ("198.18.0.1", "private"),
    ("[::ffff:127.0.0.1]", "loopback address (inside an IPv6 address)"),
    ("[::ffff:10.0.0.1]", "private address (inside an IPv6 address)"),
    ("[::ffff:169.254.169.254]", "link-local address (inside an IPv6 address)"),
    ("[64:ff9b::a9fe:a9fe]", "link-local address (inside an IPv6 address)"),  # NAT64 of 169.254.169.254
    ("[2002:c0a8:0101::1]", "private address (inside an IPv6 address)"),  # 6to4 of 192.168.1.1
    ("[fec0::1]", "site-local"),
    ("[2001:0:5ef5:79fd:0:0:f5ff:fffe]", "private address"),  # Teredo: never global, whichever client it names
    ("2130706433", "loopback"), ("0x7f.1", "loopback"), ("127.1", "loopback"),  # IPv4 as the resolver reads it
])
def test_a_literal_address_that_is_not_public_is_refused_without_a_look_up(host: str, why: str) -> None:
    resolve = resolver(PUBLIC_V4)
    message = refuse(f"https://{host}/hooks", resolve=resolve)
    assert why in message and "SMS_WEBHOOK_ALLOW_PRIVATE" in message
    assert resolve.asked == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", [f"https://{PUBLIC_V4}/hooks", f"http://{PUBLIC_V4}:8080/x?y=1",
                                 f"https://[{PUBLIC_V6}]/hooks", f"https://[::ffff:{PUBLIC_V4}]/hooks",
                                 "https://[64:ff9b::5db8:d70e]/hooks"])
def test_a_public_literal_address_is_accepted(url: str) -> None:
    check_url(url, allow_private=False, require_https=False)


def test_the_longest_url_accepted_is_2048_characters() -> None:
    base = f"https://{PUBLIC_V4}/"
    check_url(base + "a" * (2048 - len(base)), allow_private=False, require_https=True)
    assert "longer" in refuse(base + "a" * (2049 - len(base)))


def test_a_name_is_resolved_and_refused_if_any_address_is_not_public() -> None:
    resolve = resolver(PUBLIC_V4, PUBLIC_V6, "10.0.0.7")
    message = refuse("https://hooks.example.com:8443/sms", resolve=resolve)
    assert "hooks.example.com (10.0.0.7) is a private address" in message
    assert resolve.asked == [("hooks.example.com", 8443)]  # type: ignore[attr-defined]


def test_a_name_whose_every_address_is_public_is_accepted_and_the_addresses_are_answered() -> None:
    resolve = resolver(PUBLIC_V4, PUBLIC_V6)
    assert checked_addresses("https://hooks.example.com/sms", allow_private=False, require_https=True,
                             resolve=resolve) == (PUBLIC_V4, PUBLIC_V6)
    assert resolve.asked == [("hooks.example.com", 443)]  # type: ignore[attr-defined]
    check_url("http://hooks.example.com/sms", allow_private=False, require_https=False, resolve=resolve)
    assert resolve.asked[-1] == ("hooks.example.com", 80)  # type: ignore[attr-defined]


def test_localhost_through_the_systems_own_resolver_is_refused() -> None:
    """No stand-in: the real getaddrinfo answers localhost with loopback addresses."""
    assert resolve_host("localhost", 443)
    with pytest.raises(RefusedUrl, match="loopback"):
        check_url("https://localhost:9000/hooks", allow_private=False, require_https=True)


def test_a_name_that_does_not_resolve_is_refused_as_unresolvable() -> None:
    with pytest.raises(UnresolvableHost, match="does not resolve"):
        check_url("https://no-such-host.invalid/hooks", allow_private=False, require_https=True)
    with pytest.raises(UnresolvableHost, match="no address"):
        check_url("https://hooks.example.com/", allow_private=False, require_https=True, resolve=resolver())


def test_a_resolver_that_does_not_answer_in_time_counts_as_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name server that hangs (getaddrinfo has no time-out of its own) must not hold a request for long."""
    release = threading.Event()

    def hanging(*args: object, **kwargs: object) -> list:
        release.wait(10)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    started = time.monotonic()
    try:
        with pytest.raises(UnresolvableHost, match=r"within 0\.3 s"):
            resolve_host("slow.example.com", 443, timeout=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 2


def test_allow_private_accepts_any_address_and_looks_nothing_up() -> None:
    resolve = resolver("10.0.0.1")
    for url in ("http://localhost:8080/hooks", "http://127.0.0.1/x", "http://[::1]:9/x", "https://10.0.0.1/x",
                "http://no-such-host.invalid/x"):
        assert checked_addresses(url, allow_private=True, require_https=False, resolve=resolve) == ()
    assert resolve.asked == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://hooks.example.com/x", "absolute"), ("hooks.example.com/x", "absolute"), ("/api/hooks", "absolute"),
    ("javascript:alert(1)", "absolute"), ("https:///path", "no host"), ("https://user:pw@hooks.example.com/", "user"),
    ("https://hooks.example.com@10.0.0.1/", "user"), ("https://hooks.example.com:99999/", "port"),
    ("https://hooks.example.com:x/", "port"), ("https://hooks.example.com:0/", "port"),
    ("https://hooks.example.com/a b", "space"),
    ("https://hooks.example.com/\nx", "control"), ("https://hooks.example.com/\x7f", "control"),
    ("https://hooks.example.com/" + "a" * 2048, "longer"),
])
def test_a_malformed_url_is_refused_saying_why(url: str, why: str) -> None:
    assert why in refuse(url)


def test_https_is_required_when_asked_even_with_private_addresses_allowed() -> None:
    assert "https://" in refuse(f"http://{PUBLIC_V4}/hooks", require_https=True)
    with pytest.raises(RefusedUrl, match="https://"):
        check_url("http://localhost/hooks", allow_private=True, require_https=True)
    check_url("HTTPS://localhost/hooks", allow_private=True, require_https=True)


def test_the_refusal_is_a_value_error() -> None:
    assert issubclass(RefusedUrl, ValueError) and issubclass(UnresolvableHost, RefusedUrl)
