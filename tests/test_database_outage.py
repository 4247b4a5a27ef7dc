"""The database becomes unreachable and comes back: quick 503s, then recovery with no restart."""

import time

import httpx
import pytest
from django.db.models.functions import Now

from tests.factories import webhook_body
from tests.processes import FAST_PROCESSING, assert_no_overlapping_calls, database_cut_off, wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DELAY = FAST_PROCESSING["PROCESSING_DELAY_SECONDS"]
LEASE = FAST_PROCESSING["PROCESSING_LEASE_SECONDS"]
# django-q2's pusher waits 10 s after a broker error before its sentinel replaces it.
PUSHER_BACKOFF = 10


def _post(service, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        body = webhook_body()
        assert service.post_webhook(body).status_code == 202
        ids.append(body["transaction_id"])
    return ids


def _processed(ids: list[str]) -> bool:
    return Transaction.objects.filter(transaction_id__in=ids, status=Status.PROCESSED).count() == len(ids)


def test_while_the_database_is_unreachable_webhooks_get_503_and_the_service_recovers_by_itself(service):
    service.configure(**FAST_PROCESSING)
    web = service.start_web()
    cluster = service.start_worker()
    before = _post(service, 1)
    wait_for(lambda: _processed(before), timeout=DELAY + 20, what="the first transaction PROCESSED")
    in_flight = _post(service, 3)
    wait_for(lambda: len(service.external_calls()) >= 4, timeout=10, what="calls in flight")

    refused: list[str] = []
    with database_cut_off():
        for _ in range(4):  # each gunicorn worker, more than once
            body = webhook_body()
            started = time.monotonic()
            response = service.post_webhook(body)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            assert response.json()["error"] == "service_unavailable"
            assert elapsed < 5, f"the 503 took {elapsed:.1f}s"  # refused at once, never a hang
            refused.append(body["transaction_id"])
        health = httpx.get(service.url("/"), timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "UNHEALTHY"
        time.sleep(DELAY + 1)  # the calls in flight end while their outcome cannot be stored

    wait_for(service._healthy, timeout=15, what="GET / to be HEALTHY again")
    assert not Transaction.objects.filter(transaction_id__in=refused).exists()
    # The interrupted transactions wait out their leases; new traffic's wake-up then
    # takes them along with itself, once the cluster's pusher is back.
    wait_for(
        lambda: not Transaction.objects.filter(leased_until__gt=Now()).exists(),
        timeout=LEASE + 5,
        what="the interrupted leases to expire",
    )
    after = _post(service, 1)
    wait_for(
        lambda: _processed(in_flight + after),
        timeout=PUSHER_BACKOFF + 2 * DELAY + 20,
        what="processing to resume",
    )
    assert web.poll() is None and cluster.poll() is None  # recovered without a restart
    assert Transaction.objects.count() == len(before + in_flight + after)
    assert_no_overlapping_calls(service.external_calls())
