"""Many realistic transactions (ids `seed_...`) for the admin at scale; docs/performance.md."""

import itertools
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from transactions.models import Status, Transaction

PREFIX = "seed_"
CURRENCIES = ["INR"] * 12 + ["USD"] * 6 + ["EUR"] * 4 + ["GBP"] * 2 + ["SGD", "AED", "JPY", "BRL"]
COUNTRIES = ["IN", "US", "DE", "GB", "SG", "AE", "JP", "BR"]
ERRORS = [
    "PaymentAPIError: simulated failure of the external payment API",
    "external call timed out after 45s",
]


def _transactions(
    count: int, days: float, min_age_days: float, now: datetime, rng: random.Random
) -> Iterator[Transaction]:
    run = uuid.uuid4().hex[:6]
    for i in range(count):
        # Newer rows are likelier: traffic grows, and the admin opens on the newest.
        age = 86400 * (min_age_days + days * rng.random() ** 2)
        created = now - timedelta(seconds=age)
        deliveries = 1 if rng.random() < 0.9 else rng.randint(2, 6)
        txn = Transaction(
            transaction_id=f"{PREFIX}{run}_{i:08d}",
            source_account=f"acc_user_{rng.randint(1, 50000)}",
            destination_account=f"acc_merchant_{rng.randint(1, 2000)}",
            amount=Decimal(rng.choice([rng.randint(100, 5000), rng.randint(100, 500000)])) / 100,
            currency=rng.choice(CURRENCIES),
            status=Status.PROCESSED,
            delivery_count=deliveries,
            has_conflict=deliveries > 1 and rng.random() < 0.02,
            attempts=1,
            last_error="",
            secret_fingerprint="",
            next_attempt_at=created,
            created_at=created,
            processed_at=created + timedelta(seconds=30 + rng.random() * 2),
        )
        txn.payload = {
            **{f: getattr(txn, f) for f in ("transaction_id", "source_account", "destination_account")},
            "amount": float(txn.amount),
            "currency": txn.currency,
            # Fields beyond the five the API needs, as real senders add: staff search by them.
            "order_id": f"A-{run}-{i}",
            "customer": {"country": rng.choice(COUNTRIES)},
        }
        roll = rng.random()
        if age < 60 or roll < 0.002:
            # Still being worked on: recent, or waiting for a retry after failures.
            txn.status, txn.processed_at = Status.PROCESSING, None
            txn.attempts = 1 if age < 60 else rng.randint(1, 4)
            txn.last_error = "" if txn.attempts == 1 else rng.choice(ERRORS)
            txn.lease_token, txn.leased_until = uuid.uuid4(), now + timedelta(seconds=rng.randint(1, 60))
        elif roll < 0.012:
            txn.status, txn.processed_at = Status.FAILED, None
            txn.attempts, txn.last_error = 5, rng.choice(ERRORS)
        yield txn


class Command(BaseCommand):
    help = "Insert many realistic transactions (ids starting with 'seed_') to check the admin at scale."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=100_000)
        parser.add_argument("--days", type=float, default=90.0, help="spread rows over this many past days")
        parser.add_argument("--min-age-days", type=float, default=0.0, help="the newest rows this old")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable data")
        parser.add_argument("--delete", action="store_true", help="delete all seeded rows instead")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["delete"]:
            deleted, _ = Transaction.objects.filter(transaction_id__startswith=PREFIX).delete()
            self.stdout.write(f"Deleted {deleted} seeded transactions.")
            return
        rng = random.Random(options["seed"])
        rows = _transactions(options["count"], options["days"], options["min_age_days"], timezone.now(), rng)
        rows = iter(tqdm(rows, total=options["count"], unit="row", disable=None))  # a bar in a terminal
        if connection.vendor == "postgresql":  # COPY: a million rows in 1-2 minutes
            fields, table = Transaction._meta.concrete_fields, Transaction._meta.db_table
            sql = f"COPY {table} ({', '.join(f.column for f in fields)}) FROM STDIN"
            with transaction.atomic(), connection.cursor() as cursor, cursor.connection.cursor() as raw:
                with raw.copy(sql) as copy:
                    for txn in rows:
                        copy.write_row(
                            [f.get_db_prep_save(getattr(txn, f.attname), connection) for f in fields]
                        )
                # Fresh statistics for the planner and the admin's row estimate.
                cursor.execute(f"ANALYZE {table}")
        else:
            while batch := list(itertools.islice(rows, 1000)):
                Transaction.objects.bulk_create(batch)
        self.stdout.write(f"Inserted {options['count']} transactions.")
