"""The sweep reads only open work (issue 17): its storage requests follow the open communications, not the table."""

from __future__ import annotations

from bench.sweep import sweep_cost


def test_one_sweep_over_10000_final_communications_costs_no_more_than_over_10(storage_connection: str) -> None:
    baseline = sweep_cost(storage_connection, final=10, open_count=10)
    large = sweep_cost(storage_connection, final=10_000, open_count=10)
    assert baseline.queued == large.queued == 10  # every lost communication found and queued, in both
    assert large.total <= baseline.total, (baseline.requests, large.requests)
    assert large.requests == baseline.requests  # the same requests, operation by operation
