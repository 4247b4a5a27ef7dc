from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import Transaction


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = [
        "transaction_id",
        "status",
        "amount",
        "currency",
        "source_account",
        "destination_account",
        "created_at",
        "processed_at",
        "attempts",
        "delivery_count",
        "has_conflict",
    ]
    list_filter = ["status", "has_conflict", "currency"]
    search_fields = ["=transaction_id", "=source_account", "=destination_account"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    show_full_result_count = False
    actions = ["retry_processing"]
    readonly_fields = [f.name for f in Transaction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # transactions only come in by webhook

    def has_delete_permission(self, request: HttpRequest, obj: Transaction | None = None) -> bool:
        return False

    @admin.action(description="Retry processing of selected FAILED transactions")
    def retry_processing(self, request: HttpRequest, queryset: QuerySet[Transaction]) -> None:
        count = services.retry_transactions(pks=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} transaction(s) sent back for processing.", messages.SUCCESS)
