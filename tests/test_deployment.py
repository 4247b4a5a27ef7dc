"""The production configuration: `check --deploy` clean, https behind a TLS proxy,
refusal to start without secrets, size limits everywhere, no internals in error bodies,
no secrets in logs."""

import os
import secrets
import subprocess
import sys

import httpx
import pytest
from django.db import connection

from tests.factories import stored_transaction, webhook_body
from tests.processes import ROOT
from transactions.models import Transaction
from transactions.signatures import generate_secret

WEBHOOK_SECRET = generate_secret()


# What `make run` and the test settings relax for plain http on localhost.
LOCAL_RELAXATIONS = {"DJANGO_HTTPS", "STATUS_API_PUBLIC"}


def production(env: dict[str, str], **overrides: str) -> dict[str, str]:
    """`env` as a production deployment would have it: nothing relaxed, every secret set."""
    return {
        **{k: v for k, v in env.items() if k not in LOCAL_RELAXATIONS},
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "0",
        "WEBHOOK_SECRETS": WEBHOOK_SECRET,
        **overrides,
    }


def production_env(**overrides: str) -> dict[str, str]:
    return production(dict(os.environ), **overrides)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_deploy_is_clean_in_the_production_configuration():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_reports_the_local_relaxations():
    result = manage(
        "check", "--deploy", env=production_env(WEBHOOK_SECRETS="", DJANGO_HTTPS="0", STATUS_API_PUBLIC="1")
    )

    for check_id in (
        "transactions.W001",
        "transactions.W002",
        "security.W004",
        "security.W008",
        "security.W012",
    ):
        assert check_id in result.stderr + result.stdout


@pytest.mark.parametrize(
    "env,message",
    [
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY must be set"),
        ({"WEBHOOK_SECRETS": "not-a-whsec-secret"}, "WEBHOOK_SECRETS must hold whsec_"),
    ],
)
def test_the_service_refuses_to_start_with_a_missing_or_bad_secret(env, message):
    result = manage("check", env=production_env(**env))

    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.e2e
def test_behind_a_tls_proxy_http_is_redirected_and_https_is_hardened(service, api_key):
    service.env = production(service.env, GUNICORN_ACCESS_LOG="-")
    service.start_web()  # waits for GET / over plain http: the health check is exempt
    txn = stored_transaction()
    https = {"X-Forwarded-Proto": "https"}

    plain = service.post_webhook(webhook_body(), secret=WEBHOOK_SECRET)
    with httpx.Client(headers=https) as proxied:
        accepted = service.post_webhook(webhook_body(), client=proxied, secret=WEBHOOK_SECRET)
        unsigned = service.post_webhook(webhook_body(), client=proxied)
        status = proxied.get(
            service.url(f"/v1/transactions/{txn.transaction_id}"),
            headers={"Authorization": f"Bearer {api_key}"},
        )

    assert plain.status_code == 301
    assert plain.headers["Location"].startswith("https://")
    assert accepted.status_code == 202
    assert unsigned.status_code == 401
    assert status.status_code == 200
    assert accepted.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert accepted.headers["X-Frame-Options"] == "DENY"
    logs = service.logs()
    assert "POST /v1/webhooks/transactions" in logs  # the access log is on
    for secret in (WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_"), api_key, "v1,"):
        assert secret not in logs
    assert "WEBHOOK_SECRETS is not set" not in logs


@pytest.mark.e2e
def test_without_webhook_secrets_the_web_process_warns_at_start_up(service):
    service.start_web(workers=1, WEBHOOK_SECRETS="")

    assert "WEBHOOK_SECRETS is not set: webhooks are accepted WITHOUT a signature" in service.logs()


@pytest.mark.e2e
def test_oversized_headers_are_refused_by_gunicorn(service):
    service.start_web(workers=1)

    response = httpx.get(service.url("/"), headers={"X-Big": "x" * 20_000}, timeout=10)

    assert response.status_code == 431  # Request Header Fields Too Large


BIG_JSON = b'{"x": "' + b"x" * 100_000 + b'"}'


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path,content_type,body,expected",
    [
        ("/", "application/json", BIG_JSON, 405),
        ("/v1/webhooks/transactions", "application/json", BIG_JSON, 413),
        ("/v1/transactions/txn_1", "application/json", BIG_JSON, 401),
        ("/api/schema/", "application/json", BIG_JSON, 405),
        ("/admin/login/", "application/x-www-form-urlencoded", b"username=" + b"x" * 100_000, 400),
    ],
)
def test_every_endpoint_refuses_an_oversized_body(
    client, unhashed_static_files, path, content_type, body, expected
):
    before = Transaction.objects.count()

    response = client.post(path, data=body, content_type=content_type)

    assert response.status_code == expected, response.content
    assert b"Traceback" not in response.content
    assert Transaction.objects.count() == before


def _rename_table(old: str, new: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {old} RENAME TO {new}")


@pytest.mark.django_db(transaction=True)
def test_a_database_error_answers_503_without_sql_or_a_traceback(reader, settings):
    # A real failure: the table is gone while the service runs.
    settings.STATUS_API_PUBLIC = False
    _rename_table("transactions_transaction", "transactions_transaction_away")
    try:
        read = reader.get("/v1/transactions/txn_1")
        write = reader.post("/v1/webhooks/transactions", data=webhook_body(), format="json")
    finally:
        _rename_table("transactions_transaction_away", "transactions_transaction")

    for response in (read, write):
        assert response.status_code == 503
        assert response.json() == {
            "error": "service_unavailable",
            "message": "The service cannot store requests right now; retry later.",
        }
        assert response["Retry-After"]
    assert Transaction.objects.count() == 0
