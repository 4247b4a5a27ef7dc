"""Logs: JSON lines in production, with the request id and the transaction id they are about."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.factories import webhook_body
from tests.processes import ROOT, wait_for


def _json_lines(proc) -> list[dict]:
    lines = Path(proc.log_path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.e2e
def test_service_logs_json_lines_with_request_and_transaction_ids(service):
    web = service.start_web(workers=1, PROCESSING_DELAY_SECONDS=0.2)
    worker = service.start_worker(PROCESSING_DELAY_SECONDS=0.2)
    body = webhook_body()

    httpx.post(service.url("/v1/webhooks/transactions"), json=body, timeout=10)
    # A redelivery with a different amount: a conflict, logged by the web process.
    response = httpx.post(
        service.url("/v1/webhooks/transactions"),
        json={**body, "amount": 1},
        headers={"X-Request-ID": "req-from-provider-42"},
        timeout=10,
    )
    assert response.headers["X-Request-ID"] == "req-from-provider-42"

    processed = wait_for(
        lambda: [r for r in _json_lines(worker) if r.get("transaction_id") == body["transaction_id"]],
        timeout=30,
        what="the worker's line about the transaction",
    )
    assert processed[0]["level"] == "INFO"
    assert processed[0]["message"] == f"processed transaction_id={body['transaction_id']}"
    assert {"time", "logger", "process", "request_id"} <= set(processed[0])

    conflict = [r for r in _json_lines(web) if r.get("transaction_id") == body["transaction_id"]]
    assert len(conflict) == 1
    assert conflict[0]["level"] == "WARNING"
    assert conflict[0]["request_id"] == "req-from-provider-42"


@pytest.mark.django_db
def test_a_request_id_is_made_when_the_caller_sends_none_or_a_bad_one(client):
    made = client.get("/")["X-Request-ID"]
    replaced = client.get("/", HTTP_X_REQUEST_ID="bad id\twith spaces")["X-Request-ID"]

    assert len(made) == 32 and made != replaced
    assert replaced != "bad id\twith spaces"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "json"),
        ({"LOG_FORMAT": "text"}, "text"),
        ({"DJANGO_DEBUG": "1"}, "text"),
    ],
)
def test_log_format_is_json_in_production_and_text_in_development(env, expected):
    code = (
        "import logging; "
        "logging.getLogger('transactions').warning('hello', extra={'transaction_id': 'txn_1'})"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SECRET_KEY": "x", "DJANGO_DEBUG": "0", **env},
        capture_output=True,
        text=True,
        check=True,
    )

    line = result.stderr.strip().splitlines()[-1]
    if expected == "json":
        record = json.loads(line)
        assert (record["level"], record["transaction_id"], record["message"]) == ("WARNING", "txn_1", "hello")
        assert record["time"].endswith("+00:00")
    else:
        assert re.fullmatch(r"\S+ \S+ WARNING transactions \d+ \[-\] hello", line), line
