"""The external payment API that processing calls: a real one over HTTP (PAYMENT_API_URL),
or simulated. Its rules: docs/operations.md (A real payment API)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from django.conf import settings
from django.utils.http import parse_http_date

if TYPE_CHECKING:  # services imports the worker, which imports this
    from .services import Claim

logger = logging.getLogger(__name__)

# How much of a refusing provider's body is kept in last_error.
ERROR_BODY_CHARS = 500
# A Retry-After beyond this is taken as this: a provider's typo must not park a payment for days.
MAX_RETRY_AFTER_SECONDS = 3600.0
RETRYABLE_STATUSES = frozenset({408, 409, 429})


class PaymentAPIError(Exception):
    """The external API refused the call for good (`permanent`) or failed it, perhaps saying
    how many seconds to wait (`retry_after`)."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date; None if absent or bad."""
    value = (value or "").strip()
    try:
        if value.isdigit():
            seconds = float(value)
        else:
            seconds = parse_http_date(value) - (now or datetime.now(UTC)).timestamp()
    except ValueError:  # absent, or neither delta-seconds (float() refuses "²") nor an HTTP date
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def error_from_response(response: httpx.Response) -> PaymentAPIError | None:
    """None for a 2xx; a permanent error for a 4xx but 408, 409 (key busy) and 429; else retryable."""
    if response.is_success:
        return None
    status = response.status_code
    message = f"HTTP {status} from the payment API: {response.text[:ERROR_BODY_CHARS]}".rstrip(": ")
    permanent = 400 <= status < 500 and status not in RETRYABLE_STATUSES
    retry_after = None if permanent else parse_retry_after(response.headers.get("Retry-After"))
    return PaymentAPIError(message, permanent=permanent, retry_after=retry_after)


class SimulatedPaymentAPI:
    """The default: slow (PROCESSING_DELAY_SECONDS), failing a fraction of the time (retryable)."""

    async def send(self, claim: Claim) -> None:
        await asyncio.sleep(settings.PROCESSING_DELAY_SECONDS)
        if random.random() < settings.PROCESSING_FAILURE_RATE:
            raise PaymentAPIError("simulated failure of the external payment API")

    async def aclose(self) -> None:
        pass


class HTTPPaymentAPI:
    """A real payment API at PAYMENT_API_URL; one connection pool per event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        cap = settings.PAYMENT_API_MAX_CONCURRENCY
        self.client = httpx.AsyncClient(
            timeout=settings.PROCESSING_CALL_TIMEOUT_SECONDS,
            # No process needs more connections than the cluster may use at once.
            limits=httpx.Limits(max_connections=cap or None, max_keepalive_connections=min(cap or 100, 100)),
            headers={"User-Agent": "webhook-service"},
        )

    async def send(self, claim: Claim) -> None:
        # The amount as a string: exact, whatever the provider's JSON numbers are.
        body = {
            "transaction_id": claim.transaction_id,
            "source_account": claim.source_account,
            "destination_account": claim.destination_account,
            "amount": str(claim.amount),
            "currency": claim.currency,
        }
        try:
            response = await self.client.post(self.url, json=body, headers={"Idempotency-Key": str(claim.pk)})
        except httpx.TimeoutException as exc:
            raise PaymentAPIError(f"payment API timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise PaymentAPIError(f"payment API unreachable: {type(exc).__name__}: {exc}") from exc
        if (error := error_from_response(response)) is not None:
            raise error

    async def aclose(self) -> None:
        await self.client.aclose()


async def make_client() -> SimulatedPaymentAPI | HTTPPaymentAPI:
    """The API this deployment calls; async, so that it is made on the loop that will use it."""
    if settings.PAYMENT_API_URL:
        return HTTPPaymentAPI(settings.PAYMENT_API_URL)
    return SimulatedPaymentAPI()


async def settle(api: SimulatedPaymentAPI | HTTPPaymentAPI, claim: Claim) -> None:
    """One call; raises PaymentAPIError (or is cancelled). The start and end lines are the audit
    trail the fault tests read to prove no transaction had two calls in flight."""
    key = claim.pk  # the idempotency key
    logger.info("external call start idempotency_key=%s at=%.6f", key, time.time())
    outcome = "cancelled"
    try:
        await api.send(claim)
        outcome = "ok"
    except Exception:
        outcome = "failed"
        raise
    finally:
        logger.info("external call end idempotency_key=%s at=%.6f outcome=%s", key, time.time(), outcome)
