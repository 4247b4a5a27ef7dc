"""GET /ready: readiness for orchestrators, apart from the health check at GET /."""

import pytest

pytestmark = pytest.mark.django_db


def test_ready_when_the_database_answers_and_migrations_are_applied(client):
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "READY", "checks": {"database": "ok", "migrations": "ok"}}


def test_not_ready_while_a_migration_is_unapplied(client):
    from django.db import connection

    with connection.cursor() as cursor:  # undone with the test's transaction
        # The latest one (numbered names sort in order): an earlier one under an applied
        # successor would not count as unapplied.
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'transactions' AND name = "
            "(SELECT max(name) FROM django_migrations WHERE app = 'transactions')"
        )

    response = client.get("/ready")

    assert response.status_code == 503
    assert response.json() == {
        "status": "NOT_READY",
        "checks": {"database": "ok", "migrations": "1 unapplied"},
    }


def test_health_check_keeps_its_contract(client):
    response = client.get("/")

    assert response.status_code == 200
    assert set(response.json()) == {"status", "current_time"}
