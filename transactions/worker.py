"""The worker side, in one place: how a due transaction becomes PROCESSED or FAILED.

The flow, capacity and shutdown: docs/guarantees.md (How it works, Faults) and
docs/performance.md (The capacity model).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import queue
import random
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from multiprocessing.synchronize import Event
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.models import Schedule
from django_q.tasks import async_task

from . import metrics, payment_api, selectors, services

logger = logging.getLogger(__name__)

PROCESS_TASK = "transactions.worker.process_due_transactions"
SWEEP_SCHEDULE_NAME = "transactions: sweep for due transactions"
PURGE_TASK = "transactions.worker.purge_expired_transactions"
RETENTION_SCHEDULE_NAME = "transactions: delete PROCESSED transactions past retention"
# At 1,000 webhooks/s a run deletes 600,000 rows: a minute or two of batches.
RETENTION_INTERVAL_MINUTES = 10

# Claims per statement: a few statements a second at any rate, and no lease held idle for long.
CLAIM_BATCH = 1000
# How long a finished call waits for others to be recorded with it: a burst of 1,000 calls
# that end together is recorded within this of the last, in one commit.
RECORD_BATCH_SECONDS = 0.1


# --- Stopping ---------------------------------------------------------------------

_stop: Event | None = None


def install_stop_event() -> None:
    """Called by qcluster before the cluster forks, so that every process shares the event."""
    global _stop
    _stop = multiprocessing.get_context("fork").Event()


def request_stop() -> None:
    if _stop is not None:
        _stop.set()


def stop_requested() -> bool:
    return _stop is not None and _stop.is_set()


# --- Waking the workers -----------------------------------------------------------

_wakeup_lock = threading.Lock()
_last_wakeup = float("-inf")


def wake_workers() -> None:
    """Queue a processing round unless one is queued, at most once per interval per process:
    a running round takes new arrivals too. A lost wake-up is harmless (the sweep)."""
    global _last_wakeup
    now = time.monotonic()
    with _wakeup_lock:
        if now - _last_wakeup < settings.PROCESSING_WAKEUP_INTERVAL_SECONDS:
            return
        _last_wakeup = now
    try:
        if queued_rounds() == 0:
            queue_round()
    except Exception:
        logger.warning("could not wake the workers; the sweep will pick the work up", exc_info=True)


@functools.cache
def _broker() -> Broker:
    # One per process: a Redis broker opens a connection pool of its own.
    return get_broker()


def queued_rounds() -> int:
    """django-q2 tasks waiting for a worker (rounds and sweeps), on whichever broker."""
    return _broker().queue_size()


def queue_round() -> None:
    async_task(PROCESS_TASK, task_name=f"process-{uuid.uuid4().hex}", broker=_broker())


def _schedule(name: str, func: str, minutes: int) -> None:
    defaults = {"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1}
    Schedule.objects.update_or_create(name=name, defaults=defaults)


def ensure_sweep_schedule() -> None:
    """Create (or repair) the minutely sweep at qcluster's start: the backstop for lost
    wake-ups, expired leases and passed backoffs, with no manual step."""
    _schedule(SWEEP_SCHEDULE_NAME, PROCESS_TASK, 1)


def ensure_retention_schedule() -> None:
    """Create (or repair) the retention schedule at qcluster's start, or remove it when unset."""
    if settings.RETENTION_DAYS is None:
        Schedule.objects.filter(name=RETENTION_SCHEDULE_NAME).delete()
    else:
        _schedule(RETENTION_SCHEDULE_NAME, PURGE_TASK, RETENTION_INTERVAL_MINUTES)


def _replace_dropped_connection() -> None:
    # A worker's connection outlives its tasks and is not health-checked on use: one the
    # database dropped meanwhile is replaced now, rather than failing this task.
    if connection.connection is not None and not connection.is_usable():
        connection.close()


def purge_expired_transactions() -> int:
    """The retention task: delete PROCESSED transactions older than RETENTION_DAYS."""
    if settings.RETENTION_DAYS is None:
        return 0  # turned off since the schedule was made; the next qcluster start removes it
    _replace_dropped_connection()
    return services.purge_processed_transactions(
        older_than=timezone.now() - timedelta(days=settings.RETENTION_DAYS),
        batch_size=settings.RETENTION_BATCH_SIZE,
        pause_seconds=settings.RETENTION_BATCH_PAUSE_SECONDS,
        # Ends before django-q2 would kill it (timeout) and before the next run is due.
        max_seconds=min(settings.Q_CLUSTER["timeout"] - 30, RETENTION_INTERVAL_MINUTES * 60 - 60),
        stop=stop_requested,
    )


# --- The task ---------------------------------------------------------------------


def process_due_transactions() -> dict[str, int]:
    """The django-q2 task: one processing round. Returns its counts."""
    _replace_dropped_connection()
    try:
        return asdict(ProcessingRound().run())
    except DatabaseError:
        # Said here because django-q2 may not be able to store the failure either.
        logger.warning("database unavailable: this round's transactions are retried when their leases expire")
        raise


# --- The external calls -----------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A finished external call: `failure` is None when the payment API accepted it."""

    claim: services.Claim
    failure: services.Failure | None
    seconds: float


