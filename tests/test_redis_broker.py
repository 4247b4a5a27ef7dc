"""django-q2 on Redis (QCLUSTER_REDIS_URL), as docs/operations.md suggests for scaling out.

Against the Redis on this machine (127.0.0.1:6379): webhooks are woken and processed
through it, and the database's own queue table is never used.
"""

import pytest
import redis
from django_q.models import OrmQ

from tests.processes import wait_for
from transactions.models import Status, Transaction

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

REDIS_URL = "redis://127.0.0.1:6379/9"  # a database of its own, emptied first


def test_with_the_redis_broker_webhooks_are_processed_without_the_database_queue(service):
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis must run on 127.0.0.1:6379 for this test (.ci/run starts it): {exc}")
    service.configure(QCLUSTER_REDIS_URL=REDIS_URL, PROCESSING_DELAY_SECONDS=1)
    service.start_web()
    service.start_worker()

    ids = service.post_accepted(20)

    # Well within the first sweep (a minute): the wake-ups went through Redis.
    wait_for(
        lambda: (
            Transaction.objects.filter(transaction_id__in=ids, status=Status.PROCESSED).count() == len(ids)
        ),
        timeout=30,
        what="every webhook PROCESSED",
    )
    assert OrmQ.objects.count() == 0
    assert client.dbsize() > 0  # the cluster really talks to this Redis
