"""Signed webhooks to a running service, watched until processed if asked: docs/operations.md."""

import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q, Sum
from tqdm import tqdm

from transactions import signatures
from transactions.examples import EXAMPLE_WEBHOOK
from transactions.models import Status, Transaction

CURRENCIES = ["INR", "USD", "EUR", "GBP"]


class Command(BaseCommand):
    help = "Send webhooks, signed the Standard Webhooks way, to a running service, and watch them if asked."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/v1/webhooks/transactions")
        parser.add_argument("--secret", help="whsec_... to sign with (default: the first of WEBHOOK_SECRETS)")
        parser.add_argument("--data", help="the JSON body (default: --count samples, each with a fresh id)")
        parser.add_argument("--new-secret", action="store_true", help="print a fresh secret and exit")
        parser.add_argument("--count", type=int, default=1, help="webhooks to send, each with its own id")
        parser.add_argument("--duplicates", type=int, default=1, help="deliveries of each webhook, at once")
        parser.add_argument("--concurrency", type=int, default=20, help="connections sending at once")
        parser.add_argument("--watch", action="store_true", help="then follow them until processed")
        parser.add_argument("--timeout", type=float, default=180, help="stop watching after this long (s)")

    def handle(self, *args: Any, url: str, **options: Any) -> None:
        if options["new_secret"]:
            self.stdout.write(signatures.generate_secret())
            return
        secret = options["secret"] or next(iter(settings.WEBHOOK_SECRETS), None)
        if secret is not None and not signatures.is_valid_secret(secret):
            raise CommandError("--secret must look like whsec_<base64 of 24+ bytes>.")
        if secret is None:
            self.stderr.write("No secret given and WEBHOOK_SECRETS is unset: sending unsigned.")
        try:
            bodies = [json.loads(options["data"])] if options["data"] else None
        except ValueError as exc:
            raise CommandError(f"--data is not JSON: {exc}") from None
        run = f"txn_{uuid.uuid4().hex[:8]}"
        bodies = bodies or [
            {
                **EXAMPLE_WEBHOOK,
                "transaction_id": f"{run}_{n:06d}",
                "amount": round(10 + (n * 37.5) % 5000, 2),
                "currency": CURRENCIES[n % len(CURRENCIES)],
            }
            for n in range(options["count"])
        ]
        deliveries = [json.dumps(body).encode() for body in bodies for _ in range(options["duplicates"])]
        self.stdout.write(f"POST {len(deliveries)} deliveries of {len(bodies)} webhooks to {url}")
        client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=options["concurrency"]))
        with client, ThreadPoolExecutor(options["concurrency"]) as pool:
            try:
                sent = pool.map(lambda body: self._post(client, url, body, secret), deliveries)
                answers = list(tqdm(sent, total=len(deliveries), unit="webhook", disable=None))
            except httpx.HTTPError as exc:
                raise CommandError(f"could not reach {url} ({exc}); is the service running?") from None
        for status in sorted({status for status, _, _ in answers}):
            texts = [text for code, text, _ in answers if code == status]
            self.stdout.write(f"{status} x{len(texts)}: {texts[0]}")
        ms = sorted(seconds * 1000 for _, _, seconds in answers)
        p99 = ms[int(len(ms) * 0.99)]
        self.stdout.write(
            f"response times (ms): median {statistics.median(ms):.1f}, p99 {p99:.1f}, max {ms[-1]:.1f}"
        )
        if refused := sorted({status for status, _, _ in answers if not 200 <= status < 300}):
            raise CommandError(f"the service answered {refused}")
        if options["watch"] and not self._watch(bodies, options["timeout"]):
            raise CommandError("Not everything was processed in time; see above.")

    @staticmethod
    def _post(client: httpx.Client, url: str, body: bytes, secret: str | None) -> tuple[int, str, float]:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers |= signatures.signed_headers(secret=secret, msg_id=f"msg_{uuid.uuid4().hex}", body=body)
        started = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        return response.status_code, response.text, time.perf_counter() - started

    def _watch(self, bodies: list[dict[str, Any]], timeout: float) -> bool:
        ids = [body["transaction_id"] for body in bodies]
        # Rows per status, and the deliveries and attempts they took: stored once, processed once.
        totals = {status: Count("pk", filter=Q(status=status)) for status in Status.values}
        totals |= {"deliveries": Sum("delivery_count"), "attempts": Sum("attempts")}
        started = time.monotonic()
        with tqdm(total=len(ids), desc="processed", unit="txn", disable=None) as bar:  # in a terminal
            while True:
                counts = Transaction.objects.filter(transaction_id__in=ids).aggregate(**totals)
                bar.update(counts[Status.PROCESSED] - bar.n)
                bar.set_postfix(counts)
                finished = counts[Status.PROCESSED] + counts[Status.FAILED]
                if finished == len(ids) or time.monotonic() > started + timeout:
                    break
                time.sleep(0.5)
        done = counts[Status.PROCESSED] == len(ids)
        verdict = "all PROCESSED" if done else "NOT all processed"
        self.stdout.write(f"{verdict} after {time.monotonic() - started:.1f} s: {json.dumps(counts)}")
        return done
