"""gunicorn is killed outright while webhooks stream in: every 202 was a stored transaction."""

import threading
import uuid

import httpx
import pytest

from tests.factories import webhook_body
from tests.processes import FAST_PROCESSING, wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SENDERS = 4


def test_every_webhook_acknowledged_before_gunicorn_was_killed_is_stored_and_processed(service):
    service.configure(**FAST_PROCESSING)
    web = service.start_web(workers=2)
    service.start_worker()
    acknowledged: set[str] = set()
    unanswered: list[str] = []
    killed = threading.Event()

    def sender() -> None:
        with httpx.Client() as client:
            while not killed.is_set():
                body = webhook_body(transaction_id=f"crash_{uuid.uuid4().hex[:16]}")
                try:
                    response = service.post_webhook(body, client)
                except httpx.HTTPError:
                    unanswered.append(body["transaction_id"])
                    continue
                if response.status_code == 202:
                    acknowledged.add(body["transaction_id"])

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(acknowledged) >= 100, timeout=30, what="webhooks streaming in")
        service.kill_all(web)  # master and workers, mid-stream
        wait_for(lambda: unanswered, timeout=10, what="a sender to see the crash")
    finally:
        killed.set()
        for thread in threads:
            thread.join(timeout=30)

    stored = set(
        Transaction.objects.filter(transaction_id__in=acknowledged).values_list("transaction_id", flat=True)
    )
    assert stored == acknowledged  # no 202 without a stored transaction
    service.start_web(workers=2)  # back on the same port; the sender's retry lands
    for transaction_id in unanswered[:5]:
        assert service.post_webhook(webhook_body(transaction_id=transaction_id)).status_code == 202
    everything = acknowledged | set(unanswered[:5])
    wait_for(
        lambda: (
            Transaction.objects.filter(transaction_id__in=everything, status=Status.PROCESSED).count()
            == len(everything)
        ),
        timeout=60,
        interval=0.5,
        what="every acknowledged transaction PROCESSED",
    )
    assert Transaction.objects.filter(transaction_id__in=everything).exclude(attempts=1).count() == 0
