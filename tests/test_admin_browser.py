"""Staff in a real browser: Chromium drives the admin of the real service (gunicorn, DEBUG off).

Static files come from `collectstatic` served by WhiteNoise, exactly as in production.
Screenshots land in test-artifacts/screenshots/; `make screenshots` refreshes the ones the
README shows in docs/screenshots/.
"""

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from tests.factories import stored_transaction
from tests.processes import ROOT, wait_for
from transactions.models import Status, Transaction

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "test-artifacts" / "screenshots")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.e2e,
    # The admin is the same on either database; one run is enough.
    pytest.mark.postgres,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]


@pytest.fixture
def browser_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls
    # are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1680, "height": 1000})
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def _shot(page, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def _assert_styled(page, selector: str) -> None:
    # Unstyled pages (static files not served) have a transparent header and Times New Roman.
    background = page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor")
    assert background not in ("", "rgba(0, 0, 0, 0)", "transparent"), f"{selector} is unstyled"


def test_staff_filter_open_and_retry_a_failed_transaction_in_the_browser(
    service, browser_page, collected_static
):
    page = browser_page
    call_command("seed_transactions", count=400, days=3, seed=6, stdout=open(os.devnull, "w"))  # noqa: SIM115
    failed = stored_transaction(transaction_id="txn_8f2c41", amount=249.99, currency="EUR")
    Transaction.objects.filter(pk=failed.pk).update(
        status=Status.FAILED,
        attempts=5,
        last_error="PaymentAPIError: card issuer unavailable",
        delivery_count=2,
        has_conflict=True,
    )
    get_user_model().objects.create_superuser("staff", password="correct horse battery staple")
    env = {"DJANGO_STATIC_ROOT": collected_static, "PROCESSING_DELAY_SECONDS": 0.5}
    service.start_web(**env)

    # Log in.
    page.goto(service.url("/admin/transactions/transaction/"))
    page.fill("#id_username", "staff")
    page.fill("#id_password", "correct horse battery staple")
    page.click("input[type=submit]")
    page.wait_for_selector("#txn-summary")
    _assert_styled(page, "#header")
    assert page.inner_text("#txn-summary .failed .value") != "0"
    _shot(page, "admin-changelist")

    # Filter by status.
    page.click("#changelist-filter a:text-is('Failed')")
    page.wait_for_url("**status=FAILED**")
    statuses = page.locator("#result_list .field-status_badge").all_inner_texts()
    assert statuses and set(statuses) == {"Failed"}
    _assert_styled(page, "#result_list .txn-status-failed")  # transactions/admin.css
    _shot(page, "admin-filter-failed")

    # Open the transaction.
    page.click(f"#result_list a:text-is('{failed.transaction_id}')")
    page.wait_for_selector(".field-payload_pretty pre")
    assert '"transaction_id": "txn_8f2c41"' in page.inner_text(".field-payload_pretty pre")
    assert "card issuer unavailable" in page.inner_text(".field-last_error")
    assert page.locator("input[name=_save]").count() == 0
    _shot(page, "admin-detail", full_page=True)

    # Retry it with the bulk action.
    page.go_back()
    page.check(f"#result_list tr:has(a:text-is('{failed.transaction_id}')) input.action-select")
    page.select_option("select[name=action]", "retry_processing")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist .success")
    assert "1 transaction(s) sent back for processing." in page.inner_text(".messagelist")
    _shot(page, "admin-retried")
    service.start_worker(**env)
    wait_for(
        lambda: Transaction.objects.get(pk=failed.pk).status == Status.PROCESSED,
        timeout=30,
        what="the retried transaction to be processed",
    )

    # The API docs, styled from self-hosted assets.
    page.goto(service.url("/api/docs/"))
    page.wait_for_selector(".swagger-ui .info .title")
    _assert_styled(page, ".swagger-ui .opblock-post")
    _shot(page, "api-docs")
