"""/metrics under real gunicorn workers and a qcluster sharing PROMETHEUS_MULTIPROC_DIR."""

import re

import httpx
import pytest

from tests.factories import webhook_body
from tests.processes import wait_for

pytestmark = pytest.mark.e2e


def _counter(text: str, line: str) -> float:
    match = re.search(rf"^{re.escape(line)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_counters_add_up_across_gunicorn_workers_and_the_qcluster(service, tmp_path):
    shared = {"PROMETHEUS_MULTIPROC_DIR": tmp_path / "prometheus", "PROCESSING_DELAY_SECONDS": 0.2}
    service.start_web(workers=2, **shared)
    service.start_worker(**shared)
    bodies = [webhook_body() for _ in range(6)]

    with httpx.Client(timeout=10) as client:
        for body in bodies:
            assert service.post_webhook(body, client).status_code == 202
        assert service.post_webhook(bodies[0], client).status_code == 202

        def scrape() -> str:
            return client.get(service.url("/metrics")).text

        # Every scrape, whichever worker answers it, sees the sum over all processes.
        for _ in range(4):
            text = scrape()
            assert _counter(text, 'webhooks_received_total{result="new"}') == 6
            assert _counter(text, 'webhooks_received_total{result="duplicate"}') == 1
        processed = wait_for(
            lambda: _counter(scrape(), 'transactions_processing_outcomes_total{outcome="processed"}') == 6,
            timeout=30,
            what="the qcluster's outcomes in the web's /metrics",
        )
    assert processed
