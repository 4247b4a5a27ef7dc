"""GET /v1/transactions/{transaction_id}: a transaction's state."""

import pytest
from django.utils import timezone

from tests.factories import stored_transaction
from transactions.models import Status, Transaction

FIELDS = {
    "transaction_id",
    "source_account",
    "destination_account",
    "amount",
    "currency",
    "status",
    "created_at",
    "processed_at",
}


def test_transaction_reports_exactly_the_contract_fields(reader, db):
    txn = stored_transaction(amount=1500)

    response = reader.get(f"/v1/transactions/{txn.transaction_id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert body["status"] == "PROCESSING"
    assert body["processed_at"] is None
    assert body["amount"] == 1500
    assert body["created_at"].endswith("Z")


@pytest.mark.parametrize("amount", [1500, 10.5, 0.01, 123456789012.34])
def test_amount_is_a_json_number_equal_to_what_was_sent(reader, db, amount):
    txn = stored_transaction(amount=amount)

    body = reader.get(f"/v1/transactions/{txn.transaction_id}").json()

    assert body["amount"] == amount
    assert isinstance(body["amount"], (int, float))


def test_processed_transaction_reports_processed_at(reader, db):
    txn = stored_transaction()
    Transaction.objects.filter(pk=txn.pk).update(status=Status.PROCESSED, processed_at=timezone.now())

    body = reader.get(f"/v1/transactions/{txn.transaction_id}").json()

    assert body["status"] == "PROCESSED"
    assert body["processed_at"] is not None


def test_unknown_transaction_is_a_json_404(reader, db):
    response = reader.get("/v1/transactions/txn_missing")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/transactions/%00",
        "/v1/transactions/a%0Ab",
        "/v1/transactions/%E2%98%83",
        "/v1/transactions/" + "a" * 65,
        "/v1/transactions/a/b",
        "/v1/transactions/",
        "/v1/transactions/..%2F..%2Fetc",
        "/nowhere/%FF%FE",
        "/v1/webhooks/transactions/",
    ],
)
def test_odd_paths_are_a_json_404_not_a_500(reader, db, path):
    response = reader.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_status_endpoint_only_allows_reads(reader, db):
    txn = stored_transaction()

    response = reader.post(f"/v1/transactions/{txn.transaction_id}", {}, format="json")

    assert response.status_code == 405
