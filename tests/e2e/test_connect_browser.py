"""Both connect journeys in a real browser: Debian's Chromium driven by Playwright, against the
live server and the stand-in playing Meta's consent pages.

An agency admin signs in through allauth's page, opens the console, clicks "Connect an Instagram
account", approves on the stand-in's Facebook Login dialog, picks the account and sees it
connected and subscribed; then the same with Instagram Login. A failure leaves a screenshot and
the page's HTML in the test's tmp dir.

Needs `/usr/bin/chromium` (bin/setup installs it with apt) and the `playwright` package (the dev
extra); without them the test skips and says why. Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from accounts.models import AccountStatus, InstagramAccount, LoginKind, Workspace
from meta import oauth

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
TIMEOUT_MS = 10_000
PAGE_ID = "102000000000321"
IG_ID = "17841400000000321"
IG_LOGIN_ID = "17841400000000654"
IG_LOGIN_APP_USER_ID = "27841400000000654"
PERSON = {
    "id": "10150000000000321",
    "name": "Ana Browser",
    "pages": [
        {
            "id": PAGE_ID,
            "name": "Acme Studio",
            "instagram": {"id": IG_ID, "username": "acme.studio"},
        },
        {"id": "102000000000322", "name": "Acme Blog", "instagram": None},
    ],
    "instagram": {"id": IG_LOGIN_ID, "username": "acme.ig", "app_user_id": IG_LOGIN_APP_USER_ID},
}


@pytest.fixture
def sync_playwright():
    """Playwright's sync API, or a skip saying what is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run bin/setup (it installs Debian's chromium).")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install -e '.[dev]'"
    )
    return sync_api.sync_playwright


@contextmanager
def chromium(sync_playwright):
    """Chromium for the browser steps only. Playwright's sync API runs an event loop (and its
    own greenlet context) while it is started, where Django refuses ORM calls and would open
    separate connections: the test does its database work before and after this block."""
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium refuses its sandbox when run as root (CI here is root).
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def meta_at_standin(settings, standin):
    """The live server talks to the stand-in for all five Meta bases (docs/standin.md)."""
    settings.META_GRAPH_URL = f"{standin.url}/v24.0"
    settings.META_OAUTH_URL = f"{standin.url}/v24.0"
    settings.META_INSTAGRAM_GRAPH_URL = f"{standin.url}/ig/v24.0"
    settings.INSTAGRAM_OAUTH_URL = f"{standin.url}/instagram"
    settings.INSTAGRAM_API_URL = f"{standin.url}/instagram-api"
    settings.META_APP_ID, settings.META_APP_SECRET = "demo-app-id", "demo-app-secret"
    settings.INSTAGRAM_APP_ID = "demo-instagram-app-id"
    settings.INSTAGRAM_APP_SECRET = "demo-instagram-app-secret"
    return settings


def test_agency_admin_connects_accounts_in_the_browser(
    live_server, sync_playwright, meta_at_standin, standin_control, django_user_model, tmp_path
):
    django_user_model.objects.create_superuser("agency", "agency@example.com", "s3cret-pass!")
    workspace = Workspace.objects.create(name="Acme")
    standin_control.define_person(**PERSON)  # consent "ask": the page is shown

    with chromium(sync_playwright) as browser:
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        try:
            page.goto(f"{live_server.url}/accounts/login/")
            page.fill("input[name=login]", "agency")
            page.fill("input[name=password]", "s3cret-pass!")
            page.click("form[method=post] button[type=submit]")
            page.wait_for_url(f"{live_server.url}/admin/")

            # Facebook Login.
            page.click("#connect-instagram-link")
            page.select_option("#connect-workspace", str(workspace.pk))
            page.click("#connect-facebook")
            page.wait_for_url(f"{standin_control.url}/v24.0/dialog/oauth*")
            assert page.inner_text("#standin-app-id") == "demo-app-id"
            page.click("#standin-approve")
            page.wait_for_url("**/connect/instagram/choose/**")
            assert page.is_disabled("#choice-102000000000322")  # the Page without Instagram
            assert "No Instagram professional account" in page.inner_text(".connect-choose")
            page.check(f"#choice-{PAGE_ID}")
            page.click("#connect-choose")
            page.wait_for_url("**/admin/accounts/instagramaccount/*/change/")
            messages = page.inner_text(".messagelist")
            assert "Connected @acme.studio to workspace Acme." in messages
            assert "subscribed to Meta's webhooks" in messages
            # Facebook Login installs the app on the Page with a Page field (meta-api.md 2).
            assert standin_control.subscriptions()[PAGE_ID] == list(oauth.PAGE_WEBHOOK_FIELDS)

            # Instagram Login, from the Instagram accounts list's button this time.
            page.goto(f"{live_server.url}/admin/accounts/instagramaccount/")
            page.click("#connect-instagram-button")
            page.click("#connect-instagram")
            page.wait_for_url(f"{standin_control.url}/instagram/oauth/authorize*")
            page.click("#standin-approve")
            page.wait_for_url("**/connect/instagram/choose/**")
            assert page.is_checked(f"#choice-{IG_LOGIN_ID}")  # the only account: preselected
            page.click("#connect-choose")
            page.wait_for_url("**/admin/accounts/instagramaccount/*/change/")
            assert "Connected @acme.ig to workspace Acme." in page.inner_text(".messagelist")
            subscriptions = standin_control.subscriptions()
            assert set(subscriptions[IG_LOGIN_APP_USER_ID]) == set(oauth.WEBHOOK_FIELDS)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            (tmp_path / "failure.html").write_text(page.content())
            print(f"Screenshot and HTML of the failing page: {tmp_path}")
            raise
        finally:
            context.close()

    accounts = {a.login_kind: a for a in InstagramAccount.objects.all()}
    assert set(accounts) == {LoginKind.FACEBOOK, LoginKind.INSTAGRAM}
    assert (accounts[LoginKind.FACEBOOK].ig_user_id, accounts[LoginKind.FACEBOOK].page_id) == (
        IG_ID,
        PAGE_ID,
    )
    assert accounts[LoginKind.INSTAGRAM].ig_user_id == IG_LOGIN_ID
    assert all(a.status == AccountStatus.ACTIVE for a in accounts.values())
    assert all(a.workspace == workspace for a in accounts.values())
