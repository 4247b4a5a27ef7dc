"""Security warnings for `manage.py check --deploy`, and the same at web start-up."""

import logging
from typing import Any

from django.conf import settings
from django.core import checks

logger = logging.getLogger(__name__)

UNSIGNED_WEBHOOKS = (
    "WEBHOOK_SECRETS is not set: webhooks are accepted WITHOUT a signature, so anyone who "
    "can reach the endpoint can create transactions."
)
PUBLIC_STATUS_API = "STATUS_API_PUBLIC is on: GET /v1/transactions/{id} answers anyone, without an API key."


@checks.register(checks.Tags.security, deploy=True)
def check_webhook_secrets(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if settings.WEBHOOK_SECRETS:
        return []
    return [
        checks.Warning(
            UNSIGNED_WEBHOOKS,
            hint="Set WEBHOOK_SECRETS to the sender's whsec_... secret(s), comma-separated.",
            id="transactions.W001",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_status_api(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not settings.STATUS_API_PUBLIC:
        return []
    return [
        checks.Warning(
            PUBLIC_STATUS_API,
            hint="Unset STATUS_API_PUBLIC and give clients API keys (admin: API keys).",
            id="transactions.W002",
        )
    ]


def log_security_warnings() -> None:
    """Said once per web process at start-up, where an operator reads the logs."""
    if not settings.WEBHOOK_SECRETS:
        logger.warning(UNSIGNED_WEBHOOKS)
    if settings.STATUS_API_PUBLIC:
        logger.warning(PUBLIC_STATUS_API)
