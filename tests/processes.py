"""Real service processes for end-to-end and fault tests.

`ServiceProcesses` starts gunicorn and `manage.py qcluster` exactly as the Procfile
does, against the test database (which the test must commit to: use
`transactional_db`), and always kills whatever is left at teardown.
"""

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from django.conf import settings
from django.db import connection
from psycopg import sql

from transactions.signatures import signed_headers

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Processing settings for fault tests: a short call, a short lease, the same ratios
# as production (lease > call timeout > delay).
FAST_PROCESSING = {
    "PROCESSING_DELAY_SECONDS": 2,
    "PROCESSING_CALL_TIMEOUT_SECONDS": 3,
    "PROCESSING_LEASE_SECONDS": 5,
}
# How long django-q2 may take to run the minutely sweep: its scheduler looks every
# 30 s, the schedule fires once a minute.
SWEEP_BOUND_SECONDS = 90


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


@dataclass
class ExternalCall:
    """One call to the payment API, from the `external call start/end` log lines."""

    key: str
    pid: int
    start: float
    end: float | None = None
    outcome: str | None = None


_CALL_MESSAGE = re.compile(
    r"external call (?P<kind>start|end) idempotency_key=(?P<key>\S+)"
    r" at=(?P<at>[\d.]+)(?: outcome=(?P<outcome>\w+))?"
)
# The text log format: date time level logger pid [request id] message.
_TEXT_LINE = re.compile(r"\S+ \S+ \S+ \S+ (?P<process>\d+) (?:\[[^\]]*\] )?(?P<message>.*)")


def log_records(path: str | Path) -> Iterator[tuple[int, str]]:
    """(pid, message) of each line a service process logged, JSON (production) or text."""
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                yield int(record.get("process") or 0), str(record.get("message", ""))
        elif match := _TEXT_LINE.match(line):
            yield int(match["process"]), match["message"]


def assert_no_overlapping_calls(calls: list[ExternalCall]) -> None:
    """No transaction ever had two external calls in flight at once. A call with no
    end line died with its process, so only another process may have called later."""
    by_key: dict[str, list[ExternalCall]] = {}
    for call in calls:
        by_key.setdefault(call.key, []).append(call)
    for key, mine in by_key.items():
        mine.sort(key=lambda call: call.start)
        for earlier, later in itertools.pairwise(mine):
            assert earlier.end is not None or earlier.pid != later.pid, key
            assert earlier.end is None or earlier.end <= later.start, (key, earlier, later)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie is dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def database_cut_off() -> Iterator[None]:
    """Make the test database unreachable (new connections refused, open ones ended),
    from a connection to the `postgres` database; always let connections in again."""
    db = connection.settings_dict
    name = db["NAME"]
    admin = psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    try:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
        with contextlib.suppress(Exception):
            connection.close()  # ours was ended too
        yield
    finally:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
        admin.close()
        with contextlib.suppress(Exception):
            connection.close()


