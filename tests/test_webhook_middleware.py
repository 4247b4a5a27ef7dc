"""Webhooks take a short middleware chain (settings.WEBHOOK_MIDDLEWARE, via
webhooks_project/handlers.py): what the admin needs (sessions, CSRF, messages, axes,
static files) is skipped, what protects every response is kept. Run through real
gunicorn in the production (https) configuration, since only wsgi.py routes by path.
"""

import httpx
import pytest

from tests.factories import webhook_body
from transactions.models import Transaction

pytestmark = pytest.mark.e2e

BEHIND_TLS_PROXY = {"X-Forwarded-Proto": "https"}


def test_a_webhook_through_the_short_chain_keeps_the_security_headers_and_request_id(service):
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


def test_other_pages_keep_the_full_chain(service):
    service.start_web(workers=1, DJANGO_HTTPS=1)

    response = httpx.get(service.url("/admin/login/"), headers=BEHIND_TLS_PROXY, timeout=10)

    assert response.status_code == 200
    assert "csrftoken=" in response.headers.get("Set-Cookie", "")  # CsrfViewMiddleware ran
