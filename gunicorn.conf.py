"""gunicorn settings; the environment still wins for each (e.g. WEB_CONCURRENCY)."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# Requests are short (validate, one INSERT); a slow one is a bug, not a reason to wait.
timeout = 30
# On SIGTERM, requests in flight get this long to finish.
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# Each worker opens its own database connection after the fork.
preload_app = False
# gunicorn 27's control socket lives at one fixed path per user, which several
# instances on one host (tests, benchmarks) would fight over; we do not use it.
control_socket_disable = True
