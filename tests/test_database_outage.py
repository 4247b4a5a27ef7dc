"""The database becomes unreachable and comes back: quick 503s, then recovery with no restart."""

import socket
import time

import httpx
import psycopg
import pytest
from django.db import connection
from django.db.models.functions import Now

from tests.factories import webhook_body
from tests.processes import FAST_PROCESSING, assert_no_overlapping_calls, database_cut_off, wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DELAY = FAST_PROCESSING["PROCESSING_DELAY_SECONDS"]
LEASE = FAST_PROCESSING["PROCESSING_LEASE_SECONDS"]
# django-q2's pusher waits 10 s after a broker error before its sentinel replaces it.
PUSHER_BACKOFF = 10
# A bound, not a speed target: a hung request would run into gunicorn's 30 s timeout.
NOT_A_HANG = 10


def _processed(ids: list[str]) -> bool:
    return Transaction.objects.filter(transaction_id__in=ids, status=Status.PROCESSED).count() == len(ids)


def test_while_the_database_is_unreachable_webhooks_get_503_and_the_service_recovers_by_itself(service):
    service.configure(**FAST_PROCESSING)
    web = service.start_web()
    cluster = service.start_worker()
    before = service.post_accepted(1)
    wait_for(lambda: _processed(before), timeout=DELAY + 20, what="the first transaction PROCESSED")
    in_flight = service.post_accepted(3)
    wait_for(lambda: len(service.external_calls()) >= 4, timeout=10, what="calls in flight")

    refused: list[str] = []
    answer_times: list[float] = []
    with database_cut_off():
        for _ in range(4):  # each gunicorn worker, more than once
            body = webhook_body()
            started = time.monotonic()
            response = service.post_webhook(body)
            elapsed = time.monotonic() - started
            answer_times.append(elapsed)
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            assert response.json()["error"] == "service_unavailable"
            assert elapsed < NOT_A_HANG, f"the 503 took {elapsed:.1f}s"
            refused.append(body["transaction_id"])
        health = httpx.get(service.url("/"), timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "UNHEALTHY"
        time.sleep(DELAY + 1)  # the calls in flight end while their outcome cannot be stored

    back = time.monotonic()
    wait_for(service._healthy, timeout=15, what="GET / to be HEALTHY again")
    healthy_after = time.monotonic() - back
    assert not Transaction.objects.filter(transaction_id__in=refused).exists()
    # The interrupted transactions wait out their leases; new traffic's wake-up then
    # takes them along with itself, once the cluster's pusher is back.
    wait_for(
        lambda: not Transaction.objects.filter(leased_until__gt=Now()).exists(),
        timeout=LEASE + 5,
        what="the interrupted leases to expire",
    )
    after = service.post_accepted(1)
    wait_for(
        lambda: _processed(in_flight + after),
        timeout=PUSHER_BACKOFF + 2 * DELAY + 20,
        what="processing to resume",
    )
    print(
        f"503 answered in at most {max(answer_times):.2f}s; HEALTHY {healthy_after:.1f}s and every "
        f"transaction PROCESSED {time.monotonic() - back:.1f}s after the database returned"
    )
    assert web.poll() is None and cluster.poll() is None  # recovered without a restart
    assert Transaction.objects.count() == len(before + in_flight + after)
    assert_no_overlapping_calls(service.external_calls())


def test_a_database_host_that_never_answers_still_gets_a_503_within_the_connect_timeout(service):
    # A listener that accepts connections and never speaks: a hung or partitioned host.
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:
        service.start_web(
            healthy=False, DATABASE_URL=f"postgres://postgres@127.0.0.1:{silent.getsockname()[1]}/webhooks"
        )
        started = time.monotonic()
        response = service.post_webhook(webhook_body())
        elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert elapsed < NOT_A_HANG, f"the 503 took {elapsed:.1f}s"  # DATABASE_CONNECT_TIMEOUT is 3 s


def test_a_webhook_stuck_behind_a_table_lock_gets_a_503_within_the_lock_timeout(service):
    service.start_web(workers=1)
    body = webhook_body()
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    ) as locker:
        # A migration or a forgotten transaction holding the table.
        locker.execute("LOCK TABLE transactions_transaction IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        response = service.post_webhook(body)
        elapsed = time.monotonic() - started
        locker.rollback()

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert elapsed < NOT_A_HANG, f"the 503 took {elapsed:.1f}s"  # DATABASE_LOCK_TIMEOUT_MS is 5 s
    assert not Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()
    assert service.post_webhook(body).status_code == 202  # the sender's retry, once the lock is gone
