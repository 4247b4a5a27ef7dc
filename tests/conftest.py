import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from tests.processes import ROOT, ServiceProcesses
from transactions import worker

# Fuzz tests are bounded for CI; FUZZ_PROFILE=long runs many more examples (docs/development.md: Fuzzing).
_fuzz = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
hypothesis_settings.register_profile("default-run", max_examples=200, **_fuzz)
hypothesis_settings.register_profile("long", max_examples=5000, **_fuzz)
hypothesis_settings.load_profile("long" if os.environ.get("FUZZ_PROFILE") == "long" else "default-run")


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def api_key(db: None) -> str:
    """A valid status-API key, created the way the admin creates one."""
    _, key = APIKey.objects.create_key(name="tests")
    return key


@pytest.fixture
def reader(api: APIClient, api_key: str) -> APIClient:
    """A client that may read transactions (sends the API key)."""
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return api


@pytest.fixture(autouse=True)
def _fresh_wakeup_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test starts as a freshly booted web process would.
    monkeypatch.setattr(worker, "_last_wakeup", float("-inf"))


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


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`collectstatic` once per run, for gunicorn's WhiteNoise to serve as in production
    (give it to start_web as DJANGO_STATIC_ROOT); a fresh clone has no static files."""
    root = tmp_path_factory.mktemp("static")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_STATIC_ROOT": str(root), "DJANGO_SECRET_KEY": "collectstatic"},
        check=True,
        timeout=120,
    )
    return root
