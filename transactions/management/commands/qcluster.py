import os
import threading
import time
from typing import Any

from django.core.management.base import CommandError
from django.db import connections
from django_q.cluster import Cluster
from django_q.management.commands import qcluster

from transactions import services, shutdown
from transactions.tasks import ensure_sweep_schedule


class GracefulCluster(Cluster):
    stop_requested = False

    def sig_handler(self, signum: int, frame: Any) -> None:
        # Only note it. django-q2 stops the cluster right here, inside the handler,
        # taking locks the interrupted code may hold (upstream issue #346); the
        # command's main loop does the stopping instead.
        self.stop_requested = True


class Command(qcluster.Command):
    help = (
        "Starts the django-q2 cluster that processes transactions. "
        "Stop it with SIGTERM to this (the main) process only."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        ensure_sweep_schedule()
        # No connection may cross the fork: a child closing its copy would end ours.
        connections.close_all()
        shutdown.install()
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = GracefulCluster()
        cluster.start()
        if not cluster.stop_requested:
            # Work left behind by a cluster that crashed (leases expired) or that
            # arrived while no cluster ran is taken now, not at the next sweep.
            services.wake_workers()
            connections.close_all()  # this process only watches its cluster from here on
        while not (cluster.stop_requested or options.get("run_once")):
            if not cluster.sentinel.is_alive():
                raise CommandError("the cluster's sentinel process died; restart qcluster")
            time.sleep(0.2)
        self._stop(cluster)

    @staticmethod
    def _stop(cluster: GracefulCluster) -> None:
        def stop() -> None:
            # Running tasks hear it first: they stop taking transactions and finish
            # (or hand back) their calls while django-q2 drains the workers.
            shutdown.request()
            cluster.stop()

        # Stopping can block for ever on a lock held by a process that was killed
        # meanwhile (a SIGTERM to the whole process group kills the sentinel and the
        # workers at once): wait for it only while the sentinel lives.
        stopper = threading.Thread(target=stop, name="stop-cluster", daemon=True)
        stopper.start()
        while stopper.is_alive() and cluster.sentinel.is_alive():
            stopper.join(0.2)
