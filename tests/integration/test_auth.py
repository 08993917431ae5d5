"""API keys against a real Azurite: hashed at rest, cached briefly, revocable, licensee-bound."""

import base64
import uuid

import pytest

from gateway.auth import Authenticator, Principal, hash_key, presented_key
from gateway.errors import ApiError
from gateway.models import EMPTY_GUID


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer sgk_abc"}, "sgk_abc"),
        ({"authorization": "bearer   sgk_abc "}, "sgk_abc"),
        ({"authorization": basic("sgk_abc")}, "sgk_abc"),
        ({"x-api-key": "sgk_abc"}, "sgk_abc"),
        ({"authorization": "Basic !!!notbase64"}, None),
        ({"authorization": basic("")}, None),
        ({}, None),
    ],
)
def test_presented_key(headers: dict[str, str], expected: str | None) -> None:
    assert presented_key(headers) == expected


def test_keys_are_stored_hashed_never_in_clear(make_gateway) -> None:
    gateway = make_gateway()
    record, secret = gateway.keys.create(uuid.uuid4(), "billing")
    table = gateway.clients.tables.get_table_client(gateway.settings.api_keys_table)
    rows = list(table.list_entities())
    assert len(rows) == 1
    assert rows[0]["RowKey"] == hash_key(secret)
    assert all(secret not in str(value) for value in rows[0].values())
    assert record.key_id == hash_key(secret)[:12]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unknown_missing_and_revoked_keys_are_401_and_revocation_bites_within_the_cache_bound(make_gateway) -> None:
    gateway = make_gateway()
    licensee = uuid.uuid4()
    record, secret = gateway.keys.create(licensee, "ops")
    clock = Clock()
    authenticator = Authenticator(gateway.keys, ttl_seconds=60, clock=clock)

    for headers in ({}, {"authorization": "Bearer sgk_wrong"}):
        with pytest.raises(ApiError) as caught:
            authenticator.authenticate(headers)
        assert caught.value.status == 401
        assert "WWW-Authenticate" in caught.value.headers

    assert authenticator.authenticate({"x-api-key": secret}).licensee_id == licensee
    gateway.keys.revoke(record.key_id)
    clock.now += 30
    assert authenticator.authenticate({"x-api-key": secret}).licensee_id == licensee  # still cached
    clock.now += 31
    with pytest.raises(ApiError) as caught:
        authenticator.authenticate({"x-api-key": secret})
    assert caught.value.status == 401 and "revoked" in caught.value.message


def test_cached_lookups_do_not_read_the_table_again(make_gateway) -> None:
    gateway = make_gateway()
    _, secret = gateway.keys.create(uuid.uuid4(), "ops")
    reads = []
    find = gateway.keys.find
    gateway.keys.find = lambda key: reads.append(key) or find(key)  # type: ignore[method-assign]
    authenticator = Authenticator(gateway.keys, ttl_seconds=60)
    for _ in range(5):
        authenticator.authenticate({"authorization": f"Bearer {secret}"})
    assert len(reads) == 1


def test_a_principal_acts_only_for_its_own_licensee() -> None:
    own = uuid.uuid4()
    principal = Principal("k", "n", own)
    assert principal.licensee_for(None) == own
    assert principal.licensee_for(EMPTY_GUID) == own
    assert principal.licensee_for(own) == own
    with pytest.raises(ApiError) as caught:
        principal.licensee_for(uuid.uuid4())
    assert caught.value.status == 403


def test_a_basic_credential_must_be_strict_base64() -> None:
    """Characters outside the alphabet are refused, not skipped: ``!c2drX2FiYzo=`` is not ``sgk_abc``."""
    encoded = base64.b64encode(b"sgk_abc:").decode()
    assert presented_key({"authorization": f"Basic {encoded}"}) == "sgk_abc"
    assert presented_key({"authorization": f"Basic !{encoded}"}) is None


def test_a_cached_key_is_read_again_once_its_cache_time_is_up(make_gateway) -> None:
    """``SMS_API_KEY_CACHE_SECONDS`` is the longest a revoked key still works: not a moment longer."""
    gateway = make_gateway()
    licensee = uuid.uuid4()
    record, secret = gateway.keys.create(licensee, "revoked at the bound")
    clock = Clock()
    authenticator = Authenticator(gateway.keys, ttl_seconds=60, clock=clock)
    assert authenticator.authenticate({"x-api-key": secret}).licensee_id == licensee
    gateway.keys.revoke(record.key_id)
    clock.now += 59.5
    assert authenticator.authenticate({"x-api-key": secret}).licensee_id == licensee
    clock.now += 0.5
    with pytest.raises(ApiError) as caught:
        authenticator.authenticate({"x-api-key": secret})
    assert caught.value.status == 401
