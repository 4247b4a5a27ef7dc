"""Every change to a transaction's state happens here.

The database enforces the invariants: a unique transaction_id (an upsert, never a
check-then-insert), claims taken with conditional updates, and outcomes recorded only
by the holder of the current claim, so a status never moves backwards.
"""

import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet
from django.db.models.functions import Now
from django_q.tasks import async_task

from . import metrics
from .models import Status, Transaction

logger = logging.getLogger(__name__)

PROCESS_TASK = "transactions.tasks.process_due_transactions"


@dataclass(frozen=True)
class IngestResult:
    transaction_id: str
    status: str
    created: bool
    # True when this delivery's fields differ from the stored (first) version.
    conflict: bool


@dataclass(frozen=True)
class Claim:
    """A transaction a worker holds the lease on, with what the external call needs."""

    pk: uuid.UUID
    transaction_id: str
    amount: Decimal
    currency: str
    attempts: int
    token: uuid.UUID


# Only the first version is kept; later deliveries are counted, and flagged when they
# disagree with it. One statement, no check-then-insert; it runs on PostgreSQL and SQLite.
_UPSERT_SQL = """
    INSERT INTO transactions_transaction AS t
        (id, transaction_id, source_account, destination_account, amount, currency, payload)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (transaction_id) DO UPDATE SET
        delivery_count = t.delivery_count + 1,
        has_conflict = t.has_conflict OR NOT (
            t.source_account = excluded.source_account
            AND t.destination_account = excluded.destination_account
            AND t.amount = excluded.amount
            AND t.currency = excluded.currency
        )
    RETURNING status, delivery_count, source_account, destination_account, amount, currency
"""


def ingest_transaction(*, data: Mapping[str, Any], payload: Mapping[str, Any]) -> IngestResult:
    """Store a webhook's transaction once, however often it is delivered.

    `data` is the validated webhook; `payload` the whole body, kept for staff. The row
    is itself the pending work: once this returns, the transaction will be processed.
    """
    payload_field = Transaction._meta.get_field("payload")
    amount_field = Transaction._meta.get_field("amount")
    params = [
        Transaction._meta.pk.get_db_prep_value(uuid.uuid4(), connection),
        data["transaction_id"],
        data["source_account"],
        data["destination_account"],
        amount_field.get_db_prep_save(data["amount"], connection),
        data["currency"],
        payload_field.get_db_prep_save(dict(payload), connection),
    ]
    status, delivery_count, *stored = _upsert(params)

    created = delivery_count == 1
    incoming = (data["source_account"], data["destination_account"], data["amount"], data["currency"])
    stored[2] = Decimal(str(stored[2]))  # SQLite hands the amount back as a float
    conflict = not created and tuple(stored) != incoming
    metrics.WEBHOOKS_RECEIVED.labels(result="new" if created else "duplicate").inc()
    if conflict:
        metrics.WEBHOOKS_CONFLICTING.inc()
        logger.warning(
            "conflicting duplicate webhook transaction_id=%s delivery=%d: kept the first version",
            data["transaction_id"],
            delivery_count,
            extra={"transaction_id": data["transaction_id"]},
        )
    if created:
        wake_workers()
    return IngestResult(data["transaction_id"], status, created, conflict)


def _upsert(params: list[Any]) -> tuple:
    # Persistent connections are not health-checked before each request (a second round
    # trip per webhook). One the database dropped while it sat idle (a restart, an idle
    # timeout) fails at once, before anything is written: the webhook is retried once on a
    # fresh connection rather than refused (were the INSERT ever committed before the
    # failure, the retry would only count one more delivery). A connection that fails to
    # open is not retried: that is the database being down, and the sender gets a quick 503.
    reused = connection.connection is not None and not connection.in_atomic_block
    try:
        return _execute_upsert(params)
    except (OperationalError, InterfaceError):
        # Only a connection that broke is worth a second try; a live one that failed
        # the statement (a lock timeout, say) would only fail again, twice as slowly.
        if not (reused and getattr(connection.connection, "broken", False)):
            raise
        logger.info("database connection was lost while idle; reconnecting")
        connection.close()
    return _execute_upsert(params)


def _execute_upsert(params: list[Any]) -> tuple:
    if connection.vendor == "postgresql" and settings.DATABASE_PREPARED_STATEMENTS:
        # Django binds parameters on the client, so PostgreSQL would parse and plan this
        # statement for every webhook. Bound on the server and prepared once per connection
        # instead, it costs PostgreSQL about a third less CPU. Django's cursor is not needed
        # around this one.
        with connection.wrap_database_errors:
            connection.ensure_connection()
            with psycopg.Cursor(connection.connection) as raw:
                raw.execute(_UPSERT_SQL, params, prepare=True)
                return raw.fetchone()
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_SQL, params)
        return cursor.fetchone()


_wakeup_lock = threading.Lock()
_last_wakeup = float("-inf")


