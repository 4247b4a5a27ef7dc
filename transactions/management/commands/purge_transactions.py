"""Retention by hand, batched like the schedule: docs/operations.md#retention."""

import re
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from transactions import selectors, services

AGE = re.compile(r"0*([1-9]\d*)([dhm])")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}


class Command(BaseCommand):
    help = "Delete PROCESSED transactions processed longer ago than --older-than (FAILED ones are kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", required=True, help="e.g. 30d, 12h or 90m")
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, *args: Any, older_than: str, dry_run: bool, **options: Any) -> None:
        if not (match := AGE.fullmatch(older_than.strip())):
            raise CommandError(f"--older-than {older_than!r}: give a positive whole number with d, h or m")
        cutoff = timezone.now() - timedelta(**{UNITS[match[2]]: int(match[1])})
        before = f"PROCESSED transactions processed before {cutoff:%Y-%m-%d %H:%M:%S %Z}"
        if dry_run:
            self.stdout.write(f"Would delete {selectors.purgeable_count(older_than=cutoff)} {before}.")
            return
        started = time.monotonic()
        deleted = services.purge_processed_transactions(
            older_than=cutoff,
            batch_size=settings.RETENTION_BATCH_SIZE,
            pause_seconds=settings.RETENTION_BATCH_PAUSE_SECONDS,
        )
        self.stdout.write(f"Deleted {deleted} {before} in {time.monotonic() - started:.1f} s.")
