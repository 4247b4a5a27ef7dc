"""Small builders for test data, so no test copies another's setup."""

import itertools
from datetime import datetime
from decimal import Decimal
from typing import Any

from transactions import services
from transactions.examples import EXAMPLE_WEBHOOK
from transactions.models import Status, Transaction

_ids = itertools.count(1)


def webhook_body(**overrides: Any) -> dict[str, Any]:
    """A valid webhook body with a fresh transaction_id; override any field."""
    return {**EXAMPLE_WEBHOOK, "transaction_id": f"txn_{next(_ids):06d}", **overrides}


def stored_transaction(**overrides: Any) -> Transaction:
    """A transaction stored the way a webhook stores it (through the service)."""
    body = webhook_body(**overrides)
    data = dict(body, amount=Decimal(str(body["amount"])))
    services.ingest_transaction(data=data, payload=body)
    return Transaction.objects.get(transaction_id=body["transaction_id"])


def processed_transaction(*, processed_at: datetime, **overrides: Any) -> Transaction:
    """A stored transaction that was PROCESSED at `processed_at` (in the past, say)."""
    row = stored_transaction(**overrides)
    Transaction.objects.filter(pk=row.pk).update(status=Status.PROCESSED, processed_at=processed_at)
    return row


def failed_transaction(*, created_at: datetime, **overrides: Any) -> Transaction:
    """A stored transaction that gave up (FAILED), first received at `created_at`."""
    row = stored_transaction(**overrides)
    Transaction.objects.filter(pk=row.pk).update(status=Status.FAILED, attempts=5, created_at=created_at)
    return row
