"""The processing loop that runs inside one django-q2 task.

The external call is a wait, not work, so one worker process keeps many calls in
flight: the calls run concurrently on an asyncio event loop in a helper thread, while
this thread alone talks to the database (claims, outcomes), as Django expects.

The loop takes due transactions whenever it has free slots, until it has been idle for
a while, its claim window has passed, or the cluster is stopping; then it finishes what
it holds and returns. Every transaction it touches is claimed with a lease first, so a
crash at any point leaves nothing that another worker cannot pick up later.
"""

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

from django.conf import settings

from . import metrics, payment_api, services, shutdown
from .models import Status
from .services import Claim

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    processed: int = 0
    retrying: int = 0
    failed: int = 0
    handed_back: int = 0
    lost: int = 0

    def as_dict(self) -> dict[str, int]:
        return self.__dict__.copy()


class _EventLoopThread:
    """An asyncio loop on a daemon thread, to which coroutines are submitted."""

    def __enter__(self) -> "_EventLoopThread":
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="payment-calls", daemon=True)
        self.thread.start()
        return self

    def submit(self, claim: Claim) -> Future:
        call = asyncio.wait_for(
            payment_api.settle(idempotency_key=claim.pk, amount=claim.amount, currency=claim.currency),
            timeout=settings.PROCESSING_CALL_TIMEOUT_SECONDS,
        )
        return asyncio.run_coroutine_threadsafe(call, self.loop)

    def cancel_all(self, timeout: float = 5) -> None:
        """Cancel every call and wait until each has stopped, so that none is still
        running when its claim is handed to another worker."""

        async def cancel() -> None:
            calls = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in calls:
                task.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            # An error (the database went away) abandons the calls: they end here, not
            # later, and their transactions are called again once their leases expire.
            with contextlib.suppress(Exception):
                self.cancel_all()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


def _record(claim: Claim, future: Future, summary: RunSummary, started: float) -> None:
    outcome = _outcome(claim, future, summary)
    metrics.PROCESSING_OUTCOMES.labels(outcome=outcome).inc()
    metrics.EXTERNAL_CALL_SECONDS.labels(outcome=outcome).observe(time.monotonic() - started)


def _outcome(claim: Claim, future: Future, summary: RunSummary) -> str:
    error = future.exception()
    if error is None:
        if services.mark_processed(claim):
            summary.processed += 1
            return "processed"
        summary.lost += 1
        return "lost"
    if isinstance(error, TimeoutError):
        message = f"external call timed out after {settings.PROCESSING_CALL_TIMEOUT_SECONDS:g}s"
    else:
        message = f"{type(error).__name__}: {error}"
    outcome = services.record_failure(claim, message)
    if outcome is None:
        summary.lost += 1
        return "lost"
    if outcome == Status.FAILED:
        summary.failed += 1
        return "failed"
    summary.retrying += 1
    return "retrying"


def process_due(
    *,
    concurrency: int | None = None,
    claim_window: float | None = None,
    idle: float | None = None,
) -> RunSummary:
    """Process due transactions until idle; see the module docstring."""
    concurrency = concurrency or settings.PROCESSING_CONCURRENCY
    claim_window = settings.PROCESSING_CLAIM_WINDOW_SECONDS if claim_window is None else claim_window
    idle = settings.PROCESSING_IDLE_SECONDS if idle is None else idle
    poll = settings.PROCESSING_POLL_SECONDS

    summary = RunSummary()
    started = last_claim = time.monotonic()
    claimed_any = False
    in_flight: dict[Future, Claim] = {}
    started_at: dict[Future, float] = {}
    stop_deadline: float | None = None
    window_closed_with_work = False

    with _EventLoopThread() as calls:
        while True:
            now = time.monotonic()
            stopping = shutdown.requested()
            if stopping and stop_deadline is None:
                stop_deadline = now + settings.PROCESSING_SHUTDOWN_GRACE_SECONDS
                logger.info("shutdown requested: finishing %d calls in flight", len(in_flight))
            window_open = now - started < claim_window

            if not stopping and window_open and len(in_flight) < concurrency:
                for claim in services.claim_due_transactions(limit=concurrency - len(in_flight)):
                    future = calls.submit(claim)
                    in_flight[future], started_at[future] = claim, time.monotonic()
                    last_claim, claimed_any = now, True

            if not in_flight:
                # A task that finds nothing at its first look ends at once: wake-ups
                # queued during a burst must not each hold a worker for `idle` seconds.
                if stopping or not window_open or not claimed_any or now - last_claim >= idle:
                    window_closed_with_work = not window_open and not stopping
                    break
                time.sleep(poll)
                continue

            done, _ = wait(in_flight, timeout=poll, return_when=FIRST_COMPLETED)
            for future in done:
                _record(in_flight.pop(future), future, summary, started_at.pop(future))

            if stop_deadline is not None and time.monotonic() >= stop_deadline and in_flight:
                calls.cancel_all()
                summary.handed_back = services.release_claims(in_flight.values())
                metrics.PROCESSING_OUTCOMES.labels(outcome="handed_back").inc(summary.handed_back)
                logger.warning("handed %d unfinished transactions back on shutdown", summary.handed_back)
                break

    # A full window means work kept arriving: a fresh task carries on at once rather
    # than leaving it to the next wake-up or sweep.
    if window_closed_with_work and services.pending_due_exists():
        services.wake_workers()
    return summary
