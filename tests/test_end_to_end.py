"""The whole service as deployed: gunicorn + qcluster processes, over HTTP."""

import re
from datetime import datetime

import httpx
import pytest

from tests.factories import webhook_body
from tests.processes import wait_for
from transactions.signatures import fingerprint, generate_secret

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


def test_a_signed_webhook_links_to_its_status_and_is_counted_for_its_secret(service, tmp_path):
    new, old = generate_secret(), generate_secret()
    service.start_web(
        WEBHOOK_SECRETS=f"{new},{old}",
        PROMETHEUS_MULTIPROC_DIR=tmp_path / "prometheus",
        STATUS_API_PUBLIC=1,
    )
    body = webhook_body()

    response = service.post_webhook(body, secret=old)

    assert response.status_code == 202
    followed = httpx.get(service.url(response.headers["Location"]), timeout=10)
    assert followed.status_code == 200 and followed.json()["transaction_id"] == body["transaction_id"]
    metrics = httpx.get(service.url("/metrics"), timeout=10).text
    assert f'webhooks_verified_total{{secret="{fingerprint(old)}"}} 1.0' in metrics
    arrived = datetime.fromisoformat(followed.json()["created_at"]).timestamp()
    match = re.search(r"^transactions_last_received_timestamp_seconds (\S+)$", metrics, re.MULTILINE)
    assert match and float(match.group(1)) == pytest.approx(arrived, abs=0.001)
