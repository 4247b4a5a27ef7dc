"""The web server as deployed (gunicorn.conf.py), and what its tuning for throughput keeps.

gthread workers keep a sender's connection open between webhooks. Database connections
are persistent and not health-checked before each request (that would be a second round
trip per webhook): a connection that went away costs one retryable 503, after which the
web process reconnects; nothing is ever stored-but-refused twice or accepted-but-lost.
"""

import json
from http.client import HTTPConnection

import pytest
from django.db import connection

from tests.factories import webhook_body
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
def test_a_dropped_database_connection_costs_one_retryable_503_then_webhooks_are_accepted(service):
    # One process with one thread: the request after the drop is on the dropped connection.
    service.start_web(workers=1, WEB_THREADS=1)
    conn = HTTPConnection("127.0.0.1", service.port, timeout=10)
    assert _post(conn, webhook_body())[0] == 202  # the web process now holds a connection
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    refused, accepted = webhook_body(), webhook_body()

    status, headers = _post(conn, refused)
    retried = [_post(conn, refused)[0], _post(conn, accepted)[0]]

    assert status == 503
    assert "retry-after" in headers
    assert retried == [202, 202]  # the sender's retry, on a fresh connection
    assert Transaction.objects.filter(transaction_id=refused["transaction_id"]).count() == 1
    assert Transaction.objects.filter(transaction_id=accepted["transaction_id"]).count() == 1
    conn.close()


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
