"""The console in a real browser, one journey per role, asserting on what the person sees.

- The agency admin reads the dashboard and follows a failure figure to its deliveries.
- The marketer builds a comment trigger with a two-step flow through the forms only, sees the
  validation error for a 21-character quick-reply title beside it, previews the flow, tests a
  text, saves, and later sees the trigger's failed send.
- Support finds why @fay.films did not get the guide by searching the username, reads the
  timeline, and retries the send.

Debian's Chromium driven by Playwright (one browser for the module, a context per journey), at
1400 px, against the live server; each page visited is saved under var/screenshots/ for a
reviewer. The main lists must not scroll sideways at 1400 px, the dashboard and the timeline
must fit a phone, and no page may break the Content-Security-Policy. Database work happens in
a helper thread: Playwright's sync API runs an event loop in the test's own thread.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Membership, Role, Workspace
from tests.e2e.test_connect_browser import CHROMIUM

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
TIMEOUT_MS = 15_000
PASSWORD = "s3cret-pass!"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PERSON = "1789000000000777"


def in_thread(function, *args, **kwargs):
    """Run database work off the browser's thread (its event loop forbids the ORM there)."""

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One Chromium for the module (a fresh profile); a skip saying what is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run bin/setup (it installs Debian's chromium).")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install -e '.[dev]'"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    profile = tmp_path_factory.mktemp("chromium-profile")
    # Playwright's sync API keeps an event loop running in this thread for the whole module,
    # where Django refuses the ORM (pytest-django's own setup and flush included). Django's
    # documented switch for such environments; the test's own database work still runs in
    # a thread of its own (in_thread).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        context_browser = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=LAUNCH_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context_browser
        finally:
            context_browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


class Journey:
    """One person's tab: signs in, opens pages, saves a screenshot of each, watches the CSP."""

    def __init__(self, context, live_server, name: str) -> None:
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.base = live_server.url
        self.name = name
        self.shots = 0
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda message: (
                self.problems.append(message.text)
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )

    def shot(self, what: str) -> None:
        self.shots += 1
        path = SCREENSHOTS / f"{self.name}-{self.shots:02d}-{what}.png"
        self.page.screenshot(path=str(path), full_page=True)

    def sign_in(self, username: str) -> None:
        page = self.page
        page.goto(f"{self.base}/accounts/login/")
        page.fill("input[name=login]", username)
        page.fill("input[name=password]", PASSWORD)
        self.shot("sign-in")
        page.click("form[method=post] button[type=submit]")
        page.wait_for_url(f"{self.base}/admin/")

    def no_sideways_scroll(self) -> None:
        width = self.page.evaluate("document.documentElement.scrollWidth")
        viewport = self.page.evaluate("window.innerWidth")
        assert width <= viewport, f"{self.page.url} scrolls sideways: {width} > {viewport}"
        # A list's table must fit its column too (not spill out of it, or scroll inside it).
        table = self.page.evaluate(
            "(() => { const t = document.querySelector('#result_list');"
            " return t ? [t.scrollWidth, t.parentElement.clientWidth] : [0, 0]; })()"
        )
        assert table[0] <= table[1], f"{self.page.url}: the list is {table[0]} px in {table[1]}"

    def at_phone_width(self, what: str) -> None:
        self.page.set_viewport_size({"width": 390, "height": 844})
        try:
            self.no_sideways_scroll()
            self.shot(f"{what}-phone")
        finally:
            self.page.set_viewport_size({"width": 1400, "height": 900})

    def close(self) -> None:
        self.page.close()
        assert self.problems == [], self.problems


def journey(browser, live_server, name):
    return Journey(browser, live_server, name)


# --- the people and what happened -------------------------------------------------------------
def _people_and_history():
    from django.contrib.auth import get_user_model

    from config.console.rollups import figures_recount_all
    from messaging.models import DeliveryKind, DeliveryStatus
    from tests.factories import (
        ContactFactory,
        DeliveryFactory,
        InstagramAccountFactory,
        TriggerFactory,
    )

    users = get_user_model()
    acme = Workspace.objects.create(name="Acme Studio")
    account = InstagramAccountFactory(workspace=acme, username="acme.studio")
    users.objects.create_superuser("agency", "agency@example.com", PASSWORD)
    for username, role in (("mia", Role.MARKETER), ("sam", Role.SUPPORT)):
        user = users.objects.create_user(username, f"{username}@example.com", PASSWORD)
        user.is_staff = True
        user.save()
        Membership.objects.create(user=user, workspace=acme, role=role)
    guide = TriggerFactory(account=account, name="Guide giveaway", keywords=["guide"])
    now = timezone.now()
    reasons = ["window_expired", "conversation_closed", "meta_error", "rate_limited"]
    for n in range(12):
        contact = ContactFactory(account=account)
        status = DeliveryStatus.SENT if n < 8 else DeliveryStatus.FAILED
        DeliveryFactory(
            account=account,
            trigger=guide,
            contact=contact,
            kind=DeliveryKind.PRIVATE_REPLY,
            status=status,
            reason="" if status == DeliveryStatus.SENT else reasons[n - 8],
            finished_at=now,
            sent_at=now if status == DeliveryStatus.SENT else None,
        )
    figures_recount_all()
    return account


def _fay_did_not_get_the_guide(account):
    """@fay.films commented "guide please"; Meta refused the private reply (a parameter)."""
    from messaging.models import DeliveryStatus
    from meta.samples import comment_body
    from triggers.models import Trigger
    from webhooks import services
    from webhooks.interactions import interactions_read

    Trigger.objects.filter(account=account).update(public_replies=[])
    body = comment_body(
        account_id=account.ig_user_id,
        text="guide please",
        from_id=PERSON,
        from_username="fay.films",
        comment_id="17900000000000777",
    )
    event = services.webhook_event_receive(raw_body=json.dumps(body).encode()).event
    services.webhook_event_process(event_id=event.pk)
    delivery = account.deliveries.get(contact__igsid=PERSON)
    type(delivery).objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED,
        reason="meta_error",
        meta_code=100,
        meta_message="(#100) Invalid parameter",
        meta_trace_id="TRACE-fay-1",
        finished_at=timezone.now(),
        attempts=1,
        dispatched_at=None,
    )
    delivery.attempt_log.create(number=1, outcome="failed", meta_code=100, duration_ms=84.2)
    interactions_read()
    return delivery.pk


