from django.db import connection
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import fastpath, selectors, services
from .authentication import APIKeyAuthentication, HasAPIKeyOrPublic, WebhookSignatureAuthentication
from .database import replace_broken_connection
from .examples import EXAMPLE_WEBHOOK
from .models import Transaction
from .serializers import (
    ErrorSerializer,
    HealthSerializer,
    ReadySerializer,
    TransactionSerializer,
    TransactionWebhookSerializer,
    WebhookAcceptedSerializer,
)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


def _utc_now_iso() -> str:
    return timezone.now().replace(microsecond=0).isoformat().replace("+00:00", "Z")


class HealthView(APIView):
    @extend_schema(
        summary="Health check",
        description="200 HEALTHY when the database answers, else 503 UNHEALTHY.",
        responses={200: HealthSerializer, 503: HealthSerializer},
        examples=[OpenApiExample("Healthy", {"status": "HEALTHY", "current_time": "2024-01-15T10:30:00Z"})],
    )
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            healthy = True
        except Exception:
            healthy = False
            replace_broken_connection()  # so that the next check gets a working one
        return Response(
            {"status": "HEALTHY" if healthy else "UNHEALTHY", "current_time": _utc_now_iso()},
            status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


class ReadyView(APIView):
    @extend_schema(
        summary="Readiness check",
        description=(
            "For orchestrators: 200 READY when this instance can serve (the database answers "
            "and every migration is applied), else 503 NOT_READY naming the failing check. "
            "`GET /` stays the plain health check."
        ),
        responses={200: ReadySerializer, 503: ReadySerializer},
        examples=[
            OpenApiExample(
                "Ready",
                {"status": "READY", "checks": {"database": "ok", "migrations": "ok"}},
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        checks = selectors.readiness()
        ready = all(value == "ok" for value in checks.values())
        return Response(
            {"status": "READY" if ready else "NOT_READY", "checks": checks},
            status=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


class AnswerInJSON(DefaultContentNegotiation):
    """The request's Content-Type still picks the parser (415 otherwise), but the
    answer is always JSON, whatever Accept says: a sender's Accept header must not
    turn a webhook into a 406 that it retries forever. Skipping the Accept parsing is
    also a few percent of a webhook's CPU time."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


class TransactionWebhookView(APIView):
    """Verify the signature, validate, store once, acknowledge. Processing happens in the workers."""

    authentication_classes = [WebhookSignatureAuthentication]

    # Refusals are counted in webhooks_rejected_total (transactions/errors.py).
    count_rejections = True

    content_negotiation_class = AnswerInJSON

    @extend_schema(
        summary="Receive a transaction webhook",
        description=(
            "Stores the transaction once and answers 202 at once; it is processed in the "
            "background. Redeliveries of the same transaction_id also get 202 and change nothing "
            "but the delivery count (a redelivery with different fields is flagged as a conflict)."
        ),
        request=TransactionWebhookSerializer,
        parameters=[
            OpenApiParameter(
                "Location",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[202],
                description="Where the transaction's status can be read: "
                "`/v1/transactions/{transaction_id}` (duplicates too).",
            )
        ],
        responses={
            202: WebhookAcceptedSerializer,
            400: _error("Malformed JSON, or an invalid field (named in `fields`)."),
            401: _error(
                "The Standard Webhooks signature is missing, invalid or outside the time "
                "tolerance (only when the service has WEBHOOK_SECRETS); nothing is stored."
            ),
            413: _error("Body larger than the limit (64 KiB by default)."),
            415: _error("Content-Type is not application/json."),
            503: _error("The database is unavailable; retry after the Retry-After header's seconds."),
        },
        examples=[
            OpenApiExample("Webhook", EXAMPLE_WEBHOOK, request_only=True),
            OpenApiExample(
                "Accepted",
                {"transaction_id": EXAMPLE_WEBHOOK["transaction_id"], "status": "PROCESSING"},
                response_only=True,
                status_codes=["202"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        # Reading the raw body first applies the size limit before anything is parsed.
        request.body  # noqa: B018
        serializer = TransactionWebhookSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.ingest_transaction(
            data=serializer.validated_data,
            payload=request.data,
            # The VerifiedMessage of WebhookSignatureAuthentication; None when unsigned.
            secret_fingerprint=request.auth.secret_fingerprint if request.auth else "",
        )
        # Two strings, written out as the health views do; WebhookAcceptedSerializer
        # describes them for the schema (an instance per answer: ~0.05 ms, 4% of the CPU).
        return Response(
            {"transaction_id": result.transaction_id, "status": result.status},
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": fastpath.status_path(result.transaction_id)},
        )


class TransactionDetailView(APIView):
    authentication_classes = [APIKeyAuthentication]
    permission_classes = [HasAPIKeyOrPublic]

    @extend_schema(
        summary="A transaction and its processing status",
        description="Needs an API key (`Authorization: Bearer <key>`) unless the service runs "
        "with STATUS_API_PUBLIC=1.",
        responses={
            200: TransactionSerializer,
            401: _error("No API key, or an invalid, revoked or expired one."),
            404: _error("No transaction with this transaction_id."),
        },
        examples=[
            OpenApiExample(
                "Processed",
                {
                    **EXAMPLE_WEBHOOK,
                    "status": "PROCESSED",
                    "created_at": "2024-01-15T10:30:00.123456Z",
                    "processed_at": "2024-01-15T10:30:30.456789Z",
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, transaction_id: str) -> Response:
        txn = get_object_or_404(Transaction, transaction_id=transaction_id)
        return Response(TransactionSerializer(txn).data)
