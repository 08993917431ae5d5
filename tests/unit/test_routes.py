"""The operation and route table: entries that would make the documents lie, or a handler miss a value, fail
when the table is built."""

from __future__ import annotations

import pytest

from gateway.handlers import Call
from gateway.metadata.about import ERROR_DESCRIPTIONS
from gateway.models import HealthResponse
from gateway.routes import HEALTH, ROUTES, SEND, STATUS, Operation, Route


def answer(call: Call) -> HealthResponse:
    return HealthResponse()


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"errors": (400, 401)}, "every operation can answer 500"),
        ({"errors": (500,)}, "takes an API key answers 401"),
        ({"errors": (401, 500), "response": None}, "either a DTO or a Document"),
        ({"errors": (401, 500), "media_type": "text/html"}, "either a DTO or a Document"),
        ({"errors": (401, 406, 500), "response": None, "media_type": "text/html"}, "406 is for DTO answers"),
    ],
)
def test_an_operation_must_declare_what_the_adapter_does(fields: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Operation("Odd", "d", answer, **{"response": HealthResponse, **fields})


@pytest.mark.parametrize(
    ("path", "operation", "predefined", "complaint"),
    [
        ("api/sms/{batchId}", STATUS, False, "path parameter 'batchId' is not one of SMSStatus's"),
        ("api/sms/by-id", STATUS, False, "the path has no {commId}"),
        ("api/reply/SMSSend", SEND, True, "a predefined route names the format"),
    ],
)
def test_a_route_must_match_its_operations_path_parameters(path: str, operation: Operation, predefined: bool,
                                                             complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Route("odd", path, ("GET",), operation, predefined=predefined)


def test_route_names_are_unique_and_every_error_status_is_described() -> None:
    names = [route.name for route in ROUTES]
    assert len(names) == len(set(names))
    for route in ROUTES:
        assert set(route.operation.errors) <= set(ERROR_DESCRIPTIONS), route.name


def test_route_parameters_are_the_paths_own_in_order() -> None:
    by_name = {route.name: route for route in ROUTES}
    assert [p.name for p in by_name["status_by_id"].parameters] == ["commId"]
    assert [p.name for p in by_name["sendmessage_suffix"].parameters] == ["format"]
    assert [p.name for p in by_name["predefined_api_reply"].parameters] == ["format"]
    assert by_name["sendmessage_suffix"].parameters[0].choices == ("json", "jsv")


def test_health_needs_no_key_and_never_refuses_a_format() -> None:
    assert not HEALTH.authenticated and not HEALTH.refuses_unserved_formats
    assert SEND.refuses_unserved_formats and STATUS.refuses_unserved_formats
