"""Fill the database with many realistic transactions, to check the admin at scale.

    python manage.py seed_transactions --count 1000000
    python manage.py seed_transactions --delete          # remove every seeded row

Seeded rows have transaction ids starting with `seed_`, so they can be told apart
and removed. Rows go in by COPY on PostgreSQL (1-2 minutes for a million) and by
batched bulk_create elsewhere. They are spread over the last `--days` days, mostly
PROCESSED, some FAILED, a few still PROCESSING, with duplicates and conflicts.
"""

import json
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from transactions.models import Status, Transaction

PREFIX = "seed_"
CURRENCIES = ["INR"] * 12 + ["USD"] * 6 + ["EUR"] * 4 + ["GBP"] * 2 + ["SGD", "AED", "JPY", "BRL"]
COUNTRIES = ["IN", "US", "DE", "GB", "SG", "AE", "JP", "BR"]
ERRORS = [
    "PaymentAPIError: simulated failure of the external payment API",
    "external call timed out after 45s",
]
COLUMNS = [
    "id",
    "transaction_id",
    "source_account",
    "destination_account",
    "amount",
    "currency",
    "status",
    "payload",
    "delivery_count",
    "has_conflict",
    "attempts",
    "last_error",
    "next_attempt_at",
    "lease_token",
    "leased_until",
    "created_at",
    "processed_at",
]


def _rows(count: int, days: float, now: datetime, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    span = days * 86400
    run = uuid.uuid4().hex[:6]
    for i in range(count):
        # Newer rows are likelier: traffic grows, and the admin opens on the newest.
        age = span * rng.random() ** 2
        created = now - timedelta(seconds=age)
        amount = Decimal(rng.choice([rng.randint(100, 5000), rng.randint(100, 500000)])) / 100
        currency = rng.choice(CURRENCIES)
        source = f"acc_user_{rng.randint(1, 50000)}"
        destination = f"acc_merchant_{rng.randint(1, 2000)}"
        tid = f"{PREFIX}{run}_{i:08d}"
        payload = {
            "transaction_id": tid,
            "source_account": source,
            "destination_account": destination,
            "amount": float(amount),
            "currency": currency,
            # Fields beyond the five the API needs, as real senders add: staff search by them.
            "order_id": f"A-{run}-{i}",
            "customer": {"country": rng.choice(COUNTRIES)},
        }
        deliveries = 1 if rng.random() < 0.9 else rng.randint(2, 6)
        conflict = deliveries > 1 and rng.random() < 0.02
        roll = rng.random()
        attempts, last_error, lease_token, leased_until, processed = 1, "", None, None, None
        if age < 60 or roll < 0.002:
            # Still being worked on: recent, or waiting for a retry after failures.
            status = Status.PROCESSING
            attempts = 1 if age < 60 else rng.randint(1, 4)
            last_error = "" if attempts == 1 else rng.choice(ERRORS)
            lease_token, leased_until = uuid.uuid4(), now + timedelta(seconds=rng.randint(1, 60))
        elif roll < 0.012:
            status, attempts, last_error = Status.FAILED, 5, rng.choice(ERRORS)
        else:
            status = Status.PROCESSED
            processed = created + timedelta(seconds=30 + rng.random() * 2)
        yield (
            uuid.uuid4(),
            tid,
            source,
            destination,
            amount,
            currency,
            status.value,
            json.dumps(payload),
            deliveries,
            conflict,
            attempts,
            last_error,
            created,
            lease_token,
            leased_until,
            created,
            processed,
        )


class Command(BaseCommand):
    help = "Insert many realistic transactions (ids starting with 'seed_') to check the admin at scale."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=100_000)
        parser.add_argument("--days", type=float, default=90.0, help="spread rows over this many past days")
        parser.add_argument("--batch", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable data")
        parser.add_argument("--delete", action="store_true", help="delete all seeded rows instead")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["delete"]:
            deleted, _ = Transaction.objects.filter(transaction_id__startswith=PREFIX).delete()
            self.stdout.write(f"Deleted {deleted} seeded transactions.")
            return
        rows = _rows(options["count"], options["days"], timezone.now(), random.Random(options["seed"]))
        if connection.vendor == "postgresql":
            self._copy(rows, options["count"])
        else:
            self._bulk_create(rows, options["batch"])
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # fresh statistics for the planner and the admin's estimate
                cursor.execute(f"ANALYZE {Transaction._meta.db_table}")
        self.stdout.write(f"Inserted {options['count']} transactions.")

    def _copy(self, rows: Iterator[tuple[Any, ...]], count: int) -> None:
        sql = f"COPY {Transaction._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN"
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.connection.cursor() as raw,
            raw.copy(sql) as copy,
        ):
            for n, row in enumerate(rows, 1):
                copy.write_row(row)
                if n % 100_000 == 0:
                    self.stdout.write(f"  {n}/{count}")

    def _bulk_create(self, rows: Iterator[tuple[Any, ...]], batch: int) -> None:
        chunk: list[Transaction] = []
        for row in rows:
            values = dict(zip(COLUMNS, row, strict=True))
            values["payload"] = json.loads(values["payload"])
            chunk.append(Transaction(**values))
            if len(chunk) >= batch:
                Transaction.objects.bulk_create(chunk)
                chunk = []
        if chunk:
            Transaction.objects.bulk_create(chunk)
