"""How the processes of one `qcluster` stop: together, and gracefully when asked.

django-q2 stops a cluster by letting each worker finish its current task. A processing
task can run for a minute, so it must learn of the stop to stop taking new work. Our
`qcluster` command creates a shared event before the cluster forks its processes, so
every worker shares it; the command's signal handler sets it.

django-q2's processes do not watch their parent: if the main process is killed outright
(SIGKILL, the OOM killer), its sentinel and workers would live on headless, still
processing, with nothing left to stop them. `install()` therefore also asks Linux to
kill each child when its parent dies, so the whole cluster goes down like a crash, and
its leased transactions are recovered by another cluster (see the README's Guarantees).

It also moves the sentinel (and so every process it forks) out of the main process's
process group. A signal sent to the group (Ctrl-C in a terminal, honcho, supervisor's
stopasgroup) then reaches the main process alone, which stops the cluster gracefully,
instead of killing the sentinel and the workers mid-call.
"""

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from multiprocessing.synchronize import Event
from multiprocessing.util import register_after_fork

logger = logging.getLogger(__name__)

_event: Event | None = None

# prctl(2) option: the signal this process gets when the thread that forked it exits.
_PR_SET_PDEATHSIG = 1


class _ChildHook:
    """Held here so that multiprocessing's weak after-fork registry keeps it."""


_child_hook = _ChildHook()
_main_pid: int | None = None


def install() -> Event:
    """Create the shared event and tie children to their parent; call in the main
    qcluster process before it forks."""
    global _event, _main_pid
    _event = multiprocessing.get_context("fork").Event()
    _main_pid = os.getpid()
    register_after_fork(_child_hook, _after_fork)
    return _event


def _after_fork(_: object) -> None:
    # Runs in every process multiprocessing forks from here on: the sentinel, and
    # (inherited) the workers, pusher and monitor it forks in turn.
    if os.getppid() == _main_pid:
        os.setpgid(0, 0)  # the sentinel: a process group of its own
    if sys.platform.startswith("linux"):
        _die_with_parent()


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logger.warning("could not tie process %d to its parent: errno %d", os.getpid(), ctypes.get_errno())
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)  # the parent died before the tie was made


def request() -> None:
    if _event is not None:
        _event.set()


def requested() -> bool:
    return _event is not None and _event.is_set()
