"""`manage.py send_webhook`: signed webhooks from the command line to a live service, watched if asked."""

import io
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.management import call_command

from tests.factories import webhook_body
from tests.processes import ROOT
from transactions.models import Status, Transaction
from transactions.signatures import generate_secret, is_valid_secret

SECRET = generate_secret()


def send_webhook(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "send_webhook", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.e2e
def test_a_signed_test_webhook_is_accepted_and_a_wrongly_signed_one_refused(service):
    service.start_web(workers=1, WEBHOOK_SECRETS=SECRET)
    url = service.url("/v1/webhooks/transactions")

    good = send_webhook("--url", url, "--secret", SECRET, env=service.env)
    bad = send_webhook("--url", url, "--secret", generate_secret(), env=service.env)

    assert good.returncode == 0, good.stderr
    assert "202 " in good.stdout
    assert bad.returncode != 0
    assert "401 " in bad.stdout and "invalid_signature" in bad.stdout
    assert Transaction.objects.count() == 1


@pytest.mark.e2e
def test_the_secret_defaults_to_the_first_of_webhook_secrets_and_data_can_be_given(service):
    service.start_web(workers=1, WEBHOOK_SECRETS=SECRET)
    env = {**service.env, "WEBHOOK_SECRETS": f"{SECRET},{generate_secret()}"}
    body = json.dumps(webhook_body(transaction_id="txn_cli_1"))

    result = send_webhook("--url", service.url("/v1/webhooks/transactions"), "--data", body, env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert Transaction.objects.get().transaction_id == "txn_cli_1"


def test_new_secret_prints_a_usable_secret():
    result = send_webhook("--new-secret", env={"DJANGO_SECRET_KEY": "x", "PATH": ""})

    assert result.returncode == 0, result.stderr
    assert is_valid_secret(result.stdout.strip())


@pytest.mark.e2e
@pytest.mark.postgres  # it talks HTTP; one database run is enough
def test_many_webhooks_delivered_several_times_at_once_are_stored_once_and_watched_until_processed(service):
    service.start_web(PROCESSING_DELAY_SECONDS=0.3)
    service.start_worker(PROCESSING_DELAY_SECONDS=0.3)
    out = io.StringIO()

    call_command(
        "send_webhook",
        url=service.url("/v1/webhooks/transactions"),
        count=40,
        duplicates=3,
        concurrency=8,
        watch=True,
        timeout=60,
        stdout=out,
        stderr=io.StringIO(),
    )

    text = out.getvalue()
    assert "POST 120 deliveries of 40 webhooks" in text
    assert "202 x120: " in text
    assert "response times (ms): median" in text
    assert "all PROCESSED after" in text
    assert '"PROCESSED": 40, "FAILED": 0, "deliveries": 120, "attempts": 40' in text
    assert Transaction.objects.count() == 40
    assert set(Transaction.objects.values_list("status", "delivery_count")) == {(Status.PROCESSED, 3)}


def test_signatures_verify_with_the_standard_webhooks_library():
    pytest.importorskip("standardwebhooks", reason="needs the standardwebhooks package")
    from standardwebhooks import Webhook

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
    url = f"http://127.0.0.1:{server.server_port}/"

    call_command(
        "send_webhook", url=url, secret=SECRET, data='{"transaction_id": "txn_signed"}', stdout=io.StringIO()
    )
    server.server_close()

    headers, body = received[0]
    lowered = {k.lower(): v for k, v in headers.items()}
    assert Webhook(SECRET).verify(body, lowered) == {"transaction_id": "txn_signed"}
