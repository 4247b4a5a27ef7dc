"""Read-only questions about the transactions, shared by the admin and /metrics.

Each stays cheap on a table of millions: it reads an index over the (few) rows still
PROCESSING or FAILED, or PostgreSQL's own row estimate, never a full-table count.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Min, QuerySet
from django_q.models import OrmQ

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


def oldest_processing() -> Transaction | None:
    """The transaction that has waited longest for processing."""
    return Transaction.objects.filter(status=Status.PROCESSING).order_by("created_at").first()


def oldest_pending_created_at() -> datetime | None:
    return Transaction.objects.filter(status=Status.PROCESSING).aggregate(oldest=Min("created_at"))["oldest"]


@dataclass(frozen=True)
class QueueDepth:
    due_transactions: int
    queued_tasks: int

    @property
    def total(self) -> int:
        return self.due_transactions + self.queued_tasks


def queue_depth() -> QueueDepth:
    """Work waiting for a worker: due transactions, plus django-q2 tasks not yet picked up."""
    return QueueDepth(
        due_transactions=Transaction.objects.due().count(),
        queued_tasks=OrmQ.objects.count(),
    )


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
