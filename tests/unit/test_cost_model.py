"""bench.cost, the model docs/cost.md prints: its figures are bench.transactions' counts, multiplied out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cost import PRICES, RECEIPT_CALLBACKS, RECEIPT_REQUESTS, Durations, limits, main, priced, scenarios

ONE = {"references_now": False, "recipients": 1,
       "accept": {"by_operation": {"table PUT entity": 3, "table insert": 1, "queue send": 1}},
       "deliver": {"by_operation": {"queue receive": 1, "table query": 3, "table transaction": 4, "queue delete": 1},
                   "messages": 1}}
HUNDRED = {"references_now": False, "recipients": 100,
           "accept": {"by_operation": {"table insert": 2, "queue send": 1}},
           "deliver": {"by_operation": {"queue receive": 3, "queue send": 2, "queue delete": 3, "table query": 10},
                       "messages": 3}}
NOW = {**ONE, "references_now": True, "accept": {"by_operation": {"table insert": 99}}}
DOCUMENT = {"machine": {"when": "2026-11-30T00:00:00+00:00"}, "cases": [ONE, HUNDRED, NOW]}


def test_only_the_default_references_are_modelled() -> None:
    assert [scenario.recipients for scenario in scenarios(DOCUMENT)] == [1, 100]
    with pytest.raises(ValueError):
        scenarios({"cases": [NOW]})


def test_requests_are_the_counts_per_send_times_the_sends_plus_receipts() -> None:
    one, hundred = scenarios(DOCUMENT)
    assert one.requests("table") == (3 + 1 + 3 + 4) * 1000 + RECEIPT_REQUESTS * 1000
    assert one.requests("queue") == (1 + 1 + 1) * 1000
    assert hundred.requests("table") == (2 + 10) * 10 + RECEIPT_REQUESTS * 1000
    assert hundred.requests("queue") == (1 + 3 + 2 + 3) * 10
    assert one.executions() == 2 * 1000 + RECEIPT_CALLBACKS * 1000  # a send and a queue run each
    assert hundred.executions() == (1 + 3) * 10 + RECEIPT_CALLBACKS * 1000


def test_prices_multiply_out_and_concurrency_divides_instance_time() -> None:
    one = scenarios(DOCUMENT)[0]
    alone, shared = Durations(), Durations(concurrency=4)
    figures = priced(one, alone, 2.0, 0.001 / 10_000)
    assert figures["storage_usd"] == pytest.approx(one.requests("table") * 0.001 / 10_000
                                                   + one.requests("queue") * PRICES["queue"].value)
    assert figures["gb_seconds"] == pytest.approx(2.0 * (0.05 * 1000 + 0.3 * 1000 + 0.03 * 2 * 1000))
    assert priced(one, shared, 2.0, 0.0)["gb_seconds"] == pytest.approx(figures["gb_seconds"] / 4)
    assert figures["ceiling_usd"] > figures["total_usd"]  # the 1 s minimum per execution is the worst case


def test_limits_follow_the_requests_per_sms() -> None:
    one, hundred = scenarios(DOCUMENT)
    assert limits(one)["account"] == pytest.approx(20_000 / ((one.requests("table") + one.requests("queue")) / 1000))
    assert limits(hundred)["queue"] > limits(one)["queue"]  # fewer queue messages per SMS


def test_the_command_reads_the_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--results", str(tmp_path / "missing.json")]) == 2
    results = tmp_path / "transactions.json"
    results.write_text(json.dumps(DOCUMENT))
    assert main(["--results", str(results)]) == 0
    printed = capsys.readouterr().out
    assert "| 1 " in printed and "| 100 " in printed and "18000" not in printed
