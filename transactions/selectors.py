"""Read-only questions about the transactions, shared by the admin and /metrics.

Each stays cheap on a table of millions: it reads an index over the (few) rows still
PROCESSING or FAILED, or PostgreSQL's own row estimate, never a full-table count.
"""

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, QuerySet
from django.utils import timezone

from . import worker
from .models import Status, Transaction

# Below this many rows an exact count is cheap and better than an estimate.
EXACT_COUNT_BELOW = 50_000


def estimated_row_count() -> int | None:
    """PostgreSQL's estimate of the table's rows (kept by ANALYZE/autovacuum), or None."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [Transaction._meta.db_table]
        )
        row = cursor.fetchone()
    # -1 means "never analysed" (PostgreSQL 14+).
    return int(row[0]) if row and row[0] >= 0 else None


def estimated_query_rows(queryset: QuerySet) -> int:
    """The planner's estimate of how many rows a query returns (PostgreSQL only)."""
    plan = json.loads(queryset.explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


@dataclass(frozen=True)
class StatusCounts:
    processing: int
    failed: int
    processed: int
    # True when `processed` is the table estimate less the others, not a count.
    processed_is_estimate: bool


def status_counts() -> StatusCounts:
    """Exact counts of the PROCESSING and FAILED rows; PROCESSED estimated on a big table."""
    counts = dict(
        Transaction.objects.filter(status__in=[Status.PROCESSING, Status.FAILED])
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    processing, failed = counts.get(Status.PROCESSING, 0), counts.get(Status.FAILED, 0)
    estimate = estimated_row_count()
    if estimate is not None and estimate >= EXACT_COUNT_BELOW:
        return StatusCounts(processing, failed, max(estimate - processing - failed, 0), True)
    processed = Transaction.objects.filter(status=Status.PROCESSED).count()
    return StatusCounts(processing, failed, processed, False)


def due_transactions_exist() -> bool:
    return Transaction.objects.due().exists()


def oldest_processing() -> Transaction | None:
    """The transaction that has waited longest for processing (retries included)."""
    return Transaction.objects.filter(status=Status.PROCESSING).order_by("created_at").first()


@dataclass(frozen=True)
class Backlog:
    # Due now, and no worker holds them: waiting for a free slot.
    due_transactions: int
    # How long the longest-waiting of those has waited past its due time (0 if none).
    oldest_due_seconds: float
    # django-q2 tasks not yet taken by a worker.
    queued_tasks: int


def backlog() -> Backlog:
    """Work waiting for a worker. Steady growth of either figure means falling behind."""
    due = Transaction.objects.due()
    oldest = due.aggregate(oldest=Min("next_attempt_at"))["oldest"]
    return Backlog(
        due_transactions=due.count(),
        oldest_due_seconds=max((timezone.now() - oldest).total_seconds(), 0.0) if oldest else 0.0,
        queued_tasks=worker.queued_rounds(),
    )


LAG_WINDOW_SECONDS = 300
# The latest this many processed transactions in the window stand for all of them, so
# the query stays a bounded index read at any rate.
LAG_SAMPLE = 10_000


@dataclass(frozen=True)
class ProcessingLag:
    """`processed_at - created_at` of recently processed transactions, in seconds."""

    p50: float | None
    p99: float | None
    sample: int


def processing_lag(*, window_seconds: float = LAG_WINDOW_SECONDS) -> ProcessingLag:
    """The lag of the transactions processed in the last `window_seconds` (None if none)."""
    since = timezone.now() - timedelta(seconds=window_seconds)
    lags = sorted(
        lag.total_seconds()
        for lag in Transaction.objects.filter(status=Status.PROCESSED, processed_at__gte=since)
        .order_by("-processed_at")
        .values_list(
            ExpressionWrapper(F("processed_at") - F("created_at"), output_field=DurationField()), flat=True
        )[:LAG_SAMPLE]
    )
    if not lags:
        return ProcessingLag(None, None, 0)

    def percentile(q: float) -> float:
        return lags[max(math.ceil(q * len(lags)) - 1, 0)]

    return ProcessingLag(percentile(0.50), percentile(0.99), len(lags))


_migrations_applied = False


def readiness() -> dict[str, str]:
    """Whether this instance can serve: the database answers, and its schema is current."""
    global _migrations_applied
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return {"database": f"unavailable ({type(exc).__name__})", "migrations": "unknown"}
    checks = {"database": "ok", "migrations": "ok"}
    if not _migrations_applied:  # once true it stays true for this process
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if unapplied:
            checks["migrations"] = f"{len(unapplied)} unapplied"
        else:
            _migrations_applied = True
    return checks


def purgeable_count(*, older_than: datetime) -> int:
    """How many transactions retention would delete now (an index range count)."""
    return Transaction.objects.purgeable(older_than=older_than).count()
