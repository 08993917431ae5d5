"""The missing-receipt check over Azurite: delivery watches what it sent through a provider that can be asked;
the timer takes what is due (a bounded number per run), drops what a receipt already settled, applies what the
provider says, asks again later with growing waits, and after the give-up wait leaves the recipient Sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ServiceRequestError

from gateway.delivery import ReceiptFollowUp
from gateway.message_index import MessageIndex
from gateway.providers.base import Outcome, ReceiptSource
from gateway.receipt_checks import CheckPolicy, CheckReport, ReceiptChecker, ReceiptChecks, Watch
from gateway.receipts import Receipt, ReceiptBook, ReceiptOutcome, ReceiptState
from gateway.runtime import Gateway
from gateway.settings import Settings
from gateway.status import describe
from tests.integration.test_delivery import ScriptedProvider, make_delivery, stored
from tests.integration.test_guarantees import Clock
from tests.server import GatewayServer, server_env
from tests.waiting import wait_until

POLICY = CheckPolicy(after=timedelta(minutes=30), give_up=timedelta(hours=72), per_run=2)


class AskableProvider(ScriptedProvider):
    """A provider that can be asked about a message (``ReceiptSource``): ``answers`` per message id, in turn;
    an exhausted list answers None (cannot tell)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, list[Receipt | Exception | None]] = {}
        self.asked: list[str] = []

    def look_up(self, message_id: str) -> Receipt | None:
        self.asked.append(message_id)
        answers = self.answers.get(message_id) or [None]
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def said(message_id: str, status: str, state: ReceiptState | None, **fields) -> Receipt:
    return Receipt(provider="scripted", message_id=message_id, provider_status=status, state=state, **fields)


@pytest.fixture
def setup(make_gateway):
    gateway = make_gateway()
    settings = gateway.settings
    clock = Clock()
    provider = AskableProvider()
    index = MessageIndex(gateway.clients.worker_tables, settings.message_index_table)
    checks = ReceiptChecks(gateway.clients.worker_tables, settings.receipt_checks_table)
    follow_up = ReceiptFollowUp(index=index, checks=checks, policy=POLICY)
    delivery = make_delivery(gateway.store, provider, clock=clock, follow_up=follow_up)
    book = ReceiptBook(gateway.store, index, clock=clock)
    checker = ReceiptChecker(checks, gateway.store, book, provider, POLICY, clock=clock)
    return gateway, clock, provider, delivery, book, checker, checks


def watched(checks: ReceiptChecks) -> list[tuple[str, int, int]]:
    """Every watch row as (message id, checks, minutes from now-ish): the open work."""
    rows = checks._table.query_entities("PartitionKey eq 'due'")
    return sorted((row["MessageId"], row["Checks"], row["DueAt"]) for row in rows)


def at(clock: Clock, start: datetime, **delta: float) -> None:
    clock.now = start + timedelta(**delta)


def test_the_check_is_bounded_applies_what_it_learns_asks_again_and_gives_up(setup) -> None:
    gateway, clock, provider, delivery, book, checker, checks = setup
    assert isinstance(provider, ReceiptSource)
    sent_at = clock.now
    comm = stored(gateway.store, 4)
    delivery.deliver(comm.comm_id)
    assert [(message, count) for message, count, _ in watched(checks)] == [("p-1", 0), ("p-2", 0), ("p-3", 0),
                                                                          ("p-4", 0)]
    book.apply(said("p-1", "delivered", ReceiptState.DELIVERED))  # its receipt came: no need to ask
    provider.answers = {"p-2": [said("p-2", "undelivered", ReceiptState.UNDELIVERED, error_code="30003")],
                        "p-3": [RuntimeError("provider down"), said("p-3", "sent", ReceiptState.SENT)],
                        "p-4": [None]}

    at(clock, sent_at, minutes=29)
    assert checker.run() == CheckReport()  # nothing due before the first wait
    at(clock, sent_at, minutes=31)
    assert checker.run() == CheckReport(taken=2, answered=1, already=1)  # bounded: 2 a run, oldest first
    assert provider.asked == ["p-2"]
    assert checker.run() == CheckReport(taken=2, again=2)  # p-3's provider failed, p-4 it could not tell
    assert checker.run() == CheckReport()  # asked again only after the next wait
    assert [(message, count) for message, count, _ in watched(checks)] == [("p-3", 1), ("p-4", 1)]
    assert all(due == clock.now + timedelta(hours=1) for _, _, due in watched(checks))

    at(clock, sent_at, minutes=92)
    assert checker.run() == CheckReport(taken=2, again=2)  # p-3 "sent": recorded, not final; asked again later
    assert all(due == clock.now + timedelta(hours=2) for _, _, due in watched(checks))
    at(clock, sent_at, hours=72)
    assert checker.run() == CheckReport(taken=2, given_up=2)  # asked a last time, then left
    assert watched(checks) == []

    status = describe(gateway.store.load(comm.comm_id))
    assert [r.Status for r in status.Recipients] == ["Delivered", "Undelivered", "Sent", "Sent"]  # no receipt
    assert status.Recipients[1].ErrorCode == "30003" and status.Recipients[1].ReceiptAt == sent_at + timedelta(
        minutes=31)
    assert status.Status == "Sent" and provider.asked == ["p-2", *["p-3", "p-4"] * 3]


