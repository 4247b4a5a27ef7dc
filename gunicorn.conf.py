"""gunicorn settings; the environment still wins for each (e.g. WEB_CONCURRENCY)."""

import gc
import os
import runpy
import socket
import sys
from pathlib import Path
from typing import Any

# The settings, run as a file for their LOGGING and not imported: each worker must import
# them itself, after gevent has patched it, for its database pool (settings.py).
_root = Path(__file__).resolve().parent
sys.path.insert(0, str(_root))  # the project's modules, whichever directory gunicorn started in
service = runpy.run_path(str(_root / "webhooks_project" / "settings.py"))

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# One gevent worker per CPU: each serves many connections, and more processes only contend
# for the cores (2 cores: 725-752 webhooks/s with 2 workers, 584-615 with 4; benchmarks.md).
workers = int(os.environ.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)))
# A slow client holds a greenlet, not one of a few threads: with gthread's 4x4 threads, 48
# connections dribbling headers stopped all ingestion (tests/test_slow_clients.py).
worker_class = "gevent"
worker_connections = 1000
timeout = 30  # with gevent, only the heartbeat of a blocked event loop
graceful_timeout = 20
keepalive = 5  # also how long a client has to send a request's line and headers
# A socket per worker, spread by the kernel: on one shared socket the first worker took a
# whole burst (~800 webhooks/s instead of ~1,350; docs/performance.md).
reuse_port = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
preload_app = False  # each worker opens its own database connections after the fork
# Its one fixed path per user would be fought over by several instances on one host.
control_socket_disable = True

# gunicorn's own lines in the same shape as the service's (LOGGING in settings.py).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": service["LOGGING"]["filters"],
    "formatters": service["LOGGING"]["formatters"],
    "handlers": {
        "console": {**service["LOGGING"]["handlers"]["console"], "stream": "ext://sys.stdout"},
        "error_console": {**service["LOGGING"]["handlers"]["console"], "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {
            "level": "INFO" if accesslog else "WARNING",
            "handlers": ["console"],
            "propagate": False,
        },
    },
}


def on_starting(server: Any) -> None:  # gunicorn.arbiter.Arbiter
    # With reuse_port only the workers bind, and gunicorn would respawn them forever if the
    # port is taken by another program; fail at start instead, as without reuse_port.
    for address in server.cfg.address:
        if isinstance(address, tuple):
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn's own
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                try:
                    probe.bind(address)
                except OSError as error:
                    raise SystemExit(f"cannot listen on {address[0]}:{address[1]}: {error}") from error
            # gunicorn's own "Listening at:" line is empty when only the workers bind.
            server.log.info("Listening at: http://%s:%s (a socket per worker)", *address)


def post_worker_init(worker: object) -> None:
    # The loaded app lives as long as the worker; frozen, a full collection (which stalls every
    # request of this worker) fell from 40-290 ms to 1-15 ms under load (docs/benchmarks.md).
    gc.freeze()


def child_exit(server: object, worker: object) -> None:
    # Prometheus multiprocess mode (transactions/metrics.py): drop a dead worker's live gauges.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
