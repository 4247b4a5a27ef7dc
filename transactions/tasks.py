"""django-q2 entry points. Each takes plain values and returns something printable."""

import logging

from django.db import DatabaseError, connection
from django_q.models import Schedule

from . import processing

logger = logging.getLogger(__name__)


def process_due_transactions() -> dict[str, int]:
    """Process due transactions until idle; queued by web wake-ups and the minutely sweep."""
    # A worker's connection outlives its tasks and is not health-checked on use
    # (DATABASE_CONN_HEALTH_CHECKS is off for the web's sake): one the database dropped
    # meanwhile (a restart, an outage) is replaced now, rather than failing this task
    # and leaving its work to the next sweep.
    if connection.connection is not None and not connection.is_usable():
        connection.close()
    try:
        return processing.process_due().as_dict()
    except DatabaseError:
        # Said here because django-q2 may not be able to store the failure either.
        logger.warning("database unavailable: this task's transactions are retried when their leases expire")
        raise


SWEEP_SCHEDULE_NAME = "transactions: sweep for due transactions"


def ensure_sweep_schedule() -> None:
    """Create (or repair) the minutely sweep; run by `qcluster` at start.

    The sweep is the backstop for every way a transaction could otherwise wait
    forever: a lost wake-up, a worker killed mid-call (its lease expires), a retry
    whose backoff has passed. Made on start, so no deployment depends on a manual step.
    """
    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={
            "func": f"{__name__}.{process_due_transactions.__name__}",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
