"""Delete old PROCESSED transactions by hand, as the retention schedule does.

    python manage.py purge_transactions --older-than 30d --dry-run   # how many would go
    python manage.py purge_transactions --older-than 30d             # delete them

Ages are a whole number with a unit: d (days), h (hours) or m (minutes). FAILED and
PROCESSING transactions are never deleted. Batches and pauses follow
RETENTION_BATCH_SIZE and RETENTION_BATCH_PAUSE_SECONDS, so it is safe under load.
"""

import argparse
import re
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from transactions import selectors, services

UNITS = {"d": "days", "h": "hours", "m": "minutes"}
AGE = re.compile(r"(\d+)([dhm])")


def age(value: str) -> timedelta:
    match = AGE.fullmatch(value.strip())
    if not match or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(f"{value!r}: give a positive whole number with d, h or m, e.g. 30d")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = "Delete PROCESSED transactions processed longer ago than --older-than (FAILED ones are kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=age, required=True, help="e.g. 30d, 12h or 90m")
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = options["older_than"]
        # call_command(older_than="30d") hands the string over unparsed.
        cutoff = timezone.now() - (age(older_than) if isinstance(older_than, str) else older_than)
        if options["dry_run"]:
            count = selectors.purgeable_count(older_than=cutoff)
            self.stdout.write(
                f"Would delete {count} PROCESSED transactions processed before {cutoff:%Y-%m-%d %H:%M:%S %Z}."
            )
            return
        started = time.monotonic()
        deleted = services.purge_processed_transactions(
            older_than=cutoff,
            batch_size=settings.RETENTION_BATCH_SIZE,
            pause_seconds=settings.RETENTION_BATCH_PAUSE_SECONDS,
        )
        self.stdout.write(
            f"Deleted {deleted} PROCESSED transactions processed before {cutoff:%Y-%m-%d %H:%M:%S %Z} "
            f"in {time.monotonic() - started:.1f} s."
        )
