"""django-q2 entry points. Each takes plain values and returns something printable."""

from . import processing


def process_due_transactions() -> dict[str, int]:
    """Process due transactions until idle; queued by web wake-ups and the minutely sweep."""
    return processing.process_due().as_dict()
