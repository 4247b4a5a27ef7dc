"""The external payment API that processing calls (simulated).

It is slow (PROCESSING_DELAY_SECONDS) and can be made to fail a fraction of the time
(PROCESSING_FAILURE_RATE). Like a real payment API, it takes an idempotency key, so
a call repeated after a crash is recognised by the provider rather than applied twice.
"""

import asyncio
import logging
import random
import uuid
from decimal import Decimal

from django.conf import settings

logger = logging.getLogger(__name__)


class PaymentAPIError(Exception):
    """The external API refused or failed the call; it may succeed if retried."""


async def settle(*, idempotency_key: uuid.UUID, amount: Decimal, currency: str) -> None:
    logger.debug("external call start idempotency_key=%s", idempotency_key)
    await asyncio.sleep(settings.PROCESSING_DELAY_SECONDS)
    if random.random() < settings.PROCESSING_FAILURE_RATE:
        raise PaymentAPIError("simulated failure of the external payment API")
    logger.debug("external call done idempotency_key=%s", idempotency_key)
