"""Webhook registration: the table over Azurite (rotation, races, one licensee's row only), the routes over real HTTP
(``python -m devhost``) with two licensees' keys, the refused addresses, and the operators' CLI.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.core.exceptions import ResourceModifiedError

from gateway.runtime import Gateway
from gateway.webhook_endpoints import ROTATION_GRACE, SECRET_PREFIX, WRITE_TRIES, WebhookEndpoints
from gateway.webhook_urls import RefusedUrl
from tests.http_fixtures import LICENSEE
from tests.integration.test_cli import cli
from tests.server import GatewayServer

OTHER_LICENSEE = uuid.UUID("5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170")
PUBLIC = "https://93.184.215.14/hooks/sms"  # a public address written as one: no DNS needed in the test
OTHER_PUBLIC = "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/events?source=sms"


class Clock:
    """UTC time that a test moves, and that can run something each time it is read (a racing write)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
        self.on_read: list = []  # run one per read, first first

    def __call__(self) -> datetime:
        if self.on_read:
            self.on_read.pop(0)()
        return self.now


def endpoints(gateway: Gateway, clock: Clock, *, allow_private: bool = False) -> WebhookEndpoints:
    return WebhookEndpoints(gateway.clients.tables, gateway.settings.webhooks_table, allow_private=allow_private,
                            require_https=False, clock=clock)


# --- the table -----------------------------------------------------------------------------------------------------


def test_a_new_url_rotates_the_secret_and_the_old_one_signs_for_24_hours(gateway: Gateway) -> None:
    clock = Clock()
    table, licensee = endpoints(gateway, clock), uuid.uuid4()
    assert table.find(licensee) is None

    first = table.set(licensee, PUBLIC)
    assert first.url == PUBLIC and first.secret.startswith(SECRET_PREFIX) and first.previous_secret is None
    assert table.find(licensee) == first

    clock.now += timedelta(hours=1)
    second = table.set(licensee, OTHER_PUBLIC)
    assert second.url == OTHER_PUBLIC and second.secret != first.secret
    assert (second.previous_secret, second.previous_until) == (first.secret, clock.now + timedelta(hours=24))
    assert table.find(licensee) == second

    clock.now += timedelta(minutes=5)
    third = table.set(licensee, OTHER_PUBLIC)  # the same URL again still makes a new secret
    assert len({first.secret, second.secret, third.secret}) == 3
    assert third.previous_secret == second.secret  # only the secret it replaced, never an older one

    clock.now += ROTATION_GRACE - timedelta(seconds=1)
    assert table.find(licensee).previous_secret == second.secret
    clock.now += timedelta(seconds=1)
    expired = table.find(licensee)
    assert expired is not None and expired.secret == third.secret
    assert (expired.previous_secret, expired.previous_until) == (None, None)


def test_one_licensees_row_is_never_another_licensees(gateway: Gateway) -> None:
    table = endpoints(gateway, Clock())
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    kept = table.set(mine, PUBLIC)
    table.set(theirs, OTHER_PUBLIC)
    table.set(theirs, PUBLIC)
    assert table.find(mine) == kept
    assert table.delete(theirs) is not None and table.find(theirs) is None
    assert table.find(mine) == kept
    assert table.delete(mine) == kept and table.delete(mine) is None and table.find(mine) is None


@pytest.mark.parametrize(("existing", "races"), [(False, 1), (True, 1), (True, 2)])
def test_a_registration_that_races_others_keeps_the_last_ones_secret(gateway: Gateway, existing: bool,
                                                                     races: int) -> None:
    """Between our read and our write another registration lands: ours reads again and keeps its secret as previous
    (up to ``WRITE_TRIES`` times)."""
    clock, licensee = Clock(), uuid.uuid4()
    ours, theirs = endpoints(gateway, clock), endpoints(gateway, Clock())
    if existing:
        theirs.set(licensee, OTHER_PUBLIC)
    racing: list = []
    clock.on_read = [lambda: racing.append(theirs.set(licensee, OTHER_PUBLIC))] * races  # after each of our reads

    mine = ours.set(licensee, PUBLIC)

    assert len(racing) == races
    assert mine.previous_secret == racing[-1].secret
    assert ours.find(licensee) == mine


