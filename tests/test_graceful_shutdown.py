"""SIGTERM: qcluster finishes or hands back its calls; gunicorn finishes its requests.

Both are stopped the way docs/operations.md says: SIGTERM to the main process only.
"""

import json
import os
import signal
import socket
import time

import pytest
from django.db.models.functions import Now

from tests.factories import webhook_body
from tests.processes import FAST_PROCESSING, alive, assert_no_overlapping_calls, descendants, wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def _calls_in_flight(service, count: int = 3) -> tuple:
    """Start web and qcluster, send `count` webhooks, wait until their calls are in flight.

    Returns the qcluster process and the transaction ids.
    """
    service.start_web()
    cluster = service.start_worker()
    ids = service.post_accepted(count)
    wait_for(
        lambda: sum(call.end is None for call in service.external_calls()) >= count,
        timeout=20,
        what=f"{count} calls in flight",
    )
    return cluster, ids


def test_sigterm_to_qcluster_lets_the_calls_in_flight_finish(service):
    service.configure(**FAST_PROCESSING)  # a 2 s call, well inside the 10 s grace
    cluster, ids = _calls_in_flight(service)

    assert service.stop(cluster, signal.SIGTERM, timeout=30) == 0

    rows = Transaction.objects.filter(transaction_id__in=ids)
    assert {(row.status, row.attempts) for row in rows} == {(Status.PROCESSED, 1)}
    assert [call.outcome for call in service.external_calls()] == ["ok"] * 3


def test_sigterm_to_qcluster_hands_back_calls_that_outlast_the_grace_and_a_restart_processes_them(service):
    service.configure(
        PROCESSING_DELAY_SECONDS=30,
        PROCESSING_CALL_TIMEOUT_SECONDS=35,
        PROCESSING_LEASE_SECONDS=300,  # only the hand-back, not an expiry, can free them
        PROCESSING_SHUTDOWN_GRACE_SECONDS=1,
    )
    cluster, ids = _calls_in_flight(service)

    assert service.stop(cluster, signal.SIGTERM, timeout=30) == 0

    rows = Transaction.objects.filter(transaction_id__in=ids)
    assert {(row.status, row.attempts, row.lease_token) for row in rows} == {(Status.PROCESSING, 0, None)}
    assert [call.outcome for call in service.external_calls()] == ["cancelled"] * 3
    service.start_worker(PROCESSING_DELAY_SECONDS=1)  # its startup wake-up takes them at once
    wait_for(
        lambda: Transaction.objects.filter(transaction_id__in=ids, status=Status.PROCESSED).count() == 3,
        timeout=20,
        what="the handed-back transactions PROCESSED",
    )
    assert {row.attempts for row in rows.all()} == {1}
    assert_no_overlapping_calls(service.external_calls())


def test_sigterm_to_gunicorn_finishes_the_request_in_flight(service):
    web = service.start_web(workers=1)
    body = json.dumps(webhook_body()).encode()
    head = (
        "POST /v1/webhooks/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()

    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as client:
        client.sendall(head + body[:10])  # the worker is now reading this request's body
        time.sleep(1)
        web.send_signal(signal.SIGTERM)
        time.sleep(1)
        client.sendall(body[10:])
        response = b""
        while chunk := client.recv(65536):
            response += chunk

    assert response.startswith(b"HTTP/1.1 202"), response
    assert web.wait(timeout=30) == 0
    assert Transaction.objects.filter(transaction_id=json.loads(body)["transaction_id"]).exists()


def test_sigterm_to_the_process_group_reaches_only_the_main_process_which_stops_gracefully(service):
    # Ctrl-C in a terminal, honcho (`make run`, the Docker image) and supervisor's
    # stopasgroup signal the process group: the sentinel and workers are not in it.
    service.configure(**FAST_PROCESSING)
    cluster, ids = _calls_in_flight(service)
    family = descendants(cluster.pid)

    os.killpg(cluster.pid, signal.SIGTERM)

    assert cluster.wait(timeout=30) == 0
    assert not any(alive(pid) for pid in family)
    rows = Transaction.objects.filter(transaction_id__in=ids)
    assert {(row.status, row.attempts) for row in rows} == {(Status.PROCESSED, 1)}
    assert [call.outcome for call in service.external_calls()] == ["ok"] * 3


def test_sigterm_to_every_process_of_qcluster_ends_it_and_a_restart_finishes_the_work(service):
    # systemd's default KillMode=control-group signals every process of the service:
    # the sentinel and workers die at once, so this is a crash, not a graceful stop;
    # but the main process must end rather than hang, and nothing may be lost.
    service.configure(**FAST_PROCESSING)
    cluster, ids = _calls_in_flight(service)
    family = descendants(cluster.pid)

    service.kill_all(cluster, signal.SIGTERM)

    wait_for(lambda: not any(alive(pid) for pid in family), timeout=10, what="every cluster process to end")
    wait_for(
        lambda: not Transaction.objects.filter(leased_until__gt=Now()).exists(),
        timeout=FAST_PROCESSING["PROCESSING_LEASE_SECONDS"] + 5,
        what="the abandoned leases to expire",
    )
    service.start_worker()
    wait_for(
        lambda: Transaction.objects.filter(transaction_id__in=ids, status=Status.PROCESSED).count() == 3,
        timeout=20,
        what="the abandoned transactions PROCESSED",
    )
    assert_no_overlapping_calls(service.external_calls())