def _a_send_of_the_new_trigger_failed():
    from messaging.models import DeliveryKind, DeliveryStatus
    from tests.factories import ContactFactory, DeliveryFactory
    from triggers.models import Trigger

    trigger = Trigger.objects.get(name="Free PDF")
    DeliveryFactory(
        account=trigger.account,
        trigger=trigger,
        contact=ContactFactory(account=trigger.account, username="lee.reads"),
        kind=DeliveryKind.PRIVATE_REPLY,
        status=DeliveryStatus.SKIPPED,
        reason="content_rejected",
        detail="The message contains 'free', which workspace Acme Studio blocks.",
        finished_at=timezone.now(),
    )
    return trigger


# --- the journeys --------------------------------------------------------------------------
def test_the_agency_admin_follows_a_failure_figure_to_its_deliveries(browser, live_server):
    account = in_thread(_people_and_history)
    workspace_id = account.workspace_id
    person = journey(browser, live_server, "admin")
    page = person.page
    person.sign_in("agency")
    assert page.inner_text("h1") == "Dashboard"
    assert page.inner_text(f"#figure-sent-today-{workspace_id}") == "8"
    assert page.inner_text(f"#figure-failed-today-{workspace_id}") == "4"
    assert page.locator(f"#workspace-{workspace_id} svg.chart rect").count() >= 4
    person.no_sideways_scroll()
    person.shot("dashboard")
    person.at_phone_width("dashboard")

    page.click(f"#figure-failed-today-{workspace_id}")
    page.wait_for_url("**/admin/messaging/delivery/?**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 4
    assert all("failed" in text for text in rows.all_inner_texts())
    person.no_sideways_scroll()
    person.shot("failed-deliveries")
    for path in ("webhooks/webhookevent", "accounts/contact", "triggers/trigger"):
        page.goto(f"{live_server.url}/admin/{path}/")
        person.no_sideways_scroll()
    page.goto(f"{live_server.url}/admin/accounts/instagramaccount/")
    person.no_sideways_scroll()
    person.shot("accounts")
    person.close()


def test_the_marketer_builds_a_two_step_flow_through_forms_only(browser, live_server):
    in_thread(_people_and_history)
    person = journey(browser, live_server, "marketer")
    page = person.page
    person.sign_in("mia")
    person.shot("dashboard")
    page.goto(f"{live_server.url}/admin/triggers/trigger/add/")
    page.select_option("#id_account", label="@acme.studio")
    page.fill("#id_name", "Free PDF")
    page.fill("#id_keywords", "freebie, free pdf")
    page.fill("#id_public_replies", "Sent! Check your DMs")
    page.fill("#s0m0-text", "Want the PDF? Tap below.")
    assert "24 characters · 24 of 1000 bytes" in page.inner_text('[data-counter-for="s0m0-text"]')
    page.click("#add-step")
    page.wait_for_selector("#s1-name")
    page.fill("#s1-name", "link")
    page.fill("#s1m0-text", "Here it is: https://example.com/free.pdf")
    page.click("#add-choice-0-0")
    page.wait_for_selector("#s0m0c0-title")
    page.fill("#s0m0c0-title", "Send me the link now!")  # 21 characters
    assert "21 of 20 characters" in page.inner_text('[data-counter-for="s0m0c0-title"]')
    page.select_option("#s0m0c0-next", "link")
    person.shot("editor-filled")
    page.click("#editor-save")
    error = page.locator("#s0m0c0 .errorlist")
    assert "21 characters; Meta shows at most 20." in error.inner_text()
    person.shot("editor-title-refused")

    page.fill("#s0m0c0-title", "Send me the link")
    page.click("#update-preview")
    preview = page.locator("#preview")
    assert "Want the PDF? Tap below." in preview.inner_text()
    assert "Send me the link" in preview.inner_text()
    assert "Here it is" in preview.inner_text()
    page.fill("#test-text", "is the free pdf still there?")
    page.click("#run-test")
    assert page.inner_text("#test-winner") == "Free PDF"
    assert "contains match" in page.inner_text("#test-result")
    person.shot("editor-preview-and-test")
    page.click("#editor-save")
    assert "The trigger “Free PDF” was added." in page.inner_text(".messagelist")
    person.shot("editor-saved")

    trigger = in_thread(_a_send_of_the_new_trigger_failed)
    page.goto(f"{live_server.url}/admin/triggers/trigger/{trigger.pk}/change/")
    problems = page.inner_text("#trigger-problems")
    assert "lee.reads" in problems and "skipped, content rejected" in problems
    person.shot("trigger-with-failed-send")
    page.click("#trigger-failures")
    assert "content rejected" in page.inner_text("#result_list")
    person.shot("trigger-failures")
    page.goto(f"{live_server.url}/admin/accounts/contact/")
    assert "not open to you" in page.inner_text("h1")
    assert page.locator("#refused-dashboard").count() == 1
    person.shot("refused")
    person.close()


def test_support_finds_why_a_person_got_nothing_and_retries(browser, live_server):
    account = in_thread(_people_and_history)
    delivery_id = in_thread(_fay_did_not_get_the_guide, account)
    person = journey(browser, live_server, "support")
    page = person.page
    person.sign_in("sam")
    page.fill("#dashboard-search", "@fay.films")
    page.click(".console-search button")
    page.wait_for_url("**/admin/messaging/delivery/?q=*")
    assert page.locator("#result_list tbody tr").count() == 1
    person.shot("search")
    page.click("#result_list tbody tr a")  # the send
    page.click("#delivery-timeline")
    page.wait_for_url("**/admin/accounts/contact/*/change/")
    timeline = page.inner_text("#timeline")
    assert "guide please" in timeline
    assert "matched Guide giveaway" in timeline
    assert "failed: meta error" in timeline
    assert "Meta's code 100" in timeline and "TRACE-fay-1" in timeline
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", timeline)  # to the second
    person.shot("timeline")
    person.at_phone_width("timeline")

    page.click(f"#retry-{delivery_id}")
    assert "Queue 1 send(s) again" in page.inner_text("#confirm-will")
    person.shot("retry-confirm")
    page.click("#confirm-yes")
    assert "1 send(s) queued again" in page.inner_text(".messagelist")
    person.shot("retried")
    page.goto(f"{live_server.url}/admin/messaging/delivery/{delivery_id}/change/")
    summary = page.inner_text("#delivery-summary")
    # Queued again (or already sent, when a worker of another test module is running).
    assert "Queued again by sam" in summary or summary.startswith("Sent")
    person.shot("delivery-after-retry")
    person.close()
