import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class Status(models.TextChoices):
    PROCESSING = "PROCESSING", "Processing"
    PROCESSED = "PROCESSED", "Processed"
    FAILED = "FAILED", "Failed"


# Amounts up to 999,999,999,999.99: 14 digits, so every stored amount is also exact
# as a JSON (double) number.
AMOUNT_MAX_DIGITS = 14
AMOUNT_DECIMAL_PLACES = 2
IDENTIFIER_MAX_LENGTH = 64
# Identifiers are printable and URL-safe, so `GET /v1/transactions/{id}` can always
# address what was accepted; this also shuts out whitespace, control and NUL characters.
IDENTIFIER_PATTERN = rf"[A-Za-z0-9][A-Za-z0-9_.:\-]{{0,{IDENTIFIER_MAX_LENGTH - 1}}}"


class PayloadEncoder(DjangoJSONEncoder):
    """Stores the body's numbers (parsed as Decimal to keep amounts exact) as JSON numbers."""

    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return float(o)
        return super().default(o)


class TransactionQuerySet(models.QuerySet):
    def due(self) -> "TransactionQuerySet":
        """Transactions waiting for processing that no live worker holds a claim on."""
        return self.filter(
            Q(leased_until__isnull=True) | Q(leased_until__lt=Now()),
            status=Status.PROCESSING,
            next_attempt_at__lte=Now(),
        )

    def stuck(self) -> "TransactionQuerySet":
        """PROCESSING transactions whose claim has expired: their worker died or hung."""
        return self.filter(status=Status.PROCESSING, leased_until__lt=Now())

    def retryable(self) -> "TransactionQuerySet":
        """What staff may send back for processing: FAILED, or stuck."""
        return self.filter(status=Status.FAILED) | self.stuck()

    def purgeable(self, *, older_than: datetime) -> "TransactionQuerySet":
        """PROCESSED before `older_than`: what retention deletes (read from txn_processed_idx).
        FAILED and PROCESSING rows have no processed_at, so they are never among them."""
        return self.filter(status=Status.PROCESSED, processed_at__lt=older_than)


class Transaction(models.Model):
    """A payment transaction received by webhook; also the work item for processing.

    A row in PROCESSING is pending work. A worker claims it by setting a lease
    (`lease_token`, `leased_until`) with a conditional update, calls the external API,
    and records the outcome only while it still holds the lease.
    """

    # Sent to the external API as its idempotency key.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Unique by a constraint (Meta), not unique=True: on PostgreSQL that would also add a
    # second, varchar_pattern_ops index for LIKE queries, which every webhook's INSERT
    # paid for and only the `seed_transactions --delete` prefix filter used.
    transaction_id = models.CharField(max_length=IDENTIFIER_MAX_LENGTH)
    source_account = models.CharField(max_length=IDENTIFIER_MAX_LENGTH)
    destination_account = models.CharField(max_length=IDENTIFIER_MAX_LENGTH)
    amount = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, db_default=Status.PROCESSING)
    # The first delivery's body, as received.
    payload = models.JSONField(default=dict, encoder=PayloadEncoder)

    # Deliveries of this transaction_id, the first included; senders retry.
    delivery_count = models.PositiveIntegerField(db_default=1)
    # Set when a later delivery carried different fields than the stored (first) one.
    has_conflict = models.BooleanField("conflict", db_default=False)
    # Which of WEBHOOK_SECRETS verified the first delivery (signatures.fingerprint, never
    # the secret itself); empty when it came unsigned.
    secret_fingerprint = models.CharField(max_length=16, blank=True, db_default="")

    # Processing attempts since the last (re)start, and the error of the latest failure.
    attempts = models.PositiveSmallIntegerField(db_default=0)
    last_error = models.TextField(blank=True, db_default="")
    next_attempt_at = models.DateTimeField(db_default=Now())
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    leased_until = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(db_default=Now())
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = TransactionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        # Staff may send FAILED or stuck transactions back for processing (the admin's
        # retry action); nobody may change one, so this is not `change_transaction`.
        permissions = [("retry_transaction", "Can retry processing of a transaction")]
        indexes = [
            models.Index(fields=["-created_at"], name="txn_created_idx"),
            models.Index(fields=["status", "-created_at"], name="txn_status_created_idx"),
            # The admin's filters and searches, each ending in its newest-first order.
            models.Index(fields=["currency", "-created_at"], name="txn_currency_created_idx"),
            models.Index(fields=["source_account", "-created_at"], name="txn_source_created_idx"),
            models.Index(fields=["destination_account", "-created_at"], name="txn_dest_created_idx"),
            models.Index(
                fields=["-created_at"], name="txn_conflict_created_idx", condition=Q(has_conflict=True)
            ),
            # The workers' "what is due" scan only ever looks at pending rows.
            models.Index(
                fields=["next_attempt_at"],
                name="txn_pending_due_idx",
                condition=Q(status=Status.PROCESSING),
            ),
            # The processing lag of the last minutes (selectors.processing_lag).
            models.Index(
                fields=["-processed_at"], name="txn_processed_idx", condition=Q(status=Status.PROCESSED)
            ),
            # When each secret last verified a webhook (selectors.secrets_last_verified);
            # unsigned rows stay out of it.
            models.Index(
                fields=["secret_fingerprint", "-created_at"],
                name="txn_secret_created_idx",
                condition=~Q(secret_fingerprint=""),
            ),
            # PostgreSQL also has a GIN index on payload (jsonb_path_ops) for the admin's
            # payload search; it is made by migration 0008 only, since SQLite has none.
        ]
        constraints = [
            models.UniqueConstraint(fields=["transaction_id"], name="txn_transaction_id_unique"),
            models.CheckConstraint(condition=Q(status__in=Status.values), name="txn_status_valid"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="txn_amount_positive"),
            # processed_at is set exactly when (and only when) the row is PROCESSED.
            models.CheckConstraint(
                condition=Q(status=Status.PROCESSED, processed_at__isnull=False)
                | (~Q(status=Status.PROCESSED) & Q(processed_at__isnull=True)),
                name="txn_processed_at_iff_processed",
            ),
            models.CheckConstraint(condition=Q(delivery_count__gte=1), name="txn_delivery_count_positive"),
        ]

    def __str__(self) -> str:
        return self.transaction_id


class PaymentBudget(models.Model):
    """The cluster's allowance of calls to the payment API: one row, locked by each claim.

    A token bucket for PAYMENT_API_MAX_RATE (`tokens`, refilled by database time since
    `refilled_at`); the calls in flight (for PAYMENT_API_MAX_CONCURRENCY) are the
    transactions whose lease holds, so they need no counter here that a crash could leak.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    tokens = models.FloatField(default=0)
    refilled_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="payment_budget_single_row")]

    def __str__(self) -> str:
        return f"{self.tokens:g} calls available"
