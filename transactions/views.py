from django.db import connection
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .models import Transaction
from .serializers import TransactionSerializer, TransactionWebhookSerializer, WebhookAcceptedSerializer


def _utc_now_iso() -> str:
    return timezone.now().replace(microsecond=0).isoformat().replace("+00:00", "Z")


class HealthView(APIView):
    """200 HEALTHY when the database answers, else 503 UNHEALTHY."""

    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            healthy = True
        except Exception:
            healthy = False
        return Response(
            {"status": "HEALTHY" if healthy else "UNHEALTHY", "current_time": _utc_now_iso()},
            status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


class TransactionWebhookView(APIView):
    """Validate, store once, acknowledge. Processing happens in the workers."""

    def post(self, request: Request) -> Response:
        # Reading the raw body first applies the size limit before anything is parsed.
        request.body  # noqa: B018
        serializer = TransactionWebhookSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.ingest_transaction(data=serializer.validated_data, payload=request.data)
        return Response(WebhookAcceptedSerializer(result).data, status=status.HTTP_202_ACCEPTED)


class TransactionDetailView(APIView):
    def get(self, request: Request, transaction_id: str) -> Response:
        txn = get_object_or_404(Transaction, transaction_id=transaction_id)
        return Response(TransactionSerializer(txn).data)
