"""`make bench-admin`: queries and best wall time of each transactions admin page on the
current database (seed it first: `make seed`). Timings on a shared machine are noisy, so
look at the query counts first; `-v` prints the queries.
"""

import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhooks_project.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402

from transactions.models import Transaction  # noqa: E402

ROUNDS = 3


def main() -> None:
    base = f"/{settings.ADMIN_URL}transactions/transaction/"
    some = Transaction.objects.order_by("-created_at").values(
        "pk", "transaction_id", "source_account", "payload"
    )[1000]
    # A rare value (one row, seeded rows carry a unique order_id) and a common one (~1/8).
    order_id = some["payload"].get("order_id", "A-none")
    pages = {
        "list, unfiltered": base,
        "list, status=FAILED": base + "?status=FAILED",
        "list, status=PROCESSED": base + "?status=PROCESSED",
        "list, stuck": base + "?status=stuck",
        "list, currency=EUR": base + "?currency=EUR",
        "list, conflicts": base + "?has_conflict__exact=1",
        "list, search by account": base + f"?q={some['source_account']}",
        "list, search by transaction id": base + f"?q={some['transaction_id']}",
        "list, search payload (1 row)": base + "?" + urlencode({"q": f"order_id={order_id}"}),
        "list, search payload (common)": base + "?" + urlencode({"q": "customer.country=DE"}),
        "list, page 200": base + "?p=200",
        "detail": base + f"{some['pk']}/change/",
    }
    user = get_user_model().objects.create_superuser(f"bench-{uuid.uuid4().hex[:8]}", password=None)
    client = Client()
    client.force_login(user)
    print(f"{Transaction._meta.db_table}: ~{Transaction.objects.count():,} rows on {connection.vendor}")
    try:
        storages = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        with override_settings(STORAGES=storages, ALLOWED_HOSTS=["testserver"]):
            for name, url in pages.items():
                best, best_sql = float("inf"), float("inf")
                for _ in range(ROUNDS):
                    with CaptureQueriesContext(connection) as queries:
                        started = time.perf_counter()
                        response = client.get(url)
                        best = min(best, time.perf_counter() - started)
                    assert response.status_code == 200, (url, response.status_code)
                    best_sql = min(best_sql, sum(float(q["time"]) for q in queries.captured_queries))
                sql_ms, total_ms = best_sql * 1000, best * 1000
                print(f"{name:32} {len(queries):3d} queries  {sql_ms:6.1f} ms SQL  {total_ms:6.1f} ms total")
                if "-v" in sys.argv:
                    for q in queries.captured_queries:
                        print(f"      {q['time']}s  {q['sql'][:160]}")
    finally:
        user.delete()


if __name__ == "__main__":
    main()
