"""Every acknowledged transaction is settled exactly once at the payment provider,
through a SIGKILL of the whole qcluster mid-call and a provider outage.

Proved black-box from the fake provider's own ledger (a real HTTP server): the
service's logs and tables are not asked what happened at the provider.
"""

import pytest

from tests.processes import FAST_PROCESSING, SWEEP_BOUND_SECONDS, wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]


def _in_flight(provider) -> int:
    return sum(1 for call in provider.ledger()["calls"] if call["end"] is None)


def _answered(provider, status: int) -> int:
    return sum(1 for call in provider.ledger()["calls"] if call["status"] == status)


def test_every_acknowledged_transaction_is_settled_exactly_once_through_a_sigkill_and_an_outage(service):
    service.configure(**FAST_PROCESSING, PROCESSING_RETRY_BACKOFF_SECONDS=0.5, PROCESSING_MAX_ATTEMPTS=30)
    provider = service.start_payment_api()
    provider.control(delay=1.5)
    service.start_web()
    cluster = service.start_worker()

    acknowledged = service.post_accepted(20)
    wait_for(lambda: _in_flight(provider) >= 3, timeout=30, what="calls in flight at the provider")
    service.kill_all(cluster)  # mid-call: the provider finishes what it was sent

    # The provider goes down (503 to everything) while the workers come back and
    # more webhooks arrive.
    provider.control(fail_status=503)
    service.start_worker()
    acknowledged += service.post_accepted(10)
    wait_for(lambda: _answered(provider, 503) >= 5, timeout=30, what="calls refused during the outage")
    provider.control(fail_status=None)

    wait_for(
        lambda: (
            Transaction.objects.filter(transaction_id__in=acknowledged, status=Status.PROCESSED).count()
            == len(acknowledged)
        ),
        timeout=SWEEP_BOUND_SECONDS + 60,
        what="every acknowledged transaction PROCESSED",
    )
    keys = provider.ledger()["keys"].values()
    settled = [record["transaction_id"] for record in keys if record["settled"]]
    assert sorted(settled) == sorted(acknowledged)  # each once, none missing, nothing else
    assert all(record["settled"] <= 1 for record in keys)
    # The killed worker's calls were sent again after their leases, and recognised.
    assert sum(record["duplicates"] for record in keys) >= 1
