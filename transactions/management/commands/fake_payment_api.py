"""A fake payment provider: a real HTTP server for the tests and the demo.

    python manage.py fake_payment_api --port 8100
    PAYMENT_API_URL=http://127.0.0.1:8100/payments make run

POST /payments with an `Idempotency-Key` header settles a payment once per key, as a
real provider does: a repeat of a settled key answers the first result again and is
counted as a duplicate; one that arrives while the same key is still being processed
gets `409`. Its ledger (GET /ledger) is the provider's own record, from which the tests
prove that every acknowledged transaction was settled exactly once:

    {"max_in_flight": 3, "keys": {"<key>": {"transaction_id": ..., "settled": 1,
     "requests": 2, "duplicates": 1, "first_at": ..., "last_at": ..., "max_in_flight": 1}},
     "calls": [{"key": ..., "start": ..., "end": ..., "status": 200}, ...]}

POST /control with JSON changes how it answers from then on (fields left out keep
their value): {"delay": 2} answers after 2 s; {"fail_status": 503} fails every payment
with 503 (without settling it), {"fail_status": 429, "retry_after": "3"} rate-limits,
{"fail_status": 402, "error_body": "card declined"} refuses for good;
{"fail_status": null} settles again.

Built on asyncio and h11 (which httpx already brings), one process, all in memory.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any

import h11
from django.core.management.base import BaseCommand, CommandParser

MAX_BODY_BYTES = 64 * 1024


@dataclass
class KeyRecord:
    transaction_id: str | None = None
    amount: str | None = None
    currency: str | None = None
    settled: int = 0
    requests: int = 0
    duplicates: int = 0
    first_at: float | None = None
    last_at: float | None = None
    max_in_flight: int = 0
    in_flight: int = 0
    result: dict[str, Any] | None = field(default=None, repr=False)


@dataclass
class Mode:
    delay: float = 0.0
    fail_status: int | None = None
    retry_after: str | None = None
    error_body: str = ""


Answer = tuple[int, dict[str, str], Any]


class FakeProvider:
    def __init__(self) -> None:
        self.keys: dict[str, KeyRecord] = {}
        self.calls: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.settlements = 0
        self.mode = Mode()

    async def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if method == "GET" and path == "/ledger":
            return 200, {}, self.ledger()
        if method == "POST" and path == "/control":
            changes = json.loads(body or b"{}")
            self.mode = Mode(**{**asdict(self.mode), **changes})
            return 200, {}, asdict(self.mode)
        if method == "POST" and path == "/payments":
            return await self.pay(headers.get("idempotency-key", ""), body)
        return 404, {}, {"error": "not found"}

    async def pay(self, key: str, body: bytes) -> Answer:
        if not key:
            return 400, {}, {"error": "Idempotency-Key header required"}
        try:
            payment = json.loads(body)
        except ValueError:
            return 400, {}, {"error": "body must be JSON"}
        now = time.time()
        record = self.keys.setdefault(
            key,
            KeyRecord(
                transaction_id=payment.get("transaction_id"),
                amount=payment.get("amount"),
                currency=payment.get("currency"),
                first_at=now,
            ),
        )
        record.requests += 1
        record.last_at = now
        # Every request is a call in the ledger, duplicates included: the caps count them all.
        call = {"key": key, "start": now, "end": None, "status": None}
        self.calls.append(call)
        self.in_flight += 1
        record.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        record.max_in_flight = max(record.max_in_flight, record.in_flight)
        try:
            answer = await self._answer(record, payment)
        finally:
            self.in_flight -= 1
            record.in_flight -= 1
            call["end"] = time.time()
        call["status"] = answer[0]
        return answer

    async def _answer(self, record: KeyRecord, payment: dict[str, Any]) -> Answer:
        if record.result is not None:
            record.duplicates += 1
            return 200, {"Idempotent-Replayed": "true"}, record.result
        if record.in_flight > 1:
            return 409, {}, {"error": "a request with this Idempotency-Key is in progress"}
        mode = self.mode
        if mode.delay:
            # Settled even if the caller gives up meanwhile, as a real provider would.
            await asyncio.sleep(mode.delay)
        if mode.fail_status is not None:
            headers = {"Retry-After": mode.retry_after} if mode.retry_after else {}
            return mode.fail_status, headers, {"error": mode.error_body or "failed"}
        record.settled += 1
        record.result = {
            "id": f"pay_{sum(r.settled for r in self.keys.values())}",
            "status": "settled",
            **payment,
        }
        return 200, {}, record.result

    def ledger(self) -> dict[str, Any]:
        keys = {}
        for key, record in self.keys.items():
            keys[key] = {k: v for k, v in asdict(record).items() if k not in ("result", "in_flight")}
        return {"max_in_flight": self.max_in_flight, "keys": keys, "calls": self.calls}

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await _next_event(conn, reader)
                if not isinstance(event, h11.Request):
                    break  # the client closed the connection
                body = b""
                while not isinstance(part := await _next_event(conn, reader), h11.EndOfMessage):
                    if isinstance(part, h11.Data):
                        body += part.data
                    if len(body) > MAX_BODY_BYTES:
                        raise h11.RemoteProtocolError("body too large")
                headers = {name.decode().lower(): value.decode() for name, value in event.headers}
                path = event.target.decode().split("?", 1)[0]
                status, extra, payload = await self.handle(event.method.decode(), path, headers, body)
                content = json.dumps(payload).encode()
                response_headers = [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(content))),
                    *extra.items(),
                ]
                writer.write(
                    conn.send(
                        h11.Response(
                            status_code=status, headers=response_headers, reason=HTTPStatus(status).phrase
                        )
                    )
                )
                writer.write(conn.send(h11.Data(data=content)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    while (event := conn.next_event()) is h11.NEED_DATA:
        conn.receive_data(await reader.read(65536))
    return event


class Command(BaseCommand):
    help = "Run a fake payment provider (idempotent settlements, a ledger, injectable faults)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        asyncio.run(self.serve(host, port))

    async def serve(self, host: str, port: int) -> None:
        provider = FakeProvider()
        server = await asyncio.start_server(provider.serve_connection, host, port, backlog=1024)
        self.stdout.write(f"fake payment API listening on http://{host}:{port}/payments", ending="\n")
        self.stdout.flush()
        async with server:
            await server.serve_forever()
