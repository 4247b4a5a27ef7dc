"""One place that turns every API error into the same JSON shape (docs/api.md: Errors):
{"error": code, "message": text, "fields": {field: [messages]}}, `fields` for validation errors only."""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from . import metrics
from .database import replace_broken_connection

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service cannot store requests right now; retry later."
    default_code = "service_unavailable"


def error_body(code: str, message: str, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    return body


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, (OperationalError, InterfaceError)):
        # The database is unreachable: nothing was stored, so the sender must retry.
        # The message tells an outage ("connection refused") from a full pool ("couldn't get a
        # connection after 3.00 sec"); psycopg's never holds the password.
        logger.warning("database unavailable: %s: %s", exc.__class__.__name__, str(exc).strip())
        replace_broken_connection()  # so that the next request gets a working one
        exc = ServiceUnavailable()
    elif isinstance(exc, DatabaseError):
        logger.exception("database error")
        exc = ServiceUnavailable()

    response = exception_handler(exc, context)
    if response is None:
        return None  # An unexpected error: Django's handler500 answers with JSON.

    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("invalid_payload", "The request body is invalid.", fields)
    else:
        # DRF has already turned Http404 and PermissionDenied into {"detail": ErrorDetail}.
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = error_body(getattr(detail, "code", None) or "error", str(detail))
    if response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        response["Retry-After"] = str(settings.RETRY_AFTER_SECONDS)
    if getattr(context.get("view"), "count_rejections", False):
        metrics.WEBHOOKS_REJECTED.labels(status=str(response.status_code), error=response.data["error"]).inc()
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)
