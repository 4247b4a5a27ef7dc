"""The caps on calls to the payment API hold for the whole cluster: two qcluster
processes (as on two hosts) against one database and one fake provider, whose own
ledger says how many calls it had in flight at once and when each started.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.factories import webhook_body
from tests.processes import FAST_PROCESSING, wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

# A call abandoned at its timeout stops counting against the cap while the provider may
# still be working on it (docs/operations.md); a generous timeout keeps a stall of this
# busy test machine from turning into one.
PROCESSING = {**FAST_PROCESSING, "PROCESSING_CALL_TIMEOUT_SECONDS": 10, "PROCESSING_LEASE_SECONDS": 15}


def _run(service, provider, count: int) -> dict:
    service.start_web()
    service.start_worker(QCLUSTER_WORKERS=2)
    service.start_worker(QCLUSTER_WORKERS=2)
    # Posted in parallel, so that without the caps the calls would all start at once.
    bodies = [webhook_body() for _ in range(count)]
    with ThreadPoolExecutor(8) as pool:
        assert {r.status_code for r in pool.map(service.post_webhook, bodies)} == {202}
    ids = [body["transaction_id"] for body in bodies]
    wait_for(
        lambda: Transaction.objects.filter(transaction_id__in=ids, status=Status.PROCESSED).count() == count,
        timeout=120,
        what="every transaction PROCESSED",
    )
    ledger = provider.ledger()
    settled = {record["transaction_id"] for record in ledger["keys"].values() if record["settled"] == 1}
    assert settled == set(ids)
    return ledger


def test_two_clusters_together_never_exceed_the_concurrency_cap(service):
    cap = 3
    service.configure(**PROCESSING, PAYMENT_API_MAX_CONCURRENCY=cap)
    provider = service.start_payment_api()
    provider.control(delay=1)

    ledger = _run(service, provider, 15)

    assert ledger["max_in_flight"] <= cap, ledger["calls"]


def test_two_clusters_together_keep_within_the_rate_cap(service):
    rate, count = 4, 40
    service.configure(**PROCESSING, PAYMENT_API_MAX_RATE=rate)
    provider = service.start_payment_api()

    ledger = _run(service, provider, count)

    starts = sorted(call["start"] for call in ledger["calls"])
    # A token bucket allows a second's worth at once, then `rate` a second: in any
    # window of W seconds at most rate * (W + 1) calls, plus one for clock rounding.
    # Calls start a moment after their claim, and on this busy machine those moments
    # vary: two spare calls of tolerance.
    window = 3.0
    busiest = max(sum(1 for t in starts if s <= t < s + window) for s in starts)
    assert busiest <= rate * (window + 1) + 2, busiest
    assert starts[-1] - starts[0] >= (count - rate) / rate - 1
