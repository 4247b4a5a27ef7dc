"""gunicorn settings; the environment still wins for each (e.g. WEB_CONCURRENCY)."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# Threads, not one request per process: part of each webhook is a wait for PostgreSQL's
# commit, during which another thread's request uses the CPU; and unlike the sync worker,
# gthread keeps a sender's connection open between webhooks (no TCP setup per request).
# Measured with `make bench`: see docs/benchmarks.md.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# Requests are short (validate, one INSERT); a slow one is a bug, not a reason to wait.
timeout = 30
# On SIGTERM, requests in flight get this long to finish.
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# Each worker opens its own database connection after the fork.
preload_app = False
