"""The admin: login lockout after repeated failures, and stored transactions read-only."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.factories import stored_transaction
from transactions.models import Transaction

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"


@pytest.fixture
def staff(unhashed_static_files) -> User:
    return User.objects.create_superuser("boss", password=PASSWORD)


def login(client, password: str):
    return client.post(
        reverse("admin:login"),
        {"username": "boss", "password": password, "next": reverse("admin:index")},
        REMOTE_ADDR="203.0.113.7",
    )


def test_admin_login_is_locked_out_after_repeated_failures(client, staff, settings):
    settings.AXES_FAILURE_LIMIT = 3

    failures = [login(client, "wrong").status_code for _ in range(3)]
    locked = login(client, PASSWORD)  # even the right password, while locked out

    assert failures[:2] == [200, 200]  # the form again, with an error
    assert failures[2] == 429
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_successful_login_before_the_limit_resets_the_count(client, staff, settings):
    settings.AXES_FAILURE_LIMIT = 3
    login(client, "wrong")
    login(client, "wrong")

    assert login(client, PASSWORD).status_code == 302
    client.logout()
    login(client, "wrong")
    login(client, "wrong")
    assert login(client, PASSWORD).status_code == 302


def test_the_lockout_is_per_address_and_username(client, staff, settings):
    settings.AXES_FAILURE_LIMIT = 2
    login(client, "wrong")
    login(client, "wrong")

    other_address = client.post(
        reverse("admin:login"),
        {"username": "boss", "password": PASSWORD, "next": reverse("admin:index")},
        REMOTE_ADDR="198.51.100.9",
    )

    assert other_address.status_code == 302


def test_money_fields_of_a_stored_transaction_cannot_be_edited(client, staff):
    client.force_login(staff)
    txn = stored_transaction(amount=10.25)
    change_url = reverse("admin:transactions_transaction_change", args=[txn.pk])

    page = client.get(change_url)
    client.post(
        change_url,
        {
            "amount": "999999.00",
            "currency": "USD",
            "source_account": "acc_thief",
            "destination_account": "acc_thief",
            "status": "PROCESSED",
        },
    )

    form = page.context["adminform"].form
    assert {"amount", "currency", "source_account", "destination_account", "status"}.isdisjoint(form.fields)
    txn.refresh_from_db()
    assert (txn.amount, txn.currency, txn.source_account) == (Decimal("10.25"), "INR", "acc_user_1")
    assert txn.status == "PROCESSING"


def test_staff_cannot_add_or_delete_transactions(client, staff):
    client.force_login(staff)
    txn = stored_transaction()

    add = client.post(
        reverse("admin:transactions_transaction_add"),
        {"transaction_id": "txn_forged", "amount": "5", "currency": "USD", "status": "PROCESSED"},
    )
    delete = client.post(reverse("admin:transactions_transaction_delete", args=[txn.pk]), {"post": "yes"})
    client.post(  # the bulk delete action is not offered either
        reverse("admin:transactions_transaction_changelist"),
        {"action": "delete_selected", "_selected_action": [txn.pk], "post": "yes"},
    )

    assert (add.status_code, delete.status_code) == (403, 403)
    assert list(Transaction.objects.values_list("pk", flat=True)) == [txn.pk]
