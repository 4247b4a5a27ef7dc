"""The web server as deployed (gunicorn.conf.py), and what its tuning for throughput keeps.

gthread workers keep a sender's connection open between webhooks. Database connections
are persistent and not health-checked before each request (that would be a second round
trip per webhook), so a connection the database dropped while idle must cost at most a
retryable 503, and never a webhook's: a webhook is retried once on a fresh connection.
"""

import gc
import json
import runpy
import socket
from collections import Counter
from http.client import HTTPConnection
from pathlib import Path

import pytest
from django.db import connection

from tests.factories import webhook_body
from tests.processes import ROOT, log_records, wait_for
from transactions.models import Transaction
from transactions.serializers import TransactionWebhookSerializer, WebhookAcceptedSerializer
from transactions.services import IngestResult

pytestmark = pytest.mark.e2e


def _post(conn: HTTPConnection, body: dict) -> tuple[int, dict[str, str]]:
    conn.request("POST", "/v1/webhooks/transactions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


def test_webhooks_from_one_sender_share_one_kept_alive_connection(service):
    service.start_web()
    conn = HTTPConnection("127.0.0.1", service.port, timeout=10)
    bodies = [webhook_body() for _ in range(3)]

    status, headers = _post(conn, bodies[0])
    first_socket = conn.sock
    statuses = [status] + [_post(conn, body)[0] for body in bodies[1:]]

    assert statuses == [202, 202, 202]
    assert headers.get("connection", "").lower() != "close"
    assert conn.sock is first_socket  # no reconnect between webhooks
    assert Transaction.objects.filter(transaction_id__in=[b["transaction_id"] for b in bodies]).count() == 3
    conn.close()


@pytest.mark.postgres
def test_a_webhook_on_a_connection_the_database_dropped_is_stored_on_a_fresh_one(service):
    # One process with one thread: the request after the drop is on the dropped connection.
    service.start_web(workers=1, WEB_THREADS=1)
    conn = HTTPConnection("127.0.0.1", service.port, timeout=10)
    assert _post(conn, webhook_body())[0] == 202  # the web process now holds a connection
    _drop_the_service_database_connections()
    body = webhook_body()

    status, _ = _post(conn, body)

    assert status == 202
    stored = Transaction.objects.get(transaction_id=body["transaction_id"])
    assert stored.delivery_count == 1
    conn.close()


@pytest.mark.postgres
def test_other_requests_on_a_dropped_connection_get_one_503_then_the_web_process_reconnects(service):
    service.start_web(workers=1, WEB_THREADS=1)
    conn = HTTPConnection("127.0.0.1", service.port, timeout=10)
    assert _post(conn, webhook_body())[0] == 202
    _drop_the_service_database_connections()

    conn.request("GET", "/")
    first = conn.getresponse()
    first.read()
    conn.request("GET", "/")
    second = conn.getresponse()
    second.read()

    assert (first.status, second.status) == (503, 200)
    conn.close()


def _drop_the_service_database_connections() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_the_fast_accepted_answer_is_what_its_serializer_renders():
    result = IngestResult("txn_1", "PROCESSING", created=True, conflict=False)

    assert WebhookAcceptedSerializer.represent(result) == WebhookAcceptedSerializer(result).data


def test_each_webhook_serializer_validates_with_fields_of_its_own():
    bad = TransactionWebhookSerializer(data=webhook_body(amount="12", currency="usd"))
    good_body = webhook_body()
    good = TransactionWebhookSerializer(data=good_body)

    assert not bad.is_valid()
    assert good.is_valid(), good.errors
    assert set(bad.errors) == {"amount", "currency"}
    assert good.validated_data["transaction_id"] == good_body["transaction_id"]
    assert bad.fields["amount"] is not good.fields["amount"]
    assert bad.fields["amount"].parent is bad and good.fields["amount"].parent is good
    # The declared fields themselves are never bound to a request's serializer.
    assert TransactionWebhookSerializer._declared_fields["amount"].parent is None


@pytest.mark.postgres
def test_the_webhook_insert_is_prepared_once_per_database_connection(api, db):
    for _ in range(3):
        response = api.post("/v1/webhooks/transactions", webhook_body(), format="json")
        assert response.status_code == 202

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements "
            "WHERE statement LIKE '%%INSERT INTO transactions_transaction%%'"
        )
        assert cursor.fetchone()[0] == 1


@pytest.mark.postgres
def test_prepared_statements_can_be_turned_off_for_poolers(api, db, settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    body = webhook_body()

    response = api.post("/v1/webhooks/transactions", body, format="json")

    assert response.status_code == 202
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0


def test_a_webhook_whose_sender_asks_for_html_is_still_accepted_and_answered_in_json(api, db):
    body = webhook_body()

    response = api.post("/v1/webhooks/transactions", body, format="json", HTTP_ACCEPT="text/html")

    assert response.status_code == 202
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"transaction_id": body["transaction_id"], "status": "PROCESSING"}


def test_a_webhook_body_that_is_not_json_is_still_refused_with_415(api, db):
    response = api.generic("POST", "/v1/webhooks/transactions", "a=1", content_type="text/plain")

    assert response.status_code == 415
    assert Transaction.objects.count() == 0


def test_a_gunicorn_worker_freezes_its_start_up_objects_out_of_the_collector():
    # Full collections then skip the app's long-lived objects: short GIL pauses.
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    before = gc.get_freeze_count()
    try:
        config["post_worker_init"](worker=None)
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_connections_opened_at_once_are_spread_over_the_web_workers(service):
    # Senders open connections in bursts and keep them alive. Had one worker accepted them
    # all (the first to wake takes the shared socket's whole backlog), it would serve them
    # on one core while the other workers sat idle.
    web = service.start_web(workers=4, GUNICORN_ACCESS_LOG="-", GUNICORN_CMD_ARGS="--access-logformat=%(p)s")
    conns = [HTTPConnection("127.0.0.1", service.port, timeout=10) for _ in range(32)]
    for conn in conns:
        conn.connect()

    for conn in conns:
        conn.request("GET", "/")
    for conn in conns:
        assert conn.getresponse().read()
        conn.close()

    served_by = wait_for(
        lambda: _access_log_pids(web.log_path, at_least=32), timeout=10, what="32 access log lines"
    )
    assert len(served_by) >= 3, served_by


def test_the_web_server_refuses_to_start_on_a_port_another_program_listens_on(service):
    with socket.socket() as other:
        other.bind(("0.0.0.0", 0))
        other.listen()
        port = other.getsockname()[1]

        web = service.spawn_web(workers=2, port=port)

        assert web.wait(timeout=30) != 0
    assert f"cannot listen on 0.0.0.0:{port}" in Path(web.log_path).read_text()


def _access_log_pids(log_path: str, at_least: int) -> Counter | None:
    """How many requests each worker pid served: its access log lines read "<pid>" (%(p)s)."""
    pids = Counter(pid for pid, message in log_records(log_path) if message == f"<{pid}>")
    return pids if pids.total() >= at_least else None
