"""Prometheus metrics and the /metrics endpoint (docs/operations.md: Metrics).

Hot paths only increment counters; the gauges are read from the database at scrape time,
so they are right whichever process did the work."""

import hmac
import logging
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from . import selectors
from .middleware import client_address

logger = logging.getLogger(__name__)

WEBHOOKS_RECEIVED = Counter(
    "webhooks_received_total",
    "Webhook deliveries accepted (202), by whether the transaction was new or a duplicate.",
    ["result"],
)
WEBHOOKS_VERIFIED = Counter(
    "webhooks_verified_total",
    "Webhook signatures verified, by the fingerprint of the secret that matched (the first "
    "of WEBHOOK_SECRETS, in order); one that stays flat means that secret can be retired.",
    ["secret"],
)
WEBHOOKS_CONFLICTING = Counter(
    "webhooks_conflicting_duplicates_total",
    "Duplicate deliveries whose fields differed from the stored (first) version.",
)
WEBHOOKS_REJECTED = Counter(
    "webhooks_rejected_total",
    "Webhook deliveries refused, by HTTP status and error code.",
    ["status", "error"],
)
PROCESSING_OUTCOMES = Counter(
    "transactions_processing_outcomes_total",
    "Outcomes of external calls: processed, retrying, failed (gave up), lost (claim expired), handed_back.",
    ["outcome"],
)
EXTERNAL_CALL_SECONDS = Histogram(
    "transactions_external_call_seconds",
    "Duration of the external payment call, by outcome.",
    ["outcome"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 45, 60, 120),
)


class DatabaseCollector:
    """Queue gauges read at scrape time (cheap: partial indexes over pending rows)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "transactions_collector_up", "1 if the database answered the collector's queries."
        )
        try:
            backlog = selectors.backlog()
            lag = selectors.processing_lag()
            oldest = selectors.oldest_processing()
            counts = selectors.status_counts()
            last_received = selectors.last_received_at()
        except Exception:
            logger.warning("metrics: could not read the queue from the database", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        waiting = GaugeMetricFamily(
            "transactions_backlog",
            "Work waiting for a worker: due transactions no worker holds, and django-q2 tasks not yet taken.",
            labels=["kind"],
        )
        waiting.add_metric(["due_transactions"], backlog.due_transactions)
        waiting.add_metric(["queued_tasks"], backlog.queued_tasks)
        yield waiting
        yield GaugeMetricFamily(
            "transactions_backlog_oldest_due_seconds",
            "How long the longest-waiting due transaction has waited past its due time (0 when none).",
            value=backlog.oldest_due_seconds,
        )
        processing_lag = GaugeMetricFamily(
            "transactions_processing_lag_seconds",
            f"processed_at - created_at over the transactions processed in the last "
            f"{selectors.LAG_WINDOW_SECONDS} s (absent when none were).",
            labels=["quantile"],
        )
        for quantile, value in (("0.5", lag.p50), ("0.99", lag.p99)):
            if value is not None:
                processing_lag.add_metric([quantile], value)
        yield processing_lag
        age = (timezone.now() - oldest.created_at).total_seconds() if oldest else 0
        yield GaugeMetricFamily(
            "transactions_oldest_pending_age_seconds",
            "Age of the oldest transaction still PROCESSING (0 when none).",
            value=max(age, 0),
        )
        if last_received is not None:  # absent until the first webhook
            yield GaugeMetricFamily(
                "transactions_last_received_timestamp_seconds",
                "Unix time of the newest stored transaction: the last new webhook accepted. "
                "Silence from senders shows as time() minus this growing.",
                value=last_received.timestamp(),
            )
        status = GaugeMetricFamily(
            "transactions_status", "Transactions per status (not PROCESSED).", labels=["status"]
        )
        status.add_metric(["PROCESSING"], counts.processing)
        status.add_metric(["FAILED"], counts.failed)
        yield status


_database_registry = CollectorRegistry(auto_describe=False)
_database_registry.register(DatabaseCollector())


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    # No token: only from this host (behind a trusted proxy, the address of its client).
    return client_address(request) in ("127.0.0.1", "::1")


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry) + generate_latest(_database_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
