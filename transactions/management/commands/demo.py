"""Send webhooks to a running instance the way a payment provider would, and watch them.

    make run                      # in one terminal
    python manage.py demo         # in another (same .env / DATABASE_URL)

Three scenes, each the service's promise made visible:
  1. one webhook: 202 at once, PROCESSING, then PROCESSED after the external call;
  2. one webhook delivered several times at once: every delivery 202, one row, one processing;
  3. a burst of webhooks (some redelivered) from many connections: the endpoint keeps
     answering in milliseconds while the workers catch up.

Webhooks go over HTTP to --url (loopback by default). What happens to them is read from
the database the instance uses, so run this with the same settings. With --secret the
bodies are signed per the Standard Webhooks spec (transactions/signatures.py).
Every loop is bounded by a count and by --timeout.
"""

import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count
from tqdm import tqdm

from transactions import signatures
from transactions.examples import EXAMPLE_WEBHOOK
from transactions.models import Status, Transaction

CURRENCIES = ["INR", "USD", "EUR", "GBP"]


class Sender:
    """Posts webhook bodies, signed when a secret is given; records response times."""

    def __init__(self, url: str, secret: str | None, concurrency: int) -> None:
        self.url = url.rstrip("/") + "/v1/webhooks/transactions"
        self.client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=concurrency))
        if secret and not signatures.is_valid_secret(secret):
            raise CommandError("--secret must look like whsec_<base64 of 24+ bytes>.")
        self.secret = secret
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()

    def send(self, body: dict[str, Any]) -> httpx.Response:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers |= signatures.signed_headers(
                secret=self.secret, msg_id=f"msg_{uuid.uuid4().hex}", body=data
            )
        started = time.perf_counter()
        response = self.client.post(self.url, content=data, headers=headers)
        elapsed = time.perf_counter() - started
        with self._lock:
            self.latencies.append(elapsed)
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        return response

    def latency_summary(self) -> str:
        if not self.latencies:
            return "no requests"
        ms = sorted(x * 1000 for x in self.latencies)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return f"median {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"


def _body(transaction_id: str, n: int) -> dict[str, Any]:
    """The sample webhook, with amounts and currencies varied like many payments."""
    return {
        **EXAMPLE_WEBHOOK,
        "transaction_id": transaction_id,
        "amount": round(10 + (n * 37.5) % 5000, 2),
        "currency": CURRENCIES[n % len(CURRENCIES)],
    }


