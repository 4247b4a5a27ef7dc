"""A fake payment provider over HTTP, for tests and demos: docs/operations.md#the-fake-payment-provider."""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

NEW_RECORD = {"settled": 0, "requests": 0, "duplicates": 0, "in_flight": 0}
Answer = tuple[int, dict[str, str], Any]


class FakeProvider(ThreadingHTTPServer):
    """Settles each Idempotency-Key once, keeps a ledger of every call, and fails when told to."""

    request_queue_size = 1024  # bursts of connections from several workers

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, Handler)
        self.lock = threading.Lock()
        self.mode: dict[str, Any] = {"delay": 0, "fail_status": None, "retry_after": None, "error_body": ""}
        self.keys: dict[str, dict[str, Any]] = {}  # the ledger's record of each key
        self.results: dict[str, dict[str, Any]] = {}  # a settled key's answer, replayed to repeats
        self.calls: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0

    def ledger(self) -> bytes:
        with self.lock:
            return json.dumps(
                {"max_in_flight": self.max_in_flight, "keys": self.keys, "calls": self.calls}
            ).encode()

    def control(self, changes: dict[str, Any]) -> Answer:
        if not changes.keys() <= self.mode.keys():
            return 400, {}, {"error": f"known fields: {sorted(self.mode)}"}
        with self.lock:
            self.mode |= changes
            return 200, {}, dict(self.mode)

    def pay(self, key: str, payment: dict[str, Any]) -> Answer:
        # Every request is a call in the ledger, repeats included: the caps count them all.
        call = {"key": key, "start": time.time(), "end": None, "status": None}
        with self.lock:
            fields = {field: payment.get(field) for field in ("transaction_id", "amount", "currency")}
            record = self.keys.setdefault(key, {**fields, **NEW_RECORD})
            record["requests"] += 1
            record["in_flight"] += 1
            self.calls.append(call)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            replay, busy, mode = self.results.get(key), record["in_flight"] > 1, dict(self.mode)
            record["duplicates"] += replay is not None
        if replay is not None:
            answer: Answer = 200, {"Idempotent-Replayed": "true"}, replay
        elif busy:
            answer = 409, {}, {"error": "a request with this Idempotency-Key is in progress"}
        else:
            answer = self._settle(key, payment, mode)
        with self.lock:
            record["in_flight"] -= 1
            self.in_flight -= 1
            call.update(end=time.time(), status=answer[0])
        return answer

    def _settle(self, key: str, payment: dict[str, Any], mode: dict[str, Any]) -> Answer:
        time.sleep(mode["delay"])  # and settles even if the caller gave up meanwhile, as real ones do
        if mode["fail_status"] is not None:
            headers = {"Retry-After": mode["retry_after"]} if mode["retry_after"] else {}
            return mode["fail_status"], headers, {"error": mode["error_body"] or "failed"}
        with self.lock:
            self.keys[key]["settled"] += 1
            self.results[key] = {"id": f"pay_{len(self.results) + 1}", "status": "settled", **payment}
            return 200, {}, self.results[key]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a caller that gave up is no error here
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the service's connection pool expects
    server: FakeProvider

    def do_GET(self) -> None:
        if self.path == "/ledger":
            self._send(200, {}, self.server.ledger())
        else:
            self._send(404, {}, {"error": "not found"})

    def do_POST(self) -> None:
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        except ValueError:
            return self._send(400, {}, {"error": "body must be JSON"})
        if self.path == "/control":
            return self._send(*self.server.control(body))
        if self.path != "/payments":
            return self._send(404, {}, {"error": "not found"})
        if not (key := self.headers.get("Idempotency-Key")):
            return self._send(400, {}, {"error": "Idempotency-Key header required"})
        return self._send(*self.server.pay(key, body))

    def _send(self, status: int, headers: dict[str, str], payload: Any) -> None:
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the ledger is the record; a line per call would only fill the log


class Command(BaseCommand):
    help = "Run a fake payment provider (idempotent settlements, a ledger, injectable faults)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        with FakeProvider((host, port)) as server:
            self.stdout.write(f"fake payment API listening on http://{host}:{port}/payments")
            self.stdout.flush()
            server.serve_forever()
