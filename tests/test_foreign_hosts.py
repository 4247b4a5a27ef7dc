"""A request whose Host is not in ALLOWED_HOSTS is refused with 400 on every path, the
webhook included, in the service's JSON error shape, and nothing is stored. Through real
gunicorn, with static files collected as in production."""

import httpx
import pytest

from tests.factories import webhook_body
from transactions.models import Transaction

pytestmark = pytest.mark.e2e

FOREIGN = {"Host": "evil.example"}
BAD_REQUEST = {"error": "bad_request", "message": "Bad request."}

REQUESTS = [
    ("GET", "/"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("POST", "/v1/webhooks/transactions"),
    ("GET", "/v1/transactions/txn_000001"),
    ("GET", "/admin/login/"),
    ("POST", "/admin/login/"),
    ("GET", "/api/schema/"),
    ("GET", "/api/docs/"),
    ("GET", "/static/admin/css/base.css"),
    ("GET", "/no-such-page"),
]


def test_every_path_answers_a_foreign_host_with_400_in_the_json_error_shape(service, collected_static):
    service.start_web(workers=1, DJANGO_STATIC_ROOT=collected_static)
    body = webhook_body()

    answers = {
        (method, path): httpx.request(method, service.url(path), json=body, headers=FOREIGN, timeout=10)
        for method, path in REQUESTS
    }

    wrong = {
        request: (answer.status_code, answer.text[:80])
        for request, answer in answers.items()
        if answer.status_code != 400 or answer.headers.get("Content-Type") != "application/json"
    }
    assert wrong == {}
    assert all(answer.json() == BAD_REQUEST for answer in answers.values())
    assert not Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()
    # The same requests with an allowed Host get through (the static file is there).
    assert httpx.get(service.url("/static/admin/css/base.css"), timeout=10).status_code == 200


def test_a_webhook_for_a_foreign_host_is_refused_and_not_stored_behind_the_tls_proxy(service):
    service.start_web(workers=1, DJANGO_HTTPS=1)
    foreign, allowed = webhook_body(), webhook_body()
    url = service.url("/v1/webhooks/transactions")
    https = {"X-Forwarded-Proto": "https"}

    refused = httpx.post(url, json=foreign, headers={**https, **FOREIGN}, timeout=10)
    plain_http = httpx.post(url, json=foreign, headers=FOREIGN, timeout=10)
    accepted = httpx.post(url, json=allowed, headers=https, timeout=10)

    assert (refused.status_code, refused.json()) == (400, BAD_REQUEST)
    assert plain_http.status_code == 400  # not a redirect to https://evil.example
    assert accepted.status_code == 202
    assert not Transaction.objects.filter(transaction_id=foreign["transaction_id"]).exists()
    assert Transaction.objects.filter(transaction_id=allowed["transaction_id"]).exists()
