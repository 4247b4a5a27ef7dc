"""Workers racing for due transactions: each is claimed by exactly one worker, and no
worker waits on the rows another is in the middle of claiming."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections, transaction

from tests.factories import stored_transaction
from transactions import services
from transactions.models import Transaction

pytestmark = pytest.mark.postgres

CLAIMERS = 8
DUE = 40
# A bound on a hang, not a speed target: how long the paused claimer waits for the other.
NOT_A_HANG = 20


def _in_own_connection(fn: Any) -> Any:
    # Each thread has its own database connection, as each worker process would.
    def run(*args: Any) -> Any:
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return run


def test_racing_claimers_share_no_transaction_and_leave_none_unclaimed(transactional_db):
    due = {stored_transaction().pk for _ in range(DUE)}
    start = threading.Barrier(CLAIMERS, timeout=NOT_A_HANG)

    @_in_own_connection
    def claim_until_none_left(_: int) -> list[uuid.UUID]:
        start.wait()
        mine: list[uuid.UUID] = []
        while claims := services.claim_due_transactions(limit=3):
            mine.extend(claim.pk for claim in claims)
        return mine

    with ThreadPoolExecutor(CLAIMERS) as pool:
        per_claimer = list(pool.map(claim_until_none_left, range(CLAIMERS)))

    claimed = [pk for pks in per_claimer for pk in pks]
    assert sorted(claimed) == sorted(due)  # every one, and none twice
    rows = Transaction.objects.filter(pk__in=due)
    assert {row.attempts for row in rows} == {1}
    assert not Transaction.objects.due().exists()


def test_a_claimer_takes_the_other_due_transactions_while_another_claim_is_still_open(transactional_db):
    due = [stored_transaction().pk for _ in range(10)]
    held: list[uuid.UUID] = []
    holding = threading.Event()
    other_returned = threading.Event()
    returned_while_held: list[bool] = []

    @_in_own_connection
    def claim_and_stay_in_the_transaction() -> None:
        # A worker paused in the middle of its claim (descheduled, a slow network):
        # its row locks are held until its transaction ends.
        with transaction.atomic():
            held.extend(claim.pk for claim in services.claim_due_transactions(limit=4))
            holding.set()
            other_returned.wait(timeout=NOT_A_HANG)
            returned_while_held.append(other_returned.is_set())

    paused = threading.Thread(target=claim_and_stay_in_the_transaction)
    paused.start()
    try:
        assert holding.wait(timeout=NOT_A_HANG)
        others = [claim.pk for claim in services.claim_due_transactions(limit=len(due))]
        other_returned.set()
    finally:
        paused.join()

    assert returned_while_held == [True]  # it did not wait for the paused claimer
    assert len(held) == 4
    assert sorted(others) == sorted(set(due) - set(held))
    assert {row.attempts for row in Transaction.objects.filter(pk__in=due)} == {1}
