"""Many realistic transactions (ids `seed_...`) for the admin at scale; docs/performance.md."""

import itertools
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
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
# PostgreSQL makes the rows itself, in one statement: none passes through Python. The
# innermost SELECT draws each row's random numbers, the next its status, the outer the rest.
INSERT = """
INSERT INTO transactions_transaction (
    id, transaction_id, source_account, destination_account, amount, currency, status, payload,
    delivery_count, has_conflict, attempts, last_error, next_attempt_at, lease_token, leased_until,
    created_at, processed_at
)
SELECT
    gen_random_uuid(), txn_id, source, destination, amount, currency, status,
    jsonb_build_object(
        'transaction_id', txn_id, 'source_account', source, 'destination_account', destination,
        'amount', amount, 'currency', currency,
        -- Fields beyond the five the API needs, as real senders add: staff search by them.
        'order_id', 'A-' || %(run)s || '-' || i, 'customer', jsonb_build_object('country', country)
    ),
    deliveries, deliveries > 1 AND random() < 0.02, attempts,
    CASE WHEN attempts > 1 THEN error ELSE '' END, created,
    CASE WHEN status = 'PROCESSING' THEN gen_random_uuid() END,
    CASE WHEN status = 'PROCESSING' THEN now() + (1 + floor(random() * 60)) * interval '1 s' END,
    created,
    CASE WHEN status = 'PROCESSED' THEN created + (30 + 2 * random()) * interval '1 s' END
FROM (
    SELECT
        *,
        now() - age * interval '1 s' AS created,
        -- Still being worked on: recent, or waiting for a retry after failures.
        CASE WHEN age < 60 OR roll < 0.002 THEN 'PROCESSING' WHEN roll < 0.012 THEN 'FAILED'
            ELSE 'PROCESSED' END AS status,
        CASE WHEN age < 60 OR roll >= 0.012 THEN 1 WHEN roll < 0.002 THEN 1 + floor(random() * 4)
            ELSE 5 END AS attempts
    FROM (
        SELECT
            i,
            -- Newer rows are likelier: traffic grows, and the admin opens on the newest.
            86400 * (%(min_age_days)s + %(days)s * random() ^ 2) AS age,
            random() AS roll,
            %(prefix)s || lpad(i::text, 8, '0') AS txn_id,
            'acc_user_' || (1 + floor(random() * 50000))::int AS source,
            'acc_merchant_' || (1 + floor(random() * 2000))::int AS destination,
            (100 + floor(random() * CASE WHEN random() < 0.5 THEN 4901 ELSE 499901 END)) / 100 AS amount,
            (%(cur)s::text[])[1 + floor(random() * cardinality(%(cur)s::text[]))::int] AS currency,
            (%(cty)s::text[])[1 + floor(random() * cardinality(%(cty)s::text[]))::int] AS country,
            (%(err)s::text[])[1 + floor(random() * cardinality(%(err)s::text[]))::int] AS error,
            CASE WHEN random() < 0.9 THEN 1 ELSE 2 + floor(random() * 5) END AS deliveries
        FROM generate_series(0, %(count)s - 1) i
    ) draws
) rows
"""


def _rows(options: dict[str, Any], run: str, now: datetime, rng: random.Random) -> Iterator[Transaction]:
    """INSERT's rows made in Python, for other databases (SQLite)."""
    for i in range(options["count"]):
        age = 86400 * (options["min_age_days"] + options["days"] * rng.random() ** 2)
        roll, created = rng.random(), now - timedelta(seconds=age)
        stuck, failed = age < 60 or roll < 0.002, roll < 0.012  # as in INSERT: stuck first
        attempts = 1 if age < 60 or roll >= 0.012 else rng.randint(1, 4) if roll < 0.002 else 5
        deliveries = 1 if rng.random() < 0.9 else rng.randint(2, 6)
        fields = {
            "transaction_id": f"{PREFIX}{run}_{i:08d}",
            "source_account": f"acc_user_{rng.randint(1, 50000)}",
            "destination_account": f"acc_merchant_{rng.randint(1, 2000)}",
            "amount": Decimal(rng.randint(100, rng.choice([5000, 500000]))) / 100,
            "currency": rng.choice(CURRENCIES),
        }
        extra = {"order_id": f"A-{run}-{i}", "customer": {"country": rng.choice(COUNTRIES)}}
        yield Transaction(
            **fields,
            payload={**fields, "amount": float(fields["amount"]), **extra},
            status=Status.PROCESSING if stuck else Status.FAILED if failed else Status.PROCESSED,
            delivery_count=deliveries,
            has_conflict=deliveries > 1 and rng.random() < 0.02,
            attempts=attempts,
            last_error=rng.choice(ERRORS) if attempts > 1 else "",
            next_attempt_at=created,
            lease_token=uuid.uuid4() if stuck else None,
            leased_until=now + timedelta(seconds=rng.randint(1, 60)) if stuck else None,
            created_at=created,
            processed_at=None if failed or stuck else created + timedelta(seconds=30 + 2 * rng.random()),
        )


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
        rng, run = random.Random(options["seed"]), uuid.uuid4().hex[:6]
        if connection.vendor == "postgresql":
            params = dict(run=run, prefix=f"{PREFIX}{run}_", cur=CURRENCIES, cty=COUNTRIES, err=ERRORS)
            params |= {key: options[key] for key in ("count", "days", "min_age_days")}
            with connection.cursor() as cursor:
                cursor.execute("SELECT setseed(%s)", [rng.random()])
                cursor.execute(INSERT, params)
                # Fresh statistics for the planner and the admin's row estimate.
                cursor.execute(f"ANALYZE {Transaction._meta.db_table}")
        else:
            rows = _rows(options, run, timezone.now(), rng)
            rows = iter(tqdm(rows, total=options["count"], unit="row", disable=None))  # a bar in a terminal
            while batch := list(itertools.islice(rows, 1000)):
                Transaction.objects.bulk_create(batch)
        self.stdout.write(f"Inserted {options['count']} transactions.")
