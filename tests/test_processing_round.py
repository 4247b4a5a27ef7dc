"""One processing round, driven in this process with a fast, slow or failing payment call.

The real-process tests (test_worker_crash.py and friends) show the same under qcluster;
these run in seconds and pin the round's own rules.
"""

import logging
import threading
import time

import pytest
from django.db import connection

from tests.factories import stored_transaction
from tests.processes import wait_for
from transactions import worker
from transactions.models import Status, Transaction

pytestmark = pytest.mark.django_db(transaction=True)


def _run_round_in_thread(**kwargs) -> tuple[threading.Thread, list[worker.RoundSummary]]:
    result: list[worker.RoundSummary] = []

    def run() -> None:
        try:
            result.append(worker.ProcessingRound(**kwargs).run())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _most_calls_at_once(records: list[logging.LogRecord]) -> int:
    """From the payment API's call log: the most calls in flight at any moment."""
    in_flight = most = 0
    for record in sorted(records, key=lambda r: r.created):
        in_flight += 1 if "external call start" in record.getMessage() else -1
        most = max(most, in_flight)
    return most


def test_a_transaction_stays_processing_until_its_call_has_ended(settings):
    settings.PROCESSING_DELAY_SECONDS = 2
    txn = stored_transaction()

    thread, result = _run_round_in_thread(idle=0.1)
    wait_for(lambda: Transaction.objects.get(pk=txn.pk).attempts == 1, timeout=5, what="the claim")
    time.sleep(1)  # half-way through the call
    assert Transaction.objects.get(pk=txn.pk).status == Status.PROCESSING
    thread.join(timeout=10)

    txn.refresh_from_db()
    assert txn.status == Status.PROCESSED and result[0].processed == 1


def test_a_failing_call_is_retried_then_failed_with_its_error(settings):
    settings.PROCESSING_DELAY_SECONDS = 0
    settings.PROCESSING_FAILURE_RATE = 1.0
    settings.PROCESSING_MAX_ATTEMPTS = 2
    settings.PROCESSING_RETRY_BACKOFF_SECONDS = 0.2
    txn = stored_transaction()

    summary = worker.ProcessingRound(idle=1).run()

    txn.refresh_from_db()
    assert (summary.retrying, summary.failed, summary.processed) == (1, 1, 0)
    assert (txn.status, txn.attempts, txn.processed_at) == (Status.FAILED, 2, None)
    assert txn.last_error == "PaymentAPIError: simulated failure of the external payment API"


def test_a_call_over_the_timeout_counts_as_a_failed_attempt(settings):
    settings.PROCESSING_DELAY_SECONDS = 5
    settings.PROCESSING_CALL_TIMEOUT_SECONDS = 0.2
    settings.PROCESSING_RETRY_BACKOFF_SECONDS = 60
    txn = stored_transaction()

    summary = worker.ProcessingRound(idle=0.1).run()

    txn.refresh_from_db()
    assert summary.retrying == 1
    assert (txn.status, txn.last_error) == (Status.PROCESSING, "external call timed out after 0.2s")


def test_one_round_keeps_hundreds_of_calls_in_flight_at_once(settings, caplog):
    settings.PROCESSING_DELAY_SECONDS = 3  # long enough that starting 600 calls ends before any call does
    for _ in range(600):
        stored_transaction()

    with caplog.at_level(logging.INFO, logger="transactions.payment_api"):
        summary = worker.ProcessingRound(idle=0.5).run()

    assert summary.processed == 600
    assert set(Transaction.objects.values_list("status", flat=True)) == {Status.PROCESSED}
    assert _most_calls_at_once(caplog.records) == 600  # all at once: no batch waited for another to finish


def test_a_round_holds_no_more_calls_than_its_limit(settings, caplog):
    settings.PROCESSING_DELAY_SECONDS = 0.3
    for _ in range(30):
        stored_transaction()

    with caplog.at_level(logging.INFO, logger="transactions.payment_api"):
        summary = worker.ProcessingRound(max_in_flight=10, idle=0.5).run()

    assert summary.processed == 30
    assert _most_calls_at_once(caplog.records) == 10


def test_a_stop_hands_unfinished_calls_back_without_counting_the_attempt(settings):
    settings.PROCESSING_DELAY_SECONDS = 30
    settings.PROCESSING_SHUTDOWN_GRACE_SECONDS = 0.5
    txn = stored_transaction()
    worker.install_stop_event()
    try:
        thread, result = _run_round_in_thread(idle=1)
        wait_for(lambda: Transaction.objects.get(pk=txn.pk).attempts == 1, timeout=5, what="the claim")
        worker.request_stop()
        thread.join(timeout=10)
    finally:
        worker.install_stop_event()  # a fresh, unset one for the tests that follow

    txn.refresh_from_db()
    assert result[0].handed_back == 1
    assert (txn.status, txn.attempts, txn.lease_token) == (Status.PROCESSING, 0, None)
    assert Transaction.objects.due().filter(pk=txn.pk).exists()  # another worker takes it at once
