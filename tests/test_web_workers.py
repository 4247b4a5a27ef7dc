"""The web server as deployed (gunicorn.conf.py): kept-alive sender connections, spread
over the workers, and a clear refusal to start on a port that is taken."""

import json
import socket
from collections import Counter
from http.client import HTTPConnection
from pathlib import Path

import pytest

from tests.factories import webhook_body
from tests.processes import log_records, wait_for
from transactions.models import Transaction

pytestmark = pytest.mark.e2e


def _post(conn: HTTPConnection, body: dict) -> tuple[int, dict[str, str]]:
    conn.request("POST", "/v1/webhooks/transactions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


def test_webhooks_from_one_sender_share_one_kept_alive_connection(service):
    service.start_web()
    conn = HTTPConnection("127.0.0.1", service.port, timeout=10)
    bodies = [webhook_body() for _ in range(3)]

    status, headers = _post(conn, bodies[0])
    first_socket = conn.sock
    statuses = [status] + [_post(conn, body)[0] for body in bodies[1:]]

    assert statuses == [202, 202, 202]
    assert headers.get("connection", "").lower() != "close"
    assert conn.sock is first_socket  # no reconnect between webhooks
    assert Transaction.objects.filter(transaction_id__in=[b["transaction_id"] for b in bodies]).count() == 3
    conn.close()


def test_connections_opened_at_once_are_spread_over_the_web_workers(service):
    # Senders open connections in bursts and keep them alive. Had one worker accepted them
    # all (the first to wake takes the shared socket's whole backlog), it would serve them
    # on one core while the other workers sat idle.
    web = service.start_web(workers=4, GUNICORN_ACCESS_LOG="-", GUNICORN_CMD_ARGS="--access-logformat=%(p)s")
    conns = [HTTPConnection("127.0.0.1", service.port, timeout=10) for _ in range(32)]
    for conn in conns:
        conn.connect()

    for conn in conns:
        conn.request("GET", "/")
    for conn in conns:
        assert conn.getresponse().read()
        conn.close()

    served_by = wait_for(
        lambda: _access_log_pids(web.log_path, at_least=32), timeout=10, what="32 access log lines"
    )
    assert len(served_by) >= 3, served_by


def test_the_web_server_refuses_to_start_on_a_port_another_program_listens_on(service):
    with socket.socket() as other:
        other.bind(("0.0.0.0", 0))
        other.listen()
        port = other.getsockname()[1]

        web = service.spawn_web(workers=2, port=port)

        assert web.wait(timeout=30) != 0
    assert f"cannot listen on 0.0.0.0:{port}" in Path(web.log_path).read_text()


def _access_log_pids(log_path: str, at_least: int) -> Counter | None:
    """How many requests each worker pid served: its access log lines read "<pid>" (%(p)s)."""
    pids = Counter(pid for pid, message in log_records(log_path) if message == f"<{pid}>")
    return pids if pids.total() >= at_least else None
