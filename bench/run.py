"""`make bench`: the service as in production, under load, on this machine.

Starts gunicorn (gunicorn.conf.py) and `manage.py qcluster` with DEBUG off against a
fresh PostgreSQL database (webhooks_bench), listening on 127.0.0.1 only, and measures:

1. a burst of 1,000 webhooks with the production call delay (30 s): the time from the
   first arrival until all are PROCESSED, and the peak memory of the qcluster processes;
2. one webhook on its own: PROCESSING -> PROCESSED time;
3. ingestion: wrk, 32 connections, unique transaction ids, for a bounded duration:
   throughput, p50/p99/max latency, errors (non-2xx included), and that every webhook
   answered 2xx is stored.
4. with `--purge-rows N`, instead: N old PROCESSED rows purged by `manage.py purge_transactions`
   while webhooks arrive at `--purge-rate` a second (ingestion latency, purge speed, lock waits).

Everything it starts is stopped at the end (by PID, process group of its own).
Options: `python bench/run.py --help`; via make: `make bench BENCH_ARGS="--duration 60"`.
"""

import argparse
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
# The service's sample webhook (plain data: Django need not be set up for it).
sys.path.insert(0, str(ROOT))
from transactions.examples import EXAMPLE_WEBHOOK  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/webhooks_bench"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def ensure_wrk() -> str:
    """wrk from the system packages; installed with apt-get if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is not installed: installing the Debian package (apt-get)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=apt_env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, env=apt_env)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still not on PATH after apt-get install wrk")
    return found


# --- Database ---------------------------------------------------------------------


def recreate_database(url: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.pop("dbname")
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info, dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class Db:
    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def value(self, sql: str, *params: Any) -> Any:
        return self.conn.execute(sql, params).fetchone()[0]

    def column(self, sql: str, *params: Any) -> list:
        return [row[0] for row in self.conn.execute(sql, params)]


# --- Processes --------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process; PSS shares the pages forked processes have in common."""
    try:
        rss = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        pss = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            if line.startswith("Pss:")
        )
    except (OSError, StopIteration):
        return 0, 0
    return rss, pss


def cpu_busy_sample() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU time (user + system) each process has used so far; gone ones are left out."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


class CpuMeter:
    """How busy the machine's CPUs were between start() and stop()."""

    def start(self) -> None:
        self.begin = cpu_busy_sample()

    def stop(self) -> tuple[float, float]:
        """(share of all cores busy in %, busy CPU-seconds)."""
        busy, total = cpu_busy_sample()
        busy, total = busy - self.begin[0], total - self.begin[1]
        return 100.0 * busy / max(1, total), busy / os.sysconf("SC_CLK_TCK")


class Service:
    def __init__(self, database_url: str, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_DEBUG": "0",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.procs: list[subprocess.Popen] = []
        self.port = free_port()
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True)

    def _spawn(self, name: str, args: list[str], **env: str) -> subprocess.Popen:
        path = self.log_dir / f"{name}-{len(self.procs)}.log"
        with open(path, "ab") as out:
            proc = subprocess.Popen(
                args,
                cwd=ROOT,
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own: stopped as a whole
            )
        proc.log_path = path  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def start_web(self) -> None:
        self.web = self._spawn(
            "gunicorn",
            [
                str(BIN / "gunicorn"),
                "webhooks_project.wsgi",
                "--config",
                "gunicorn.conf.py",
                # The command line wins over the config file: loopback only.
                "--bind",
                f"127.0.0.1:{self.port}",
            ],
        )
        wait_for(self.healthy, 60, "gunicorn to answer GET /")

    def start_worker(self) -> None:
        # INFO only so that the "running" line tells us the cluster is up.
        worker = self._spawn("qcluster", [sys.executable, "manage.py", "qcluster"], DJANGO_Q_LOG_LEVEL="INFO")
        self.workers.append(worker)
        wait_for(lambda: b"running" in worker.log_path.read_bytes(), 60, "qcluster to start")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/"), timeout=2) as response:  # noqa: S310 (our own URL)
                return response.status == 200
        except OSError:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def web_workers(self) -> list[int]:
        return descendants(self.web.pid) if self.web else []

    def worker_pids(self) -> list[int]:
        return [pid for worker in self.workers for pid in (worker.pid, *descendants(worker.pid))]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs:  # whatever is left in the groups we made
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class MemorySampler(threading.Thread):
    """Samples the qcluster processes' memory until stopped; keeps the peaks."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.peak_pss_total = self.peak_rss_max = self.processes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            samples = [memory_kib(pid) for pid in self.pids()]
            self.processes = max(self.processes, len(samples))
            self.peak_pss_total = max(self.peak_pss_total, sum(pss for _, pss in samples))
            self.peak_rss_max = max(self.peak_rss_max, max((rss for rss, _ in samples), default=0))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class CpuSampler(threading.Thread):
    """CPU time used by a set of processes that changes (database connections are recycled
    every DATABASE_CONN_MAX_AGE seconds), sampled until stopped; one that exits loses at
    most its last interval."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.baseline = cpu_seconds(pids())
        self.latest = dict(self.baseline)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.latest.update(cpu_seconds(self.pids()))

    def stop(self) -> float:
        """Seconds of CPU used since the sampler was made."""
        self._stop_event.set()
        self.join()
        self.latest.update(cpu_seconds(self.pids()))
        return sum(seconds - self.baseline.get(pid, 0.0) for pid, seconds in self.latest.items())