@dataclass
class FakePaymentAPI:
    """The fake provider started by ServiceProcesses.start_payment_api: its ledger and controls."""

    url: str
    proc: subprocess.Popen

    def answers(self) -> bool:
        try:
            return httpx.get(self.url + "/ledger", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def ledger(self) -> dict[str, Any]:
        return httpx.get(self.url + "/ledger", timeout=10).json()

    def control(self, **mode: Any) -> None:
        """E.g. delay=2, fail_status=503, fail_status=429 with retry_after="3"; fail_status=None heals."""
        httpx.post(self.url + "/control", json=mode, timeout=10).raise_for_status()

    def key(self, key: Any) -> dict[str, Any]:
        """The ledger's record of one idempotency key (empty if it was never called)."""
        return self.ledger()["keys"].get(str(key), {})


class ServiceProcesses:
    def __init__(self, log_dir: Path, **env: Any) -> None:
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            # The test's own key: tasks it enqueues (wake-ups) must pass the cluster's signature check.
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
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

    def configure(self, **env: Any) -> None:
        """Environment for every process started from now on."""
        self.env.update({k: str(v) for k, v in env.items()})

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

    def start_web(
        self, workers: int = 2, port: int | None = None, healthy: bool = True, **env: Any
    ) -> subprocess.Popen:
        """Start gunicorn; wait until GET / says HEALTHY (or, if not `healthy`, answers at all)."""
        self.port = port or self.port or free_port()
        proc = self.spawn_web(workers, self.port, **env)
        wait_for(self._healthy if healthy else self._answers, timeout=30, what="gunicorn to answer GET /")
        return proc

    def spawn_web(self, workers: int, port: int, **env: Any) -> subprocess.Popen:
        """Start gunicorn on `port` without waiting for it."""
        return self._spawn(
            "gunicorn",
            [str(BIN / "gunicorn"), "webhooks_project.wsgi", "--config", "gunicorn.conf.py"],
            PORT=port,
            WEB_CONCURRENCY=workers,
            **env,
        )

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url("/"), timeout=10).status_code > 0
        except httpx.HTTPError:
            return False

    def start_worker(self, **env: Any) -> subprocess.Popen:
        proc = self._spawn("qcluster", [sys.executable, "manage.py", "qcluster"], **env)
        wait_for(lambda: b"running" in Path(proc.log_path).read_bytes(), timeout=30, what="qcluster to start")
        return proc

    def start_payment_api(self, port: int | None = None) -> "FakePaymentAPI":
        """Start `manage.py fake_payment_api` and point every process started from now on at it."""
        port = port or free_port()
        proc = self._spawn(
            "fake-payment-api", [sys.executable, "manage.py", "fake_payment_api", "--port", str(port)]
        )
        api = FakePaymentAPI(f"http://127.0.0.1:{port}", proc)
        wait_for(api.answers, timeout=30, what="the fake payment API to answer")
        self.configure(PAYMENT_API_URL=api.url + "/payments")
        return api

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

    def post_accepted(self, count: int) -> list[str]:
        """POST `count` new webhooks, each of which must be accepted; their transaction ids."""
        from tests.factories import webhook_body

        ids = []
        for _ in range(count):
            body = webhook_body()
            assert self.post_webhook(body).status_code == 202
            ids.append(body["transaction_id"])
        return ids

    def get_transaction(self, transaction_id: str) -> httpx.Response:
        return httpx.get(
            self.url(f"/v1/transactions/{transaction_id}"),
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=10,
        )

    @staticmethod
    def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the main process only (the way docs/operations.md says to stop it) and wait."""
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    @staticmethod
    def kill_all(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal it and every process below it at once, as the OOM killer or systemd's
        KillMode=control-group would."""
        for pid in {proc.pid} | descendants(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        proc.wait(timeout=30)

    def external_calls(self) -> list[ExternalCall]:
        """Every payment API call any qcluster process of this test has made."""
        calls: list[ExternalCall] = []
        for proc in self.procs:
            if "qcluster" not in proc.log_path:  # type: ignore[attr-defined]
                continue
            open_calls: dict[tuple[int, str], ExternalCall] = {}
            for pid, message in log_records(proc.log_path):  # type: ignore[attr-defined]
                if not (match := _CALL_MESSAGE.match(message)):
                    continue
                key, at = match["key"], float(match["at"])
                if match["kind"] == "start":
                    open_calls[pid, key] = call = ExternalCall(key, pid, at)
                    calls.append(call)
                elif (call := open_calls.pop((pid, key), None)) is not None:
                    call.end, call.outcome = at, match["outcome"]
        return calls

    def log_count(self, text: str, name: str = "qcluster") -> int:
        return sum(
            Path(p.log_path).read_text(errors="replace").count(text)  # type: ignore[attr-defined]
            for p in self.procs
            if name in p.log_path  # type: ignore[attr-defined]
        )

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.stop(proc, timeout=30)
            if proc.poll() is None:
                self.kill_all(proc)
        for proc in self.procs:  # and anything the main processes left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.log_path}\n{Path(p.log_path).read_text(errors='replace')}" for p in self.procs
        )
