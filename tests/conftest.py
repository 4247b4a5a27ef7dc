from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.processes import ServiceProcesses
from transactions import services


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_wakeup_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test starts as a freshly booted web process would.
    monkeypatch.setattr(services, "_last_wakeup", float("-inf"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def service(
    transactional_db: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ServiceProcesses]:
    """Real gunicorn + qcluster processes against the test database (start them yourself)."""
    processes = ServiceProcesses(tmp_path)
    yield processes
    processes.close()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(processes.logs())  # shown by pytest under the failing test


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def unhashed_static_files(settings: Any) -> None:
    """Pages rendered in-process need no `collectstatic` (production serves hashed files)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
