import os
from typing import Any

from django.db import connections
from django_q.cluster import Cluster
from django_q.management.commands import qcluster

from transactions import services, shutdown
from transactions.tasks import ensure_sweep_schedule


class GracefulCluster(Cluster):
    def sig_handler(self, signum: int, frame: Any) -> None:
        # Tell running processing tasks first, so they stop taking new transactions
        # and finish (or hand back) their calls while django-q2 drains its workers.
        shutdown.request()
        super().sig_handler(signum, frame)


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
        # Work left behind by a cluster that crashed (leases expired) or that arrived
        # while no cluster ran is taken now, not at the next sweep.
        services.wake_workers()
        connections.close_all()  # this process only waits for its cluster from here on
        if options.get("run_once"):
            cluster.stop()
