"""The staff's view of the transactions, fast on a table of millions: no exact count of a
big table, an index for every filter, search and sort, no query per row (docs/performance.md)."""

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
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

admin.site.site_header = admin.site.site_title = "Webhook service"
# Wide tables need the width more than a second copy of the app list.
admin.site.enable_nav_sidebar = False


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        return selectors.estimated_count(self.object_list)


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
    title = "currency"
    parameter_name = "currency"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(c, c) for c in selectors.currencies_in_use()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(currency=self.value()) if self.value() else queryset


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
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
    list_filter = [StatusFilter, CurrencyFilter, "has_conflict", "created_at"]
    # Exact, case-sensitive matches, so each term is an index lookup: Django's "=" prefix
    # means UPPER(...) = UPPER(...), which no plain index serves, and "icontains" a scan.
    search_fields = ["transaction_id__exact", "source_account__exact", "destination_account__exact"]
    search_help_text = (
        "Exact transaction id, source account or destination account; or key=value for a field "
        "of the payload (order_id=A-1077, customer.country=IN for a nested one)."
    )
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

    class Media:
        css = {"all": ["transactions/admin.css"]}

    # --- permissions: the record is what the sender sent; staff look, and retry ---

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # transactions only come in by webhook

    def has_change_permission(self, request: HttpRequest, obj: Transaction | None = None) -> bool:
        return False  # so every field is shown read-only, with no Save button

    def has_delete_permission(self, request: HttpRequest, obj: Transaction | None = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("transactions.retry_transaction")

    # --- the list ---

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        payload_term = _PAYLOAD_TERM.fullmatch(search_term.strip())
        if payload_term:  # identifiers cannot contain "=", so this is unambiguous
            key, value = payload_term.groups()
            return queryset.filter(selectors.payload_has(keys=key.split("."), value=value)), False
        return super().get_search_results(request, queryset, search_term)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "summary": _summary()}
        return super().changelist_view(request, extra_context)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Transaction) -> SafeString:
        return format_html(
            '<span class="txn-status txn-status-{}">{}</span>', obj.status.lower(), obj.get_status_display()
        )

    @admin.display(description="amount", ordering="amount")
    def amount_with_currency(self, obj: Transaction) -> SafeString:
        return format_html(
            '<span class="txn-amount">{} {}</span>',
            number_format(obj.amount, decimal_pos=2, force_grouping=True),
            obj.currency,
        )

    @admin.display(description="duration")
    def duration(self, obj: Transaction) -> str:
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
        if not obj.has_conflict:
            return format_html("{}", obj.delivery_count)
        return format_html(
            '{} <span class="txn-conflict" title="Conflict: a later delivery carried different fields">'
            "⚠ conflict</span>",
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
            '<pre class="txn-payload">{}</pre>',
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
        # Tasks are shared by many transactions, so link the ones in its lifetime.
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


# key=value, the key a field name, dotted for a nested one: customer.country=IN. No "__"
# in a name, so that each name stays one key in a Django lookup.
_KEY = r"[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*"
_PAYLOAD_TERM = re.compile(rf"({_KEY}(?:\.{_KEY})*)=(.+)")


def _timestamp(value: datetime | None) -> str:
    return "—" if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def _human_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{seconds / 3600:.1f} h"


def _age(since: datetime | None) -> str | None:
    return None if since is None else _human_seconds((timezone.now() - since).total_seconds())


def _summary() -> dict[str, Any]:
    oldest = selectors.oldest_processing()
    backlog = selectors.backlog()
    lag = selectors.processing_lag()
    return {
        "counts": selectors.status_counts(),
        "oldest": oldest,
        "oldest_age": _age(oldest.created_at) if oldest else None,
        "backlog": backlog,
        "oldest_due": _human_seconds(backlog.oldest_due_seconds) if backlog.due_transactions else None,
        "lag": lag,
        "lag_p50": None if lag.p50 is None else _human_seconds(lag.p50),
        "lag_p99": None if lag.p99 is None else _human_seconds(lag.p99),
        "lag_window": _human_seconds(selectors.LAG_WINDOW_SECONDS),
        "retention": f"deleted after {days} days" if (days := settings.RETENTION_DAYS) else "kept forever",
        "secrets": [
            {"use": use, "ago": _age(use.last_verified_at)}
            for use in selectors.secrets_last_verified(secrets=settings.WEBHOOK_SECRETS)
        ],
    }
