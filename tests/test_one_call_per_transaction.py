"""Two clusters and redelivered tasks compete for the same transactions: one call each.

The call log (`external call start/end idempotency_key=...`) is the provider's view:
each transaction's key is sent exactly once, and its outcome is recorded once.
"""

import pytest
from django_q.tasks import async_task

from tests.factories import stored_transaction
from tests.processes import assert_no_overlapping_calls, descendants, wait_for
from transactions import worker
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

TRANSACTIONS = 150


def test_competing_clusters_and_duplicate_tasks_make_one_call_and_one_record_per_transaction(service):
    # Small batches, so that many tasks in both clusters take part.
    service.configure(PROCESSING_DELAY_SECONDS=1, PROCESSING_CONCURRENCY=10)
    first = service.start_worker()
    second = service.start_worker()
    rows = [stored_transaction() for _ in range(TRANSACTIONS)]
    for _ in range(16):  # an at-least-once queue delivers some tasks twice
        async_task(worker.PROCESS_TASK)

    wait_for(
        lambda: Transaction.objects.filter(status=Status.PROCESSED).count() == TRANSACTIONS,
        timeout=120,
        interval=0.5,
        what="every transaction PROCESSED",
    )

    calls = service.external_calls()
    assert sorted(call.key for call in calls) == sorted(str(row.pk) for row in rows)
    assert {call.outcome for call in calls} == {"ok"}
    assert_no_overlapping_calls(calls)
    assert set(Transaction.objects.values_list("attempts", flat=True)) == {1}
    assert service.log_count("processed transaction_id=") == TRANSACTIONS  # processed_at written once
    assert service.log_count("lost the claim") == 0
    callers = {call.pid for call in calls}
    for cluster in (first, second):
        assert callers & descendants(cluster.pid), "both clusters should have competed for the work"
