"""`manage.py purge_transactions`: retention by hand, with a dry run."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import failed_transaction, processed_transaction
from transactions.models import Transaction

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

DAY = timedelta(days=1)


def _purge(*args: str) -> str:
    out = io.StringIO()
    call_command("purge_transactions", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def rows() -> dict[str, Transaction]:
    now = timezone.now()
    return {
        "old": processed_transaction(processed_at=now - 31 * DAY),
        "older": processed_transaction(processed_at=now - 90 * DAY),
        "recent": processed_transaction(processed_at=now - 2 * timedelta(hours=1)),
        "failed": failed_transaction(created_at=now - 90 * DAY),
    }


def test_dry_run_reports_how_many_would_go_and_deletes_nothing(rows):
    output = _purge("--older-than", "30d", "--dry-run")

    assert "Would delete 2 PROCESSED transactions" in output
    assert Transaction.objects.count() == 4


def test_purge_deletes_processed_transactions_older_than_the_age_given(rows):
    output = _purge("--older-than", "30d")

    assert "Deleted 2 PROCESSED transactions" in output
    kept = set(Transaction.objects.values_list("pk", flat=True))
    assert kept == {rows["recent"].pk, rows["failed"].pk}


@pytest.mark.parametrize(("age", "would_go"), [("1h", 3), ("90m", 3), ("3h", 2), ("60d", 1)])
def test_ages_in_days_hours_and_minutes(rows, age, would_go):
    assert f"Would delete {would_go} PROCESSED" in _purge("--older-than", age, "--dry-run")


@pytest.mark.parametrize("age", ["30", "30x", "0d", "-5d", "d", "1.5d", "", "30 days"])
def test_a_bad_age_is_refused_and_nothing_is_deleted(rows, age):
    with pytest.raises(CommandError, match="older-than"):
        _purge("--older-than", age)

    assert Transaction.objects.count() == 4


def test_the_age_is_required(rows):
    with pytest.raises(CommandError, match="older-than"):
        _purge("--dry-run")


def test_called_from_code_with_keyword_arguments(rows):
    out = io.StringIO()
    call_command("purge_transactions", older_than="30d", dry_run=True, stdout=out)

    assert "Would delete 2 PROCESSED transactions" in out.getvalue()
