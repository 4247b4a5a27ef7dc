"""GET /metrics: Prometheus metrics, the service's own among them, for permitted scrapers only."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import stored_transaction, webhook_body
from transactions import signatures
from transactions.models import Status, Transaction

pytestmark = pytest.mark.django_db


def _scrape(client, **headers) -> str:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def _value(text: str, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        rf"^{re.escape(name)}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    )
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_webhooks_received_duplicated_and_rejected_are_counted(client):
    before = _scrape(client)
    body = webhook_body()

    for _ in range(3):
        assert (
            client.post("/v1/webhooks/transactions", body, content_type="application/json").status_code == 202
        )
    assert (
        client.post("/v1/webhooks/transactions", {"amount": 1}, content_type="application/json").status_code
        == 400
    )

    after = _scrape(client)
    for name, labels, increase in [
        ("webhooks_received_total", {"result": "new"}, 1),
        ("webhooks_received_total", {"result": "duplicate"}, 2),
        ("webhooks_rejected_total", {"error": "invalid_payload", "status": "400"}, 1),
    ]:
        assert _value(after, name, **labels) - _value(before, name, **labels) == increase, name


def test_backlog_and_oldest_pending_age_are_read_from_the_database_at_scrape_time(client):
    oldest = stored_transaction()
    Transaction.objects.filter(pk=oldest.pk).update(
        created_at=timezone.now() - timedelta(minutes=10),
        next_attempt_at=timezone.now() - timedelta(minutes=2),
    )
    stored_transaction()

    text = _scrape(client)

    assert _value(text, "transactions_backlog", kind="due_transactions") == 2
    assert 120 <= _value(text, "transactions_backlog_oldest_due_seconds") < 180
    assert 600 <= _value(text, "transactions_oldest_pending_age_seconds") < 700
    assert _value(text, "transactions_status", status="PROCESSING") == 2
    assert _value(text, "transactions_collector_up") == 1


def test_django_request_metrics_are_exported(client):
    client.get("/")

    assert "django_http_requests_total_by_method_total" in _scrape(client)


def test_metrics_refuse_remote_scrapers_without_a_token(client):
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


def test_metrics_need_the_bearer_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "s3cret"

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert (
        client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    )
    assert (
        client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    )


def test_processing_lag_percentiles_cover_the_recently_processed_transactions(client):
    now = timezone.now()
    for lag in range(1, 101):  # lags of 1..100 s, processed within the window
        txn = stored_transaction()
        Transaction.objects.filter(pk=txn.pk).update(
            status=Status.PROCESSED, processed_at=now, created_at=now - timedelta(seconds=lag)
        )
    long_ago = stored_transaction()  # outside the window: not counted
    Transaction.objects.filter(pk=long_ago.pk).update(
        status=Status.PROCESSED, processed_at=now - timedelta(hours=1), created_at=now - timedelta(hours=2)
    )

    text = _scrape(client)

    assert _value(text, "transactions_processing_lag_seconds", quantile="0.5") == pytest.approx(50, abs=0.5)
    assert _value(text, "transactions_processing_lag_seconds", quantile="0.99") == pytest.approx(99, abs=0.5)


def test_verified_webhooks_are_counted_per_secret_fingerprint(client, settings):
    new, old = signatures.generate_secret(), signatures.generate_secret()
    settings.WEBHOOK_SECRETS = [new, old]
    before = _scrape(client)

    for secret in [new, old, old]:
        raw = json.dumps(webhook_body()).encode()
        headers = signatures.signed_headers(secret=secret, msg_id="m", body=raw)
        response = client.post(
            "/v1/webhooks/transactions", raw, content_type="application/json", headers=headers
        )
        assert response.status_code == 202

    after = _scrape(client)
    for secret, increase in [(new, 1), (old, 2)]:
        labels = {"secret": signatures.fingerprint(secret)}
        assert (
            _value(after, "webhooks_verified_total", **labels)
            - _value(before, "webhooks_verified_total", **labels)
            == increase
        )
    assert new not in after and old not in after


def test_the_time_of_the_last_accepted_webhook_is_read_from_the_database(client):
    assert not re.search(r"^transactions_last_received_timestamp_seconds ", _scrape(client), re.M)  # none yet
    newest = timezone.now() - timedelta(minutes=7)
    for age in (timedelta(0), timedelta(hours=1)):
        txn = stored_transaction()
        Transaction.objects.filter(pk=txn.pk).update(created_at=newest - age)

    text = _scrape(client)

    assert _value(text, "transactions_last_received_timestamp_seconds") == pytest.approx(newest.timestamp())