def test_a_registration_that_loses_every_race_says_so_and_writes_nothing(gateway: Gateway) -> None:
    clock, licensee = Clock(), uuid.uuid4()
    ours, theirs = endpoints(gateway, clock), endpoints(gateway, Clock())
    theirs.set(licensee, OTHER_PUBLIC)
    racing: list = []
    clock.on_read = [lambda: racing.append(theirs.set(licensee, OTHER_PUBLIC))] * WRITE_TRIES
    with pytest.raises(ResourceModifiedError):
        ours.set(licensee, PUBLIC)
    assert ours.find(licensee) == racing[-1]


def test_a_refused_url_writes_nothing(gateway: Gateway) -> None:
    table, licensee = endpoints(gateway, Clock()), uuid.uuid4()
    for url in ("https://10.0.0.8/hooks", "http://localhost:7071/api/sendmessage", "https://169.254.169.254/",
                "ftp://93.184.215.14/"):
        with pytest.raises(RefusedUrl):
            table.set(licensee, url)
    assert table.find(licensee) is None
    assert endpoints(gateway, Clock(), allow_private=True).set(licensee, "http://127.0.0.1:9/hooks").url


# --- over HTTP -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_key(gateway: Gateway) -> str:
    return gateway.keys.create(OTHER_LICENSEE, "another licensee")[1]


