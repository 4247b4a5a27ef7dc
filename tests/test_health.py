"""GET / : the health check."""

import re

from django.db import connection

ISO_UTC_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def test_health_is_healthy_with_current_utc_time(api, db):
    response = api.get("/")

    assert response.status_code == 200
    assert response.json()["status"] == "HEALTHY"
    assert ISO_UTC_SECONDS.match(response.json()["current_time"])


def test_health_is_unhealthy_with_503_when_the_database_cannot_be_reached(api, db, settings, monkeypatch):
    # A real failed connection: point this connection at a port nobody listens on.
    connection.close()
    if connection.vendor == "sqlite":
        monkeypatch.setitem(connection.settings_dict, "NAME", "/nonexistent/dir/db.sqlite3")
    else:
        monkeypatch.setitem(connection.settings_dict, "PORT", "1")

    response = api.get("/")

    assert response.status_code == 503
    assert response.json()["status"] == "UNHEALTHY"
    assert ISO_UTC_SECONDS.match(response.json()["current_time"])
    connection.close()
