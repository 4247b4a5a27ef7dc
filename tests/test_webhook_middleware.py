"""Webhooks go through the one MIDDLEWARE chain: what protects every response is kept,
the admin's middleware stays lazy (no session, no cookie), and django-prometheus' request
metrics leave webhooks out (they have their own counters). Run through real gunicorn in
the production (https) configuration.
"""

import httpx
import pytest

from tests.factories import webhook_body
from transactions.models import Transaction

pytestmark = pytest.mark.e2e

BEHIND_TLS_PROXY = {"X-Forwarded-Proto": "https"}


def test_a_webhook_keeps_the_security_headers_and_request_id(service):
    service.start_web(workers=1, DJANGO_HTTPS=1)
    body = webhook_body()

    response = httpx.post(
        service.url("/v1/webhooks/transactions"),
        json=body,
        headers={**BEHIND_TLS_PROXY, "X-Request-ID": "sender-req-42"},
        timeout=10,
    )

    assert response.status_code == 202
    assert response.headers["X-Request-ID"] == "sender-req-42"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in response.headers
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()


def test_a_plain_http_webhook_is_still_redirected_to_https_and_not_stored(service):
    service.start_web(workers=1, DJANGO_HTTPS=1)
    body = webhook_body()

    response = httpx.post(service.url("/v1/webhooks/transactions"), json=body, timeout=10)

    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://")
    assert not Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()


def test_webhooks_are_left_out_of_the_request_metrics_that_other_pages_still_feed(service):
    service.start_web(workers=1, DJANGO_HTTPS=1)  # one process: one set of counters
    webhook = httpx.post(
        service.url("/v1/webhooks/transactions"), json=webhook_body(), headers=BEHIND_TLS_PROXY, timeout=10
    )
    health = httpx.get(service.url("/"), headers=BEHIND_TLS_PROXY, timeout=10)

    metrics = httpx.get(service.url("/metrics"), headers=BEHIND_TLS_PROXY, timeout=10).text

    assert (webhook.status_code, health.status_code) == (202, 200)
    request_lines = [
        line for line in metrics.splitlines() if line.startswith("django_http_requests_total_by_view")
    ]
    assert any('view="health"' in line for line in request_lines)
    assert not any('view="webhook"' in line for line in request_lines)
    assert 'webhooks_received_total{result="new"} 1.0' in metrics
