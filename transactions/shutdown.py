"""Lets processing tasks inside django-q2 worker processes see that the cluster is stopping.

django-q2 stops a cluster by letting each worker finish its current task. A processing
task can run for a minute, so it must learn of the stop to stop taking new work. Our
`qcluster` command creates this event before the cluster forks its processes, so every
worker shares it; the command's signal handler sets it.
"""

import multiprocessing
from multiprocessing.synchronize import Event

_event: Event | None = None


def install() -> Event:
    """Create the shared event; call in the main qcluster process before it forks."""
    global _event
    _event = multiprocessing.get_context("fork").Event()
    return _event


def request() -> None:
    if _event is not None:
        _event.set()


def requested() -> bool:
    return _event is not None and _event.is_set()
