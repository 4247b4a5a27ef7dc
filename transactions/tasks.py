"""django-q2 entry points. Each takes plain values and returns something printable."""

from django_q.models import Schedule

from . import processing


def process_due_transactions() -> dict[str, int]:
    """Process due transactions until idle; queued by web wake-ups and the minutely sweep."""
    return processing.process_due().as_dict()


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
