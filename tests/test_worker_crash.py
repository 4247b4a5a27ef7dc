"""Worker processes die mid-call (SIGKILL, or SIGTERM to one worker): nothing acknowledged is lost.

A transaction whose worker died keeps its lease until PROCESSING_LEASE_SECONDS after
it was claimed; then any worker's next look (a wake-up from new traffic, the startup
wake-up of a restarted cluster, or the minutely sweep) takes it and calls again with
the same idempotency key.
"""

import os
import signal
import threading
import time

import httpx
import pytest
from django.db.models.functions import Now

from tests.processes import (
    FAST_PROCESSING,
    SWEEP_BOUND_SECONDS,
    alive,
    assert_no_overlapping_calls,
    descendants,
    wait_for,
)
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DELAY = FAST_PROCESSING["PROCESSING_DELAY_SECONDS"]
LEASE = FAST_PROCESSING["PROCESSING_LEASE_SECONDS"]


def _calls_started(service, count: int) -> set[int]:
    """Wait until `count` calls are in flight; return the pids making them."""
    in_flight = wait_for(
        lambda: len(c := [call for call in service.external_calls() if call.end is None]) >= count and c,
        timeout=20,
        what=f"{count} external calls in flight",
    )
    return {call.pid for call in in_flight}


def _leases_expired() -> bool:
    return not Transaction.objects.filter(leased_until__gt=Now()).exists()


def _all_processed(ids: list[str]) -> bool:
    return Transaction.objects.filter(transaction_id__in=ids, status=Status.PROCESSED).count() == len(ids)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_worker_process_killed_mid_call_is_replaced_and_its_transactions_are_processed(service, sig):
    service.configure(**FAST_PROCESSING)
    service.start_web()
    cluster = service.start_worker()
    ids = service.post_accepted(5)
    victims = _calls_started(service, 5)

    killed_at = time.monotonic()
    for pid in victims:
        os.kill(pid, sig)  # django-q2 workers keep SIG_DFL: SIGTERM ends one at once, too
    wait_for(lambda: not any(alive(pid) for pid in victims), timeout=10, what="the workers to die")
    # The cluster replaces them; their transactions wait out the lease, then the
    # next look for work (here the wake-up of one more webhook) takes them.
    wait_for(_leases_expired, timeout=LEASE + 5, what="the dead workers' leases to expire")
    ids += service.post_accepted(1)
    wait_for(lambda: _all_processed(ids), timeout=2 * DELAY + 20, what="every transaction PROCESSED")
    print(f"{len(ids)} transactions PROCESSED {time.monotonic() - killed_at:.1f}s after the kill")

    assert cluster.poll() is None
    rows = Transaction.objects.filter(transaction_id__in=ids[:5])
    assert {row.attempts for row in rows} == {2}
    assert all(row.processed_at is not None for row in rows)
    calls_per_key: dict[str, list] = {}
    for call in service.external_calls():
        calls_per_key.setdefault(call.key, []).append(call)
    for row in rows:
        first, second = calls_per_key[str(row.pk)]
        assert first.end is None and first.pid in victims  # died with its worker
        assert second.outcome == "ok" and second.pid not in victims
    assert_no_overlapping_calls(service.external_calls())


def test_sigkill_of_the_main_qcluster_process_takes_its_whole_cluster_down_and_a_restart_finishes_the_work(
    service,
):
    service.configure(**FAST_PROCESSING)
    service.start_web()
    cluster = service.start_worker()
    family = descendants(cluster.pid)
    assert len(family) >= 7  # sentinel, 4 workers, pusher, monitor
    ids = service.post_accepted(3)
    _calls_started(service, 3)

    cluster.send_signal(signal.SIGKILL)
    cluster.wait(timeout=10)
    # No headless sentinel or worker lives on (each is tied to its parent).
    wait_for(lambda: not any(alive(pid) for pid in family), timeout=10, what="the cluster's processes to die")
    assert not any(call.end for call in service.external_calls())

    wait_for(_leases_expired, timeout=LEASE + 5, what="the leases to expire")
    service.start_worker()  # its startup wake-up finds the abandoned transactions
    wait_for(lambda: _all_processed(ids), timeout=DELAY + 20, what="every transaction PROCESSED")
    assert set(Transaction.objects.filter(transaction_id__in=ids).values_list("attempts", flat=True)) == {2}
    assert_no_overlapping_calls(service.external_calls())


@pytest.mark.slow
def test_after_a_cluster_crash_and_an_immediate_restart_the_sweep_finishes_the_work(service):
    service.configure(**FAST_PROCESSING)
    service.start_web()
    cluster = service.start_worker()
    ids = service.post_accepted(5)
    _calls_started(service, 5)

    service.kill_all(cluster)  # every process of the cluster at once, like the OOM killer
    killed_at = time.monotonic()
    service.start_worker()  # back at once: the leases are still held, no traffic follows
    wait_for(
        lambda: _all_processed(ids),
        timeout=LEASE + SWEEP_BOUND_SECONDS + DELAY + 15,
        interval=1,
        what="the sweep to recover every transaction",
    )
    assert_no_overlapping_calls(service.external_calls())
    print(f"recovered {len(ids)} transactions {time.monotonic() - killed_at:.1f}s after the crash")


@pytest.mark.slow
def test_sigkill_of_the_whole_cluster_under_steady_load_loses_nothing_and_recovers_within_lease_and_sweep(
    service,
):
    service.configure(**FAST_PROCESSING)
    service.start_web()
    cluster = service.start_worker()
    acknowledged: list[str] = []
    refused: list[int] = []
    sending = threading.Event()
    sending.set()

    def send_steadily(rate: float = 40) -> None:
        from tests.factories import webhook_body

        with httpx.Client() as client:
            while sending.is_set():
                body = webhook_body()
                status = service.post_webhook(body, client=client).status_code
                (acknowledged.append(body["transaction_id"]) if status == 202 else refused.append(status))
                time.sleep(1 / rate)

    sender = threading.Thread(target=send_steadily)
    sender.start()
    try:
        _calls_started(service, 20)
        service.kill_all(cluster)  # every process of the cluster at once, mid-call, under load
        killed_at = time.monotonic()
        service.start_worker()
        time.sleep(5)  # traffic keeps arriving at the restarted cluster
    finally:
        sending.clear()
        sender.join()

    wait_for(
        lambda: _all_processed(acknowledged),
        timeout=LEASE + SWEEP_BOUND_SECONDS + DELAY + 15,
        interval=1,
        what="every acknowledged webhook PROCESSED",
    )
    recovered = time.monotonic() - killed_at
    stored = set(Transaction.objects.values_list("transaction_id", flat=True))
    assert refused == []
    assert stored == set(acknowledged)  # acknowledged == stored == processed
    calls = service.external_calls()
    assert_no_overlapping_calls(calls)
    interrupted = sum(1 for call in calls if call.end is None)
    assert interrupted >= 20
    assert recovered <= LEASE + SWEEP_BOUND_SECONDS + DELAY
    print(
        f"{len(acknowledged)} acknowledged, {interrupted} calls interrupted, "
        f"all PROCESSED {recovered:.1f}s after the kill"
    )
