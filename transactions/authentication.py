"""Who may call the API: signed webhooks in, API keys for reading transactions (DRF
authentication classes: a failure is a 401 in the usual JSON shape, before the view runs)."""

import logging
import re
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework_api_key.models import APIKey
from rest_framework_api_key.permissions import KeyParser

from . import metrics, signatures

logger = logging.getLogger(__name__)


class InvalidSignature(exceptions.AuthenticationFailed):
    default_detail = "The webhook signature is missing or invalid."
    default_code = "invalid_signature"


class WebhookSignatureAuthentication(BaseAuthentication):
    """The signature against the raw body, before anything is parsed; without WEBHOOK_SECRETS,
    every webhook passes unsigned (warned about by transactions/checks.py)."""

    def authenticate(self, request: Request) -> tuple[None, signatures.VerifiedMessage] | None:
        if not settings.WEBHOOK_SECRETS:
            return None
        # Reading the raw body here applies the size limit (413) before any work.
        body = request.body
        try:
            message = signatures.verify(
                body=body,
                headers=request.headers,
                secrets=settings.WEBHOOK_SECRETS,
                tolerance_seconds=settings.WEBHOOK_TOLERANCE_SECONDS,
            )
        except signatures.SignatureError as exc:
            # The reason only: never the headers themselves.
            logger.warning("webhook refused: %s", exc)
            raise InvalidSignature() from None
        metrics.WEBHOOKS_VERIFIED.labels(secret=message.secret_fingerprint).inc()
        return None, message

    def authenticate_header(self, request: Request) -> str:
        return 'Standard-Webhooks realm="webhooks"'


class APIKeyParser(KeyParser):
    keyword = "Bearer"


# What djangorestframework-api-key generates; anything else is refused without a database lookup.
_API_KEY_PATTERN = re.compile(r"[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}")


class APIKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`, a key created by staff in the admin (stored hashed)."""

    parser = APIKeyParser()

    def authenticate(self, request: Request) -> tuple[None, APIKey] | None:
        key = self.parser.get(request)
        if key is None:
            return None
        key = key.strip()
        try:
            api_key = APIKey.objects.get_from_key(key) if _API_KEY_PATTERN.fullmatch(key) else None
        except APIKey.DoesNotExist:
            api_key = None
        if api_key is None or api_key.has_expired:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return None, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class HasAPIKeyOrPublic(BasePermission):
    """A valid API key, unless STATUS_API_PUBLIC opens the endpoint to everyone."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return settings.STATUS_API_PUBLIC or isinstance(request.auth, APIKey)
