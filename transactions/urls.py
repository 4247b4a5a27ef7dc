from django.urls import path, register_converter

from . import metrics, views
from .models import IDENTIFIER_PATTERN


class IdentifierConverter:
    # Anything that could not have been accepted as a transaction_id is a 404
    # before it reaches the database.
    regex = IDENTIFIER_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(IdentifierConverter, "identifier")

urlpatterns = [
    path("", views.HealthView.as_view(), name="health"),
    path("ready", views.ReadyView.as_view(), name="ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("v1/webhooks/transactions", views.TransactionWebhookView.as_view(), name="webhook"),
    path(
        "v1/transactions/<identifier:transaction_id>",
        views.TransactionDetailView.as_view(),
        name="transaction-detail",
    ),
]
