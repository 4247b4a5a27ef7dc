"""The worker side, in one place: how a due transaction becomes PROCESSED or FAILED.

Follow one transaction through this file:
1. A web process stores it (services.ingest_transaction) and calls `wake_workers()`,
   which queues the django-q2 task `process_due_transactions` unless one is queued.
2. A qcluster worker process runs that task: one `ProcessingRound`. The round claims
   due transactions in batches (services.claim_due_transactions: a lease per batch),
3. starts one external call per claim on `PaymentCalls`, an asyncio event loop in a
   helper thread (the call is a wait, not work, so thousands share one process),
4. and every PROCESSING_POLL_SECONDS records the calls that finished, in a few
   statements per batch (services.record_outcomes, conditional on the lease).
5. The round claims for a claim window, then finishes its calls and ends; if work is
   still due it queues the next round at once. The minutely sweep (a django-q2
   schedule) is the backstop for lost wake-ups and expired leases.

Capacity: each worker process keeps up to PROCESSING_CONCURRENCY calls in flight, so a
cluster processes up to QCLUSTER_WORKERS x PROCESSING_CONCURRENCY / call duration
transactions a second (4 x 10,000 / 30 s = 1,333/s by default); beyond that, add
qcluster processes (on this host or another) against the same database.

Stopping: the qcluster command creates a stop event before the cluster forks, and sets
it on SIGTERM/SIGINT. A round then stops claiming, lets its calls finish for up to
PROCESSING_SHUTDOWN_GRACE_SECONDS, and hands the rest back for another worker.
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
# Each run deletes what has aged past retention since the last one: at 1,000 webhooks/s,
# 600,000 rows, a minute or two of batches.
RETENTION_INTERVAL_MINUTES = 10

# How many claims one statement takes: big enough that bookkeeping is a few statements
# a second at any rate, small enough that one batch's lease is never held idle for long.
CLAIM_BATCH = 1000


# --- Stopping ---------------------------------------------------------------------

_stop: Event | None = None


def install_stop_event() -> None:
    """Create the event that stops every round; the qcluster command calls this before
    the cluster forks its processes, so that all of them share it."""
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
    """Ask for a processing round now rather than at the next sweep (web processes).

    At most once per PROCESSING_WAKEUP_INTERVAL_SECONDS per process, and only when no
    round is already queued: a running round keeps taking newly arrived transactions,
    so one wake-up serves a burst. Losing one is harmless; the sweep finds all due work.
    """
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


def ensure_sweep_schedule() -> None:
    """Create (or repair) the minutely sweep; run by `qcluster` at start.

    The sweep is the backstop for every way a transaction could otherwise wait forever:
    a lost wake-up, a worker killed mid-call (its lease expires), a retry whose backoff
    has passed. Made on start, so no deployment depends on a manual step.
    """
    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={"func": PROCESS_TASK, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
    )


def ensure_retention_schedule() -> None:
    """Create (or repair) the retention schedule when RETENTION_DAYS is set, and remove it
    when it is not; run by `qcluster` at start, like the sweep."""
    if settings.RETENTION_DAYS is None:
        Schedule.objects.filter(name=RETENTION_SCHEDULE_NAME).delete()
        return
    Schedule.objects.update_or_create(
        name=RETENTION_SCHEDULE_NAME,
        defaults={
            "func": PURGE_TASK,
            "schedule_type": Schedule.MINUTES,
            "minutes": RETENTION_INTERVAL_MINUTES,
            "repeats": -1,
        },
    )


def purge_expired_transactions() -> int:
    """The retention task: delete PROCESSED transactions older than RETENTION_DAYS."""
    if settings.RETENTION_DAYS is None:
        return 0  # turned off since the schedule was made; the next qcluster start removes it
    if connection.connection is not None and not connection.is_usable():
        connection.close()
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
    # A worker's connection outlives its tasks and is not health-checked on use: one the
    # database dropped meanwhile (a restart, an outage) is replaced now, rather than
    # failing this round and leaving its work to the next sweep.
    if connection.connection is not None and not connection.is_usable():
        connection.close()
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
    """External calls on an asyncio event loop in a helper thread.

    The round's thread starts calls with `start()` and collects finished ones with
    `finished()`; only that thread talks to the database, as Django expects. The
    payment API's client (its connection pool) lives on the loop, made at enter and
    closed at exit.
    """

    def __enter__(self) -> PaymentCalls:
        self._finished: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="payment-calls", daemon=True)
        self._thread.start()
        self._api = self._run(self._make_api())
        return self

    def _run(self, coroutine: Any, timeout: float = 5) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @staticmethod
    async def _make_api() -> payment_api.SimulatedPaymentAPI | payment_api.HTTPPaymentAPI:
        return payment_api.make_client()

    def start(self, claim: services.Claim) -> None:
        asyncio.run_coroutine_threadsafe(self._call(claim), self._loop)

    async def _call(self, claim: services.Claim) -> None:
        started = time.monotonic()
        failure = None
        payment = payment_api.Payment(
            idempotency_key=claim.pk,
            transaction_id=claim.transaction_id,
            source_account=claim.source_account,
            destination_account=claim.destination_account,
            amount=claim.amount,
            currency=claim.currency,
        )
        try:
            await asyncio.wait_for(
                payment_api.settle(self._api, payment), timeout=settings.PROCESSING_CALL_TIMEOUT_SECONDS
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
        """The calls that ended by the end of `wait` seconds from now.

        The whole wait, not until the first: calls end all the time at a high rate, and
        recording them a poll's worth at once keeps the bookkeeping at a few statements
        a second instead of some per transaction.
        """
        time.sleep(wait)
        outcomes = []
        while True:
            try:
                outcomes.append(self._finished.get_nowait())
            except queue.Empty:
                return outcomes

    def cancel_all(self, timeout: float = 5) -> None:
        """Cancel every call and wait until each has stopped, so that none is still
        running when its claim goes to another worker."""

        async def cancel() -> None:
            calls = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in calls:
                task.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self._loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        try:
            # Normally nothing runs any more. After an error (the database went away)
            # the calls are abandoned here, not later: their transactions are called
            # again once their leases expire, and never by two workers at once.
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
    """Claim due transactions while there is room, call, record; see the module docstring."""

    def __init__(
        self,
        *,
        max_in_flight: int | None = None,
        claim_window: float | None = None,
        idle: float | None = None,
    ) -> None:
        self.max_in_flight = max_in_flight or settings.PROCESSING_CONCURRENCY
        # Jittered, so that the rounds of a busy cluster do not all end (and pause
        # claiming while they finish their calls) at the same moment.
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
        # Work still due when the window closed: the next round starts now, not at the
        # next wake-up or sweep.
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