def wake_workers() -> None:
    """Ask a worker to look for due transactions now rather than at the next sweep.

    At most once per PROCESSING_WAKEUP_INTERVAL_SECONDS per process: a worker that
    wakes keeps taking newly arrived transactions, so one wake-up serves a burst.
    Losing one is harmless; the periodic sweep finds every due transaction.
    """
    global _last_wakeup
    now = time.monotonic()
    with _wakeup_lock:
        if now - _last_wakeup < settings.PROCESSING_WAKEUP_INTERVAL_SECONDS:
            return
        _last_wakeup = now
    try:
        async_task(PROCESS_TASK, task_name=f"wakeup-{uuid.uuid4().hex}")
    except Exception:
        logger.warning("could not wake the workers; the sweep will pick the work up", exc_info=True)


def _now_plus(seconds: float) -> ExpressionWrapper:
    # Database time, not this host's clock: leases are compared across machines.
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def claim_due_transactions(*, limit: int) -> list[Claim]:
    """Take the lease on up to `limit` due transactions, oldest first.

    Workers skip rows another worker is claiming at the same moment (SKIP LOCKED on
    PostgreSQL), and the update re-checks that each row is still due, so two workers
    never hold the same transaction.
    """
    if limit <= 0:
        return []
    token = uuid.uuid4()
    with transaction.atomic():
        pks = list(
            Transaction.objects.due()
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if not pks:
            return []
        Transaction.objects.due().filter(pk__in=pks).update(
            lease_token=token,
            leased_until=_now_plus(settings.PROCESSING_LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
    rows = Transaction.objects.filter(lease_token=token, status=Status.PROCESSING).values_list(
        "pk", "transaction_id", "amount", "currency", "attempts"
    )
    return [Claim(*row, token=token) for row in rows]


def _held(claim: Claim) -> Any:
    return Transaction.objects.filter(pk=claim.pk, lease_token=claim.token, status=Status.PROCESSING)


def mark_processed(claim: Claim) -> bool:
    """Record a successful external call. False if the claim was lost meanwhile."""
    updated = _held(claim).update(
        status=Status.PROCESSED, processed_at=Now(), lease_token=None, leased_until=None, last_error=""
    )
    extra = {"transaction_id": claim.transaction_id}
    if updated:
        logger.info("processed transaction_id=%s", claim.transaction_id, extra=extra)
    else:
        logger.warning("lost the claim before recording transaction_id=%s", claim.transaction_id, extra=extra)
    return bool(updated)


def record_failure(claim: Claim, error: str) -> str | None:
    """Record a failed attempt: retry later with backoff, or give up as FAILED.

    Returns the new status, or None if the claim was lost meanwhile.
    """
    error = error[:2000]
    if claim.attempts >= settings.PROCESSING_MAX_ATTEMPTS:
        new_status, changes = Status.FAILED, {"status": Status.FAILED}
    else:
        backoff = settings.PROCESSING_RETRY_BACKOFF_SECONDS * 2 ** (claim.attempts - 1)
        new_status, changes = Status.PROCESSING, {"next_attempt_at": _now_plus(backoff)}
    updated = _held(claim).update(last_error=error, lease_token=None, leased_until=None, **changes)
    if not updated:
        return None
    log = logger.error if new_status == Status.FAILED else logger.warning
    log(
        "attempt %d failed for transaction_id=%s (%s): %s",
        claim.attempts,
        claim.transaction_id,
        "giving up" if new_status == Status.FAILED else "will retry",
        error,
        extra={"transaction_id": claim.transaction_id},
    )
    return new_status


def release_claims(claims: Iterable[Claim]) -> int:
    """Hand unfinished claims back (on shutdown) so another worker takes them at once.

    The attempt is not counted: it was interrupted, not failed.
    """
    released = 0
    for claim in claims:
        released += _held(claim).update(lease_token=None, leased_until=None, attempts=F("attempts") - 1)
    return released


def retry_transactions(*, pks: Iterable[Any]) -> int:
    """Send FAILED and stuck transactions back for processing, with a fresh set of attempts.

    Stuck means PROCESSING with an expired claim. Its old worker, should it still be
    alive, can no longer record anything (it lost the lease), and the external call
    is idempotent by the transaction's key, so taking it over is safe. Rows that are
    neither are left alone; the count says how many were sent back.
    """
    count = (
        Transaction.objects.retryable()
        # A queryset stays a subquery: "select all" over a million rows loads no ids.
        .filter(pk__in=pks if isinstance(pks, QuerySet) else list(pks))
        .update(
            status=Status.PROCESSING,
            attempts=0,
            next_attempt_at=Now(),
            lease_token=None,
            leased_until=None,
        )
    )
    if count:
        logger.info("staff sent %d transaction(s) back for processing", count)
        transaction.on_commit(wake_workers)
    return count


def pending_due_exists() -> bool:
    return Transaction.objects.due().exists()