class PaymentCalls:
    """External calls on an asyncio loop in a helper thread (a call is a wait, not work, so
    thousands share one process); only the round's thread talks to the database."""

    def __enter__(self) -> PaymentCalls:
        self._finished: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="payment-calls", daemon=True)
        self._thread.start()
        self._api = self._run(payment_api.make_client())
        return self

    def _run(self, coroutine: Any, timeout: float = 5) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self, claim: services.Claim) -> None:
        asyncio.run_coroutine_threadsafe(self._call(claim), self._loop)

    async def _call(self, claim: services.Claim) -> None:
        started = time.monotonic()
        failure = None
        try:
            await asyncio.wait_for(
                payment_api.settle(self._api, claim), timeout=settings.PROCESSING_CALL_TIMEOUT_SECONDS
            )
        except TimeoutError:
            failure = services.Failure(
                f"external call timed out after {settings.PROCESSING_CALL_TIMEOUT_SECONDS:g}s"
            )
        except payment_api.PaymentAPIError as exc:
            failure = services.Failure(
                f"{type(exc).__name__}: {exc}", permanent=exc.permanent, retry_after=exc.retry_after
            )
        except Exception as exc:
            failure = services.Failure(f"{type(exc).__name__}: {exc}")
        # A cancelled call (shutdown) reports nothing: its claim is handed back instead.
        self._finished.put(Outcome(claim, failure, time.monotonic() - started))

    def finished(self, wait: float) -> list[Outcome]:
        """The calls that ended: up to `wait` seconds for the first, then a moment for those
        ending with it, recorded together (a few statements a second, not one per call)."""
        try:
            outcomes = [self._finished.get(timeout=wait)]
        except queue.Empty:
            return []
        time.sleep(RECORD_BATCH_SECONDS)
        while not self._finished.empty():  # this thread is the only consumer
            outcomes.append(self._finished.get_nowait())
        return outcomes

    def cancel_all(self, timeout: float = 5) -> None:
        """Cancel every call and wait until each has stopped, before its claim can go elsewhere."""

        async def cancel() -> None:
            calls = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in calls:
                task.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self._loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        try:
            # After an error (the database went away) calls are abandoned now, not later: their
            # leases expire before anyone calls again, so never two workers at once.
            self.cancel_all()
        except Exception:
            logger.warning("payment calls did not stop within 5 s", exc_info=True)
        try:
            self._run(self._api.aclose())
        except Exception:
            logger.warning("could not close the payment API client", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


# --- One round --------------------------------------------------------------------


@dataclass
class RoundSummary:
    processed: int = 0
    retrying: int = 0
    failed: int = 0
    lost: int = 0
    handed_back: int = 0


class ProcessingRound:
    """Claim due transactions while there is room, call, record; end after the claim window."""

    def __init__(
        self,
        *,
        max_in_flight: int | None = None,
        claim_window: float | None = None,
        idle: float | None = None,
    ) -> None:
        self.max_in_flight = max_in_flight or settings.PROCESSING_CONCURRENCY
        # Jittered, so that a busy cluster's rounds do not all end (and pause claiming) at once.
        window = settings.PROCESSING_CLAIM_WINDOW_SECONDS if claim_window is None else claim_window
        self.claim_until = time.monotonic() + window * random.uniform(0.5, 1.0)
        self.idle = settings.PROCESSING_IDLE_SECONDS if idle is None else idle
        self.in_flight: dict[uuid.UUID, services.Claim] = {}
        self.summary = RoundSummary()

    def run(self) -> RoundSummary:
        last_claim: float | None = None  # None until the round has claimed anything
        give_up_at: float | None = None  # set once a stop is requested
        with PaymentCalls() as calls:
            while True:
                now = time.monotonic()
                if give_up_at is None and stop_requested():
                    give_up_at = now + settings.PROCESSING_SHUTDOWN_GRACE_SECONDS
                    logger.info("stop requested: finishing %d calls in flight", len(self.in_flight))
                claiming = give_up_at is None and now < self.claim_until
                if claiming:
                    for claim in self._claim():
                        calls.start(claim)
                        last_claim = now
                # A round that finds nothing at its first look ends at once, so that
                # wake-ups queued during a burst do not each hold a worker.
                idle = not claiming or last_claim is None or now - last_claim >= self.idle
                if idle and not self.in_flight:
                    break
                self._record(calls.finished(wait=settings.PROCESSING_POLL_SECONDS))
                if give_up_at is not None and self.in_flight and time.monotonic() >= give_up_at:
                    calls.cancel_all()
                    self._hand_back()
                    break
        # Work still due when the window closed: the next round starts now, not at the sweep.
        if give_up_at is None and time.monotonic() >= self.claim_until and selectors.due_transactions_exist():
            queue_round()
        return self.summary

    def _claim(self) -> list[services.Claim]:
        room = self.max_in_flight - len(self.in_flight)
        claims = services.claim_due_transactions(limit=min(room, CLAIM_BATCH)) if room > 0 else []
        self.in_flight.update((claim.pk, claim) for claim in claims)
        return claims

    def _record(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        for outcome in outcomes:
            del self.in_flight[outcome.claim.pk]
        recorded = services.record_outcomes((o.claim, o.failure) for o in outcomes)
        for name, count in recorded.items():
            setattr(self.summary, name, getattr(self.summary, name) + count)
            metrics.PROCESSING_OUTCOMES.labels(outcome=name).inc(count)
        for outcome in outcomes:
            label = "ok" if outcome.failure is None else "error"
            metrics.EXTERNAL_CALL_SECONDS.labels(outcome=label).observe(outcome.seconds)

    def _hand_back(self) -> None:
        handed_back = services.release_claims(self.in_flight.values())
        self.in_flight.clear()
        self.summary.handed_back += handed_back
        metrics.PROCESSING_OUTCOMES.labels(outcome="handed_back").inc(handed_back)
        logger.warning("handed %d unfinished transactions back on stop", handed_back)
