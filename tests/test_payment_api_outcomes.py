"""Each answer of a real payment API (the fake provider, a real HTTP server) leads to
its outcome, end to end: gunicorn, qcluster and the provider as real processes.

Told apart from the provider's own ledger, not from our logs.
"""

import pytest

from tests.processes import FAST_PROCESSING, wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BACKOFF = 0.2


@pytest.fixture
def provider(service):
    """Web, one qcluster and the fake provider, with quick retries."""
    service.configure(**FAST_PROCESSING, PROCESSING_RETRY_BACKOFF_SECONDS=BACKOFF, PROCESSING_MAX_ATTEMPTS=20)
    api = service.start_payment_api()
    service.start_web()
    service.start_worker()
    return api


def _post(service) -> Transaction:
    [transaction_id] = service.post_accepted(1)
    return Transaction.objects.get(transaction_id=transaction_id)


def _reaches(txn: Transaction, status: str, timeout: float = 30) -> Transaction:
    return wait_for(
        lambda: Transaction.objects.filter(pk=txn.pk, status=status).first(), timeout=timeout, what=status
    )


def _requests(provider, txn: Transaction, count: int) -> dict:
    return wait_for(
        lambda: (record := provider.key(txn.pk)).get("requests", 0) >= count and record,
        timeout=30,
        what=f"{count} requests at the provider",
    )


def test_a_2xx_settles_the_payment_once_with_its_key_and_fields_and_processes_it(service, provider):
    txn = _post(service)

    _reaches(txn, Status.PROCESSED)

    record = provider.key(txn.pk)
    assert (record["settled"], record["requests"]) == (1, 1)
    assert (record["transaction_id"], record["amount"], record["currency"]) == (
        txn.transaction_id,
        "1500.00",
        "INR",
    )


def test_a_permanent_4xx_fails_at_once_and_keeps_the_providers_error(service, provider):
    provider.control(fail_status=402, error_body="card declined: insufficient funds")
    txn = _post(service)

    txn = _reaches(txn, Status.FAILED)

    assert txn.attempts == 1
    assert "HTTP 402" in txn.last_error and "card declined: insufficient funds" in txn.last_error
    record = provider.key(txn.pk)
    assert (record["settled"], record["requests"]) == (0, 1)


def test_a_429_is_retried_no_sooner_than_its_retry_after(service, provider):
    provider.control(fail_status=429, retry_after="3")
    txn = _post(service)
    _requests(provider, txn, 1)
    provider.control(fail_status=None)

    _reaches(txn, Status.PROCESSED)

    calls = [call for call in provider.ledger()["calls"] if call["key"] == str(txn.pk)]
    assert [call["status"] for call in calls] == [429, 200]
    # The backoff alone would have been 0.2 s.
    assert calls[1]["start"] - calls[0]["end"] >= 3
    assert provider.key(txn.pk)["settled"] == 1


def test_a_5xx_is_retried_until_the_provider_recovers(service, provider):
    provider.control(fail_status=503)
    txn = _post(service)
    _requests(provider, txn, 2)
    assert Transaction.objects.get(pk=txn.pk).last_error.startswith("PaymentAPIError: HTTP 503")
    provider.control(fail_status=None)

    txn = _reaches(txn, Status.PROCESSED)

    assert txn.last_error == ""
    record = provider.key(txn.pk)
    assert record["settled"] == 1 and record["requests"] >= 3


def test_a_call_that_times_out_is_retried_and_the_payment_settled_once(service, provider):
    timeout = FAST_PROCESSING["PROCESSING_CALL_TIMEOUT_SECONDS"]
    provider.control(delay=timeout + 2)
    txn = _post(service)
    wait_for(
        lambda: "timed out" in Transaction.objects.get(pk=txn.pk).last_error, timeout=30, what="a timeout"
    )
    provider.control(delay=0)

    _reaches(txn, Status.PROCESSED)

    # The provider finished the abandoned call; the retry found it settled.
    record = provider.key(txn.pk)
    assert record["settled"] == 1 and record["requests"] >= 2
