"""The whole service as deployed: gunicorn + qcluster processes, over HTTP."""

from datetime import datetime

import pytest

from tests.factories import webhook_body
from tests.processes import wait_for

pytestmark = pytest.mark.e2e

DELAY = 2.0


def _status(service, transaction_id: str) -> dict:
    response = service.get_transaction(transaction_id)
    assert response.status_code == 200, response.text
    return response.json()


def test_webhook_goes_from_processing_to_processed_after_the_delay(service):
    service.start_web(PROCESSING_DELAY_SECONDS=DELAY)
    service.start_worker(PROCESSING_DELAY_SECONDS=DELAY)
    body = webhook_body(amount=10.25)

    response = service.post_webhook(body)

    assert response.status_code == 202
    assert response.json() == {"transaction_id": body["transaction_id"], "status": "PROCESSING"}
    assert _status(service, body["transaction_id"])["status"] == "PROCESSING"
    done = wait_for(
        lambda: (t := _status(service, body["transaction_id"]))["status"] == "PROCESSED" and t,
        timeout=DELAY + 20,
        what="PROCESSED",
    )
    created = datetime.fromisoformat(done["created_at"])
    processed = datetime.fromisoformat(done["processed_at"])
    assert (processed - created).total_seconds() >= DELAY
    assert done["amount"] == 10.25


def test_duplicate_deliveries_are_stored_and_processed_once(service):
    service.start_web(PROCESSING_DELAY_SECONDS=DELAY)
    service.start_worker(PROCESSING_DELAY_SECONDS=DELAY)
    body = webhook_body()

    codes = [service.post_webhook(body).status_code for _ in range(5)]

    assert codes == [202] * 5
    wait_for(lambda: _status(service, body["transaction_id"])["status"] == "PROCESSED", timeout=DELAY + 20)
    from transactions.models import Transaction

    stored = Transaction.objects.get(transaction_id=body["transaction_id"])
    assert stored.delivery_count == 5
    assert stored.attempts == 1
    assert Transaction.objects.count() == 1
