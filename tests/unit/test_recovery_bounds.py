"""The time limits that keep a crash short agree with each other and with host.json (docs/delivery.md)."""

from __future__ import annotations

import json
from pathlib import Path

from devhost.config import parse_timespan
from gateway.delivery import RUN_SECONDS
from gateway.settings import MAX_CLAIM_TIMEOUT_SECONDS, Settings, StorageSettings

HOST_JSON = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
RECORD_AND_REQUEUE = 30  # the last batch's record transaction and the hand-over to the queue


def test_a_run_with_its_longest_claim_ends_inside_function_timeout() -> None:
    """The host stops a run at functionTimeout: that would be a crash in the middle of a batch."""
    function_timeout = parse_timespan(HOST_JSON["functionTimeout"], "functionTimeout")
    assert function_timeout >= RUN_SECONDS + MAX_CLAIM_TIMEOUT_SECONDS + RECORD_AND_REQUEUE


def test_an_immediate_send_with_the_default_claim_answers_inside_the_http_limit() -> None:
    default_claim = Settings(storage=StorageSettings(connection_string="UseDevelopmentStorage=true"))
    assert RUN_SECONDS + default_claim.claim_timeout_seconds + RECORD_AND_REQUEUE <= 230  # Azure's idle time-out


def test_a_failed_run_is_retried_sooner_than_the_sweep_would_find_it() -> None:
    """host.json's visibilityTimeout applies to runs that raise; the sweep is for runs that died."""
    queues = HOST_JSON["extensions"]["queues"]
    default = Settings(storage=StorageSettings(connection_string="UseDevelopmentStorage=true"))
    assert parse_timespan(queues["visibilityTimeout"], "visibilityTimeout") < default.sweep_after_seconds
