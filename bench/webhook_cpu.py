"""CPU time one webhook costs inside the web process: the WSGI application called in a loop
with the production request (https behind the proxy, a fresh transaction_id each time), no
server or network. Best of --rounds (other work only adds to it), and GET / for reference.
Instructions per webhook, which the machine's noise does not change: docs/benchmarks.md.

    createdb -h 127.0.0.1 -U postgres webhooks_cpu
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/webhooks_cpu python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/webhooks_cpu python bench/webhook_cpu.py
"""

import argparse
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from wsgiref.util import setup_testing_defaults

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhooks_project.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key")
os.environ.setdefault("DJANGO_HTTPS", "1")

from transactions.examples import EXAMPLE_WEBHOOK
from webhooks_project.wsgi import application  # sets Django up


def request(method: str, path: str, body: bytes = b"") -> dict:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_FORWARDED_PROTO": "https",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)  # the rest of a WSGI environ
    return environ


def webhook() -> dict:
    body = {**EXAMPLE_WEBHOOK, "transaction_id": f"cpu_{uuid.uuid4().hex[:24]}"}
    return request("POST", "/v1/webhooks/transactions", json.dumps(body).encode())


def cpu_per_call(make_environ: Callable[[], dict], count: int, expected: str) -> float:
    statuses: list[str] = []
    environs = [make_environ() for _ in range(count)]
    started = time.process_time()
    for environ in environs:
        response = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(response)
        response.close()
    elapsed = time.process_time() - started
    if wrong := [status for status in statuses if not status.startswith(expected)]:
        raise SystemExit(f"unexpected answers: {wrong[:3]}")
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--webhooks-only", action="store_true", help="no GET / (counting instructions)")
    args = parser.parse_args()
    measured = [("webhook", webhook, "202"), ("GET /", lambda: request("GET", "/"), "200")]
    for name, make, expected in measured[: 1 if args.webhooks_only else 2]:
        cpu_per_call(make, 200, expected)  # warm up: connection, prepared statement, caches
        best = min(cpu_per_call(make, args.count, expected) for _ in range(args.rounds))
        print(f"{name}: {best * 1e6:.0f} µs CPU per request (best of {args.rounds} x {args.count})")


if __name__ == "__main__":
    main()
