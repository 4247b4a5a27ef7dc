"""A webhook streamed with `Transfer-Encoding: chunked` and no Content-Length (as Go, Node
and Java clients send one) is accepted and stored like any other, under the same body
limit; the answers carry a Content-Length. Through real gunicorn."""

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.factories import webhook_body
from transactions.models import Transaction

pytestmark = pytest.mark.e2e

LIMIT = 64 * 1024  # WEBHOOK_MAX_BODY_BYTES' default


def chunked(content: bytes, size: int = 1000) -> Iterator[bytes]:
    """The body in pieces: httpx sends an iterator chunked, without a Content-Length."""
    for start in range(0, len(content), size):
        yield content[start : start + size]


def padded(body: dict, length: int) -> bytes:
    """`body` as JSON of exactly `length` bytes (trailing whitespace is still valid JSON)."""
    content = json.dumps(body).encode()
    return content + b" " * (length - len(content))


def post_chunked(client: httpx.Client, url: str, content: bytes) -> httpx.Response:
    return client.post(
        url, content=chunked(content), headers={"Content-Type": "application/json"}, timeout=10
    )


def test_a_chunked_webhook_is_accepted_and_stored_and_answered_with_a_content_length(service):
    service.start_web(workers=1)
    body = webhook_body()

    with httpx.Client() as client:
        response = post_chunked(client, service.url("/v1/webhooks/transactions"), json.dumps(body).encode())

    assert response.status_code == 202
    assert response.json() == {"transaction_id": body["transaction_id"], "status": "PROCESSING"}
    assert response.headers["Content-Length"] == str(len(response.content))
    assert "Transfer-Encoding" not in response.headers
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()


def test_a_chunked_webhook_at_the_body_limit_is_accepted(service):
    service.start_web(workers=1)
    body = webhook_body()

    with httpx.Client() as client:
        response = post_chunked(client, service.url("/v1/webhooks/transactions"), padded(body, LIMIT))

    assert response.status_code == 202
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()


def test_a_chunked_webhook_past_the_body_limit_is_refused_with_413_and_not_stored(service):
    service.start_web(workers=1)
    too_big, next_one = webhook_body(), webhook_body()
    url = service.url("/v1/webhooks/transactions")

    with httpx.Client() as client:
        refused = post_chunked(client, url, padded(too_big, LIMIT + 1))
        # The same connection still serves the sender's next webhook.
        accepted = post_chunked(client, url, json.dumps(next_one).encode())

    assert refused.status_code == 413
    assert refused.json()["error"] == "payload_too_large"
    assert refused.headers["Content-Length"] == str(len(refused.content))
    assert not Transaction.objects.filter(transaction_id=too_big["transaction_id"]).exists()
    assert accepted.status_code == 202
    assert Transaction.objects.filter(transaction_id=next_one["transaction_id"]).exists()
