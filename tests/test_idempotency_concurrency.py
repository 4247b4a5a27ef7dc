"""Senders retry at once and in parallel: the database keeps one row, processed once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import Client

from tests.factories import webhook_body
from transactions import worker
from transactions.models import Status, Transaction

pytestmark = pytest.mark.postgres

THREADS = 16
DELIVERIES = 64


def _deliver_concurrently(body: dict) -> list[int]:
    start = threading.Barrier(THREADS)

    def deliver(_: int) -> int:
        try:
            start.wait() if _ < THREADS else None
            return (
                Client().post("/v1/webhooks/transactions", body, content_type="application/json").status_code
            )
        finally:
            connections.close_all()  # each thread has its own connection

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(deliver, range(DELIVERIES)))


def test_concurrent_duplicates_are_stored_once(transactional_db):
    body = webhook_body()

    codes = _deliver_concurrently(body)

    assert codes == [202] * DELIVERIES
    stored = Transaction.objects.get(transaction_id=body["transaction_id"])
    assert Transaction.objects.count() == 1
    assert stored.delivery_count == DELIVERIES


def test_concurrent_duplicates_are_processed_once(transactional_db, settings):
    settings.PROCESSING_DELAY_SECONDS = 0.1
    body = webhook_body()
    _deliver_concurrently(body)

    # Several workers racing for the same due work: only one gets the claim.
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: _process_in_own_connection(), range(4)))

    assert sum(run.processed for run in runs) == 1
    stored = Transaction.objects.get(transaction_id=body["transaction_id"])
    assert (stored.status, stored.attempts) == (Status.PROCESSED, 1)


def _process_in_own_connection() -> worker.RoundSummary:
    try:
        return worker.ProcessingRound(idle=0.5).run()
    finally:
        connections.close_all()