def test_a_looked_up_final_state_completes_the_communication(setup) -> None:
    gateway, clock, provider, delivery, book, checker, _ = setup
    comm = stored(gateway.store, 2)
    delivery.deliver(comm.comm_id)
    provider.answers = {"p-1": [said("p-1", "delivered", ReceiptState.DELIVERED)],
                        "p-2": [said("p-2", "delivered", ReceiptState.DELIVERED)]}
    at(clock, clock.now, hours=1)
    assert checker.run() == CheckReport(taken=2, answered=2)
    assert gateway.store.load_header(comm.comm_id).status.value == "Delivered"
    assert book.apply(said("p-1", "delivered", ReceiptState.DELIVERED)) is ReceiptOutcome.DUPLICATE  # the late
    # callback of a message the check already settled changes nothing


def test_a_provider_that_cannot_be_asked_is_not_watched(make_gateway) -> None:
    gateway = make_gateway()
    checks = ReceiptChecks(gateway.clients.worker_tables, gateway.settings.receipt_checks_table)
    comm = stored(gateway.store, 2)
    make_delivery(gateway.store, ScriptedProvider(),
                  follow_up=ReceiptFollowUp(checks=checks, policy=POLICY)).deliver(comm.comm_id)
    assert watched(checks) == []


def test_the_timer_function_runs_the_check_of_the_composed_gateway(make_gateway) -> None:
    from gateway import worker
    from gateway.runtime import use_gateway

    gateway = make_gateway()
    use_gateway(gateway)
    try:
        assert worker.check_receipts() == CheckReport()
    finally:
        use_gateway(None)


def test_the_local_host_runs_the_check_on_its_schedule(storage_connection: str) -> None:
    """function_app.py binds the check to ``SMS_RECEIPT_CHECK_SCHEDULE``; the local host runs it like the sweep:
    a watch row due whose receipt already came is gone within seconds of a once-a-second schedule."""
    env = server_env(storage_connection, SMS_RECEIPT_CHECK_SCHEDULE="* * * * * *")
    gateway = Gateway.create(Settings.from_env({"SMS_DEFAULT_SENDER": "+15005550006", **env}))
    gateway.ensure_resources()
    checks = ReceiptChecks(gateway.clients.worker_tables, gateway.settings.receipt_checks_table)
    comm = stored(gateway.store, 1)
    make_delivery(gateway.store, ScriptedProvider()).deliver(comm.comm_id)
    gateway.receipts.apply(said("p-1", "delivered", ReceiptState.DELIVERED, comm_id=comm.comm_id, index=0))
    sent = datetime.now(UTC) - timedelta(hours=1)
    checks.watch([Watch(comm.comm_id, 0, "p-1", "scripted", sent, sent + timedelta(minutes=30))])

    server = GatewayServer.start(env, "--no-queues")
    try:
        wait_until(lambda: watched(checks) == [], timeout=30, what="the check's timer to take the due row")
    finally:
        server.stop()
    assert "check_receipts" in server.log_text()


