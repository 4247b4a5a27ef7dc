"""PostgreSQL itself restarts (pg_ctlcluster) while webhooks flow and external calls are in
flight: nothing acknowledged is lost, 202s resume within seconds of the database being
back, and gunicorn and qcluster reconnect by themselves.

This restarts the machine's real PostgreSQL server: every other client of it (other test
runs included) loses its connections for a moment.
"""

import json
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path

import pytest
from django.db import connection
from django.db.models.functions import Now

from tests.factories import webhook_body
from tests.processes import FAST_PROCESSING, SWEEP_BOUND_SECONDS, assert_no_overlapping_calls, wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

DELAY = FAST_PROCESSING["PROCESSING_DELAY_SECONDS"]
LEASE = FAST_PROCESSING["PROCESSING_LEASE_SECONDS"]
RATE = 20  # webhooks a second, steadily, before, during and after the restart
RESUME_BOUND = 5  # seconds from the database answering again to the next 202
# Traffic goes on this long after the database is back.
AFTER = RESUME_BOUND + 5


def _local_cluster() -> str | None:
    """The PostgreSQL version whose `main` cluster this test may restart, or None (why not)."""
    if os.geteuid() != 0 or not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return None
    if (connection.settings_dict["HOST"] or "127.0.0.1") not in ("127.0.0.1", "localhost"):
        return None
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if (p / "main").is_dir())
    return versions[-1] if versions else None


def _database_answers() -> bool:
    db = connection.settings_dict
    check = ["pg_isready", "-q", "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432)]
    return subprocess.run(check, check=False, timeout=10).returncode == 0


@dataclass
class Delivery:
    transaction_id: str
    sent: float
    answered: float
    status: int | None  # None: no answer (refused, reset, timed out)


class SteadySender:
    """Sends RATE webhooks a second, each on a new connection, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.deliveries: list[Delivery] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(16)
        self._futures: list[Future] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _send(self) -> None:
        body = webhook_body()
        sent = time.monotonic()
        conn = HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                "POST", "/v1/webhooks/transactions", json.dumps(body), {"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = None
        finally:
            conn.close()
        self.deliveries.append(Delivery(body["transaction_id"], sent, time.monotonic(), status))

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._futures.append(self._pool.submit(self._send))
            next_at += 1 / RATE
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for future in self._futures:
            future.result(timeout=30)
        self._pool.shutdown()


def test_after_a_postgresql_restart_under_load_nothing_acknowledged_is_lost(service):
    version = _local_cluster()
    if version is None:
        pytest.skip("needs root, pg_ctlcluster and the test database on this host's PostgreSQL cluster")
    service.configure(**FAST_PROCESSING)
    web = service.start_web()
    cluster = service.start_worker()
    sender = SteadySender(service.port)
    sender.start()
    try:
        wait_for(
            lambda: len([c for c in service.external_calls() if c.end is None]) >= 5,
            timeout=20,
            what="external calls in flight",
        )
        restart = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
        restarted_at = time.monotonic()
        subprocess.run(restart, check=True, timeout=120, capture_output=True)
        wait_for(_database_answers, timeout=60, interval=0.1, what="pg_isready")
        ready_at = time.monotonic()
        time.sleep(AFTER)
    finally:
        sender.stop()
    connection.close()  # ours was ended by the restart

    deliveries = sender.deliveries
    acknowledged = [d.transaction_id for d in deliveries if d.status == 202]
    first_202_after = min(d.answered for d in deliveries if d.status == 202 and d.answered >= ready_at)
    refused = [d for d in deliveries if d.status != 202]
    print(
        f"{len(deliveries)} webhooks, {len(acknowledged)} acknowledged; the restart took "
        f"{ready_at - restarted_at:.1f}s; the first 202 came {first_202_after - ready_at:.2f}s after "
        f"pg_isready; not acknowledged: {[(d.status, round(d.sent - restarted_at, 1)) for d in refused]}"
    )
    # Senders retry whatever was not acknowledged; a refusal must be a quick, retryable 503.
    assert {d.status for d in refused} <= {503}
    assert first_202_after - ready_at < RESUME_BOUND
    assert all(d.status == 202 for d in deliveries if d.sent >= ready_at + RESUME_BOUND)

    # Interrupted calls wait out their leases; then a wake-up (or the sweep) takes them.
    wait_for(
        lambda: not Transaction.objects.filter(leased_until__gt=Now()).exists(),
        timeout=LEASE + 10,
        what="the interrupted leases to expire",
    )
    acknowledged += service.post_accepted(1)
    wait_for(
        lambda: (
            Transaction.objects.filter(transaction_id__in=acknowledged, status=Status.PROCESSED).count()
            == len(acknowledged)
        ),
        timeout=SWEEP_BOUND_SECONDS + LEASE + DELAY + 15,
        interval=1,
        what="every acknowledged transaction PROCESSED",
    )
    assert web.poll() is None and cluster.poll() is None  # recovered without a restart of either
    assert_no_overlapping_calls(service.external_calls())
