"""`manage.py send_webhook`: a signed test webhook from the command line, to a live service."""

import json
import subprocess
import sys

import pytest

from tests.factories import webhook_body
from tests.processes import ROOT
from transactions.models import Transaction
from transactions.signatures import generate_secret, is_valid_secret

pytestmark = pytest.mark.e2e

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
