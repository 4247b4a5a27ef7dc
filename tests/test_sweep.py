"""Nothing waits for ever: the minutely sweep finds work no wake-up will ever announce."""

import time

import pytest
from django_q.models import OrmQ, Schedule

from tests.factories import stored_transaction
from tests.processes import FAST_PROCESSING, SWEEP_BOUND_SECONDS, wait_for
from transactions import worker
from transactions.models import Status, Transaction
from transactions.services import claim_due_transactions

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

LEASE = FAST_PROCESSING["PROCESSING_LEASE_SECONDS"]
DELAY = FAST_PROCESSING["PROCESSING_DELAY_SECONDS"]


def test_starting_qcluster_creates_the_minutely_sweep(service):
    Schedule.objects.all().delete()

    service.start_worker()

    [sweep] = Schedule.objects.all()
    assert sweep.func == "transactions.worker.process_due_transactions"
    assert (sweep.schedule_type, sweep.minutes, sweep.repeats) == (Schedule.MINUTES, 1, -1)
    assert sweep.name == worker.SWEEP_SCHEDULE_NAME


@pytest.mark.slow
def test_the_sweep_recovers_transactions_held_by_a_dead_worker_after_a_lost_wake_up(service, settings):
    settings.PROCESSING_LEASE_SECONDS = LEASE
    rows = [stored_transaction() for _ in range(3)]
    claim_due_transactions(limit=10)  # a worker that dies at once holds them
    OrmQ.objects.all().delete()  # and every wake-up was lost
    service.configure(**FAST_PROCESSING)

    started = time.monotonic()
    service.start_worker()  # its startup wake-up finds them still leased
    wait_for(
        lambda: Transaction.objects.filter(status=Status.PROCESSED).count() == len(rows),
        timeout=LEASE + SWEEP_BOUND_SECONDS + DELAY + 15,
        interval=1,
        what="the sweep to process them",
    )
    print(f"swept {len(rows)} transactions {time.monotonic() - started:.1f}s after qcluster started")
    assert set(Transaction.objects.values_list("attempts", flat=True)) == {2}
