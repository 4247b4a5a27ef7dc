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
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# gevent: each connection is a greenlet, so a client that sends its request slowly (a flaky
# link, or an attacker with many sockets) holds only a greenlet while it waits, not one of
# a few threads. With gthread's 4x4 threads, 48 connections dribbling headers stopped all
# ingestion (tests/test_slow_clients.py). psycopg cooperates with gevent's monkeypatching,
# and the web's database connections come from a pool (settings.py: DATABASE_POOL_SIZE).
worker_class = "gevent"
# Connections one worker holds at once, slow ones included; more wait in the backlog.
worker_connections = 1000
# Requests are short (validate, one INSERT); a slow one is a bug, not a reason to wait.
# (With gevent this is only the worker heartbeat: a blocked event loop, not a slow client.)
timeout = 30
# On SIGTERM, requests in flight get this long to finish.
graceful_timeout = 20
# How long an idle kept-alive connection stays open, and (gevent's worker) how long a
# client has to send a request's line and headers: one that dribbles them is closed.
keepalive = 5
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new connections
# over them. On one shared socket, the first worker to wake takes a whole burst of new
# connections and, as they are kept alive, serves them on one core while the others idle
# (measured: all 32 of the benchmark's connections on one worker, ~800 webhooks/s instead
# of ~1,350; tests/test_web_workers.py).
reuse_port = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# Each worker opens its own database connection after the fork.
preload_app = False
# gunicorn 27's control socket lives at one fixed path per user, which several
# instances on one host (tests, benchmarks) would fight over; we do not use it.
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
        # Off unless GUNICORN_ACCESS_LOG asks for it.
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
    # The app is loaded and its objects (Django, settings, URL patterns) live as long as the
    # worker. Frozen, the cyclic collector stops walking them: a full collection, which holds
    # the GIL and so stalls all of this worker's requests, fell from 40-290 ms to 1-15 ms
    # under load (docs/benchmarks.md).
    gc.freeze()


def child_exit(server: object, worker: object) -> None:
    # Prometheus multiprocess mode (transactions/metrics.py): drop a dead worker's live gauges.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
