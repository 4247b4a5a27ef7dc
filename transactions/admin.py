"""The staff's view of the transactions, built to stay fast on a table of millions.

What keeps it fast (healthchecks' hc/api/admin.py does the same):
- no exact COUNT(*) of the whole table: the unfiltered list counts with PostgreSQL's
  row estimate, and `show_full_result_count` is off;
- every filter, search and the default ordering has an index (see the model);
- filter choices and the date drill-down come from index probes, not DISTINCT scans;
- every column is computed from the row itself: no query per row.
"""

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django_q.models import Failure

from . import selectors, services, worker
from .models import Status, Transaction

STATUS_COLOURS = {
    Status.PROCESSING: ("#8a5a00", "#fff4d6"),
    Status.PROCESSED: ("#1e6b34", "#e1f5e6"),
    Status.FAILED: ("#a8201a", "#fde4e1"),
}


# Wide tables need the width more than a second copy of the app list.
admin.site.enable_nav_sidebar = False
admin.site.site_header = "Webhook service · staff"
admin.site.site_title = "Webhook service"
admin.site.index_title = "Back office"


class EstimatedCountPaginator(Paginator):
    """Never counts more rows than a page view can afford.

    Unfiltered: PostgreSQL's row estimate for the table. Filtered: an exact count up
    to COUNT_LIMIT rows, and past that the planner's estimate for the filter.
    """

    COUNT_LIMIT = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if connection.vendor != "postgresql":
            return super().count
        if not queryset.query.where:
            estimate = selectors.estimated_row_count()
            if estimate is not None and estimate >= selectors.EXACT_COUNT_BELOW:
                return estimate
        counted = queryset[: self.COUNT_LIMIT + 1].count()
        if counted <= self.COUNT_LIMIT:
            return counted
        return max(selectors.estimated_query_rows(queryset), counted)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"
    STUCK = "stuck"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [*Status.choices, (self.STUCK, "Stuck (claim expired)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == self.STUCK:
            return queryset.stuck()
        if self.value() in Status.values:
            return queryset.filter(status=self.value())
        return queryset


class CurrencyFilter(admin.SimpleListFilter):
    """The currencies in use, found by probing the currency index once per currency."""

    title = "currency"
    parameter_name = "currency"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(c, c) for c in _distinct_currencies()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(currency=self.value()) if self.value() else queryset


def _distinct_currencies() -> list[str]:
    table = Transaction._meta.db_table
    if connection.vendor != "postgresql":
        return list(Transaction.objects.order_by("currency").values_list("currency", flat=True).distinct())
    # A "loose index scan": one index probe per distinct value, instead of reading
    # every row as SELECT DISTINCT would.
    sql = f"""
        WITH RECURSIVE c(currency) AS (
            (SELECT currency FROM {table} ORDER BY currency LIMIT 1)
            UNION ALL
            SELECT (SELECT currency FROM {table} t WHERE t.currency > c.currency ORDER BY currency LIMIT 1)
            FROM c WHERE c.currency IS NOT NULL
        )
        SELECT currency FROM c WHERE currency IS NOT NULL
    """  # noqa: S608 (the table name is ours)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


class ConflictFilter(admin.BooleanFieldListFilter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "conflict"


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    change_list_template = "admin/transactions/transaction/change_list.html"
    list_display = [
        "transaction_id",
        "status_badge",
        "amount_with_currency",
        "source_account",
        "destination_account",
        "created",
        "processed",
        "duration",
        "attempts",
        "deliveries",
    ]
    list_filter = [
        StatusFilter,
        CurrencyFilter,
        ("has_conflict", ConflictFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    # Exact matches only, so each term is an index lookup, never a LIKE scan.
    search_fields = ["=transaction_id", "=source_account", "=destination_account"]
    search_help_text = "Exact transaction id, source account or destination account."
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    # Sorting by an unindexed column would sort the whole table.
    sortable_by = ["transaction_id", "created"]
    # Counts beside every filter choice would mean a COUNT per choice on every view.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    actions = ["retry_processing"]

    fieldsets = [
        (
            "Transaction",
            {
                "fields": [
                    "transaction_id",
                    "status_badge",
                    "amount_with_currency",
                    "source_account",
                    "destination_account",
                    "created_at",
                    "processed_at",
                    "duration",
                ]
            },
        ),
        ("Deliveries", {"fields": ["delivery_count", "conflict_detail", "payload_pretty"]}),
        (
            "Processing history",
            {
                "fields": [
                    "attempts",
                    "last_error",
                    "next_attempt_at",
                    "claim",
                    "idempotency_key",
                    "task_links",
                ]
            },
        ),
    ]
    # Everything shown is read-only: the record is what the sender sent.
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

    # --- permissions: the record is what the sender sent; staff look, and retry ---

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # transactions only come in by webhook

    def has_change_permission(self, request: HttpRequest, obj: Transaction | None = None) -> bool:
        return False  # a read-only page, with no Save button

    def has_delete_permission(self, request: HttpRequest, obj: Transaction | None = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("transactions.change_transaction")

    # --- the list ---

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        # Django's "=" searches are case-insensitive (UPPER(...) = UPPER(...)), which no
        # plain index serves; identifiers are case-sensitive anyway.
        term = search_term.strip()
        if not term:
            return queryset, False
        return (
            queryset.filter(Q(transaction_id=term) | Q(source_account=term) | Q(destination_account=term)),
            False,
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "summary": _summary()}
        return super().changelist_view(request, extra_context)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Transaction) -> SafeString:
        colour, background = STATUS_COLOURS.get(obj.status, ("#333", "#eee"))
        return format_html(
            '<span class="txn-status txn-status-{}" style="color:{};background:{};padding:2px 8px;'
            'border-radius:10px;font-weight:600;font-size:11px;white-space:nowrap">{}</span>',
            obj.status.lower(),
            colour,
            background,
            obj.get_status_display(),
        )

    @admin.display(description="amount", ordering="amount")
    def amount_with_currency(self, obj: Transaction) -> SafeString:
        return format_html(
            '<span style="white-space:nowrap;font-variant-numeric:tabular-nums">{} {}</span>',
            number_format(obj.amount, decimal_pos=2, force_grouping=True),
            obj.currency,
        )

    @admin.display(description="duration")
    def duration(self, obj: Transaction) -> str:
        """From arrival to processed (includes waiting for a worker and retries)."""
        if obj.processed_at is None or obj.created_at is None:
            return "—"
        return _human_seconds((obj.processed_at - obj.created_at).total_seconds())

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: Transaction) -> str:
        return _timestamp(obj.created_at)

    @admin.display(description="processed (UTC)")
    def processed(self, obj: Transaction) -> str:
        return _timestamp(obj.processed_at)

    @admin.display(description="deliveries")
    def deliveries(self, obj: Transaction) -> SafeString:
        """How often it was delivered, marked when a redelivery disagreed with the first."""
        if not obj.has_conflict:
            return format_html("{}", obj.delivery_count)
        return format_html(
            '{} <span class="txn-conflict" title="Conflict: a later delivery carried different fields" '
            'style="color:#a8201a;font-weight:600;white-space:nowrap">⚠ conflict</span>',
            obj.delivery_count,
        )

    # --- the detail page ---

    @admin.display(description="conflict")
    def conflict_detail(self, obj: Transaction) -> str:
        if obj.has_conflict:
            return "yes: a later delivery carried different fields; the first version (below) was kept"
        return "no"

    @admin.display(description="payload (first delivery, as received)")
    def payload_pretty(self, obj: Transaction) -> SafeString:
        return format_html(
            '<pre style="margin:0;padding:8px 12px;background:var(--darkened-bg);border-radius:4px;'
            'white-space:pre-wrap">{}</pre>',
            json.dumps(obj.payload, indent=2, sort_keys=True, ensure_ascii=False),
        )

    @admin.display(description="idempotency key (sent to the payment API)")
    def idempotency_key(self, obj: Transaction) -> str:
        return str(obj.pk)

    @admin.display(description="claim")
    def claim(self, obj: Transaction) -> str:
        if obj.leased_until is None:
            return "none"
        state = "expired" if obj.leased_until < timezone.now() else "held"
        return f"{state}: until {obj.leased_until:%Y-%m-%d %H:%M:%S} UTC (token {obj.lease_token})"

    @admin.display(description="django-q2 tasks")
    def task_links(self, obj: Transaction) -> SafeString:
        """Processing tasks are shared by many transactions, so link the ones in its lifetime."""
        try:
            failures_url = reverse("admin:django_q_failure_changelist")
            queued_url = reverse("admin:django_q_ormq_changelist")
        except NoReverseMatch:
            return format_html("{}", "django-q2's admin is not installed")
        since = obj.created_at
        failed_since = Failure.objects.filter(func=worker.PROCESS_TASK, started__gte=since).count()
        query = urlencode({"func": worker.PROCESS_TASK, "started__gte": since.isoformat()})
        return format_html(
            '<a href="{}?{}">{} failed processing task(s) since it arrived</a>'
            ' · <a href="{}">queued tasks</a>',
            failures_url,
            query,
            failed_since,
            queued_url,
        )

    # --- actions ---

    @admin.action(
        description="Retry processing of selected FAILED or stuck transactions", permissions=["retry"]
    )
    def retry_processing(self, request: HttpRequest, queryset: QuerySet[Transaction]) -> None:
        count = services.retry_transactions(pks=queryset.values("pk"))
        level = messages.SUCCESS if count else messages.WARNING
        self.message_user(
            request,
            f"{count} transaction(s) sent back for processing. "
            "Only FAILED and stuck (claim expired) transactions are retried.",
            level,
        )


def _timestamp(value: datetime | None) -> str:
    return "—" if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def _human_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{seconds / 3600:.1f} h"


def _summary() -> dict[str, Any]:
    counts = selectors.status_counts()
    oldest = selectors.oldest_processing()
    backlog = selectors.backlog()
    lag = selectors.processing_lag()
    return {
        "counts": counts,
        "oldest": oldest,
        "oldest_age": _human_seconds((timezone.now() - oldest.created_at).total_seconds())
        if oldest
        else None,
        "backlog": backlog,
        "oldest_due": _human_seconds(backlog.oldest_due_seconds) if backlog.due_transactions else None,
        "lag": lag,
        "lag_p50": None if lag.p50 is None else _human_seconds(lag.p50),
        "lag_p99": None if lag.p99 is None else _human_seconds(lag.p99),
        "lag_window": _human_seconds(selectors.LAG_WINDOW_SECONDS),
        "retention": f"deleted after {days} days" if (days := settings.RETENTION_DAYS) else "kept forever",
    }
