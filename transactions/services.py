"""Every change to a transaction's state happens here.

The database enforces the invariants: a unique transaction_id (an upsert, never a
check-then-insert), claims taken with conditional updates, and outcomes recorded only
by the holder of the current claim, so a status never moves backwards.
"""

import json
import logging
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet
from django.db.models.functions import Now

from . import fastpath, metrics, worker
from .database import replace_broken_connection
from .models import PayloadEncoder, PaymentBudget, Status, Transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    transaction_id: str
    status: str


@dataclass(frozen=True)
class Claim:
    """A transaction a worker holds the lease on, with what the external call needs."""

    pk: uuid.UUID
    transaction_id: str
    source_account: str
    destination_account: str
    amount: Decimal
    currency: str
    attempts: int
    token: uuid.UUID


@dataclass(frozen=True)
class Failure:
    """A failed external call: `permanent` when the payment API refused it for good;
    `retry_after` the seconds it asked us to wait, if it said."""

    error: str
    permanent: bool = False
    retry_after: float | None = None


# Only the first version is kept; later deliveries are counted, and flagged when they
# disagree with it. One statement, no check-then-insert; it runs on PostgreSQL and SQLite.
_UPSERT_SQL = """
    INSERT INTO transactions_transaction AS t
        (id, transaction_id, source_account, destination_account, amount, currency, payload,
         secret_fingerprint)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
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


def ingest_transaction(
    *, data: Mapping[str, Any], payload: Mapping[str, Any], secret_fingerprint: str = ""
) -> IngestResult:
    """Store a webhook's transaction once, however often it is delivered.

    `data` is the validated webhook; `payload` the whole body, kept for staff;
    `secret_fingerprint` names the secret that verified it ("" if unsigned), kept from the
    first delivery like the rest. The row is itself the pending work: once this returns,
    the transaction will be processed.
    """
    params = [
        # Hex: what UUIDField stores on SQLite; PostgreSQL casts it to uuid.
        uuid.uuid4().hex,
        data["transaction_id"],
        data["source_account"],
        data["destination_account"],
        data["amount"],
        data["currency"],
        json.dumps(dict(payload), cls=PayloadEncoder),
        secret_fingerprint,
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
        worker.wake_workers()
    return IngestResult(data["transaction_id"], status)


def _upsert(params: list[Any]) -> tuple:
    # Connections are not health-checked before each request (a second round trip per
    # webhook). One the database dropped while it sat idle (a restart, an idle timeout)
    # fails at once, before anything is written: the webhook is retried once on a fresh
    # connection rather than refused (were the INSERT ever committed before the failure,
    # the retry would only count one more delivery). A connection that fails to open is not
    # retried: that is the database being down, and the sender gets a quick 503.
    in_transaction = connection.in_atomic_block
    try:
        return fastpath.fetchone(_UPSERT_SQL, params)
    except (OperationalError, InterfaceError):
        # Only a connection that broke is worth a second try; a live one that failed
        # the statement (a lock timeout, say) would only fail again, twice as slowly.
        if in_transaction or not replace_broken_connection():
            raise
    return fastpath.fetchone(_UPSERT_SQL, params)


def _now_plus(seconds: float) -> ExpressionWrapper:
    # Database time, not this host's clock: leases are compared across machines.
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def claim_due_transactions(*, limit: int) -> list[Claim]:
    """Take the lease on up to `limit` due transactions, oldest first, in one batch.

    Workers skip rows another worker is claiming at the same moment (SKIP LOCKED on
    PostgreSQL), and the update re-checks that each row is still due, so two workers
    never hold the same transaction. The lease's end is also the row's next attempt:
    held rows drop out of the due range of the index, so the next claim does not step
    over thousands of calls in flight, and a row whose worker died becomes due again.

    With a cap on the payment API's calls (PAYMENT_API_MAX_CONCURRENCY or _RATE), the
    claim also takes its share of the cluster's budget (see `_take_budget`).
    """
    if limit <= 0:
        return []
    token = uuid.uuid4()
    lease_end = _now_plus(settings.PROCESSING_LEASE_SECONDS)
    capped = settings.PAYMENT_API_MAX_CONCURRENCY > 0 or settings.PAYMENT_API_MAX_RATE > 0
    with transaction.atomic():
        budget = _lock_budget() if capped else None
        if budget is not None:
            limit = min(limit, _allowance(budget))
            if limit <= 0:
                return []
        pks = list(
            Transaction.objects.due()
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if not pks:
            return []
        Transaction.objects.due().filter(pk__in=pks).update(
            lease_token=token, leased_until=lease_end, next_attempt_at=lease_end, attempts=F("attempts") + 1
        )
        if budget is not None and settings.PAYMENT_API_MAX_RATE > 0:
            budget.tokens -= len(pks)
            budget.save(update_fields=["tokens", "refilled_at"])
    rows = Transaction.objects.filter(lease_token=token, status=Status.PROCESSING).values_list(
        "pk", "transaction_id", "source_account", "destination_account", "amount", "currency", "attempts"
    )
    return [Claim(*row, token=token) for row in rows]


def _lock_budget() -> PaymentBudget:
    """The budget row, locked until the claim commits, its tokens refilled to now (unsaved).

    Every capped claim in the cluster queues here, so the in-flight count and the
    tokens it reads cannot change under it: claims never exceed the budget. Claims
    happen a few times a second, each holding the lock for a few milliseconds.
    """
    rate = settings.PAYMENT_API_MAX_RATE
    burst = float(max(rate, 1))  # a second's worth: the burst after a quiet spell
    PaymentBudget.objects.get_or_create(pk=1, defaults={"tokens": burst})
    budget = PaymentBudget.objects.select_for_update().annotate(db_now=Now()).get(pk=1)
    # Database time, like the leases: the same clock for every host.
    elapsed = max((budget.db_now - budget.refilled_at).total_seconds(), 0.0)
    budget.tokens = min(burst, budget.tokens + rate * elapsed)
    budget.refilled_at = budget.db_now
    return budget


def _allowance(budget: PaymentBudget) -> int:
    """How many calls the cluster may start now, by both caps."""
    allowed = []
    if settings.PAYMENT_API_MAX_RATE > 0:
        allowed.append(math.floor(budget.tokens))
    if settings.PAYMENT_API_MAX_CONCURRENCY > 0:
        in_flight = Transaction.objects.filter(
            status=Status.PROCESSING, next_attempt_at__gt=Now(), leased_until__gt=Now()
        ).count()
        allowed.append(settings.PAYMENT_API_MAX_CONCURRENCY - in_flight)
    return min(allowed)


def _held(claims: Iterable[Claim]) -> Any:
    """The rows of these claims that their lease still holds (one batch: one token)."""
    claims = list(claims)
    return Transaction.objects.filter(
        pk__in=[claim.pk for claim in claims], lease_token=claims[0].token, status=Status.PROCESSING
    )


def record_outcomes(results: Iterable[tuple[Claim, Failure | None]]) -> dict[str, int]:
    """Record finished external calls: `(claim, None)` for success, `(claim, failure)`.

    A success is PROCESSED. A permanent failure (the payment API refused the payment)
    is FAILED at once; any other failure is retried after
    BACKOFF * 2**(attempts-1) seconds, or the provider's Retry-After if longer, and is
    FAILED after PROCESSING_MAX_ATTEMPTS. Only rows whose lease the claim still holds
    change, so a status never moves backwards and a late worker records nothing.
    Outcomes of one claim batch with the same result are written by one statement, in
    one commit for the lot: a few statements a second at any rate.

    Returns how many were processed, retrying, failed, and lost (the lease had expired).
    """
    groups: dict[tuple[uuid.UUID, str, float, str], list[Claim]] = defaultdict(list)
    for claim, failure in results:
        if failure is None:
            key = (claim.token, Status.PROCESSED, 0.0, "")
        elif failure.permanent or claim.attempts >= settings.PROCESSING_MAX_ATTEMPTS:
            key = (claim.token, Status.FAILED, 0.0, failure.error[:2000])
        else:
            backoff = settings.PROCESSING_RETRY_BACKOFF_SECONDS * 2 ** (claim.attempts - 1)
            # Whole seconds when the provider set the wait, so outcomes still group.
            wait = max(backoff, math.ceil(failure.retry_after or 0))
            key = (claim.token, Status.PROCESSING, wait, failure.error[:2000])
        groups[key].append(claim)

    counts = {"processed": 0, "retrying": 0, "failed": 0, "lost": 0}
    with transaction.atomic():
        for (_, status, backoff, error), claims in groups.items():
            # Locked first, so that the log below names exactly the rows that changed.
            held = dict(_held(claims).select_for_update().values_list("pk", "transaction_id"))
            changes: dict[str, Any] = {"lease_token": None, "leased_until": None, "last_error": error}
            if status == Status.PROCESSED:
                changes.update(status=Status.PROCESSED, processed_at=Now())
            elif status == Status.FAILED:
                changes.update(status=Status.FAILED)
            else:
                changes.update(next_attempt_at=_now_plus(backoff))
            Transaction.objects.filter(pk__in=held).update(**changes)
            counts["lost"] += len(claims) - len(held)
            _log_outcomes(status, claims, held, error)
            counts[{"PROCESSED": "processed", "FAILED": "failed"}.get(status, "retrying")] += len(held)
    return counts


def _log_outcomes(status: str, claims: list[Claim], held: dict[uuid.UUID, str], error: str) -> None:
    for claim in claims:
        extra = {"transaction_id": claim.transaction_id}
        if claim.pk not in held:
            logger.warning(
                "lost the claim before recording transaction_id=%s", claim.transaction_id, extra=extra
            )
        elif status == Status.PROCESSED:
            logger.info("processed transaction_id=%s", claim.transaction_id, extra=extra)
        else:
            (logger.error if status == Status.FAILED else logger.warning)(
                "attempt %d failed for transaction_id=%s (%s): %s",
                claim.attempts,
                claim.transaction_id,
                "giving up" if status == Status.FAILED else "will retry",
                error,
                extra=extra,
            )


def release_claims(claims: Iterable[Claim]) -> int:
    """Hand unfinished claims back (on stop) so that another worker takes them at once.

    The attempt is not counted: it was interrupted, not failed.
    """
    by_batch: dict[uuid.UUID, list[Claim]] = defaultdict(list)
    for claim in claims:
        by_batch[claim.token].append(claim)
    return sum(
        _held(batch).update(
            lease_token=None, leased_until=None, next_attempt_at=Now(), attempts=F("attempts") - 1
        )
        for batch in by_batch.values()
    )


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
        transaction.on_commit(worker.wake_workers)
    return count


def purge_processed_transactions(
    *,
    older_than: datetime,
    batch_size: int,
    pause_seconds: float = 0.0,
    max_seconds: float | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Delete the transactions PROCESSED before `older_than`, oldest first; how many went.

    FAILED and PROCESSING rows are never touched. Each batch of `batch_size` rows is a
    transaction of its own, followed by a pause, so that ingestion and autovacuum keep
    up: a DELETE takes a ROW EXCLUSIVE table lock, which inserts never wait for, and
    row locks on its batch alone. Rows someone else has locked are skipped, not waited
    for. Stops early after `max_seconds`, or when `stop()` says so; the rest is left
    for the next run.
    """
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    deleted = 0
    # Each batch starts where the last one ended, rather than rescanning the index
    # entries of rows already deleted (dead until vacuum removes them).
    resume_at: datetime | None = None
    while True:
        candidates = Transaction.objects.purgeable(older_than=older_than)
        if resume_at is not None:
            candidates = candidates.filter(processed_at__gte=resume_at)
        with transaction.atomic():
            batch = list(
                candidates.order_by("processed_at")
                .select_for_update(skip_locked=True)
                .values_list("pk", "processed_at")[:batch_size]
            )
            if batch:
                count, _ = Transaction.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
                deleted += count
        if len(batch) < batch_size:
            break
        resume_at = batch[-1][1]
        if stop() or (deadline is not None and time.monotonic() >= deadline):
            logger.info("retention: stopped after %d deletions; the next run goes on", deleted)
            break
        time.sleep(pause_seconds)
    if deleted:
        logger.info("retention: deleted %d transactions PROCESSED before %s", deleted, older_than.isoformat())
    return deleted
