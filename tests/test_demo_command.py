"""`manage.py demo`: a provider's traffic against the real service, watched until processed."""

import io
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.management import call_command

from transactions.models import Status, Transaction


@pytest.mark.e2e
@pytest.mark.postgres  # the demo talks HTTP; one database run is enough
def test_demo_shows_all_three_scenes_end_to_end(service):
    service.start_web(PROCESSING_DELAY_SECONDS=0.3)
    service.start_worker(PROCESSING_DELAY_SECONDS=0.3)
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "demo", url=service.url(""), count=40, duplicates=4, concurrency=8, timeout=60, stdout=out, stderr=err
    )

    text = out.getvalue()
    assert "1. One webhook" in text and "2. The same webhook" in text and "3. A burst of 40" in text
    assert "4 deliveries answered [202, 202, 202, 202]" in text
    assert "rows stored: 1, deliveries counted: 4, processing attempts: 1" in text
    assert text.count("all PROCESSED") == 3
    assert "PROCESSED" in err.getvalue()  # the live progress bar
    burst = Transaction.objects.filter(transaction_id__contains="_burst_")
    assert burst.count() == 40
    assert set(burst.values_list("status", flat=True)) == {Status.PROCESSED}
    assert burst.filter(delivery_count=2).count() == 4  # every tenth was redelivered


def test_demo_signs_webhooks_verifiably_when_given_a_secret():
    pytest.importorskip("standardwebhooks", reason="signing needs the standardwebhooks package")
    from standardwebhooks import Webhook

    from transactions.management.commands.demo import Sender

    received: list[tuple[dict, bytes]] = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.handle_request, daemon=True).start()
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    Sender(f"http://127.0.0.1:{server.server_port}", secret, 1).send({"transaction_id": "txn_signed"})
    server.server_close()

    headers, body = received[0]
    lowered = {k.lower(): v for k, v in headers.items()}
    assert Webhook(secret).verify(body, lowered) == {"transaction_id": "txn_signed"}
