"""Security warnings for `manage.py check --deploy`, and the same at web start-up."""

import logging
from typing import Any

from django.conf import settings
from django.core import checks

logger = logging.getLogger(__name__)


@checks.register(checks.Tags.security, deploy=True)
def check_security_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    warnings: list[checks.CheckMessage] = []
    if not settings.WEBHOOK_SECRETS:
        warnings.append(
            checks.Warning(
                "WEBHOOK_SECRETS is not set: webhooks are accepted WITHOUT a signature, so anyone who "
                "can reach the endpoint can create transactions.",
                hint="Set WEBHOOK_SECRETS to the sender's whsec_... secret(s), comma-separated.",
                id="transactions.W001",
            )
        )
    if settings.STATUS_API_PUBLIC:
        warnings.append(
            checks.Warning(
                "STATUS_API_PUBLIC is on: GET /v1/transactions/{id} answers anyone, without an API key.",
                hint="Unset STATUS_API_PUBLIC and give clients API keys (admin: API keys).",
                id="transactions.W002",
            )
        )
    return warnings


def log_security_warnings() -> None:
    """Said once per web process at start-up, where an operator reads the logs."""
    for warning in check_security_settings():
        logger.warning(warning.msg)
