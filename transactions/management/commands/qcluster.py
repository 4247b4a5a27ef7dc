"""`manage.py qcluster`: django-q2's cluster, stopped gracefully and tied together.

- Graceful stop: a processing round can run for minutes, so it must hear of a stop to
  stop claiming. The stop event (worker.install_stop_event) is created before the
  cluster forks, so every process shares it; SIGTERM/SIGINT set it.
- Tied together: django-q2's processes do not watch their parent. If this process is
  killed outright (SIGKILL, the OOM killer), Linux kills each child too (PDEATHSIG), so
  the whole cluster goes down like a crash and its leases expire for another cluster.
- The sentinel (and every process it forks) leaves this process's group, so a signal
  to the group (Ctrl-C in a terminal, honcho, supervisor's stopasgroup) reaches this
  process alone, which stops the cluster gracefully instead of killing calls mid-way.
"""

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.util import register_after_fork
from typing import Any

from django.core.management.base import CommandError
from django.db import connections
from django_q.cluster import Cluster
from django_q.management.commands import qcluster

from transactions import worker

logger = logging.getLogger(__name__)

# prctl(2) option: the signal this process gets when the thread that forked it exits.
_PR_SET_PDEATHSIG = 1


class GracefulCluster(Cluster):
    stop_requested = False

    def sig_handler(self, signum: int, frame: Any) -> None:
        # Only note it. django-q2 stops the cluster right here, inside the handler,
        # taking locks the interrupted code may hold (upstream issue #346); the
        # command's main loop does the stopping instead.
        self.stop_requested = True


class _ChildHook:
    """Held by the command, so that multiprocessing's weak after-fork registry keeps it."""

    def __init__(self, main_pid: int) -> None:
        self.main_pid = main_pid

    def __call__(self) -> None:
        # Runs in every process multiprocessing forks from here on: the sentinel, and
        # (inherited) the workers, pusher and monitor it forks in turn.
        if os.getppid() == self.main_pid:
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


class Command(qcluster.Command):
    help = (
        "Starts the django-q2 cluster that processes transactions. "
        "Stop it with SIGTERM to this (the main) process only."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        worker.ensure_sweep_schedule()
        worker.ensure_retention_schedule()
        # No connection may cross the fork: a child closing its copy would end ours.
        connections.close_all()
        worker.install_stop_event()
        self._child_hook = _ChildHook(os.getpid())
        register_after_fork(self._child_hook, _ChildHook.__call__)
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = GracefulCluster()
        cluster.start()
        if not cluster.stop_requested:
            # Work left behind by a cluster that crashed (leases expired) or that
            # arrived while no cluster ran is taken now, not at the next sweep.
            worker.queue_round()
            connections.close_all()  # this process only watches its cluster from here on
        while not (cluster.stop_requested or options.get("run_once")):
            if not cluster.sentinel.is_alive():
                raise CommandError("the cluster's sentinel process died; restart qcluster")
            time.sleep(0.2)
        self._stop(cluster)

    @staticmethod
    def _stop(cluster: GracefulCluster) -> None:
        def stop() -> None:
            # Running rounds hear it first: they stop claiming and finish (or hand
            # back) their calls while django-q2 drains the workers.
            worker.request_stop()
            cluster.stop()

        # Stopping can block for ever on a lock held by a process that was killed
        # meanwhile (a SIGTERM to the whole process group kills the sentinel and the
        # workers at once): wait for it only while the sentinel lives.
        stopper = threading.Thread(target=stop, name="stop-cluster", daemon=True)
        stopper.start()
        while stopper.is_alive() and cluster.sentinel.is_alive():
            stopper.join(0.2)