# --- Phases -----------------------------------------------------------------------


# Production answers plain http with a redirect (DJANGO_HTTPS, on by default) and is
# reached through a TLS-terminating proxy that says so in this header; the benchmark
# plays that proxy, so the service runs with its production security settings.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def webhook_body(transaction_id: str) -> bytes:
    return json.dumps({**EXAMPLE_WEBHOOK, "transaction_id": transaction_id}).encode()


def post_all(port: int, ids: list[str], connections: int) -> list[int]:
    """POST one webhook per id over `connections` keep-alive connections; the statuses."""
    local = threading.local()

    def post(transaction_id: str) -> int:
        if not hasattr(local, "conn"):
            local.conn = HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            local.conn.request(
                "POST",
                "/v1/webhooks/transactions",
                body=webhook_body(transaction_id),
                headers={"Content-Type": "application/json", **PROXY_HEADERS},
            )
            response = local.conn.getresponse()
            response.read()
            return response.status
        except OSError:
            local.conn.close()
            del local.conn
            return 0

    with ThreadPoolExecutor(connections) as pool:
        return list(pool.map(post, ids))


def burst(service: Service, db: Db, count: int, connections: int, timeout: float) -> dict[str, Any]:
    ids = [f"burst_{i:05d}" for i in range(count)]
    sampler = MemorySampler(service.worker_pids)
    sampler.start()
    sent_at = time.monotonic()
    statuses = post_all(service.port, ids, connections)
    send_seconds = time.monotonic() - sent_at
    accepted = sum(200 <= s < 300 for s in statuses)
    log(f"burst: {accepted}/{count} accepted in {send_seconds:.2f}s; waiting until all are PROCESSED")

    def pending() -> int:
        return db.value(
            "SELECT count(*) FROM transactions_transaction WHERE transaction_id LIKE 'burst\\_%%' "
            "AND status <> 'PROCESSED'"
        )

    try:
        wait_for(lambda: pending() == 0, timeout, "the burst to be PROCESSED", interval=0.5)
    finally:
        sampler.stop()
    drain = db.value(
        "SELECT EXTRACT(EPOCH FROM max(processed_at) - min(created_at)) FROM transactions_transaction "
        "WHERE transaction_id LIKE 'burst\\_%%'"
    )
    attempts = db.value(
        "SELECT COALESCE(max(attempts), 0) FROM transactions_transaction "
        "WHERE transaction_id LIKE 'burst\\_%%'"
    )
    return {
        "count": count,
        "accepted": accepted,
        "send_seconds": round(send_seconds, 2),
        "drain_seconds": round(float(drain), 1),
        "max_attempts": attempts,
        "qcluster_processes": sampler.processes,
        "qcluster_peak_pss_mib": round(sampler.peak_pss_total / 1024, 1),
        "qcluster_peak_rss_per_process_mib": round(sampler.peak_rss_max / 1024, 1),
    }


