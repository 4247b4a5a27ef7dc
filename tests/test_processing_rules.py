"""The rules of processing, at the services level: claims, outcomes, retries, the sweep.

No processes here; the fault tests (test_worker_crash.py and friends) show the same
rules holding when real processes die.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone
from django_q.models import Schedule

from tests.factories import stored_transaction
from transactions import services, worker
from transactions.models import Status, Transaction
from transactions.services import Failure, claim_due_transactions

pytestmark = pytest.mark.django_db(transaction=True)


def _expire_leases() -> None:
    # Stands for the lease running out (a worker that died holding it).
    Transaction.objects.update(
        leased_until=Now() - timedelta(seconds=1), next_attempt_at=Now() - timedelta(seconds=1)
    )


def test_a_claimed_transaction_is_not_claimed_again_while_its_lease_holds():
    stored_transaction()

    first = claim_due_transactions(limit=10)
    second = claim_due_transactions(limit=10)

    assert len(first) == 1
    assert second == []


def test_a_transaction_whose_lease_expired_is_claimed_again_and_the_attempt_counted():
    txn = stored_transaction()
    [old] = claim_due_transactions(limit=1)
    _expire_leases()

    [new] = claim_due_transactions(limit=1)

    assert new.pk == txn.pk and new.token != old.token
    assert new.attempts == 2


def test_only_the_current_lease_holder_can_record_an_outcome():
    stored_transaction()
    [old] = claim_due_transactions(limit=1)
    _expire_leases()
    [new] = claim_due_transactions(limit=1)

    assert services.record_outcomes([(old, None)])["lost"] == 1
    assert services.record_outcomes([(old, Failure("late failure"))])["lost"] == 1
    assert services.release_claims([old]) == 0
    assert services.record_outcomes([(new, None)])["processed"] == 1


def test_processed_at_is_written_once_and_a_processed_transaction_never_moves_back():
    txn = stored_transaction()
    [claim] = claim_due_transactions(limit=1)
    assert services.record_outcomes([(claim, None)])["processed"] == 1
    processed_at = Transaction.objects.get(pk=txn.pk).processed_at

    assert services.record_outcomes([(claim, None)])["lost"] == 1
    assert services.record_outcomes([(claim, Failure("too late"))])["lost"] == 1
    assert services.release_claims([claim]) == 0
    assert services.retry_transactions(pks=[txn.pk]) == 0
    _expire_leases()
    assert claim_due_transactions(limit=10) == []

    txn.refresh_from_db()
    assert (txn.status, txn.processed_at, txn.attempts, txn.last_error) == (
        Status.PROCESSED,
        processed_at,
        1,
        "",
    )


def test_a_failed_attempt_waits_out_an_exponential_backoff(settings):
    settings.PROCESSING_RETRY_BACKOFF_SECONDS = 100
    settings.PROCESSING_MAX_ATTEMPTS = 5
    txn = stored_transaction()
    waits = []
    for _ in range(3):
        [claim] = claim_due_transactions(limit=1)
        assert services.record_outcomes([(claim, Failure("boom"))])["retrying"] == 1
        assert claim_due_transactions(limit=1) == []  # not due during the backoff
        txn.refresh_from_db()
        waits.append((txn.next_attempt_at - timezone.now()).total_seconds())
        Transaction.objects.update(next_attempt_at=Now())  # the backoff has passed

    # 100 s, 200 s, 400 s from the failure (less the moments the test itself took)
    assert [round(w, -1) for w in waits] == [100, 200, 400]
    assert txn.attempts == 3 and txn.last_error == "boom" and txn.lease_token is None


def test_the_last_allowed_attempt_failing_marks_the_transaction_failed_with_its_error(settings):
    settings.PROCESSING_MAX_ATTEMPTS = 2
    txn = stored_transaction()
    [claim] = claim_due_transactions(limit=1)
    assert services.record_outcomes([(claim, Failure("first"))])["retrying"] == 1
    Transaction.objects.update(next_attempt_at=Now())  # the backoff has passed
    [claim] = claim_due_transactions(limit=1)

    assert services.record_outcomes([(claim, Failure("second"))])["failed"] == 1

    txn.refresh_from_db()
    assert (txn.status, txn.attempts, txn.last_error, txn.processed_at) == (Status.FAILED, 2, "second", None)
    assert claim_due_transactions(limit=1) == []


def test_a_retried_failed_transaction_starts_afresh():
    txn = stored_transaction()
    Transaction.objects.update(status=Status.FAILED, attempts=5, last_error="gave up")

    assert services.retry_transactions(pks=[txn.pk]) == 1

    [claim] = claim_due_transactions(limit=1)
    assert claim.attempts == 1
    assert services.retry_transactions(pks=[txn.pk]) == 0  # only FAILED ones go back


def test_a_claim_handed_back_on_shutdown_is_due_at_once_and_its_attempt_not_counted():
    txn = stored_transaction()
    [claim] = claim_due_transactions(limit=1)

    assert services.release_claims([claim]) == 1

    [again] = claim_due_transactions(limit=1)
    assert again.pk == txn.pk and again.attempts == 1


@pytest.mark.postgres
def test_workers_claiming_at_the_same_moment_never_share_a_transaction():
    for _ in range(200):
        stored_transaction()
    start = threading.Barrier(4)
    taken: list[list] = [[] for _ in range(4)]

    def claimer(mine: list) -> None:
        start.wait()
        try:
            while batch := claim_due_transactions(limit=7):
                mine.extend(claim.pk for claim in batch)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [pk for mine in taken for pk in mine]
    assert len(everything) == len(set(everything)) == 200
    assert sum(1 for mine in taken if mine) > 1  # they really did compete


def test_the_sweep_task_processes_transactions_left_behind(settings):
    settings.PROCESSING_DELAY_SECONDS = 0.1
    settings.PROCESSING_IDLE_SECONDS = 0.5
    abandoned = stored_transaction()  # its worker died holding the lease
    claim_due_transactions(limit=1)
    _expire_leases()
    never_woken = stored_transaction()  # its wake-up was lost

    summary = worker.process_due_transactions()

    assert summary["processed"] == 2
    assert {t.pk: (t.status, t.attempts) for t in Transaction.objects.all()} == {
        abandoned.pk: (Status.PROCESSED, 2),
        never_woken.pk: (Status.PROCESSED, 1),
    }


def test_the_sweep_leaves_alone_a_transaction_whose_lease_still_holds(settings):
    settings.PROCESSING_DELAY_SECONDS = 0.1
    txn = stored_transaction()
    claim_due_transactions(limit=1)

    assert worker.process_due_transactions()["processed"] == 0
    txn.refresh_from_db()
    assert txn.status == Status.PROCESSING and txn.attempts == 1


def test_the_sweep_schedule_runs_the_processing_task_every_minute_and_is_made_once():
    worker.ensure_sweep_schedule()
    worker.ensure_sweep_schedule()

    [schedule] = Schedule.objects.all()
    assert schedule.func == "transactions.worker.process_due_transactions"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_outcomes_of_many_calls_are_recorded_together_each_by_its_own_rule(settings):
    settings.PROCESSING_MAX_ATTEMPTS = 2
    ok, retry, give_up = stored_transaction(), stored_transaction(), stored_transaction()
    Transaction.objects.filter(pk=give_up.pk).update(attempts=1)
    claims = {claim.pk: claim for claim in claim_due_transactions(limit=10)}

    counts = services.record_outcomes(
        [
            (claims[ok.pk], None),
            (claims[retry.pk], Failure("503 from provider")),
            (claims[give_up.pk], Failure("declined")),
        ]
    )

    assert counts == {"processed": 1, "retrying": 1, "failed": 1, "lost": 0}
    rows = {t.pk: (t.status, t.last_error, t.lease_token) for t in Transaction.objects.all()}
    assert rows == {
        ok.pk: (Status.PROCESSED, "", None),
        retry.pk: (Status.PROCESSING, "503 from provider", None),
        give_up.pk: (Status.FAILED, "declined", None),
    }
