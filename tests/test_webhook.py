"""POST /v1/webhooks/transactions: accept, store once, refuse bad input clearly."""

import json
import logging
from decimal import Decimal

import pytest

from tests.factories import webhook_body
from transactions.models import Status, Transaction

URL = "/v1/webhooks/transactions"


def post_json(api, body, **extra):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return api.generic("POST", URL, raw, content_type="application/json", **extra)


def test_new_webhook_is_accepted_and_stored_as_processing(api, db):
    body = webhook_body(amount=1500)

    response = post_json(api, body)

    assert response.status_code == 202
    assert response.json() == {"transaction_id": body["transaction_id"], "status": "PROCESSING"}
    stored = Transaction.objects.get(transaction_id=body["transaction_id"])
    assert stored.status == Status.PROCESSING
    assert (stored.source_account, stored.destination_account) == ("acc_user_1", "acc_merchant_1")
    assert (stored.amount, stored.currency) == (Decimal("1500"), "INR")
    assert stored.delivery_count == 1
    assert stored.processed_at is None
    assert stored.payload == body


def test_the_answer_links_to_the_transaction_status_for_new_and_duplicate_deliveries(api, db, settings):
    settings.STATUS_API_PUBLIC = True
    body = webhook_body()

    answers = [post_json(api, body), post_json(api, body)]

    for answer in answers:
        assert answer.status_code == 202
        assert answer["Location"] == f"/v1/transactions/{body['transaction_id']}"
    followed = api.get(answers[0]["Location"])
    assert followed.status_code == 200
    assert followed.json()["transaction_id"] == body["transaction_id"]


def test_new_webhook_is_due_for_processing_at_once(api, db):
    # That a worker then takes it without waiting for the sweep is proven end to end
    # (tests/test_end_to_end.py), whatever the django-q2 broker.
    body = webhook_body()

    post_json(api, body)

    assert Transaction.objects.due().filter(transaction_id=body["transaction_id"]).exists()


def test_duplicate_webhook_is_stored_once(api, db):
    body = webhook_body()

    responses = [post_json(api, body) for _ in range(3)]

    assert [r.status_code for r in responses] == [202, 202, 202]
    stored = Transaction.objects.get(transaction_id=body["transaction_id"])
    assert Transaction.objects.count() == 1
    assert stored.delivery_count == 3
    assert stored.has_conflict is False


def test_duplicate_reports_the_current_status(api, db):
    body = webhook_body()
    post_json(api, body)
    Transaction.objects.filter(transaction_id=body["transaction_id"]).update(
        status=Status.FAILED, last_error="x"
    )

    assert post_json(api, body).json()["status"] == "FAILED"


def test_conflicting_duplicate_keeps_the_first_version_and_is_flagged(api, db, caplog):
    first = webhook_body(amount=10)
    post_json(api, first)

    with caplog.at_level(logging.WARNING, logger="transactions"):
        response = post_json(api, dict(first, amount=99, destination_account="acc_other"))

    assert response.status_code == 202
    stored = Transaction.objects.get(transaction_id=first["transaction_id"])
    assert (stored.amount, stored.destination_account) == (Decimal("10"), "acc_merchant_1")
    assert stored.payload == first
    assert (stored.delivery_count, stored.has_conflict) == (2, True)
    assert f"conflicting duplicate webhook transaction_id={first['transaction_id']}" in caplog.text


@pytest.mark.parametrize(
    ("field", "other_value"),
    [
        ("source_account", "acc_user_2"),
        ("destination_account", "acc_merchant_2"),
        ("amount", 1500.01),
        ("currency", "USD"),
    ],
)
def test_a_redelivery_differing_in_one_field_alone_is_flagged_as_a_conflict(api, db, field, other_value):
    first = webhook_body()
    post_json(api, first)

    response = post_json(api, dict(first, **{field: other_value}))

    assert response.status_code == 202
    stored = Transaction.objects.get(transaction_id=first["transaction_id"])
    assert (stored.delivery_count, stored.has_conflict) == (2, True)
    assert getattr(stored, field) == first[field]  # the first version is kept
    assert stored.payload == first


def test_same_amount_written_differently_is_not_a_conflict(api, db):
    body = webhook_body(amount=15)
    post_json(api, body)

    post_json(api, json.dumps(body).replace('"amount": 15', '"amount": 15.00'))

    assert Transaction.objects.get().has_conflict is False


@pytest.mark.parametrize(
    ("amount_json", "expected"),
    [("1500", "1500"), ("10.5", "10.5"), ("0.01", "0.01"), ("999999999999.99", "999999999999.99")],
)
def test_amount_is_stored_exactly(api, db, amount_json, expected):
    body = json.dumps(webhook_body(amount=0)).replace('"amount": 0', f'"amount": {amount_json}')

    assert post_json(api, body).status_code == 202
    assert Transaction.objects.get().amount == Decimal(expected)


