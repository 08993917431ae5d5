"""Delivery queue messages: a unit's range survives the round trip, and a CommId alone still means the whole."""

from __future__ import annotations

import json
import uuid

import pytest

from gateway.queue import BadQueueMessage, decode_message, encode_message


def test_a_unit_survives_the_round_trip() -> None:
    comm_id = uuid.uuid4()
    message = decode_message(encode_message(comm_id, 2, range(99, 198)))
    assert (message.comm_id, message.attempt, message.unit) == (comm_id, 2, range(99, 198))


def test_a_message_with_only_a_comm_id_is_the_whole_communication() -> None:
    comm_id = uuid.uuid4()
    message = decode_message(json.dumps({"CommId": comm_id.hex}).encode())
    assert (message.comm_id, message.attempt, message.unit) == (comm_id, 0, None)


@pytest.mark.parametrize("fields", [{"Start": 5}, {"Start": 5, "Stop": 5}, {"Start": -1, "Stop": 3},
                                    {"Start": "a", "Stop": 3}])
def test_a_broken_unit_is_not_a_delivery_message(fields: dict[str, object]) -> None:
    with pytest.raises(BadQueueMessage):
        decode_message(json.dumps({"CommId": uuid.uuid4().hex, **fields}))


def test_the_trace_context_survives_the_round_trip_and_old_messages_have_none() -> None:
    comm_id = uuid.uuid4()
    parent = f"00-{comm_id.hex}-{'ab' * 8}-01"
    assert decode_message(encode_message(comm_id, 1, None, parent)).traceparent == parent
    assert decode_message(json.dumps({"CommId": comm_id.hex, "Attempt": 1})).traceparent is None
    assert "Trace" not in json.loads(encode_message(comm_id))  # tracing off: the message is as before


@pytest.mark.parametrize("trace", [{"traceparent": "x"}, 7, "0" * 129])
def test_a_trace_field_that_is_not_a_traceparent_is_ignored_not_fatal(trace: object) -> None:
    comm_id = uuid.uuid4()
    message = decode_message(json.dumps({"CommId": comm_id.hex, "Trace": trace}))
    assert (message.comm_id, message.traceparent) == (comm_id, None)