def sustained(service: Service, db: Db, args: argparse.Namespace, out_dir: Path, wrk: str) -> dict[str, Any]:
    """A steady offered rate for a while, then until every acknowledged webhook is PROCESSED."""
    rate, seconds = args.sustained, args.sustained_duration
    threads = args.threads
    log(f"sustained: {rate}/s offered for {seconds}s (wrk -c{args.sustained_connections} -t{threads})")
    memory = MemorySampler(service.worker_pids)
    qcluster_cpu = CpuSampler(service.worker_pids)
    postgres_cpu = CpuSampler(
        lambda: db.column("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    )
    for sampler in (memory, qcluster_cpu, postgres_cpu):
        sampler.start()
    timeline: list[dict[str, Any]] = []
    stop_timeline = threading.Event()

    def sample_timeline() -> None:
        started = time.monotonic()
        while not stop_timeline.wait(10):
            row = db.conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'PROCESSED'), "
                "count(*) FILTER (WHERE status = 'PROCESSING' AND next_attempt_at <= now() "
                "AND (leased_until IS NULL OR leased_until < now())), "
                "count(*) FILTER (WHERE status = 'PROCESSING' AND leased_until >= now()) "
                "FROM transactions_transaction WHERE transaction_id LIKE 'steady\\_%%'"
            ).fetchone()
            point = dict(zip(("stored", "processed", "due", "in_flight"), row, strict=True))
            point["t"] = round(time.monotonic() - started)
            timeline.append(point)
            log(
                "t={t}s stored {stored} processed {processed} due {due} in flight {in_flight}".format(**point)
            )

    timeline_thread = threading.Thread(target=sample_timeline, daemon=True)
    timeline_thread.start()
    per_thread = rate / threads
    wrk_args = [
        wrk, f"-t{threads}", f"-c{args.sustained_connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(HERE / "steady.lua"), service.url("/"), "--", "steady", str(out_dir), f"{per_thread:g}",
    ]  # fmt: skip
    done = subprocess.run(wrk_args, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    load = json.loads(line.removeprefix("BENCH_JSON "))
    acked = acknowledged_ids(out_dir, "steady")
    log(f"sustained: load over, {len(acked)} acknowledged; waiting until every one is PROCESSED")

    def unprocessed() -> int:
        return db.value(
            "SELECT count(*) FROM transactions_transaction WHERE transaction_id LIKE 'steady\\_%%' "
            "AND status <> 'PROCESSED'"
        )

    try:
        wait_for(lambda: unprocessed() == 0, args.drain_timeout, "every webhook to be PROCESSED", interval=1)
    except RuntimeError:
        log(f"sustained: {unprocessed()} still not PROCESSED {args.drain_timeout:g}s after the load ended")
    finally:
        stop_timeline.set()
        timeline_thread.join()
        memory.stop()
        qcluster_seconds, postgres_seconds = qcluster_cpu.stop(), postgres_cpu.stop()
    stats = db.conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'PROCESSED'), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM processed_at - created_at)), "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM processed_at - created_at)), "
        "max(EXTRACT(EPOCH FROM processed_at - created_at)), "
        "EXTRACT(EPOCH FROM max(processed_at) - max(created_at)), "
        "EXTRACT(EPOCH FROM max(processed_at) - min(processed_at)), max(attempts) "
        "FROM transactions_transaction WHERE transaction_id LIKE 'steady\\_%%'"
    ).fetchone()
    stored_ids = set(
        db.column(
            "SELECT transaction_id FROM transactions_transaction WHERE transaction_id LIKE 'steady\\_%%'"
        )
    )
    rows, processed, p50, p99, worst, tail, processing_span, attempts = (v or 0 for v in stats)
    calls = external_call_starts([worker.log_path for worker in service.workers])
    return {
        "offered_per_second": rate,
        "seconds": seconds,
        "requests": load["requests"],
        "accepted_per_second": round(load["ok"] / (load["duration_us"] / 1e6), 1),
        "errors": error_count(load),
        "webhook_p50_ms": round(load["p50_us"] / 1000, 1),
        "webhook_p99_ms": round(load["p99_us"] / 1000, 1),
        "acknowledged": len(acked),
        "acknowledged_not_stored": len(acked - stored_ids),
        "stored": rows,
        "processed": processed,
        "drain_timeout_s": args.drain_timeout,
        "processing_per_second": round(processed / max(float(processing_span), 1e-9), 1),
        "lag_p50_s": round(float(p50), 2),
        "lag_p99_s": round(float(p99), 2),
        "lag_max_s": round(float(worst), 2),
        "last_processed_after_last_arrival_s": round(float(tail), 2),
        "max_attempts": attempts,
        "external_calls": sum(calls.values()),
        "transactions_called_more_than_once": sum(1 for n in calls.values() if n > 1),
        "qcluster_cpu_ms_per_processed": round(1000 * qcluster_seconds / max(processed, 1), 3),
        "postgres_cpu_ms_per_transaction": round(1000 * postgres_seconds / max(rows, 1), 3),
        "qcluster_peak_pss_mib": round(memory.peak_pss_total / 1024, 1),
        "qcluster_processes": memory.processes,
        "timeline": timeline,
    }


