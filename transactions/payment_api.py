"""The external payment API that processing calls (simulated).

It is slow (PROCESSING_DELAY_SECONDS) and can be made to fail a fraction of the time
(PROCESSING_FAILURE_RATE). Like a real payment API, it takes an idempotency key, so
a call repeated after a crash is recognised by the provider rather than applied twice.

Every call logs one line when it starts and one when it ends, with the idempotency key
and a wall-clock timestamp: the audit trail of what was sent out, which the
fault-injection tests read to prove that no transaction had two calls in flight at once.
"""

import asyncio
import logging
import random
import time
import uuid
from decimal import Decimal

from django.conf import settings

logger = logging.getLogger(__name__)


class PaymentAPIError(Exception):
    """The external API refused or failed the call; it may succeed if retried."""


async def settle(*, idempotency_key: uuid.UUID, amount: Decimal, currency: str) -> None:
    logger.info("external call start idempotency_key=%s at=%.6f", idempotency_key, time.time())
    outcome = "cancelled"
    try:
        await asyncio.sleep(settings.PROCESSING_DELAY_SECONDS)
        if random.random() < settings.PROCESSING_FAILURE_RATE:
            outcome = "failed"
            raise PaymentAPIError("simulated failure of the external payment API")
        outcome = "ok"
    finally:
        logger.info(
            "external call end idempotency_key=%s at=%.6f outcome=%s", idempotency_key, time.time(), outcome
        )
