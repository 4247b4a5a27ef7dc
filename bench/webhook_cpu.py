"""CPU time one webhook costs inside the web process: the WSGI application, called in a
loop with a prepared request, without a server or a network in between.

    createdb -h 127.0.0.1 -U postgres webhooks_cpu
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/webhooks_cpu python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/webhooks_cpu python bench/webhook_cpu.py

The request is the production one (https behind the TLS proxy, Host allowed, a fresh
transaction_id each time, so every call stores a row). It prints the process CPU time
per webhook, best of --rounds (other work on a shared machine only adds to it), and
the same for GET / as a reference. Not a test: numbers vary with the machine.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhooks_project.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key")
os.environ.setdefault("DJANGO_HTTPS", "1")

from webhooks_project.wsgi import application  # sets Django up


def environ(method: str, path: str, body: bytes = b"") -> dict:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_X_FORWARDED_PROTO": "https",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def webhook() -> dict:
    body = {
        "transaction_id": f"cpu_{uuid.uuid4().hex[:24]}",
        "source_account": "acc_user_1",
        "destination_account": "acc_merchant_1",
        "amount": 1500,
        "currency": "INR",
    }
    return environ("POST", "/v1/webhooks/transactions", json.dumps(body).encode())


def health() -> dict:
    return environ("GET", "/")


def cpu_per_call(make_environ: Callable[[], dict], count: int, expected: str) -> float:
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    requests = [make_environ() for _ in range(count)]
    started = time.process_time()
    for request in requests:
        response = application(request, start_response)
        for _ in response:
            pass
        response.close()
    elapsed = time.process_time() - started
    wrong = [s for s in statuses if not s.startswith(expected)]
    if wrong:
        raise SystemExit(f"unexpected answers: {wrong[:3]}")
    return elapsed / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cpu_per_call(webhook, 200, "202")  # warm up: connection, prepared statement, caches
    cpu_per_call(health, 200, "200")
    for name, make, expected in (("webhook", webhook, "202"), ("GET /", health, "200")):
        best = min(cpu_per_call(make, args.count, expected) for _ in range(args.rounds))
        print(f"{name}: {best * 1e6:.0f} µs CPU per request (best of {args.rounds} x {args.count})")


if __name__ == "__main__":
    main()