# Old PROCESSED rows for the purge phase: 60 days old and older, one a second, inserted
# by PostgreSQL itself (a minute or two for a million), as a long-running service has them.
SEED_OLD_PROCESSED = """
    INSERT INTO transactions_transaction
        (id, transaction_id, source_account, destination_account, amount, currency, status,
         payload, attempts, created_at, next_attempt_at, processed_at)
    SELECT gen_random_uuid(), 'old_' || g, 'acc_user_' || g %% 50000, 'acc_merchant_' || g %% 2000,
        1 + g %% 5000, 'INR', 'PROCESSED',
        jsonb_build_object('transaction_id', 'old_' || g, 'source_account', 'acc_user_' || g %% 50000,
            'destination_account', 'acc_merchant_' || g %% 2000, 'amount', 1 + g %% 5000, 'currency', 'INR'),
        1, at, at, at + interval '30 seconds'
    FROM generate_series(1, %s) g, LATERAL (SELECT now() - interval '60 days' - g * interval '1 second') t(at)
"""


class LockSampler(threading.Thread):
    """Every 0.5 s: the longest a statement of this database has been waiting for a lock,
    and the table lock modes held on the transactions table."""

    def __init__(self, url: str, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.db, self.interval = Db(url), interval
        self.longest_wait = 0.0
        self.samples = self.samples_with_waits = 0
        self.table_lock_modes: set[str] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            waiting = self.db.value(
                "SELECT COALESCE(max(EXTRACT(EPOCH FROM clock_timestamp() - query_start)), 0) "
                "FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            self.table_lock_modes.update(
                self.db.column(
                    # Table locks only: an 'extend' lock (growing the file) is held for
                    # microseconds by whoever inserts.
                    "SELECT DISTINCT mode FROM pg_locks WHERE locktype = 'relation' "
                    "AND relation = 'transactions_transaction'::regclass AND granted"
                )
            )
            self.samples += 1
            self.samples_with_waits += waiting > 0
            self.longest_wait = max(self.longest_wait, float(waiting))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def steady_wrk(wrk: str, service: Service, args: argparse.Namespace, out_dir: Path, tag: str, seconds: int):
    per_thread = args.purge_rate / args.threads
    return subprocess.Popen(
        [
            wrk, f"-t{args.threads}", f"-c{args.sustained_connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(HERE / "steady.lua"), service.url("/"), "--", tag, str(out_dir), f"{per_thread:g}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def wrk_result(proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    output, _ = proc.communicate(timeout=timeout)
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    return json.loads(line.removeprefix("BENCH_JSON "))


def purge(service: Service, db: Db, args: argparse.Namespace, out_dir: Path, wrk: str) -> dict[str, Any]:
    """Retention under load: `manage.py purge_transactions` deletes --purge-rows old
    PROCESSED rows while webhooks arrive at --purge-rate a second."""
    rows = args.purge_rows
    log(f"purge: seeding {rows} PROCESSED rows 60+ days old")
    started = time.monotonic()
    db.conn.execute(SEED_OLD_PROCESSED, (rows,))
    # As on a table that has lived for 60 days: vacuumed, with fresh statistics.
    db.conn.execute("VACUUM ANALYZE transactions_transaction")
    log(f"purge: seeded in {time.monotonic() - started:.0f}s")

    if args.quiet_wait:
        log(f"waiting up to {args.quiet_wait:g}s for the machine to be quiet (other work)")
        log(f"machine CPU busy before the run: {wait_for_quiet(args.quiet_wait):.0f}%")
    log(f"purge: baseline, {args.purge_rate}/s for {args.purge_baseline}s without a purge")
    baseline = wrk_result(
        steady_wrk(wrk, service, args, out_dir, "base", args.purge_baseline), args.purge_baseline + 60
    )
    log(f"purge: {args.purge_rate}/s offered while `purge_transactions --older-than 30d` runs")
    locks = LockSampler(args.database_url)
    load = steady_wrk(wrk, service, args, out_dir, "purge", args.purge_max_seconds)
    locks.start()
    time.sleep(5)  # the load is steady before the purge starts
    done = subprocess.run(
        [sys.executable, "manage.py", "purge_transactions", "--older-than", "30d"],
        cwd=ROOT, env=service.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    # Timed by the command itself: Django's start-up is not the purge.
    purge_seconds = float(re.search(r"in ([0-9.]+) s\.", done.stdout)[1])
    time.sleep(2)
    load.send_signal(signal.SIGINT)  # wrk stops and reports what it measured so far
    during = wrk_result(load, 60)
    locks.stop()
    left = db.value("SELECT count(*) FROM transactions_transaction WHERE transaction_id LIKE 'old\\_%%'")
    acked = acknowledged_ids(out_dir, "purge") | acknowledged_ids(out_dir, "base")
    stored = set(
        db.column(
            "SELECT transaction_id FROM transactions_transaction "
            "WHERE transaction_id LIKE 'purge\\_%%' OR transaction_id LIKE 'base\\_%%'"
        )
    )
    deleted = rows - left
    return {
        "rows": rows,
        "deleted": deleted,
        "left": left,
        "command_output": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "",
        "purge_seconds": round(purge_seconds, 1),
        "rows_per_second": round(deleted / max(purge_seconds, 1e-9)),
        "baseline": baseline,
        "during": during,
        "longest_lock_wait_ms": round(1000 * locks.longest_wait, 1),
        "samples": locks.samples,
        "samples_with_lock_waits": locks.samples_with_waits,
        "table_lock_modes": sorted(locks.table_lock_modes),
        "acknowledged": len(acked),
        "acknowledged_not_stored": len(acked - stored),
    }


def print_purge(result: dict[str, Any], rate: int) -> None:
    r = result

    def latency(load: dict[str, Any]) -> str:
        seconds = load["duration_us"] / 1e6
        return (
            f"{load['ok'] / seconds:.0f}/s accepted over {seconds:.0f}s, {error_count(load)} errors; "
            f"p50 {load['p50_us'] / 1000:.1f} ms, p99 {load['p99_us'] / 1000:.1f} ms, "
            f"max {load['max_us'] / 1000:.1f} ms"
        )

    print("\n================ retention purge under load ================")
    print(
        f"purge: {r['deleted']} of {r['rows']} old PROCESSED rows deleted in {r['purge_seconds']}s "
        f"= {r['rows_per_second']} rows/s ({r['left']} left); {r['command_output']}"
    )
    print(f"ingestion at {rate}/s offered, before the purge: {latency(r['baseline'])}")
    print(f"ingestion at {rate}/s offered, during the purge: {latency(r['during'])}")
    print(
        f"locks: longest wait seen {r['longest_lock_wait_ms']} ms ({r['samples_with_lock_waits']} of "
        f"{r['samples']} samples every 0.5 s saw a statement waiting); table locks held on "
        f"transactions_transaction: {', '.join(r['table_lock_modes'])}"
    )
    print(f"durability: {r['acknowledged']} acknowledged, {r['acknowledged_not_stored']} of them not stored")
    print("============================================================")


def external_call_starts(log_paths: list[Path]) -> dict[str, int]:
    """External calls started per idempotency key, from the qclusters' call logs."""
    calls: dict[str, int] = {}
    for log_path in log_paths:
        with open(log_path, errors="replace") as lines:
            for line in lines:
                _, found, rest = line.partition("external call start idempotency_key=")
                if found:
                    key = rest.split()[0].strip('",')
                    calls[key] = calls.get(key, 0) + 1
    return calls


def single(service: Service, db: Db, timeout: float) -> float:
    statuses = post_all(service.port, ["single_00001"], 1)
    if statuses != [202]:
        raise RuntimeError(f"single webhook answered {statuses}")
    wait_for(
        lambda: (
            db.value("SELECT status FROM transactions_transaction WHERE transaction_id='single_00001'")
            == "PROCESSED"
        ),
        timeout,
        "the single webhook to be PROCESSED",
        interval=0.2,
    )
    return float(
        db.value(
            "SELECT EXTRACT(EPOCH FROM processed_at - created_at) FROM transactions_transaction "
            "WHERE transaction_id='single_00001'"
        )
    )


def run_wrk(
    wrk: str, service: Service, tag: str, seconds: int, connections: int, threads: int, out_dir: Path
) -> dict[str, Any]:
    args = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "webhooks.lua"),
        service.url("/"),
        "--",
        tag,
        str(out_dir),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    result = json.loads(line.removeprefix("BENCH_JSON "))
    result["raw"] = done.stdout
    return result


def acknowledged_ids(out_dir: Path, tag: str) -> set[str]:
    ids: set[str] = set()
    for path in out_dir.glob(f"ok-{tag}-*.txt"):
        ids.update(path.read_text().split())
    return ids


@contextmanager
def py_spy(pid: int | None, seconds: int, out_dir: Path) -> Iterator[None]:
    """Profile one gunicorn worker with py-spy while the body runs (if asked to)."""
    if pid is None:
        yield
        return
    raw = out_dir / "gunicorn-worker.pyspy.txt"
    proc = subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        proc.wait(timeout=seconds + 30)
        print_profile(raw)


def print_profile(raw: Path, top: int = 30) -> None:
    """Inclusive share of samples per function, from py-spy's collapsed stacks."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        for frame in set(stack.split(";")):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    print(f"\npy-spy: one gunicorn worker, {total} samples, inclusive share (raw stacks in {raw})")
    for frame, samples in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * samples / total:5.1f}%  {frame}")


def wait_for_quiet(limit: float, busy_percent: float = 20.0) -> float:
    """Wait (at most `limit` seconds) for the machine to be nearly idle; the last reading."""
    deadline = time.monotonic() + limit
    while True:
        meter = CpuMeter()
        meter.start()
        time.sleep(2)
        busy, _ = meter.stop()
        if busy <= busy_percent or time.monotonic() >= deadline:
            return busy


def ingestion(
    wrk: str, service: Service, db: Db, args: argparse.Namespace, out_dir: Path, profile_pid: int | None
) -> dict[str, Any]:
    if args.quiet_wait:
        log(f"waiting up to {args.quiet_wait:g}s for the machine to be quiet (other work)")
        log(f"machine CPU busy before the run: {wait_for_quiet(args.quiet_wait):.0f}%")
    log(f"ingestion: warm-up, {args.warmup}s")
    warm = run_wrk(wrk, service, "warm", args.warmup, args.connections, args.threads, out_dir)
    log(f"ingestion: wrk -c{args.connections} -t{args.threads} for {args.duration}s")
    cpu = CpuMeter()
    cpu.start()
    # CPU per webhook does not depend on what else the machine is doing; throughput does.
    samplers = [
        CpuSampler(lambda: [service.web.pid, *service.web_workers()]),
        CpuSampler(lambda: db.column("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")),
        CpuSampler(service.worker_pids),
    ]
    for sampler in samplers:
        sampler.start()
    wrk_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    with py_spy(profile_pid, max(5, args.duration - 5), out_dir):
        result = run_wrk(wrk, service, "run", args.duration, args.connections, args.threads, out_dir)
    busy_percent, busy_seconds = cpu.stop()
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    requests = max(1, result["requests"])
    web_cpu, pg_cpu, worker_cpu = (sampler.stop() for sampler in samplers)
    wrk_cpu = wrk_after.ru_utime + wrk_after.ru_stime - wrk_cpu.ru_utime - wrk_cpu.ru_stime
    result["web_cpu_ms_per_request"] = round(1000 * web_cpu / requests, 3)
    result["postgres_cpu_ms_per_request"] = round(1000 * pg_cpu / requests, 3)
    result["machine_cpu_busy_percent"] = round(busy_percent, 1)
    # Whatever the machine did besides this benchmark: the noise in the numbers above.
    ours = web_cpu + pg_cpu + worker_cpu + wrk_cpu
    result["other_cpu_percent"] = round(max(0.0, busy_percent * (1 - ours / max(busy_seconds, 1e-9))), 1)
    result["wrk_cpu_percent_of_machine"] = round(busy_percent * wrk_cpu / max(busy_seconds, 1e-9), 1)

    acked: set[str] = set()
    for tag in ("warm", "run"):
        acked |= acknowledged_ids(out_dir, tag)
    stored = set(
        db.column(
            "SELECT transaction_id FROM transactions_transaction "
            "WHERE transaction_id LIKE 'warm\\_%%' OR transaction_id LIKE 'run\\_%%'"
        )
    )
    result["acknowledged"] = len(acked)
    result["acknowledged_expected"] = warm["ok"] + result["ok"]
    result["stored_rows"] = len(stored)
    result["acknowledged_not_stored"] = len(acked - stored)
    # Rows whose answer wrk never read: requests in flight when it stopped at the deadline.
    result["stored_not_acknowledged"] = len(stored - acked)
    result["warmup_errors"] = error_count(warm)
    return result


def error_count(result: dict[str, Any]) -> int:
    return sum(result[k] for k in ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts"))


def print_report(
    setup: dict, burst_result: dict | None, single_seconds: float | None, ing: dict | None
) -> None:
    print("\n================ benchmark results ================")
    for key, value in setup.items():
        print(f"{key}: {value}")
    if burst_result:
        b = burst_result
        print(
            f"\nburst: {b['accepted']}/{b['count']} webhooks accepted (sent in {b['send_seconds']}s), "
            f"all PROCESSED {b['drain_seconds']}s after the first arrived (max attempts {b['max_attempts']})"
        )
        print(
            f"qcluster memory peak: {b['qcluster_peak_pss_mib']} MiB PSS in total over "
            f"{b['qcluster_processes']} processes, "
            f"largest process {b['qcluster_peak_rss_per_process_mib']} MiB RSS"
        )
    if single_seconds is not None:
        print(f"single webhook: PROCESSING -> PROCESSED in {single_seconds:.2f}s")
    if ing:
        seconds = ing["duration_us"] / 1e6
        errors = error_count(ing)
        print(
            f"\ningestion: {ing['requests']} requests in {seconds:.1f}s = "
            f"{ing['requests'] / seconds:.0f} webhooks/s, "
            f"2xx {ing['ok']}"
        )
        print(
            f"latency: p50 {ing['p50_us'] / 1000:.1f} ms, p90 {ing['p90_us'] / 1000:.1f} ms, "
            f"p99 {ing['p99_us'] / 1000:.1f} ms, max {ing['max_us'] / 1000:.1f} ms"
        )
        print(
            f"errors: {errors} (non-2xx {ing['non_2xx']}, connect {ing['connect_errors']}, "
            f"read {ing['read_errors']}, write {ing['write_errors']}, timeout {ing['timeouts']}); "
            f"warm-up errors {ing['warmup_errors']}"
        )
        print(
            f"durability: {ing['acknowledged']} webhooks answered 2xx (warm-up included), "
            f"{ing['acknowledged_not_stored']} of them not stored; {ing['stored_rows']} rows "
            f"({ing['stored_not_acknowledged']} stored but unanswered: in flight when wrk stopped)"
        )
        print(
            f"CPU per webhook: gunicorn {ing['web_cpu_ms_per_request']} ms, PostgreSQL (this database's "
            f"connections) {ing['postgres_cpu_ms_per_request']} ms; machine CPU busy during the run: "
            f"{ing['machine_cpu_busy_percent']}% of all cores, "
            f"of which wrk {ing['wrk_cpu_percent_of_machine']}% "
            f"and other work on the machine (noise) {ing['other_cpu_percent']}%"
        )
    print("===================================================")


def print_sustained(result: dict[str, Any]) -> None:
    r = result
    print("\n================ sustained load ================")
    print(
        f"offered {r['offered_per_second']}/s for {r['seconds']}s: accepted {r['accepted_per_second']}/s, "
        f"{r['errors']} errors; webhook latency p50 {r['webhook_p50_ms']} ms, p99 {r['webhook_p99_ms']} ms"
    )
    print(
        f"durability: {r['acknowledged']} acknowledged, {r['acknowledged_not_stored']} of them not stored; "
        f"{r['stored']} stored, {r['processed']} PROCESSED within {r['drain_timeout_s']:g} s "
        f"of the load's end "
        f"(max attempts {r['max_attempts']})"
    )
    print(
        f"processing: {r['processing_per_second']}/s; lag (processed_at - created_at) "
        f"p50 {r['lag_p50_s']} s, "
        f"p99 {r['lag_p99_s']} s, max {r['lag_max_s']} s; last PROCESSED "
        f"{r['last_processed_after_last_arrival_s']} s after the last arrival"
    )
    print(
        f"external calls: {r['external_calls']}, transactions called more than once: "
        f"{r['transactions_called_more_than_once']}"
    )
    print(
        f"CPU per transaction: qcluster {r['qcluster_cpu_ms_per_processed']} ms, PostgreSQL (ingestion and "
        f"processing) {r['postgres_cpu_ms_per_transaction']} ms; qcluster peak memory "
        f"{r['qcluster_peak_pss_mib']} MiB PSS over {r['qcluster_processes']} processes"
    )
    print("backlog over time (every 10 s): t, stored, processed, due, in flight")
    for p in r["timeline"]:
        print(f"  {p['t']:>4}s {p['stored']:>7} {p['processed']:>7} {p['due']:>7} {p['in_flight']:>7}")
    print("================================================")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--duration", type=int, default=30, help="seconds of measured wrk load")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of wrk load before measuring")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--burst", type=int, default=1000, help="webhooks in the burst (0: skip it)")
    parser.add_argument("--drain-timeout", type=float, default=240)
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--skip-ingestion", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy one gunicorn worker during ingestion")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        help="seconds to wait at most for other work on the machine to stop before measuring",
    )
    parser.add_argument(
        "--sustained",
        type=int,
        default=0,
        metavar="RATE",
        help="instead of the other phases: RATE webhooks/s offered steadily, then until all are processed",
    )
    parser.add_argument("--sustained-duration", type=int, default=180, help="seconds of sustained load")
    # Open loop: enough connections that a slow answer never delays the next arrival
    # (at 400/s, a 0.5 s stall needs 200 in flight).
    parser.add_argument("--sustained-connections", type=int, default=256)
    parser.add_argument("--qclusters", type=int, default=1, help="qcluster processes (scale-out)")
    parser.add_argument(
        "--purge-rows",
        type=int,
        default=0,
        metavar="N",
        help="instead of the other phases: purge N old PROCESSED rows while webhooks arrive at --purge-rate",
    )
    parser.add_argument("--purge-rate", type=int, default=500, help="webhooks/s offered during the purge")
    parser.add_argument("--purge-baseline", type=int, default=20, help="seconds of load before the purge")
    parser.add_argument("--purge-max-seconds", type=int, default=1800, help="the longest the purge may take")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra service setting (repeatable)"
    )
    args = parser.parse_args()

    if args.sustained:
        args.burst, args.skip_single, args.skip_ingestion = 0, True, True
        args.drain_timeout = max(args.drain_timeout, 300)
    if args.purge_rows:
        args.burst, args.skip_single, args.skip_ingestion = 0, True, True
    wrk = None if args.skip_ingestion and not (args.sustained or args.purge_rows) else ensure_wrk()
    if args.profile and not (BIN / "py-spy").exists():
        # Only for --profile, so not in requirements.txt (CI never needs it).
        subprocess.run([str(BIN / "pip"), "install", "--quiet", "py-spy==0.4.3"], check=True)
    out_dir = Path(tempfile.mkdtemp(prefix="webhooks-bench-"))
    extra_env = dict(item.split("=", 1) for item in args.env)

    cpu = CpuMeter()
    cpu.start()
    time.sleep(2)
    background, _ = cpu.stop()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    setup = {
        "machine": f"{os.cpu_count()} CPUs, {memory_gib:.0f} GiB",
        "load average before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "CPU busy before start (other work on the machine)": f"{background:.0f}%",
        "service settings": extra_env or "production defaults",
        "logs": str(out_dir),
    }
    log(f"fresh database {args.database_url}; logs in {out_dir}")
    recreate_database(args.database_url)
    service = Service(args.database_url, out_dir, extra_env)
    burst_result = single_seconds = ing = steady = purged = None
    try:
        service.manage("migrate", "--noinput", "--verbosity", "0")
        service.manage("collectstatic", "--noinput", "--verbosity", "0")
        service.start_web()
        for _ in range(args.qclusters):
            service.start_worker()
        db = Db(args.database_url)
        setup["gunicorn workers"] = len(service.web_workers())
        setup["qcluster processes"] = args.qclusters
        log(f"service up on 127.0.0.1:{service.port}: {setup['gunicorn workers']} gunicorn workers, qcluster")
        if args.burst:
            burst_result = burst(service, db, args.burst, args.connections, args.drain_timeout)
            log(f"burst drained in {burst_result['drain_seconds']}s")
        if not args.skip_single:
            single_seconds = single(service, db, timeout=120)
            log(f"single webhook processed in {single_seconds:.2f}s")
        if args.sustained:
            steady = sustained(service, db, args, out_dir, wrk)
        if args.purge_rows:
            purged = purge(service, db, args, out_dir, wrk)
        if not args.skip_ingestion:
            profile_pid = service.web_workers()[0] if args.profile else None
            ing = ingestion(wrk, service, db, args, out_dir, profile_pid)
    finally:
        log("stopping the service")
        service.stop()
    print_report(setup, burst_result, single_seconds, ing)
    if steady:
        print_sustained(steady)
    if purged:
        print_purge(purged, args.purge_rate)
    failed = (
        (
            ing is not None
            and (ing["acknowledged_not_stored"] > 0 or ing["acknowledged"] != ing["acknowledged_expected"])
        )
        or (purged is not None and (purged["acknowledged_not_stored"] > 0 or purged["left"] > 0))
        or (
            steady is not None
            and (steady["acknowledged_not_stored"] > 0 or steady["transactions_called_more_than_once"] > 0)
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
