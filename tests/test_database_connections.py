"""The web process's database connections.

They come from a pool per web process and are not health-checked before each request
(that would be a second round trip per webhook), so a connection the database dropped
while idle must cost at most a retryable 503, and never a webhook's: a webhook is retried
once on a fresh connection. Prepared statements can be turned off for a transaction-mode pooler.
"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

import pytest
from django.db import connection

from tests.factories import webhook_body
from transactions.models import Transaction

pytestmark = pytest.mark.postgres


def _post(conn: HTTPConnection, body: dict) -> int:
    conn.request("POST", "/v1/webhooks/transactions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status


def _drop_the_service_database_connections() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.mark.e2e
def test_a_webhook_on_a_connection_the_database_dropped_is_stored_on_a_fresh_one(service):
    # One process: the request after the drop meets the pool's dropped connections.
    service.start_web(workers=1)
    conn = HTTPConnection("127.0.0.1", service.port, timeout=10)
    assert _post(conn, webhook_body()) == 202  # the web process now holds a connection
    _drop_the_service_database_connections()
    body = webhook_body()

    status = _post(conn, body)

    assert status == 202
    stored = Transaction.objects.get(transaction_id=body["transaction_id"])
    assert stored.delivery_count == 1
    conn.close()


@pytest.mark.e2e
def test_other_requests_on_a_dropped_connection_get_one_503_then_the_web_process_reconnects(service):
    service.start_web(workers=1)
    conn = HTTPConnection("127.0.0.1", service.port, timeout=10)
    assert _post(conn, webhook_body()) == 202
    _drop_the_service_database_connections()

    conn.request("GET", "/")
    first = conn.getresponse()
    first.read()
    conn.request("GET", "/")
    second = conn.getresponse()
    second.read()

    assert (first.status, second.status) == (503, 200)
    conn.close()


def test_prepared_statements_can_be_turned_off_for_poolers(api, db, settings):
    # A transaction-mode pooler (PgBouncer) hands each transaction another server
    # connection, where a statement prepared on the first one does not exist.
    settings.DATABASE_PREPARED_STATEMENTS = False
    body = webhook_body()

    response = api.post("/v1/webhooks/transactions", body, format="json")

    assert response.status_code == 202
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0


@pytest.mark.e2e
def test_many_client_connections_share_a_few_database_connections_per_web_process(service):
    # Each client connection is a greenlet; without the pool each would keep a database
    # connection of its own, and a few hundred senders would exhaust max_connections.
    service.start_web(workers=2, DATABASE_POOL_SIZE=3)
    clients = [HTTPConnection("127.0.0.1", service.port, timeout=10) for _ in range(60)]
    start = threading.Barrier(len(clients))

    def send(conn: HTTPConnection) -> list[int]:
        start.wait(timeout=10)
        return [_post(conn, webhook_body()) for _ in range(3)]

    with ThreadPoolExecutor(len(clients)) as pool:
        statuses = [s for answers in pool.map(send, clients) for s in answers]
        peak = _service_database_connections()
    for conn in clients:
        conn.close()

    assert statuses == [202] * 180
    assert Transaction.objects.count() == 180
    assert peak <= 2 * 3


def _service_database_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]