def _counts(prefix: str) -> dict[str, int]:
    rows = (
        Transaction.objects.filter(transaction_id__startswith=prefix)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {status: 0 for status in Status.values} | dict(rows)


class Command(BaseCommand):
    help = "Send webhooks to a running instance like a provider would, and watch them get processed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running instance")
        parser.add_argument("--count", type=int, default=300, help="webhooks in the burst (scene 3)")
        parser.add_argument("--duplicates", type=int, default=5, help="deliveries of one webhook (scene 2)")
        parser.add_argument(
            "--redeliver",
            type=float,
            default=0.1,
            help="share of the burst sent twice, like a retrying sender",
        )
        parser.add_argument("--concurrency", type=int, default=20, help="connections sending at once")
        parser.add_argument(
            "--secret", default=None, help="sign with this Standard Webhooks secret (whsec_...)"
        )
        parser.add_argument(
            "--timeout", type=float, default=180, help="give up waiting after this many seconds"
        )
        parser.add_argument("--scene", choices=["all", "single", "duplicates", "burst"], default="all")

    def handle(self, *args: Any, **options: Any) -> None:
        # The progress bars redraw one line in place: no added newlines, no error colour.
        self.stderr.ending = ""
        self.stderr.style_func = None
        self.timeout = options["timeout"]
        self.run_id = f"demo_{uuid.uuid4().hex[:6]}"
        sender = Sender(options["url"], options["secret"], options["concurrency"])
        try:
            sender.client.get(options["url"].rstrip("/") + "/", timeout=5)
        except httpx.HTTPError as exc:
            raise CommandError(
                f"Nothing answers at {options['url']} ({exc}); start it with `make run`."
            ) from exc
        scene = options["scene"]
        ok = True
        if scene in ("all", "single"):
            ok &= self.single(sender)
        if scene in ("all", "duplicates"):
            ok &= self.duplicates(sender, options["duplicates"])
        if scene in ("all", "burst"):
            ok &= self.burst(sender, options["count"], options["redeliver"], options["concurrency"])
        sender.client.close()
        if not ok:
            raise CommandError("Not everything was processed in time; see above.")

    # --- the scenes ---

    def single(self, sender: Sender) -> bool:
        self._title("1. One webhook: 202 at once, PROCESSING, then PROCESSED")
        tid = f"{self.run_id}_single"
        response = sender.send(_body(tid, 1))
        self.stdout.write(
            f"POST -> {response.status_code} in {sender.latencies[-1] * 1000:.1f} ms: {response.text}"
        )
        return self._watch(f"{tid}", expected=1, label="status")

    def duplicates(self, sender: Sender, deliveries: int) -> bool:
        self._title(f"2. The same webhook delivered {deliveries} times at once: stored once, processed once")
        tid = f"{self.run_id}_dup"
        body = _body(tid, 2)
        with ThreadPoolExecutor(max_workers=deliveries) as pool:
            codes = sorted(r.status_code for r in pool.map(lambda _: sender.send(body), range(deliveries)))
        self.stdout.write(f"{deliveries} deliveries answered {codes}")
        done = self._watch(tid, expected=1, label="status")
        row = Transaction.objects.get(transaction_id=tid)
        rows = Transaction.objects.filter(transaction_id=tid).count()
        self.stdout.write(
            f"rows stored: {rows}, deliveries counted: {row.delivery_count}, "
            f"processing attempts: {row.attempts}"
        )
        return done

    def burst(self, sender: Sender, count: int, redeliver: float, concurrency: int) -> bool:
        self._title(f"3. A burst of {count} webhooks from {concurrency} connections, some sent twice")
        prefix = f"{self.run_id}_burst_"
        bodies = [_body(f"{prefix}{n:06d}", n) for n in range(count)]
        every = max(1, round(1 / redeliver)) if redeliver > 0 else 0
        deliveries = bodies + ([bodies[n] for n in range(0, count, every)] if every else [])
        sender.latencies.clear()
        sender.statuses.clear()
        with (
            tqdm(total=len(deliveries), desc="sent", unit="webhook", file=self.stderr) as bar,
            ThreadPoolExecutor(max_workers=concurrency) as pool,
        ):
            last = 0.0
            # Threads only send; the database is read here, on this thread.
            for future in as_completed([pool.submit(sender.send, body) for body in deliveries]):
                future.result()
                bar.update(1)
                if time.monotonic() - last > 0.5:
                    last = time.monotonic()
                    bar.set_postfix_str(self._live(_counts(prefix)))
        self.stdout.write(f"answers: {sender.statuses}; response times: {sender.latency_summary()}")
        return self._watch(prefix, expected=count, label="processed")

    # --- watching ---

    @staticmethod
    def _live(counts: dict[str, int]) -> str:
        return (
            f"PROCESSING {counts[Status.PROCESSING]}  PROCESSED {counts[Status.PROCESSED]}"
            f"  FAILED {counts[Status.FAILED]}"
        )

    def _watch(self, prefix: str, expected: int, label: str) -> bool:
        """A bar of PROCESSED out of `expected`, with the live counts, until done or timed out."""
        deadline = time.monotonic() + self.timeout
        started = time.monotonic()
        with tqdm(total=expected, desc=label, unit="txn", file=self.stderr) as bar:
            while True:
                counts = _counts(prefix)
                finished = counts[Status.PROCESSED] + counts[Status.FAILED]
                bar.update(counts[Status.PROCESSED] - bar.n)
                bar.set_postfix_str(self._live(counts))
                if finished >= expected or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        elapsed = time.monotonic() - started
        done = counts[Status.PROCESSED] == expected
        verdict = "all PROCESSED" if done else "NOT all processed"
        self.stdout.write(f"{verdict} after {elapsed:.1f} s: {json.dumps(counts)}")
        return done

    def _title(self, text: str) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(text))
