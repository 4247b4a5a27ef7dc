"""POST /v1/webhooks/transactions with WEBHOOK_SECRETS: Standard Webhooks signatures."""

import hashlib
import json
import logging
import time

import pytest
from django.core import checks

from tests.factories import webhook_body
from transactions import signatures
from transactions.checks import log_security_warnings
from transactions.models import Transaction

URL = "/v1/webhooks/transactions"
SECRET = signatures.generate_secret()
OLD_SECRET = signatures.generate_secret()

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed(settings):
    settings.WEBHOOK_SECRETS = [SECRET]
    settings.WEBHOOK_TOLERANCE_SECONDS = 300


def post(api, body: bytes, headers: dict[str, str]):
    return api.post(URL, data=body, content_type="application/json", headers=headers)


def encoded(body: dict) -> bytes:
    return json.dumps(body).encode()


def test_a_correctly_signed_webhook_is_accepted(api, signed):
    body = webhook_body()
    raw = encoded(body)

    response = post(api, raw, signatures.signed_headers(secret=SECRET, msg_id="msg_1", body=raw))

    assert response.status_code == 202, response.content
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()


def test_the_standard_webhooks_published_test_vector_verifies():
    # The known answer from the Standard Webhooks libraries' own test suite.
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'

    message = signatures.verify(
        body=body, headers=headers, secrets=[secret], tolerance_seconds=300, now=1614265330 + 299
    )

    assert message == signatures.VerifiedMessage(
        id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        secret_fingerprint=signatures.fingerprint(secret),
    )
    assert (
        signatures.sign(secret=secret, msg_id=headers["webhook-id"], timestamp=1614265330, body=body)
        == (headers["webhook-signature"])
    )
    with pytest.raises(signatures.SignatureError, match="tolerance"):
        signatures.verify(
            body=body, headers=headers, secrets=[secret], tolerance_seconds=300, now=1614265330 + 301
        )


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), id="no-sig"),
        pytest.param(lambda h, b: ({}, b), id="no-headers"),
        pytest.param(lambda h, b: (h, b.replace(b"1500", b"9500")), id="body-changed"),
        pytest.param(lambda h, b: ({**h, "webhook-id": "msg_other"}, b), id="id-changed"),
        pytest.param(
            lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
            id="timestamp-changed",
        ),
        pytest.param(lambda h, b: ({**h, "webhook-signature": "v1,not-base64!"}, b), id="garbage-sig"),
        pytest.param(lambda h, b: ({**h, "webhook-signature": "v1"}, b), id="sig-without-comma"),
        pytest.param(
            lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),
            id="unknown-version",
        ),
        pytest.param(lambda h, b: ({**h, "webhook-timestamp": "1e9"}, b), id="float-timestamp"),
        pytest.param(lambda h, b: (h, b + b"\xff"), id="non-utf8-body"),
    ],
)
def test_a_missing_or_wrong_signature_gets_401_and_nothing_is_stored(api, signed, tamper):
    raw = encoded(webhook_body())
    headers, raw = tamper(signatures.signed_headers(secret=SECRET, msg_id="msg_1", body=raw), raw)

    response = post(api, raw, headers)

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_signature",
        "message": "The webhook signature is missing or invalid.",
    }
    assert response.headers["WWW-Authenticate"].startswith("Standard-Webhooks")
    assert Transaction.objects.count() == 0


def test_a_signature_made_with_another_secret_is_refused(api, signed):
    raw = encoded(webhook_body())

    response = post(api, raw, signatures.signed_headers(secret=OLD_SECRET, msg_id="m", body=raw))

    assert response.status_code == 401
    assert Transaction.objects.count() == 0


@pytest.mark.parametrize("age", [330, -330, 3600])
def test_a_timestamp_outside_the_tolerance_is_refused_as_a_replay(api, signed, age):
    raw = encoded(webhook_body())
    stale = int(time.time()) - age

    response = post(api, raw, signatures.signed_headers(secret=SECRET, msg_id="m", body=raw, timestamp=stale))

    assert response.status_code == 401
    assert Transaction.objects.count() == 0


def test_the_tolerance_is_configurable(api, signed, settings):
    settings.WEBHOOK_TOLERANCE_SECONDS = 3600
    body = webhook_body()
    raw = encoded(body)
    old = int(time.time()) - 1800

    response = post(api, raw, signatures.signed_headers(secret=SECRET, msg_id="m", body=raw, timestamp=old))

    assert response.status_code == 202
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()


def test_during_rotation_either_secret_verifies(api, settings):
    settings.WEBHOOK_SECRETS = [SECRET, OLD_SECRET]
    bodies = [webhook_body(), webhook_body()]

    codes = [
        post(api, raw, signatures.signed_headers(secret=secret, msg_id="m", body=raw)).status_code
        for secret, raw in zip((SECRET, OLD_SECRET), map(encoded, bodies), strict=True)
    ]

    assert codes == [202, 202]
    stored = set(Transaction.objects.values_list("transaction_id", flat=True))
    assert stored == {body["transaction_id"] for body in bodies}


