"""`manage.py seed_transactions`: a large realistic data set for checking the admin at scale."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.factories import stored_transaction
from transactions.models import Status, Transaction

pytestmark = pytest.mark.django_db


def test_seed_inserts_realistic_transactions_and_delete_removes_only_them():
    real = stored_transaction()

    call_command("seed_transactions", count=2000, seed=7, stdout=io.StringIO())

    seeded = Transaction.objects.filter(transaction_id__startswith="seed_")
    assert seeded.count() == 2000
    statuses = set(seeded.values_list("status", flat=True))
    assert statuses == {Status.PROCESSED, Status.FAILED, Status.PROCESSING}
    assert seeded.filter(delivery_count__gt=1).exists()
    assert seeded.values("currency").distinct().count() > 3
    sample = seeded.filter(status=Status.PROCESSED).first()
    assert sample.payload["transaction_id"] == sample.transaction_id
    assert sample.processed_at > sample.created_at

    call_command("seed_transactions", delete=True, stdout=io.StringIO())

    assert list(Transaction.objects.all()) == [real]


def test_seed_min_age_days_makes_only_old_rows():
    call_command("seed_transactions", count=200, days=5, min_age_days=60, seed=3, stdout=io.StringIO())

    seeded = Transaction.objects.filter(transaction_id__startswith="seed_")
    assert seeded.count() == 200
    assert not seeded.filter(created_at__gt=timezone.now() - timedelta(days=60)).exists()
    assert seeded.filter(created_at__lt=timezone.now() - timedelta(days=61)).exists()
