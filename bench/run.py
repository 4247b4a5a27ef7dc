"""`make bench`: the service as in production (gunicorn and qcluster, DEBUG off, loopback
only) on a fresh PostgreSQL database, under load. What each phase measures: docs/benchmarks.md.
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
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from http.client import HTTPConnection
from pathlib import Path
from subprocess import PIPE, STDOUT, Popen
from typing import Any
from urllib.request import urlopen

import psycopg

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent))
from transactions.examples import EXAMPLE_WEBHOOK  # noqa: E402  (plain data: no Django set-up)

# Production answers plain http with a redirect and sits behind a TLS-terminating proxy
# that sends this header; the benchmark plays that proxy.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
CONNECTIONS, THREADS = 32, 2  # the burst and ingestion; wrk threads
# Open loop: enough connections that a slow answer never delays the next arrival
# (at 400/s, a 0.5 s stall needs 200 in flight).
OPEN_LOOP_CONNECTIONS = 256
TICK = os.sysconf("SC_CLK_TCK")
# The rows of a phase: each transaction_id starts with the phase's tag and "_".
TAGGED = "FROM transactions_transaction WHERE split_part(transaction_id, '_', 1) = ANY(%s)"
PENDING = f"SELECT count(*) {TAGGED} AND status <> 'PROCESSED'"
# What `purge_transactions --older-than 30d` deletes (not the few stuck seeded rows that the
# qcluster may retry and process meanwhile).
PURGEABLE = f"SELECT count(*) {TAGGED} AND status = 'PROCESSED' AND processed_at < now() - interval '30 days'"
LAG = "EXTRACT(EPOCH FROM processed_at - created_at)"
# The longest a statement of this database has waited for a lock so far, and the table
# locks held on the transactions table (not 'extend' locks, held for microseconds to grow the file).
LOCKS = """
    SELECT (SELECT COALESCE(max(EXTRACT(EPOCH FROM clock_timestamp() - query_start)), 0) FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'),
        ARRAY(SELECT DISTINCT mode FROM pg_locks WHERE locktype = 'relation'
            AND relation = 'transactions_transaction'::regclass AND granted)
"""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@contextmanager
def every(seconds: float, sample: Callable[[], None]) -> Iterator[None]:
    """Calls `sample` every `seconds` in a thread while the body runs, and once more at its end."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            sample()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sample()


def ensure_wrk() -> str:
    """wrk from the Debian package, installed with apt-get if it is missing."""
    if not shutil.which("wrk"):
        log("wrk is not installed: installing the Debian package (apt-get)")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    return shutil.which("wrk") or "wrk"


# --- Processes and CPUs, from /proc -------------------------------------------------


def stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (state, ppid, pgrp, session, ...); [] once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def session(*sids: int) -> list[int]:
    """The processes in these sessions: each program started here leads one of its own."""
    wanted = {str(sid) for sid in sids}
    pids = (int(path.name) for path in Path("/proc").iterdir() if path.name.isdigit())
    return [pid for pid in pids if (fields := stat(pid)) and fields[3] in wanted]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU time (user + system) each process has used so far; gone ones are left out."""
    fields = {pid: stat(pid) for pid in pids}
    return {pid: (int(f[11]) + int(f[12])) / TICK for pid, f in fields.items() if f}


def memory_kib(pid: int) -> tuple[int, ...]:
    """(RSS, PSS) of one process; PSS shares out the pages forked processes have in common."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        return tuple(int(re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE)[1]) for key in ("Rss", "Pss"))
    except (OSError, TypeError):
        return 0, 0


def children_cpu() -> float:
    """CPU-seconds used by the child processes that have ended (and been waited for) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def busy_since(start: tuple[int, int]) -> tuple[float, float]:
    """(share of all cores busy in %, busy CPU-seconds) since `start`, a machine_ticks()."""
    busy, total = (now - then for now, then in zip(machine_ticks(), start, strict=True))
    return 100 * busy / max(1, total), busy / TICK


class Db:
    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)  # thread-safe: the samplers share it

    def row(self, sql: str, *params: Any) -> tuple:
        return self.conn.execute(sql, params).fetchone()

    def value(self, sql: str, *params: Any) -> Any:
        return self.row(sql, *params)[0]

    def column(self, sql: str, *params: Any) -> list:
        return [row[0] for row in self.conn.execute(sql, params)]


class Service:
    """gunicorn (gunicorn.conf.py) and `manage.py qcluster` processes, each in a session of
    its own so that stop() ends them with all their children."""

    def __init__(self, database_url: str, log_dir: Path, settings: dict[str, str]) -> None:
        self.log_dir, self.procs = log_dir, []
        self.env = os.environ | {"DATABASE_URL": database_url, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
        self.env |= {"DJANGO_DEBUG": "0", "PYTHONUNBUFFERED": "1"} | settings
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def manage(self, *args: str) -> str:
        command = [sys.executable, "manage.py", *args]
        return subprocess.run(
            command, cwd=HERE.parent, env=self.env, check=True, stdout=PIPE, text=True
        ).stdout

    def spawn(self, name: str, *args: str, **env: str) -> Path:
        path = self.log_dir / f"{name}.log"
        with open(path, "ab") as out:
            kwargs = {"cwd": HERE.parent, "stdout": out, "stderr": STDOUT, "start_new_session": True}
            self.procs.append(Popen(args, env=self.env | env, **kwargs))
        return path

    def start(self, qclusters: int) -> None:
        """On a freshly recreated database."""
        info = psycopg.conninfo.conninfo_to_dict(self.env["DATABASE_URL"])
        name, server = info.pop("dbname"), psycopg.conninfo.make_conninfo(**info, dbname="postgres")
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.manage("migrate", "--noinput", "--verbosity", "0")
        self.manage("collectstatic", "--noinput", "--verbosity", "0")
        # The command line wins over the config file: loopback only.
        gunicorn = [str(BIN / "gunicorn"), "webhooks_project.wsgi", "--config", "gunicorn.conf.py"]
        self.spawn("gunicorn", *gunicorn, "--bind", f"127.0.0.1:{self.port}")
        wait_for(self.healthy, 60, "gunicorn to answer GET /")
        for n in range(qclusters):
            # At INFO: the "running" line says the cluster is up, and each external call is logged.
            path = self.spawn(
                f"qcluster-{n}", sys.executable, "manage.py", "qcluster", DJANGO_Q_LOG_LEVEL="INFO"
            )
            wait_for(lambda path=path: b"running" in path.read_bytes(), 60, "qcluster to start")

    def healthy(self) -> bool:
        try:
            with urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def web_pids(self) -> list[int]:
        return session(self.procs[0].pid)

    def web_workers(self) -> list[int]:
        return [pid for pid in self.web_pids() if pid != self.procs[0].pid]

    def qcluster_pids(self) -> list[int]:
        return session(*(proc.pid for proc in self.procs[1:]))

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        deadline = time.monotonic() + 30
        for proc in self.procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for pid in session(*(proc.pid for proc in self.procs)):  # whatever is left
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait()


class Monitor:
    """CPU time of gunicorn, qcluster and this database's PostgreSQL backends, and the
    qcluster's peak memory, sampled with every(): the backends are recycled every
    DATABASE_CONN_MAX_AGE, and one that exits loses at most its last interval."""

    def __init__(self, service: Service, db: Db) -> None:
        backends = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        self.groups = {"web": service.web_pids, "qcluster": service.qcluster_pids}
        self.groups["postgres"] = lambda: db.column(backends)
        self.first = {name: cpu_seconds(pids()) for name, pids in self.groups.items()}
        self.last = {name: dict(seconds) for name, seconds in self.first.items()}
        self.pss = self.rss = self.processes = 0

    def sample(self) -> None:
        for name, pids in self.groups.items():
            self.last[name].update(cpu_seconds(pids()))
        memory = [memory_kib(pid) for pid in self.groups["qcluster"]()]
        self.processes = max(self.processes, len(memory))
        self.pss = max(self.pss, sum(pss for _, pss in memory))
        self.rss = max(self.rss, *(rss for rss, _ in memory), 0)

    def cpu(self, name: str) -> float:
        """CPU-seconds the group has used since the monitor was made."""
        return sum(seconds - self.first[name].get(pid, 0.0) for pid, seconds in self.last[name].items())


def errors(load: dict[str, Any]) -> int:
    return sum(load[k] for k in ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts"))


def ms(microseconds: float) -> str:
    return f"{microseconds / 1000:.1f} ms"


class Bench:
    """The phases; each returns its lines of the report."""

    def __init__(self, args: argparse.Namespace, service: Service, out_dir: Path) -> None:
        self.args, self.service, self.out = args, service, out_dir
        self.db = Db(args.database_url)
        self.failed = False  # an acknowledged webhook not stored, a purge left undone, a double call

    def wrk(self, tag: str, seconds: int, connections: int = CONNECTIONS, rate: int = 0) -> Popen:
        """wrk in the background: webhooks.lua as fast as it can, or steady.lua at `rate` a second."""
        script, per_thread = ("steady.lua", [f"{rate / THREADS:g}"]) if rate else ("webhooks.lua", [])
        command = [
            ensure_wrk(), f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(HERE / script), f"http://127.0.0.1:{self.service.port}/",
            "--", tag, str(self.out), *per_thread,
        ]  # fmt: skip
        return Popen(command, stdout=PIPE, stderr=STDOUT, text=True)

    @staticmethod
    def wrk_result(proc: Popen, timeout: float) -> dict[str, Any]:
        output = proc.communicate(timeout=timeout)[0]
        line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{output}")
        return json.loads(line.removeprefix("BENCH_JSON "))

    def durability(self, *tags: str) -> tuple[int, int, int, int]:
        """(acknowledged, of them not stored, stored, of them unacknowledged): the Lua script
        writes the transaction_id of every 2xx answer to ok-<tag>-<thread>.txt."""
        acked = set(
            " ".join(path.read_text() for tag in tags for path in self.out.glob(f"ok-{tag}-*.txt")).split()
        )
        stored = set(self.db.column(f"SELECT transaction_id {TAGGED}", list(tags)))
        self.failed |= bool(acked - stored)
        return len(acked), len(acked - stored), len(stored), len(stored - acked)

    def wait_for_quiet(self, limit: float = 60, busy_percent: float = 20) -> None:
        """Waits (at most `limit` seconds) for other work on the machine to stop."""
        log(f"waiting up to {limit:g}s for the machine to be quiet (other work)")
        deadline = time.monotonic() + limit
        while True:
            start = machine_ticks()
            time.sleep(2)
            busy = busy_since(start)[0]
            if busy <= busy_percent or time.monotonic() >= deadline:
                break
        log(f"machine CPU busy before the run: {busy:.0f}%")

    def deliver(self, tag: str, count: int, timeout: float = 240) -> tuple[int, float, float, int]:
        """POSTs `count` webhooks over keep-alive connections and waits until all are PROCESSED:
        (accepted, seconds to send them, from the first arrival to the last processed_at, max attempts)."""
        local, headers = threading.local(), {"Content-Type": "application/json", **PROXY_HEADERS}

        def post(n: int) -> int:
            if not hasattr(local, "conn"):
                local.conn = HTTPConnection("127.0.0.1", self.service.port, timeout=30)
            body = json.dumps({**EXAMPLE_WEBHOOK, "transaction_id": f"{tag}_{n:05d}"})
            try:
                local.conn.request("POST", "/v1/webhooks/transactions", body, headers)
                response = local.conn.getresponse()
                response.read()
                return response.status
            except OSError:
                local.conn.close()  # its next request opens a new connection
                return 0

        started = time.monotonic()
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            accepted = sum(200 <= status < 300 for status in pool.map(post, range(count)))
        sent = time.monotonic() - started
        if not accepted:
            raise RuntimeError(f"no {tag} webhook was accepted")
        log(f"{tag}: {accepted}/{count} accepted in {sent:.2f}s; waiting until all are PROCESSED")
        wait_for(lambda: self.db.value(PENDING, [tag]) == 0, timeout, f"the {tag} webhooks to be PROCESSED")
        span = "EXTRACT(EPOCH FROM max(processed_at) - min(created_at))"
        drain, attempts = self.db.row(f"SELECT {span}, max(attempts) {TAGGED}", [tag])
        return accepted, sent, float(drain), attempts

    def burst(self) -> list[str]:
        monitor = Monitor(self.service, self.db)
        with every(0.5, monitor.sample):
            accepted, sent, drain, attempts = self.deliver("burst", self.args.burst)
        return [
            f"\nburst: {accepted}/{self.args.burst} webhooks accepted (sent in {sent:.2f}s), "
            f"all PROCESSED {drain:.1f}s after the first arrived (max attempts {attempts})",
            f"qcluster memory peak: {monitor.pss / 1024:.1f} MiB PSS in total over {monitor.processes} "
            f"processes, largest process {monitor.rss / 1024:.1f} MiB RSS",
        ]

    def ingestion(self) -> list[str]:
        self.wait_for_quiet()
        log("ingestion: warm-up, 5s")
        warm, duration = self.wrk_result(self.wrk("warm", 5), 65), self.args.duration
        log(f"ingestion: wrk -c{CONNECTIONS} -t{THREADS} for {duration}s")
        # CPU per webhook does not depend on what else the machine is doing; throughput does.
        monitor, machine = Monitor(self.service, self.db), machine_ticks()
        wrk_before = children_cpu()  # the children that end meanwhile: wrk
        with every(0.5, monitor.sample):
            run = self.wrk_result(self.wrk("run", duration), duration + 60)
        busy_percent, busy_seconds = busy_since(machine)
        busy_seconds = max(busy_seconds, 1e-9)
        wrk = (children_cpu() - wrk_before) / busy_seconds
        web, postgres, qcluster = (monitor.cpu(name) for name in ("web", "postgres", "qcluster"))
        # Whatever the machine did besides this benchmark: the noise in the numbers.
        other = max(0.0, busy_percent * (1 - wrk - (web + postgres + qcluster) / busy_seconds))
        acked, lost, stored, unanswered = self.durability("warm", "run")
        self.failed |= acked != warm["ok"] + run["ok"]  # a 2xx whose id the script did not write down
        seconds, requests = run["duration_us"] / 1e6, max(1, run["requests"])
        return [
            f"\ningestion: {run['requests']} requests in {seconds:.1f}s = {run['requests'] / seconds:.0f} "
            f"webhooks/s, 2xx {run['ok']}",
            f"latency: p50 {ms(run['p50_us'])}, p90 {ms(run['p90_us'])}, p99 {ms(run['p99_us'])}, "
            f"max {ms(run['max_us'])}",
            f"errors: {errors(run)} (non-2xx {run['non_2xx']}, connect {run['connect_errors']}, "
            f"read {run['read_errors']}, write {run['write_errors']}, timeout {run['timeouts']}); "
            f"warm-up errors {errors(warm)}",
            f"durability: {acked} webhooks answered 2xx (warm-up included), {lost} of them not stored; "
            f"{stored} rows ({unanswered} stored but unanswered: in flight when wrk stopped)",
            f"CPU per webhook: gunicorn {round(1000 * web / requests, 3)} ms, PostgreSQL (this database's "
            f"connections) {round(1000 * postgres / requests, 3)} ms; machine CPU busy during the run: "
            f"{busy_percent:.1f}% of all cores, of which wrk {busy_percent * wrk:.1f}% "
            f"and other work on the machine (noise) {other:.1f}%",
        ]

    def sustained(self) -> list[str]:
        """A steady offered rate for a while, then until every acknowledged webhook is PROCESSED."""
        rate, seconds = self.args.sustained, self.args.sustained_duration
        log(f"sustained: {rate}/s offered for {seconds}s (wrk -c{OPEN_LOOP_CONNECTIONS} -t{THREADS})")
        monitor, timeline, started = Monitor(self.service, self.db), [], time.monotonic()

        def backlog() -> None:
            due_now = "next_attempt_at <= now() AND (leased_until IS NULL OR leased_until < now())"
            stored, processed, due, in_flight = self.db.row(
                f"SELECT count(*), count(*) FILTER (WHERE status = 'PROCESSED'), "
                f"count(*) FILTER (WHERE status = 'PROCESSING' AND {due_now}), "
                f"count(*) FILTER (WHERE status = 'PROCESSING' AND leased_until >= now()) {TAGGED}",
                ["steady"],
            )
            t = round(time.monotonic() - started)
            timeline.append(f"  {t:>4}s {stored:>7} {processed:>7} {due:>7} {in_flight:>7}")
            log(f"t={t}s stored {stored} processed {processed} due {due} in flight {in_flight}")

        with every(0.5, monitor.sample), every(10, backlog):
            load = self.wrk_result(self.wrk("steady", seconds, OPEN_LOOP_CONNECTIONS, rate), seconds + 60)
            log("sustained: load over; waiting until every acknowledged webhook is PROCESSED")
            with suppress(RuntimeError):  # reported below: stored and PROCESSED differ
                wait_for(lambda: self.db.value(PENDING, ["steady"]) == 0, 300, "the backlog", interval=1)
        rows, processed, p50, p99, worst, tail, span, attempts = self.db.row(
            "SELECT count(*), count(*) FILTER (WHERE status = 'PROCESSED'), "  # noqa: S608
            f"COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY {LAG}), 0), "
            f"COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY {LAG}), 0), COALESCE(max({LAG}), 0), "
            "COALESCE(EXTRACT(EPOCH FROM max(processed_at) - max(created_at)), 0), "
            f"COALESCE(EXTRACT(EPOCH FROM max(processed_at) - min(processed_at)), 0), max(attempts) {TAGGED}",
            ["steady"],
        )
        acked, lost, _, _ = self.durability("steady")
        logs = "".join(path.read_text(errors="replace") for path in self.out.glob("qcluster-*.log"))
        calls = Counter(re.findall(r"external call start idempotency_key=([\w-]+)", logs))
        twice = sum(1 for n in calls.values() if n > 1)
        self.failed |= twice > 0
        accepted = load["ok"] / (load["duration_us"] / 1e6)
        return [
            f"\nsustained: offered {rate}/s for {seconds}s: accepted {accepted:.1f}/s, "
            f"{errors(load)} errors; webhook latency p50 {ms(load['p50_us'])}, p99 {ms(load['p99_us'])}",
            f"durability: {acked} acknowledged, {lost} of them not stored; {rows} stored, "
            f"{processed} PROCESSED within 300 s of the load's end (max attempts {attempts})",
            f"processing: {processed / max(float(span), 1e-9):.1f}/s; lag (processed_at - created_at) "
            f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {worst:.2f} s; "
            f"last PROCESSED {tail:.2f} s after the last arrival",
            f"external calls: {calls.total()}, transactions called more than once: {twice}",
            f"CPU per transaction: qcluster {1000 * monitor.cpu('qcluster') / max(processed, 1):.3f} ms, "
            f"PostgreSQL (ingestion and processing) {1000 * monitor.cpu('postgres') / max(rows, 1):.3f} ms; "
            f"qcluster peak memory {monitor.pss / 1024:.1f} MiB PSS over {monitor.processes} processes",
            "backlog over time (every 10 s): t, stored, processed, due, in flight",
            *timeline,
        ]

    def purge(self) -> list[str]:
        """Retention under load: `purge_transactions` deletes the PROCESSED ones of --purge-rows
        seeded rows 60+ days old while webhooks arrive at --purge-rate a second."""
        count, rate = str(self.args.purge_rows), self.args.purge_rate
        log(f"purge: seeding {count} rows 60+ days old (seed_transactions: ~99% PROCESSED)")
        self.service.manage("seed_transactions", "--count", count, "--min-age-days", "60")
        rows = self.db.value(PURGEABLE, ["seed"])
        # As on a table that has lived for 60 days: vacuumed, with fresh statistics.
        self.db.conn.execute("VACUUM ANALYZE transactions_transaction")
        self.wait_for_quiet()
        log(f"purge: baseline, {rate}/s for 20s without a purge")
        before = self.wrk_result(self.wrk("base", 20, OPEN_LOOP_CONNECTIONS, rate), 80)
        log(f"purge: {rate}/s offered while `purge_transactions --older-than 30d` runs")
        load, locks = self.wrk("purge", 1800, OPEN_LOOP_CONNECTIONS, rate), []
        with every(0.5, lambda: locks.append(self.db.row(LOCKS))):
            time.sleep(5)  # the load is steady before the purge starts
            output = self.service.manage("purge_transactions", "--older-than", "30d").strip()
            time.sleep(2)
            load.send_signal(signal.SIGINT)  # wrk stops and reports what it measured so far
            during = self.wrk_result(load, 60)
        # Timed by the command itself: Django's start-up is not the purge.
        seconds = float(re.search(r"in ([0-9.]+) s\.", output)[1])
        deleted = rows - self.db.value(PURGEABLE, ["seed"])
        self.failed |= deleted < rows
        acked, lost, _, _ = self.durability("base", "purge")
        waits = [float(wait) for wait, _ in locks]

        def ingested(load: dict[str, Any]) -> str:
            seconds = load["duration_us"] / 1e6
            return (
                f"{load['ok'] / seconds:.0f}/s accepted over {seconds:.0f}s, {errors(load)} errors; "
                f"p50 {ms(load['p50_us'])}, p99 {ms(load['p99_us'])}, max {ms(load['max_us'])}"
            )

        return [
            f"\npurge: {deleted} of {rows} old PROCESSED rows deleted in {seconds:.1f}s = "
            f"{deleted / max(seconds, 1e-9):.0f} rows/s ({rows - deleted} left); {output.splitlines()[-1]}",
            f"ingestion at {rate}/s offered, before the purge: {ingested(before)}",
            f"ingestion at {rate}/s offered, during the purge: {ingested(during)}",
            f"locks: longest wait seen {1000 * max(waits):.1f} ms ({sum(w > 0 for w in waits)} "
            f"of {len(waits)} samples every 0.5 s saw a statement waiting); table locks held on "
            f"transactions_transaction: {', '.join(sorted({mode for _, modes in locks for mode in modes}))}",
            f"durability: {acked} acknowledged, {lost} of them not stored",
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/webhooks_bench")
    parser.add_argument("--database-url", default=default_url, help="dropped and recreated")
    parser.add_argument("--duration", type=int, default=30, help="seconds of measured ingestion")
    parser.add_argument("--burst", type=int, default=1000, help="webhooks in the burst (0: none)")
    parser.add_argument("--skip-single", action="store_true", help="no single-webhook phase")
    parser.add_argument("--sustained", type=int, default=0, metavar="RATE", help="instead: RATE webhooks/s")
    parser.add_argument("--sustained-duration", type=int, default=180, help="seconds of sustained load")
    parser.add_argument("--qclusters", type=int, default=1, help="qcluster processes (scale-out)")
    parser.add_argument("--purge-rows", type=int, default=0, metavar="N", help="instead: purge N old rows")
    parser.add_argument("--purge-rate", type=int, default=500, help="webhooks/s offered around the purge")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a service setting")
    args = parser.parse_args()
    out_dir, start = Path(tempfile.mkdtemp(prefix="webhooks-bench-")), machine_ticks()
    time.sleep(2)
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    report = [
        f"machine: {os.cpu_count()} CPUs, {memory_gib:.0f} GiB",
        f"load average before: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}",
        f"CPU busy before start (other work on the machine): {busy_since(start)[0]:.0f}%",
        f"service settings: {' '.join(args.env) or 'production defaults'}",
        f"logs: {out_dir}",
    ]
    log(f"fresh database {args.database_url}; logs in {out_dir}")
    service = Service(args.database_url, out_dir, dict(item.split("=", 1) for item in args.env))
    try:
        service.start(args.qclusters)
        bench = Bench(args, service, out_dir)
        workers = service.web_workers()  # their pids logged for py-spy (docs/benchmarks.md)
        report += [f"gunicorn workers: {len(workers)}", f"qcluster processes: {args.qclusters}"]
        log(f"service up on 127.0.0.1:{service.port}: {report[-2]} (pids {workers}), {report[-1]}")
        if args.sustained:
            report += bench.sustained()
        if args.purge_rows:
            report += bench.purge()
        if not (args.sustained or args.purge_rows):
            if args.burst:
                report += bench.burst()
            if not args.skip_single:
                seconds = bench.deliver("single", 1)[2]
                report.append(f"single webhook: PROCESSING -> PROCESSED in {seconds:.2f}s")
            report += bench.ingestion()
    finally:
        log("stopping the service")
        service.stop()
    print("\n================ benchmark results ================", *report, "=" * 51, sep="\n")
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())
