"""GET /v1/transactions/{id} needs an API key unless STATUS_API_PUBLIC is on."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from tests.factories import stored_transaction

pytestmark = pytest.mark.django_db


def url(txn) -> str:
    return f"/v1/transactions/{txn.transaction_id}"


@pytest.fixture(autouse=True)
def protected(settings):
    settings.STATUS_API_PUBLIC = False


def test_without_a_key_the_answer_is_401_and_no_data(api):
    txn = stored_transaction()

    response = api.get(url(txn))

    assert response.status_code == 401
    assert response.json() == {
        "error": "not_authenticated",
        "message": "Authentication credentials were not provided.",
    }
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert txn.source_account.encode() not in response.content


def test_without_a_key_an_unknown_id_is_also_401_so_ids_cannot_be_probed(api):
    assert api.get("/v1/transactions/txn_nobody").status_code == 401


def test_with_a_valid_key_the_transaction_is_returned(reader):
    txn = stored_transaction()

    response = reader.get(url(txn))

    assert response.status_code == 200
    assert response.json()["source_account"] == txn.source_account


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer abcdefgh.abcdefghabcdefghabcdefghabcdefgh",  # well-formed, unknown
        "Bearer not-a-key",
        "Bearer \x00\x01",
        "Bearer " + "A" * 10_000,
    ],
)
def test_an_invalid_key_gets_401(api, authorization):
    txn = stored_transaction()

    response = api.get(url(txn), HTTP_AUTHORIZATION=authorization)

    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


def test_a_right_prefix_with_a_wrong_secret_part_gets_401(api, api_key):
    txn = stored_transaction()
    prefix = api_key.partition(".")[0]

    response = api.get(url(txn), HTTP_AUTHORIZATION=f"Bearer {prefix}.{'x' * 32}")

    assert response.status_code == 401


def test_a_revoked_or_expired_key_gets_401(api):
    txn = stored_transaction()
    revoked, revoked_key = APIKey.objects.create_key(name="revoked")
    revoked.revoked = True
    revoked.save()
    _, expired_key = APIKey.objects.create_key(name="old", expiry_date=timezone.now() - timedelta(days=1))

    for key in (revoked_key, expired_key):
        assert api.get(url(txn), HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_keys_are_stored_hashed(api_key):
    stored = APIKey.objects.get()

    assert api_key not in {stored.id, stored.hashed_key, stored.prefix}
    assert stored.hashed_key.startswith("sha512$$")
    assert api_key.partition(".")[2] not in stored.id


def test_status_api_public_opens_it_without_a_key(api, settings):
    settings.STATUS_API_PUBLIC = True
    txn = stored_transaction()

    assert api.get(url(txn)).status_code == 200


def test_staff_create_a_key_in_the_admin_and_see_it_once(client, unhashed_static_files):
    admin = User.objects.create_superuser("boss", password="a-long-test-password")
    client.force_login(admin)

    response = client.post("/admin/rest_framework_api_key/apikey/add/", {"name": "reporting"}, follow=True)

    assert response.status_code == 200
    [message] = [str(m) for m in response.context["messages"] if "The API key for" in str(m)]
    key = message.split("The API key for reporting is: ")[1].split(". ")[0]
    assert APIKey.objects.is_valid(key)
    txn = stored_transaction()
    assert APIClient().get(url(txn), HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