def test_rows_of_gone_or_failed_recipients_are_dropped_without_asking(setup) -> None:
    gateway, clock, provider, delivery, _, checker, checks = setup
    comm = stored(gateway.store, 2)
    provider.script = {comm.recipients_spec[1].phone_number: [Outcome.FAILED]}
    delivery.deliver(comm.comm_id)
    sent = clock.now
    checks.watch([Watch(comm.comm_id, 1, "p-2", "scripted", sent, sent),  # delivery recorded it Failed
                  Watch(uuid.uuid4(), 0, "p-9", "scripted", sent, sent)])  # its communication is gone
    at(clock, sent, minutes=1)
    assert checker.run() == CheckReport(taken=2, already=2) and provider.asked == []


class FailingBook(ReceiptBook):
    def apply(self, receipt: Receipt) -> ReceiptOutcome:
        raise ServiceRequestError("storage unreachable")


def test_what_cannot_be_asked_or_recorded_is_asked_again_later(setup) -> None:
    gateway, clock, provider, _, book, _, checks = setup
    comm = stored(gateway.store, 2)
    make_delivery(gateway.store, provider, clock=clock).deliver(comm.comm_id)  # p-1, p-2; watched by hand below
    sent = clock.now
    checks.watch([Watch(comm.comm_id, 0, "p-1", "scripted", sent, sent),
                  Watch(comm.comm_id, 1, "p-2", "another-provider", sent, sent)])  # sent before a provider switch
    provider.answers = {"p-1": [said("p-1", "delivered", ReceiptState.DELIVERED)] * 2}
    at(clock, sent, minutes=1)
    failing = ReceiptChecker(checks, gateway.store, FailingBook(gateway.store), provider, POLICY, clock=clock)
    assert failing.run() == CheckReport(taken=2, again=2)
    assert provider.asked == ["p-1"]  # its answer could not be recorded: asked again later; p-2's provider is gone
    at(clock, sent, hours=2)
    checker = ReceiptChecker(checks, gateway.store, book, provider, POLICY, clock=clock)
    assert checker.run() == CheckReport(taken=2, answered=1, again=1)
    assert provider.asked == ["p-1", "p-1"]


def test_moves_of_more_than_one_transaction_keep_every_row_once(setup) -> None:
    _, clock, _, _, _, _, checks = setup
    sent = clock.now
    comm_id = uuid.uuid4()
    rows = [Watch(comm_id, n, f"m-{n}", "scripted", sent, sent) for n in range(151)]
    checks.watch(rows)
    assert len(watched(checks)) == 151
    counting = TransactionCounter(checks._table)
    checks._table = counting
    later = [(row, Watch(comm_id, row.index, row.message_id, "scripted", sent, sent + timedelta(hours=1), 1))
             for row in rows[1:]]
    checks.move(rows[:1], later)  # 1 delete and 150 delete-insert pairs: 301 operations
    assert counting.sizes == [99, 100, 100, 2]  # a pair is never split across two transactions
    assert [(message, count) for message, count, _ in watched(checks)] == sorted((f"m-{n}", 1) for n in range(1, 151))


class TransactionCounter:
    def __init__(self, table) -> None:
        self._table = table
        self.sizes: list[int] = []

    def submit_transaction(self, operations):
        self.sizes.append(len(operations))
        return self._table.submit_transaction(operations)

    def __getattr__(self, name: str):
        return getattr(self._table, name)


def test_two_rows_for_one_recipient_become_one(setup) -> None:
    """Two watch rows of one recipient (written twice) would move to the same RowKey: the run keeps one."""
    gateway, clock, provider, _, _, checker, checks = setup
    comm = stored(gateway.store, 1)
    make_delivery(gateway.store, provider, clock=clock).deliver(comm.comm_id)
    sent = clock.now
    checks.watch([Watch(comm.comm_id, 0, "p-1", "scripted", sent, sent),
                  Watch(comm.comm_id, 0, "p-1", "scripted", sent, sent + timedelta(seconds=5))])
    at(clock, sent, minutes=1)
    assert checker.run() == CheckReport(taken=2, again=1)
    assert [(message, count) for message, count, _ in watched(checks)] == [("p-1", 1)]
