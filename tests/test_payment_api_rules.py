"""The payment API's rules without processes: how answers are classified, how outcomes
are recorded, and how the cluster-wide caps bound claims.

tests/test_payment_api_outcomes.py and friends show the same rules end to end, against
the fake provider as a real HTTP server.
"""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.db.models.functions import Now

from tests.factories import stored_transaction
from transactions import services
from transactions.models import Status, Transaction
from transactions.payment_api import error_from_response, parse_retry_after
from transactions.services import Failure, claim_due_transactions

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (402, True),
        (404, True),
        (422, True),
        (408, False),
        (409, False),
        (429, False),
        (500, False),
    ],
)
def test_4xx_answers_are_permanent_except_408_409_and_429_and_5xx_are_retried(status, permanent):
    error = error_from_response(httpx.Response(status, text="card declined"))

    assert error is not None and error.permanent is permanent
    assert f"HTTP {status}" in str(error) and "card declined" in str(error)


def test_a_2xx_answer_is_no_error():
    assert error_from_response(httpx.Response(201, json={"id": "pay_1"})) is None


def test_the_providers_error_body_is_kept_only_in_part():
    error = error_from_response(httpx.Response(400, text="x" * 100_000))

    assert len(str(error)) < 1000


def test_retry_after_is_read_in_seconds_or_as_an_http_date():
    now = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)

    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 25 Nov 2026 10:00:30 GMT", now=now) == 30
    assert parse_retry_after("Wed, 25 Nov 2026 09:00:00 GMT", now=now) == 0  # already past
    assert parse_retry_after("soon") is None
    assert parse_retry_after("\u00b2") is None  # a digit to str.isdigit(), not to float()
    assert parse_retry_after(None) is None
    assert parse_retry_after("99999999") == 3600  # capped


def test_a_retryable_answer_carries_the_providers_retry_after():
    error = error_from_response(httpx.Response(429, headers={"Retry-After": "12"}))

    assert error is not None and not error.permanent and error.retry_after == 12


def test_a_permanent_failure_is_failed_at_the_first_attempt_with_its_error(settings):
    settings.PROCESSING_MAX_ATTEMPTS = 5
    txn = stored_transaction()
    [claim] = claim_due_transactions(limit=1)

    counts = services.record_outcomes([(claim, Failure("HTTP 402: card declined", permanent=True))])

    txn.refresh_from_db()
    assert counts["failed"] == 1
    assert (txn.status, txn.attempts, txn.last_error) == (Status.FAILED, 1, "HTTP 402: card declined")


def test_a_retry_waits_for_the_providers_retry_after_when_it_is_longer_than_the_backoff(settings):
    settings.PROCESSING_RETRY_BACKOFF_SECONDS = 1
    slow, quick = stored_transaction(), stored_transaction()
    claims = {claim.pk: claim for claim in claim_due_transactions(limit=2)}

    services.record_outcomes(
        [
            (claims[slow.pk], Failure("HTTP 429", retry_after=120)),
            (claims[quick.pk], Failure("HTTP 503", retry_after=0.5)),
        ]
    )

    waits = {
        pk: due - now
        for pk, due, now in Transaction.objects.annotate(now=Now()).values_list(
            "pk", "next_attempt_at", "now"
        )
    }
    assert timedelta(seconds=119) < waits[slow.pk] <= timedelta(seconds=120)
    assert timedelta(0) < waits[quick.pk] <= timedelta(seconds=1)  # the backoff, longer


def test_claims_never_exceed_the_concurrency_cap_until_calls_finish(settings):
    settings.PAYMENT_API_MAX_CONCURRENCY = 2
    for _ in range(5):
        stored_transaction()

    first = claim_due_transactions(limit=10)
    second = claim_due_transactions(limit=10)
    services.record_outcomes([(first[0], None)])
    third = claim_due_transactions(limit=10)

    assert (len(first), len(second), len(third)) == (2, 0, 1)


def test_claims_never_exceed_the_rate_cap(settings):
    settings.PAYMENT_API_MAX_RATE = 3
    for _ in range(10):
        stored_transaction()

    first = claim_due_transactions(limit=10)
    second = claim_due_transactions(limit=10)

    # A full bucket holds one second's worth; the next claim, a moment later, gets
    # only what refilled meanwhile.
    assert len(first) == 3
    assert len(second) <= 1


def test_without_caps_a_claim_takes_all_it_asks_for(settings):
    settings.PAYMENT_API_MAX_CONCURRENCY = 0
    settings.PAYMENT_API_MAX_RATE = 0
    for _ in range(5):
        stored_transaction()

    assert len(claim_due_transactions(limit=10)) == 5
