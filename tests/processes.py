"""Real service processes for end-to-end and fault tests.

`ServiceProcesses` starts gunicorn and `manage.py qcluster` exactly as the Procfile
does, against the test database (which the test must commit to: use
`transactional_db`), and always kills whatever is left at teardown.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from django.db import connection

from transactions.signatures import signed_headers

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def database_url() -> str:
    """The URL of the database the tests are using right now."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class ServiceProcesses:
    def __init__(self, log_dir: Path, **env: Any) -> None:
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_SECRET_KEY": "e2e-secret-key",
            "DJANGO_DEBUG": "0",
            # Plain http on 127.0.0.1, as `make run`; tests/test_deployment_https.py runs the
            # production (https) configuration.
            "DJANGO_HTTPS": "0",
            "DJANGO_Q_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in env.items()},
        }
        self.procs: list[subprocess.Popen] = []
        self.port: int | None = None
        self._api_key: str | None = None

    def _spawn(self, name: str, args: list[str], **env: Any) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}-{len(self.procs)}.log", "ab")  # noqa: SIM115 (lives with the process)
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, **{k: str(v) for k, v in env.items()}},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown can kill it all
        )
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def start_web(self, workers: int = 2, port: int | None = None, **env: Any) -> subprocess.Popen:
        self.port = port or self.port or free_port()
        proc = self._spawn(
            "gunicorn",
            [str(BIN / "gunicorn"), "webhooks_project.wsgi", "--config", "gunicorn.conf.py"],
            PORT=self.port,
            WEB_CONCURRENCY=workers,
            **env,
        )
        wait_for(self._healthy, timeout=30, what="gunicorn to answer GET /")
        return proc

    def start_worker(self, **env: Any) -> subprocess.Popen:
        proc = self._spawn("qcluster", [sys.executable, "manage.py", "qcluster"], **env)
        wait_for(lambda: b"running" in Path(proc.log_path).read_bytes(), timeout=30, what="qcluster to start")
        return proc

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url("/"), timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post_webhook(
        self, body: dict, client: httpx.Client | None = None, secret: str | None = None
    ) -> httpx.Response:
        """POST a webhook; signed (Standard Webhooks) when given a secret."""
        content = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers.update(signed_headers(secret=secret, msg_id=f"msg_{uuid.uuid4().hex}", body=content))
        return (client or httpx).post(
            self.url("/v1/webhooks/transactions"), content=content, headers=headers, timeout=10
        )

    @property
    def api_key(self) -> str:
        """An API key for the status endpoint, made the way staff make one (stored hashed)."""
        if self._api_key is None:
            from rest_framework_api_key.models import APIKey

            _, self._api_key = APIKey.objects.create_key(name="end-to-end tests")
        return self._api_key

    def get_transaction(self, transaction_id: str) -> httpx.Response:
        return httpx.get(
            self.url(f"/v1/transactions/{transaction_id}"),
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=10,
        )

    @staticmethod
    def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the main process only (the way the README says to stop it) and wait."""
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.stop(proc, timeout=30)
        for proc in self.procs:  # and anything the main processes left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.log_path}\n{Path(p.log_path).read_text(errors='replace')}" for p in self.procs
        )