def test_the_secret_that_verified_a_webhook_is_stored_as_its_fingerprint(api, settings):
    settings.WEBHOOK_SECRETS = [SECRET, OLD_SECRET]
    by_old, by_new, by_both = webhook_body(), webhook_body(), webhook_body()
    for body, secrets in [(by_old, [OLD_SECRET]), (by_new, [SECRET]), (by_both, [OLD_SECRET, SECRET])]:
        raw = encoded(body)
        headers = signatures.signed_headers(secret=secrets[0], msg_id="m", body=raw)
        for other in secrets[1:]:
            headers["webhook-signature"] += " " + signatures.sign(
                secret=other, msg_id="m", timestamp=int(headers["webhook-timestamp"]), body=raw
            )
        assert post(api, raw, headers).status_code == 202

    stored = dict(Transaction.objects.values_list("transaction_id", "secret_fingerprint"))

    # The first configured secret that matched is named: during a rotation, the new one.
    assert stored == {
        by_old["transaction_id"]: signatures.fingerprint(OLD_SECRET),
        by_new["transaction_id"]: signatures.fingerprint(SECRET),
        by_both["transaction_id"]: signatures.fingerprint(SECRET),
    }


def test_a_fingerprint_is_the_first_8_hex_digits_of_the_secrets_sha256():
    # Documented, so operators can name their own secrets: printf %s "$SECRET" | sha256sum
    assert signatures.fingerprint(SECRET) == hashlib.sha256(SECRET.encode()).hexdigest()[:8]
    assert signatures.fingerprint(SECRET) != signatures.fingerprint(OLD_SECRET)


def test_one_matching_signature_among_several_is_enough(api, signed):
    body = webhook_body()
    raw = encoded(body)
    headers = signatures.signed_headers(secret=SECRET, msg_id="m", body=raw)
    other = signatures.signed_headers(secret=OLD_SECRET, msg_id="m", body=raw)["webhook-signature"]
    headers["webhook-signature"] = f"v2,whatever {other} {headers['webhook-signature']}"

    assert post(api, raw, headers).status_code == 202
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()


def test_the_signature_covers_the_raw_bytes_as_sent(api, signed):
    # Whitespace and key order the sender chose: a re-serialized body would not verify.
    body = webhook_body()
    raw = (
        "{\n  " + ",\n  ".join(f'"{k}" :  {json.dumps(v)}' for k, v in reversed(body.items())) + "\n}"
    ).encode()

    response = post(api, raw, signatures.signed_headers(secret=SECRET, msg_id="m", body=raw))

    assert response.status_code == 202
    assert Transaction.objects.get().payload == body


def test_an_invalid_body_is_checked_after_the_signature(api, signed):
    raw = b'{"transaction_id": "t1"}'

    unsigned = post(api, raw, {})
    signed_response = post(api, raw, signatures.signed_headers(secret=SECRET, msg_id="m", body=raw))

    assert unsigned.status_code == 401
    assert signed_response.status_code == 400
    assert signed_response.json()["error"] == "invalid_payload"
    assert Transaction.objects.count() == 0


def test_an_oversized_body_is_refused_with_413_before_verification(api, signed):
    raw = encoded(webhook_body(note="x" * 70_000))

    response = post(api, raw, signatures.signed_headers(secret=SECRET, msg_id="m", body=raw))

    assert response.status_code == 413
    assert Transaction.objects.count() == 0


def test_an_unsigned_webhook_has_no_fingerprint(api, settings):
    settings.WEBHOOK_SECRETS = []
    body = webhook_body()

    assert post(api, encoded(body), {}).status_code == 202

    assert Transaction.objects.get(transaction_id=body["transaction_id"]).secret_fingerprint == ""


def test_without_secrets_unsigned_webhooks_are_accepted(api, settings):
    settings.WEBHOOK_SECRETS = []
    body = webhook_body()

    assert post(api, encoded(body), {}).status_code == 202
    assert Transaction.objects.filter(transaction_id=body["transaction_id"]).exists()


def test_without_secrets_startup_logs_a_warning_and_check_deploy_reports_it(settings, caplog):
    settings.WEBHOOK_SECRETS = []
    with caplog.at_level(logging.WARNING, logger="transactions"):
        log_security_warnings()
    ids = {m.id for m in checks.run_checks(include_deployment_checks=True)}

    assert "WEBHOOK_SECRETS is not set" in caplog.text
    assert "transactions.W001" in ids


def test_with_secrets_neither_warning_appears(settings, caplog):
    settings.WEBHOOK_SECRETS = [SECRET]
    settings.STATUS_API_PUBLIC = False
    with caplog.at_level(logging.WARNING, logger="transactions"):
        log_security_warnings()
    ids = {m.id for m in checks.run_checks(include_deployment_checks=True)}

    assert caplog.text == ""
    assert "transactions.W001" not in ids
    assert "transactions.W002" not in ids


def test_a_refused_signature_is_logged_without_the_headers_or_secret(api, signed, caplog):
    raw = encoded(webhook_body())
    headers = signatures.signed_headers(secret=OLD_SECRET, msg_id="msg_secretive", body=raw)
    with caplog.at_level(logging.DEBUG):
        post(api, raw, headers)

    assert "webhook refused: no matching signature" in caplog.text
    for value in (SECRET, OLD_SECRET, headers["webhook-signature"], headers["webhook-signature"][3:]):
        assert value not in caplog.text


@pytest.mark.parametrize(
    "secret,valid",
    [
        (SECRET, True),
        ("whsec_" + "A" * 32, True),  # 24 bytes, the spec's minimum
        ("whsec_" + "A" * 30, False),
        ("whsec_not base64", False),
        ("sk_live_123", False),
        ("", False),
    ],
)
def test_only_whsec_secrets_of_enough_entropy_are_valid(secret, valid):
    assert signatures.is_valid_secret(secret) is valid
