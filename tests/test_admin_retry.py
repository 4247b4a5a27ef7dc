"""Staff send FAILED transactions back for processing from the admin."""

import pytest
from django.urls import reverse

from tests.factories import stored_transaction
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("unhashed_static_files")]

CHANGELIST = "admin:transactions_transaction_changelist"


def _retry(admin_client, *transactions: Transaction):
    return admin_client.post(
        reverse(CHANGELIST),
        {"action": "retry_processing", "_selected_action": [str(t.pk) for t in transactions]},
        follow=True,
    )


def test_the_retry_action_sends_failed_transactions_back_with_fresh_attempts(admin_client):
    failed = stored_transaction()
    Transaction.objects.filter(pk=failed.pk).update(status=Status.FAILED, attempts=5, last_error="gave up")

    response = _retry(admin_client, failed)

    assert response.status_code == 200
    assert "1 transaction(s) sent back for processing." in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (Status.PROCESSING, 0)
    assert failed.last_error == "gave up"  # kept until the next attempt's outcome
    assert Transaction.objects.due().filter(pk=failed.pk).exists()


def test_the_retry_action_leaves_transactions_that_did_not_fail_alone(admin_client):
    pending = stored_transaction()

    response = _retry(admin_client, pending)

    assert "0 transaction(s) sent back for processing." in response.content.decode()
    pending.refresh_from_db()
    assert (pending.status, pending.attempts) == (Status.PROCESSING, 0)
