"""kill -9 of the local host mid-load, then retries with the same Idempotency-Key: nobody is sent twice.

A test-sized run of ``bench.crash`` (its docstring has the whole procedure): 40 sends from 8 clients,
half of them immediate, the host killed with SIGKILL once 20 have started, restarted on the same
storage, every unanswered request retried with its key. Without idempotent retries the requests that
were stored before the kill are stored and sent a second time (9 of 60 recipients twice, on the code
before Idempotency-Key).
"""

from __future__ import annotations

from bench import crash


def test_kill_9_mid_load_then_retries_with_the_key_send_nobody_twice() -> None:
    report = crash.run(requests_count=40, clients=8, kill_at=0.5, provider_delay=0.2, drain_seconds=90)
    print(f"\ncrash: {report}")
    assert report.in_flight_at_kill > 0
    assert report.stored_before_retry > 0  # the case that sent twice: stored, the answer lost with the host
    assert report.duplicates == 0
    assert report.violations == []
