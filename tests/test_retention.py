"""Retention: PROCESSED transactions older than RETENTION_DAYS are deleted, in batches,
by a schedule qcluster makes at start; FAILED and PROCESSING ones are kept."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from tests.factories import failed_transaction, processed_transaction, stored_transaction, webhook_body
from tests.processes import ROOT
from transactions import services, worker
from transactions.models import Status, Transaction

pytestmark = pytest.mark.postgres

DAY = timedelta(days=1)


def _ids() -> set[str]:
    return set(Transaction.objects.values_list("transaction_id", flat=True))


@pytest.mark.django_db
def test_purge_deletes_old_processed_and_keeps_recent_processed_failed_and_processing():
    now = timezone.now()
    old = processed_transaction(processed_at=now - 31 * DAY)
    recent = processed_transaction(processed_at=now - 29 * DAY)
    old_failed = failed_transaction(created_at=now - 400 * DAY)
    old_processing = stored_transaction()
    Transaction.objects.filter(pk=old_processing.pk).update(created_at=now - 400 * DAY)

    deleted = services.purge_processed_transactions(older_than=now - 30 * DAY, batch_size=1000)

    assert deleted == 1
    assert _ids() == {recent.transaction_id, old_failed.transaction_id, old_processing.transaction_id}
    assert old.transaction_id not in _ids()


@pytest.mark.django_db
def test_purge_of_more_rows_than_a_batch_deletes_them_all():
    now = timezone.now()
    for minutes in range(25):
        processed_transaction(processed_at=now - 40 * DAY + timedelta(minutes=minutes))
    kept = processed_transaction(processed_at=now)

    deleted = services.purge_processed_transactions(older_than=now - 30 * DAY, batch_size=10)

    assert deleted == 25
    assert _ids() == {kept.transaction_id}


@pytest.mark.django_db
def test_purge_stops_when_asked_and_the_next_run_finishes():
    now = timezone.now()
    for minutes in range(25):
        processed_transaction(processed_at=now - 40 * DAY + timedelta(minutes=minutes))

    first = services.purge_processed_transactions(older_than=now - 30 * DAY, batch_size=10, stop=lambda: True)
    rest = services.purge_processed_transactions(older_than=now - 30 * DAY, batch_size=10)

    assert (first, rest) == (10, 15)
    assert not Transaction.objects.exists()


@pytest.mark.django_db
def test_a_redelivery_after_the_purge_is_stored_and_processed_as_new():
    # Why retention must outlast the senders' retry horizon (docs/guarantees.md).
    body = webhook_body()
    processed_transaction(processed_at=timezone.now() - 31 * DAY, **body)
    services.purge_processed_transactions(older_than=timezone.now() - 30 * DAY, batch_size=1000)

    again = stored_transaction(**body)

    assert again.status == Status.PROCESSING and again.delivery_count == 1


@pytest.mark.django_db
def test_the_scheduled_task_deletes_processed_transactions_past_retention_days(settings):
    settings.RETENTION_DAYS = 30
    now = timezone.now()
    processed_transaction(processed_at=now - 31 * DAY)
    recent = processed_transaction(processed_at=now - 29 * DAY)

    assert worker.purge_expired_transactions() == 1
    assert _ids() == {recent.transaction_id}


@pytest.mark.django_db
def test_the_scheduled_task_deletes_nothing_once_retention_is_turned_off(settings):
    settings.RETENTION_DAYS = None
    processed_transaction(processed_at=timezone.now() - 3000 * DAY)

    assert worker.purge_expired_transactions() == 0
    assert Transaction.objects.count() == 1


def _retention_schedules() -> list[Schedule]:
    return list(Schedule.objects.filter(func=worker.PURGE_TASK))


@pytest.mark.e2e
def test_qcluster_creates_the_retention_schedule_when_retention_days_is_set_and_removes_it_when_unset(
    service,
):
    Schedule.objects.all().delete()

    qcluster = service.start_worker(RETENTION_DAYS=30)
    [schedule] = _retention_schedules()
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 10, -1)
    service.stop(qcluster)

    service.start_worker(RETENTION_DAYS="")
    assert _retention_schedules() == []
    assert Schedule.objects.filter(name=worker.SWEEP_SCHEDULE_NAME).exists()  # the sweep stays


@pytest.mark.django_db
def test_qcluster_start_repairs_an_edited_retention_schedule(settings):
    settings.RETENTION_DAYS = 30
    worker.ensure_retention_schedule()
    Schedule.objects.filter(func=worker.PURGE_TASK).update(minutes=1440, repeats=0)

    worker.ensure_retention_schedule()

    [schedule] = _retention_schedules()
    assert (schedule.minutes, schedule.repeats) == (10, -1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("days", "shown"), [(None, "Retention: kept forever"), (30, "Retention: deleted after 30 days")]
)
@pytest.mark.usefixtures("unhashed_static_files")
def test_admin_summary_says_how_long_processed_transactions_are_kept(admin_client, settings, days, shown):
    settings.RETENTION_DAYS = days

    page = admin_client.get(reverse("admin:transactions_transaction_changelist")).content.decode()

    assert shown in page


@pytest.mark.parametrize("value", ["0", "-30", "thirty", "1.5"])
def test_the_service_refuses_to_start_with_a_bad_retention_days(value):
    env = {**os.environ, "DJANGO_SECRET_KEY": "x" * 50, "RETENTION_DAYS": value}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode != 0
    assert "RETENTION_DAYS must be a whole number of days" in result.stderr