def test_unknown_extra_fields_are_accepted_and_kept_in_the_payload(api, db):
    body = webhook_body(metadata={"order": 42, "note": "gift"})

    assert post_json(api, body).status_code == 202
    assert Transaction.objects.get().payload["metadata"] == {"order": 42, "note": "gift"}


# --- bad input: a clear 4xx naming the field, nothing stored -------------------------

INVALID_FIELDS = [
    # missing fields
    ("transaction_id", None),
    ("source_account", None),
    ("destination_account", None),
    ("amount", None),
    ("currency", None),
    # wrong types
    ("transaction_id", 123),
    ("source_account", ["acc"]),
    ("destination_account", {"id": "acc"}),
    ("amount", "1500"),
    ("amount", True),
    ("amount", None),
    ("currency", 978),
    # empty and over-long strings
    ("transaction_id", ""),
    ("source_account", ""),
    ("transaction_id", "t" * 65),
    ("destination_account", "a" * 65),
    # control, NUL and other characters that are not identifiers
    ("transaction_id", "txn\x00abc"),
    ("transaction_id", "txn\nabc"),
    ("source_account", "acc\x07"),
    ("transaction_id", "txn abc"),
    ("transaction_id", "txn/abc"),
    ("transaction_id", "tx\u00e9"),
    ("transaction_id", " txn"),
    # amounts that are not a positive number with at most two decimals, or too large
    ("amount", 0),
    ("amount", -5),
    ("amount", 1.001),
    ("amount", 10**12),
    ("amount", 1e300),
    # currencies that are not ISO 4217
    ("currency", "inr"),
    ("currency", "XYZ"),
    ("currency", "US"),
    ("currency", "USDD"),
    ("currency", ""),
]


@pytest.mark.parametrize(("field", "value"), INVALID_FIELDS)
def test_invalid_field_is_rejected_by_name_and_nothing_is_stored(api, db, field, value):
    body = webhook_body()
    if value is None and field != "amount":
        del body[field]
    else:
        body[field] = value

    response = post_json(api, body)

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_payload"
    assert field in response.json()["fields"]
    assert Transaction.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        '{"transaction_id": "t1",}',
        "not json",
        '{"amount": NaN}',
        '{"amount": Infinity}',
        "[" * 30_000 + "]" * 30_000,  # nested deeper than the parser can go
        b"\xff\xfe{}",
    ],
)
def test_malformed_json_is_a_400_and_nothing_is_stored(api, db, raw):
    response = post_json(api, raw)

    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"
    assert Transaction.objects.count() == 0


@pytest.mark.parametrize("raw", ["[]", '"a string"', "42", "null", "[{}]"])
def test_body_that_is_not_an_object_is_a_400(api, db, raw):
    response = post_json(api, raw)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"
    assert Transaction.objects.count() == 0


def test_empty_body_is_a_400(api, db):
    response = api.generic("POST", URL, "", content_type="application/json")

    assert response.status_code == 400
    assert Transaction.objects.count() == 0


def test_nul_in_an_extra_field_is_a_400_not_a_database_error(api, db):
    response = post_json(api, webhook_body(note="a\x00b"))

    assert response.status_code == 400
    assert "payload" in response.json()["fields"]
    assert Transaction.objects.count() == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_wrong_content_type_is_a_415(api, db, content_type):
    response = api.generic("POST", URL, json.dumps(webhook_body()), content_type=content_type)

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert Transaction.objects.count() == 0


def test_body_over_the_limit_is_refused_with_413(api, db, settings):
    body = webhook_body(padding="x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE)

    response = post_json(api, body)

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert Transaction.objects.count() == 0


def test_oversized_content_length_is_refused_before_the_body_is_read(api, db):
    # The header alone decides: the (small) body is never read.
    response = post_json(api, webhook_body(), CONTENT_LENGTH=str(10 * 1024 * 1024))

    assert response.status_code == 413
    assert Transaction.objects.count() == 0


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_wrong_method_is_a_405(api, db, method):
    response = getattr(api, method)(URL)

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_each_webhook_is_judged_on_its_own_after_bad_input(api, db):
    refused = [
        post_json(api, raw) for raw in ["{", "[]", json.dumps(webhook_body(amount="x", currency="usd"))]
    ]
    good = webhook_body()

    accepted = post_json(api, good)
    wrong_currency_only = post_json(api, webhook_body(currency="usd"))

    assert [r.status_code for r in refused] == [400, 400, 400]
    assert set(refused[2].json()["fields"]) == {"amount", "currency"}
    assert accepted.status_code == 202
    assert set(wrong_currency_only.json()["fields"]) == {"currency"}  # no errors left from before
    assert list(Transaction.objects.values_list("transaction_id", flat=True)) == [good["transaction_id"]]


def test_a_webhook_whose_sender_asks_for_html_is_still_accepted_and_answered_in_json(api, db):
    body = webhook_body()

    response = post_json(api, body, HTTP_ACCEPT="text/html")

    assert response.status_code == 202
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"transaction_id": body["transaction_id"], "status": "PROCESSING"}
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()
