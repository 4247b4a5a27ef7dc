"""django-q2's qcluster, stopped gracefully and tied together: docs/operations.md#stopping-qcluster."""

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

_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when the thread that forked it exits


class GracefulCluster(Cluster):
    stop_requested = False

    def sig_handler(self, signum: int, frame: Any) -> None:
        # Only note it: django-q2 stops inside the handler, taking locks the interrupted
        # code may hold (django-q2 issue #346); the command's main loop stops instead.
        self.stop_requested = True


def _tie_to_cluster(main_pid: int) -> None:
    # Runs in every process forked from here on. The sentinel (and all it forks) leaves our
    # process group, so a signal to the group (Ctrl-C, honcho) reaches this process alone,
    # which stops gracefully.
    if os.getppid() == main_pid:
        os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        _die_with_parent()


def _die_with_parent() -> None:
    # django-q2's processes do not watch their parent: if this one is SIGKILLed, Linux
    # kills them too, so the cluster goes down like a crash and its leases expire.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logger.warning("could not tie process %d to its parent: errno %d", os.getpid(), ctypes.get_errno())
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)  # the parent died before the tie was made


class Command(qcluster.Command):
    help = "Starts the django-q2 cluster that processes transactions; stop it with SIGTERM to this process."

    def handle(self, *args: Any, **options: Any) -> None:
        worker.ensure_sweep_schedule()
        worker.ensure_retention_schedule()
        # No connection may cross the fork: a child closing its copy would end ours.
        connections.close_all()
        # Before the fork, so that every process shares it: rounds hear of a stop and stop claiming.
        worker.install_stop_event()
        main_pid = os.getpid()
        register_after_fork(self, lambda command: _tie_to_cluster(main_pid))  # while this command lives
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = GracefulCluster()
        cluster.start()
        if not cluster.stop_requested:
            # Work left by a crashed cluster, or that arrived while none ran, is taken now.
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
            worker.request_stop()  # running rounds hear it first, while django-q2 drains the workers
            cluster.stop()

        # Stopping can block for ever on a lock held by a process killed meanwhile (a
        # SIGTERM to the whole group): wait for it only while the sentinel lives.
        stopper = threading.Thread(target=stop, name="stop-cluster", daemon=True)
        stopper.start()
        while stopper.is_alive() and cluster.sentinel.is_alive():
            stopper.join(0.2)
