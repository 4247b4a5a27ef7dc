"""The external call fails: retries with backoff, then FAILED with the last error; staff retry."""

import itertools

import pytest
from django.urls import reverse

from tests.factories import webhook_body
from tests.processes import FAST_PROCESSING, wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BACKOFF = 0.5
MAX_ATTEMPTS = 3


def test_a_failing_call_is_retried_with_backoff_then_failed_and_a_staff_retry_processes_it(
    service, admin_client
):
    service.configure(
        **FAST_PROCESSING,
        PROCESSING_MAX_ATTEMPTS=MAX_ATTEMPTS,
        PROCESSING_RETRY_BACKOFF_SECONDS=BACKOFF,
    )
    service.start_web()
    failing = service.start_worker(PROCESSING_FAILURE_RATE=1)
    body = webhook_body()
    assert service.post_webhook(body).status_code == 202

    txn = wait_for(
        lambda: Transaction.objects.filter(
            transaction_id=body["transaction_id"], status=Status.FAILED
        ).first(),
        timeout=MAX_ATTEMPTS * (FAST_PROCESSING["PROCESSING_DELAY_SECONDS"] + 2 * BACKOFF) + 20,
        what="FAILED",
    )
    assert txn.attempts == MAX_ATTEMPTS
    assert txn.last_error == "PaymentAPIError: simulated failure of the external payment API"
    assert txn.processed_at is None and txn.lease_token is None
    calls = sorted(service.external_calls(), key=lambda call: call.start)
    assert [call.outcome for call in calls] == ["failed"] * MAX_ATTEMPTS
    assert {call.key for call in calls} == {str(txn.pk)}
    # Each retry waited at least its backoff: 0.5 s, then 1 s.
    gaps = [later.start - earlier.end for earlier, later in itertools.pairwise(calls)]
    assert all(gap >= BACKOFF * 2**n for n, gap in enumerate(gaps)), gaps

    service.stop(failing)
    service.start_worker()  # the external API works again
    response = admin_client.post(
        reverse("admin:transactions_transaction_changelist"),
        {"action": "retry_processing", "_selected_action": [str(txn.pk)]},
    )
    assert response.status_code == 302

    wait_for(
        lambda: Transaction.objects.filter(pk=txn.pk, status=Status.PROCESSED).exists(),
        timeout=FAST_PROCESSING["PROCESSING_DELAY_SECONDS"] + 20,
        what="PROCESSED after the staff retry",
    )
    txn.refresh_from_db()
    assert (txn.attempts, txn.last_error) == (1, "")
    assert service.external_calls()[-1].outcome == "ok"
