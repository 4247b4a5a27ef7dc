"""Slow clients (a flaky mobile link, or anyone with a few hundred sockets) must not stop
ingestion: the web process as the Procfile starts it keeps answering normal webhooks
while 200 connections dribble their headers or bodies."""

import json
import secrets
import socket
import statistics
import threading
import time
import uuid
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

import pytest

from tests.factories import webhook_body
from transactions.models import Transaction
from transactions.signatures import signed_headers

pytestmark = pytest.mark.e2e

SLOW_HEADERS = 100
SLOW_BODIES = 100
WEBHOOKS = 100
# Bounds, so that the test stops itself on a server that does not answer: each webhook
# gives up after this long, and 20 senders send the 100 webhooks.
WEBHOOK_TIMEOUT = 3
SENDERS = 20
# The target: a normal webhook is answered well within this, slow clients or not.
P99_BOUND = 1.0


class SlowClients:
    """Keeps `headers` connections sending a request's headers and `bodies` connections
    sending a body, one line or byte a second, never finishing; a connection the server
    closes is opened again, as a patient attacker would."""

    def __init__(self, port: int, headers: int, bodies: int) -> None:
        self.port = port
        self.kinds = ["headers"] * headers + ["body"] * bodies
        self.socks: list[socket.socket | None] = [None] * len(self.kinds)
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, kind: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        head = "POST /v1/webhooks/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if kind == "body":  # complete headers, then a body that never ends
            head += "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"
        sock.sendall(head.encode())
        return sock

    def _dribble(self, index: int) -> None:
        sock = self.socks[index]
        try:
            if sock is None:
                raise OSError("not open")
            sock.sendall(b"X-Slow: 1\r\n" if self.kinds[index] == "headers" else b" ")
        except OSError:
            if sock is not None:
                sock.close()
                self.reopened += 1
            self.socks[index] = self._open(self.kinds[index])

    def open_all(self) -> None:
        for index, kind in enumerate(self.kinds):
            self.socks[index] = self._open(kind)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for index in range(len(self.socks)):
                if self._stop.is_set():
                    return
                try:
                    self._dribble(index)
                except OSError:
                    self.socks[index] = None  # could not reopen now; tried again next round

    def open_count(self) -> int:
        return sum(sock is not None for sock in self.socks)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.socks:
            if sock is not None:
                sock.close()


def _timed_post(port: int, secret: str) -> tuple[str, int | None, float]:
    """One signed webhook on a new connection, as most senders send them. (http.client:
    a new httpx client per webhook costs the test itself ~40 ms of CPU for its TLS context.)"""
    body = webhook_body()
    content = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        **signed_headers(secret=secret, msg_id=f"msg_{uuid.uuid4().hex}", body=content),
    }
    started = time.monotonic()
    conn = HTTPConnection("127.0.0.1", port, timeout=WEBHOOK_TIMEOUT)
    try:
        conn.request("POST", "/v1/webhooks/transactions", content, headers)
        response = conn.getresponse()
        response.read()
        status = response.status
    except OSError:  # refused, reset or timed out
        status = None
    finally:
        conn.close()
    return body["transaction_id"], status, time.monotonic() - started


def test_normal_webhooks_are_answered_within_a_second_while_200_slow_clients_dribble(service):
    secret = "whsec_" + b64encode(secrets.token_bytes(24)).decode()
    service.start_web(workers=2, WEBHOOK_SECRETS=secret)
    slow = SlowClients(service.port, headers=SLOW_HEADERS, bodies=SLOW_BODIES)
    try:
        slow.open_all()
        time.sleep(3)  # every slow connection has started dribbling
        assert slow.open_count() == SLOW_HEADERS + SLOW_BODIES

        with ThreadPoolExecutor(SENDERS) as senders:
            results = list(senders.map(lambda _: _timed_post(service.port, secret), range(WEBHOOKS)))
        still_open = slow.open_count()
    finally:
        slow.close()

    statuses = [status for _, status, _ in results]
    latencies = sorted(elapsed for _, _, elapsed in results)
    p99 = latencies[int(0.99 * len(latencies)) - 1]
    print(
        f"{WEBHOOKS} webhooks beside {still_open} slow connections: median "
        f"{statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms; slow connections the server closed: {slow.reopened}"
    )
    assert statuses == [202] * WEBHOOKS, statuses
    assert p99 < P99_BOUND, f"p99 {p99:.2f}s"
    # Stored by the time it was acknowledged: the 202 follows the commit.
    accepted = [transaction_id for transaction_id, _, _ in results]
    assert Transaction.objects.filter(transaction_id__in=accepted).count() == WEBHOOKS