def call(server: GatewayServer, method: str, key: str | None, body: object = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.request(method, f"{server.url}/api/webhook", json=body, headers=headers, timeout=30)


def assert_refused(answer: requests.Response, why: str) -> None:
    assert answer.status_code == 400, answer.text
    status = answer.json()["ResponseStatus"]
    assert status["Errors"][0]["FieldName"] == "Url" and why in status["Errors"][0]["Message"], status


def test_a_licensee_registers_sees_rotates_and_removes_its_webhook(server: GatewayServer, gateway: Gateway,
                                                                   key: str, other_key: str) -> None:
    assert call(server, "GET", key).status_code == 404
    registered = call(server, "PUT", key, {"Url": PUBLIC})
    assert registered.status_code == 200, registered.text
    first = registered.json()
    assert first["Url"] == PUBLIC and first["Secret"].startswith(SECRET_PREFIX)

    shown = call(server, "GET", key)
    assert shown.status_code == 200 and shown.json() == {"Url": PUBLIC}  # never the secret

    rotated = call(server, "PUT", key, {"url": OTHER_PUBLIC})  # camelCase in, camelCase out
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["url"] == OTHER_PUBLIC and rotated.json()["secret"] != first["Secret"]
    stored = gateway.webhook_endpoints.find(LICENSEE)
    assert stored is not None and stored.secret == rotated.json()["secret"]
    assert stored.previous_secret == first["Secret"]  # events in flight still verify with the old secret

    removed = call(server, "DELETE", key)
    assert removed.status_code == 200 and removed.json() == {"Url": OTHER_PUBLIC}
    assert call(server, "GET", key).status_code == 404 and call(server, "DELETE", key).status_code == 404
    assert gateway.webhook_endpoints.find(LICENSEE) is None
    log = server.log_text()
    assert first["Secret"] not in log and rotated.json()["secret"] not in log


def test_another_licensee_can_neither_see_nor_change_a_webhook(server: GatewayServer, gateway: Gateway, key: str,
                                                               other_key: str) -> None:
    mine = call(server, "PUT", key, {"Url": PUBLIC}).json()
    assert call(server, "GET", other_key).status_code == 404
    assert call(server, "DELETE", other_key).status_code == 404

    theirs = call(server, "PUT", other_key, {"Url": OTHER_PUBLIC})
    assert theirs.status_code == 200 and theirs.json()["Secret"] != mine["Secret"]
    assert call(server, "GET", key).json() == {"Url": PUBLIC}
    assert call(server, "DELETE", other_key).status_code == 200

    kept = gateway.webhook_endpoints.find(LICENSEE)
    assert kept is not None and (kept.url, kept.secret) == (PUBLIC, mine["Secret"])
    assert call(server, "GET", key).json() == {"Url": PUBLIC}
    call(server, "DELETE", key)


@pytest.mark.parametrize(("url", "why"), [
    ("http://localhost:7071/api/sendmessage", "loopback"),  # a name the host's real resolver answers with ::1/127.0.0.1
    ("http://127.0.0.1:10002/devstoreaccount1", "loopback"),
    ("https://10.20.30.40/hooks", "private"),
    ("http://169.254.169.254/metadata/instance", "link-local"),
    ("https://[::ffff:192.168.0.1]/hooks", "private"),
    ("https://no-such-host.invalid/hooks", "does not resolve"),
    ("gopher://93.184.215.14/", "absolute"),
    ("https://user:password@93.184.215.14/", "user name"),
])
def test_a_url_that_is_not_public_is_refused_with_a_400_naming_url(server: GatewayServer, gateway: Gateway,
                                                                   other_key: str, url: str, why: str) -> None:
    assert_refused(call(server, "PUT", other_key, {"Url": url}), why)
    assert gateway.webhook_endpoints.find(OTHER_LICENSEE) is None


def test_a_missing_url_or_key_is_refused(server: GatewayServer, other_key: str) -> None:
    assert_refused(call(server, "PUT", other_key, {"Url": "  "}), "must not be empty")
    assert_refused(call(server, "PUT", other_key, {}), "must not be empty")
    for method in ("PUT", "GET", "DELETE"):
        assert call(server, method, None, {"Url": PUBLIC}).status_code == 401


# --- the operators' CLI ----------------------------------------------------------------------------------------------


def test_the_cli_sets_shows_and_deletes_and_prints_the_secret_last(storage_env: dict[str, str], make_gateway) -> None:
    licensee = uuid.uuid4()
    created = cli(storage_env, "webhooks", "set", "--licensee", str(licensee), "--url", PUBLIC)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith(SECRET_PREFIX)
    gateway = make_gateway()
    assert gateway.webhook_endpoints.find(licensee).secret == secret

    rotated = cli(storage_env, "webhooks", "set", "--licensee", licensee.hex, "--url", OTHER_PUBLIC)
    assert rotated.returncode == 0 and "previous secret keeps signing" in rotated.stdout
    assert gateway.webhook_endpoints.find(licensee).previous_secret == secret

    shown = cli(storage_env, "webhooks", "show", "--licensee", str(licensee))
    assert shown.returncode == 0 and OTHER_PUBLIC in shown.stdout and SECRET_PREFIX not in shown.stdout
    assert cli(storage_env, "webhooks", "delete", "--licensee", str(licensee)).returncode == 0
    missing = cli(storage_env, "webhooks", "show", "--licensee", str(licensee))
    assert missing.returncode == 1 and "no webhook" in missing.stderr
    assert cli(storage_env, "webhooks", "delete", "--licensee", str(licensee)).returncode == 1


def test_the_cli_refuses_private_addresses_unless_the_setting_allows_them(storage_env: dict[str, str],
                                                                          make_gateway) -> None:
    licensee = uuid.uuid4()
    local = "http://localhost:8099/hooks"
    refused = cli(storage_env, "webhooks", "set", "--licensee", str(licensee), "--url", local)
    assert refused.returncode == 1 and "loopback" in refused.stderr and refused.stdout == ""
    assert make_gateway().webhook_endpoints.find(licensee) is None

    allowed = cli({**storage_env, "SMS_WEBHOOK_ALLOW_PRIVATE": "true"}, "webhooks", "set", "--licensee",
                  str(licensee), "--url", local)
    assert allowed.returncode == 0, allowed.stderr
    assert make_gateway().webhook_endpoints.find(licensee).url == local
    assert cli(storage_env, "webhooks", "set", "--licensee", "nope", "--url", PUBLIC).returncode == 2
