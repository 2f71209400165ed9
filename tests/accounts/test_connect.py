"""The connect journey (/connect/instagram/...) through Django's test client against a real
stand-in over HTTP: both logins, reconnects, cancels, bad states, refusals, declined permissions
and webhook subscription failures. The browser version is tests/e2e/test_connect_browser.py."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from accounts import connecting
from accounts.models import (
    AccountStatus,
    AuditEntry,
    InstagramAccount,
    LoginKind,
    Membership,
    PendingConnection,
    Role,
)
from accounts.signals import account_reconnected
from messaging.models import DeliveryStatus
from meta import oauth
from meta.standin import StandInControl
from tests.factories import DeliveryFactory, InstagramAccountFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

START = "/connect/instagram/"
CALLBACK = "http://testserver/connect/instagram/callback/"
PERSON_ID = "10150000000000777"
PAGE_ID = "102000000000777"
IG_ID = "17841400000000777"
IG_APP_USER_ID = "27841400000000777"
IG_LOGIN_ID = "17841400000000555"
IG_LOGIN_APP_USER_ID = "27841400000000555"
PERSON = {
    "id": PERSON_ID,
    "name": "Ana",
    "pages": [
        {
            "id": PAGE_ID,
            "name": "Acme Studio",
            "tasks": ["MANAGE", "MESSAGING", "MODERATE"],
            "instagram": {"id": IG_ID, "username": "acme.studio", "app_user_id": IG_APP_USER_ID},
        },
        {"id": "102000000000778", "name": "No Instagram", "instagram": None},
        {
            "id": "102000000000779",
            "name": "Only analyst",
            "tasks": ["ANALYZE"],
            "instagram": {"id": "17841400000000779", "username": "acme.shop"},
        },
    ],
    "instagram": {
        "id": IG_LOGIN_ID,
        "username": "studio.ig",
        "app_user_id": IG_LOGIN_APP_USER_ID,
    },
}


@pytest.fixture
def control(standin):
    ctl = StandInControl(standin.url)
    ctl.reset()
    ctl.set_auto_approve(True)
    ctl.define_person(**PERSON)
    yield ctl
    ctl.close()


@pytest.fixture(autouse=True)
def meta_bases(settings, standin):
    """Every Meta base pointed at the stand-in, with its prefixes (docs/standin.md)."""
    settings.META_GRAPH_URL = f"{standin.url}/v24.0"
    settings.META_OAUTH_URL = f"{standin.url}/v24.0"
    settings.META_INSTAGRAM_GRAPH_URL = f"{standin.url}/ig/v24.0"
    settings.INSTAGRAM_OAUTH_URL = f"{standin.url}/instagram"
    settings.INSTAGRAM_API_URL = f"{standin.url}/instagram-api"
    settings.META_APP_ID, settings.META_APP_SECRET = "demo-app-id", "demo-app-secret"
    settings.INSTAGRAM_APP_ID = "demo-instagram-app-id"
    settings.INSTAGRAM_APP_SECRET = "demo-instagram-app-secret"
    return settings


@pytest.fixture
def workspace():
    return WorkspaceFactory(name="Acme")


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-12345")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def person_with(role: str, workspace, django_user_model):
    user = django_user_model.objects.create_user(role, f"{role}@example.com", "pw", is_staff=True)
    Membership.objects.create(user=user, workspace=workspace, role=role)
    return user


# --- driving the journey -------------------------------------------------------------------------
def start(client, login: str, workspace, account=None):
    params = {"login": login, "workspace": workspace.pk}
    if account is not None:
        params["account"] = account.pk
    return client.get(START, params)


def through_meta(response) -> str:
    """Follow our 302 to Meta's dialog (auto-approving) and return Meta's redirect back."""
    assert response.status_code == 302, response.content.decode()[:500]
    answer = requests.get(response["Location"], allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK)
    return location


def callback(client, location: str):
    parts = urlsplit(location)  # the fragment ("#_") never reaches the server
    return client.get(f"{parts.path}?{parts.query}")


def to_choices(client, login: str, workspace, account=None):
    """Start -> Meta -> callback; returns the choose page's response."""
    response = callback(client, through_meta(start(client, login, workspace, account)))
    assert response.status_code == 302, response.content.decode()[:800]
    assert response["Location"].startswith("/connect/instagram/choose/")
    return client.get(response["Location"])


def choose(client, page, key: str):
    return client.post(page.request["PATH_INFO"], {"choice": key})


def error_text(response) -> str:
    return response.content.decode()


# --- the dialog URLs -----------------------------------------------------------------------------
def test_facebook_start_redirects_to_the_dialog(admin_client, workspace, standin, control):
    response = start(admin_client, "facebook", workspace)

    assert response.status_code == 302
    url = urlsplit(response["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{standin.url}/v24.0/dialog/oauth"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["client_id"] == "demo-app-id"
    assert query["redirect_uri"] == CALLBACK
    assert query["scope"] == ",".join(oauth.FACEBOOK_LOGIN_SCOPES)
    assert query["response_type"] == "code"
    assert query["state"]


def test_instagram_start_redirects_to_the_authorize_page(admin_client, workspace, standin):
    response = start(admin_client, "instagram", workspace)

    url = urlsplit(response["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{standin.url}/instagram/oauth/authorize"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["client_id"] == "demo-instagram-app-id"
    assert query["redirect_uri"] == CALLBACK
    assert query["scope"] == ",".join(oauth.INSTAGRAM_LOGIN_SCOPES)
    assert query["response_type"] == "code"


def test_instagram_login_is_refused_when_not_set_up(admin_client, workspace, settings):
    settings.INSTAGRAM_APP_ID = ""

    response = start(admin_client, "instagram", workspace)

    assert response.status_code == 400
    assert "Instagram Login is not set up" in error_text(response)
    assert "INSTAGRAM_APP_ID" in error_text(response)


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"login": "twitter", "workspace": "1"}, 400, "login=facebook or login=instagram"),
        ({"login": "facebook", "workspace": "x"}, 400, "Choose the workspace"),
        ({"login": "facebook", "workspace": "999999"}, 404, "There is no workspace"),
    ],
)
def test_bad_start_parameters(admin_client, params, status, says):
    response = admin_client.get(START, params)

    assert response.status_code == status
    assert says in error_text(response)


def test_start_page_offers_workspaces_and_both_logins(admin_client, workspace):
    response = admin_client.get(START)

    assert response.status_code == 200
    page = response.content.decode()
    assert f'<option value="{workspace.pk}"' in page
    assert 'id="connect-facebook"' in page
    assert 'id="connect-instagram"' in page


# --- Facebook Login ------------------------------------------------------------------------------
def test_facebook_journey_connects_the_picked_account(admin_client, admin_user, workspace, control):
    page = to_choices(admin_client, "facebook", workspace)

    text = page.content.decode()
    assert "@acme.studio" in text
    assert "No Instagram professional account is linked to this Page" in text
    assert "You lack the Page task(s) MESSAGING, MODERATE" in text
    assert f'id="choice-{PAGE_ID}"' in text
    assert 'id="choice-102000000000778" disabled' in text
    pending = PendingConnection.objects.get()
    assert "EAA" not in json.dumps(pending.choices)  # tokens are stored encrypted

    response = choose(admin_client, page, PAGE_ID)

    account = InstagramAccount.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:accounts_instagramaccount_change", args=[account.pk]
    )
    assert account.workspace == workspace
    assert (account.ig_user_id, account.page_id, account.username) == (
        IG_ID,
        PAGE_ID,
        "acme.studio",
    )
    assert account.login_kind == LoginKind.FACEBOOK
    assert account.status == AccountStatus.ACTIVE
    assert account.access_token.startswith("EAA")
    assert account.token_expires_at is None  # a Page token from a long-lived user token
    assert account.token_refreshed_at is not None
    assert set(oauth.FACEBOOK_LOGIN_SCOPES) <= set(account.scopes)
    assert account.meta_user_id
    assert account.connected_by == admin_user
    # The Page token the stand-in issued really works for the Page.
    (page_token,) = control.tokens(kind="PAGE", page_id=PAGE_ID)
    assert account.access_token.startswith(page_token["token"].rstrip("…"))
    # Facebook Login installs the app on the Page with a Page field (meta-api.md 2), read back.
    assert set(control.subscriptions()[PAGE_ID]) == set(oauth.PAGE_WEBHOOK_FIELDS)
    assert account.webhook_fields == list(oauth.PAGE_WEBHOOK_FIELDS)
    assert account.webhook_checked_at is not None and account.webhook_problem == ""
    assert not PendingConnection.objects.exists()

    entries = {e.action: e for e in AuditEntry.objects.filter(object_id=str(account.pk))}
    assert set(entries) == {"connected", "subscribed"}
    assert entries["connected"].actor == admin_user
    assert account.access_token not in json.dumps(entries["connected"].changes)
    assert "Facebook Login through the Page Acme Studio" in entries["connected"].note

    admin_page = admin_client.get(response["Location"])
    assert "Connected @acme.studio to workspace Acme." in admin_page.content.decode()


def test_page_missing_tasks_cannot_be_picked(admin_client, workspace, control):
    page = to_choices(admin_client, "facebook", workspace)

    response = choose(admin_client, page, "102000000000779")

    assert response.status_code == 400
    assert "You lack the Page task(s)" in error_text(response)
    assert not InstagramAccount.objects.exists()


# --- Instagram Login -----------------------------------------------------------------------------
def test_instagram_journey_connects_the_account(admin_client, admin_user, workspace, control):
    page = to_choices(admin_client, "instagram", workspace)
    assert "@studio.ig" in page.content.decode()
    assert f'value="{IG_LOGIN_ID}"' in page.content.decode()

    response = choose(admin_client, page, IG_LOGIN_ID)

    assert response.status_code == 302
    account = InstagramAccount.objects.get()
    # The id webhooks use (/me's user_id); the app-scoped id kept beside it.
    assert (account.ig_user_id, account.ig_alt_id) == (IG_LOGIN_ID, IG_LOGIN_APP_USER_ID)
    assert account.page_id == ""
    assert account.login_kind == LoginKind.INSTAGRAM
    assert account.access_token.startswith("IG")
    assert account.token_expires_at > timezone.now() + timedelta(days=59)
    assert set(account.scopes) == set(oauth.INSTAGRAM_LOGIN_SCOPES)
    assert account.meta_user_id == IG_LOGIN_APP_USER_ID
    assert account.connected_by == admin_user
    assert account.status == AccountStatus.ACTIVE
    # Subscribed as "me" with the account's token: the stand-in files it under /me's id.
    assert set(control.subscriptions()[IG_LOGIN_APP_USER_ID]) == set(oauth.WEBHOOK_FIELDS)


# --- reconnect -----------------------------------------------------------------------------------
def test_reconnect_releases_held_deliveries(
    admin_client, workspace, control, django_capture_on_commit_callbacks
):
    account = InstagramAccountFactory(
        workspace=workspace,
        ig_user_id=IG_ID,
        page_id=PAGE_ID,
        username="acme.studio",
        token="EAAexpired",
        status=AccountStatus.NEEDS_RECONNECT,
        reconnect_reason="token_invalid",
        status_reason="Reconnect @acme.studio: Meta says its token no longer works",
    )
    held = DeliveryFactory(account=account, held_since=timezone.now())
    fired = []
    account_reconnected.connect(
        lambda sender, account, **kw: fired.append(account.pk), weak=False, dispatch_uid="test"
    )
    try:
        page = to_choices(admin_client, "facebook", workspace, account)
        assert "You are reconnecting <strong>@acme.studio</strong>" in page.content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            response = choose(admin_client, page, PAGE_ID)
    finally:
        account_reconnected.disconnect(dispatch_uid="test")

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE
    assert (account.status_reason, account.reconnect_reason) == ("", "")
    assert account.access_token != "EAAexpired"
    assert fired == [account.pk]
    held.refresh_from_db()
    assert held.held_since is None
    assert held.status != DeliveryStatus.SKIPPED
    assert AuditEntry.objects.filter(object_id=str(account.pk), action="reconnected").exists()
    assert InstagramAccount.objects.count() == 1


def test_reconnect_with_another_instagram_account_is_refused(admin_client, workspace, control):
    account = InstagramAccountFactory(
        workspace=workspace,
        ig_user_id="17841400000000999",
        username="other.one",
        token="EAAold",
        status=AccountStatus.NEEDS_RECONNECT,
        reconnect_reason="token_invalid",
    )
    page = to_choices(admin_client, "facebook", workspace, account)
    assert "You are reconnecting @other.one; this is a different account." in page.content.decode()

    response = choose(admin_client, page, PAGE_ID)

    assert response.status_code == 400
    assert "but you are reconnecting @other.one" in error_text(response)
    account.refresh_from_db()
    assert account.access_token == "EAAold"
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert InstagramAccount.objects.count() == 1
    assert not AuditEntry.objects.filter(action__in=["connected", "reconnected"]).exists()


def test_account_in_another_workspace_is_refused(admin_client, workspace, control):
    other = InstagramAccountFactory(
        workspace=WorkspaceFactory(name="Other client"), ig_user_id=IG_ID, token="EAAtheirs"
    )
    page = to_choices(admin_client, "facebook", workspace)
    assert "already connected to workspace Other client" in page.content.decode()

    response = choose(admin_client, page, PAGE_ID)

    assert response.status_code == 400
    assert "@acme.studio is already connected to workspace Other client" in error_text(response)
    other.refresh_from_db()
    assert other.workspace.name == "Other client"
    assert other.access_token == "EAAtheirs"
    assert InstagramAccount.objects.count() == 1


# --- cancel, state, codes ------------------------------------------------------------------------
def test_cancel_stores_nothing(admin_client, workspace, control):
    control.set_oauth_settings(consent="cancel")

    location = through_meta(start(admin_client, "facebook", workspace))
    assert "error=access_denied" in location
    response = callback(admin_client, location)

    assert response.status_code == 200
    assert "You cancelled in Meta's dialog" in response.content.decode()
    assert "Permissions error" in response.content.decode()
    assert not PendingConnection.objects.exists()
    assert not InstagramAccount.objects.exists()
    assert admin_client.session[connecting.SESSION_NONCES] == []


def _with_state(location: str, state: str) -> str:
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["state"] = state
    return f"{parts.path}?{urlencode(query)}"


def test_forged_state_is_refused_before_meta_is_called(admin_client, workspace, control):
    location = through_meta(start(admin_client, "facebook", workspace))
    state = parse_qs(urlsplit(location).query)["state"][0]
    since = control.last_seq()

    response = admin_client.get(_with_state(location, state[:-2] + "xx"))

    assert response.status_code == 400
    assert "not signed by this site" in error_text(response)
    assert control.requests(endpoint="oauth_access_token", since=since) == []
    assert not PendingConnection.objects.exists()


def test_state_of_another_person_is_refused(
    admin_client, workspace, control, django_user_model, client
):
    location = through_meta(start(admin_client, "facebook", workspace))
    intruder = django_user_model.objects.create_superuser("mallory", "m@example.com", "pw")
    client.force_login(intruder)

    response = callback(client, location)

    assert response.status_code == 400
    assert "started by another person" in error_text(response)
    assert not PendingConnection.objects.exists()


def test_state_from_another_browser_is_refused(admin_client, admin_user, workspace, control):
    location = through_meta(start(admin_client, "facebook", workspace))
    admin_client.logout()
    admin_client.force_login(admin_user)  # a new session: the nonce is not in it

    response = callback(admin_client, location)

    assert response.status_code == 400
    assert "started in another browser" in error_text(response)
    assert not PendingConnection.objects.exists()


def test_expired_state_is_refused(admin_client, workspace, control, monkeypatch):
    location = through_meta(start(admin_client, "facebook", workspace))
    monkeypatch.setattr(connecting, "STATE_MAX_AGE", -1)

    response = callback(admin_client, location)

    assert response.status_code == 400
    assert "has expired" in error_text(response)
    assert not PendingConnection.objects.exists()


def test_a_used_code_is_refused(admin_client, workspace, control):
    location = through_meta(start(admin_client, "facebook", workspace))
    assert callback(admin_client, location).status_code == 302

    # The same redirect again (reload, replay): the state's nonce is used up.
    again = callback(admin_client, location)
    assert again.status_code == 400
    assert "already completed" in error_text(again)

    # A fresh state with the old code: Meta refuses the code, nothing more is stored.
    fresh = through_meta(start(admin_client, "facebook", workspace))
    fresh_state = parse_qs(urlsplit(fresh).query)["state"][0]
    replay = admin_client.get(_with_state(location, fresh_state))
    assert replay.status_code == 400
    assert "Meta refused to finish the sign-in" in error_text(replay)
    assert "authorization code has been used" in error_text(replay)
    assert PendingConnection.objects.count() == 1


def test_a_pending_choice_expires(admin_client, workspace, control):
    page = to_choices(admin_client, "facebook", workspace)
    PendingConnection.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = choose(admin_client, page, PAGE_ID)

    assert response.status_code == 410
    assert "more than 15 minutes" in error_text(response)
    assert not PendingConnection.objects.exists()
    assert not InstagramAccount.objects.exists()


def test_a_choice_is_made_once(admin_client, workspace, control):
    page = to_choices(admin_client, "facebook", workspace)
    assert choose(admin_client, page, PAGE_ID).status_code == 302

    again = choose(admin_client, page, PAGE_ID)

    assert again.status_code == 410
    assert AuditEntry.objects.filter(action="connected").count() == 1


def test_someone_elses_pending_choice_is_not_found(
    admin_client, workspace, control, client, django_user_model
):
    page = to_choices(admin_client, "facebook", workspace)
    other = django_user_model.objects.create_superuser("eve", "eve@example.com", "pw")
    client.force_login(other)

    response = client.post(page.request["PATH_INFO"], {"choice": PAGE_ID})

    assert response.status_code == 410
    assert not InstagramAccount.objects.exists()


# --- declined permissions, subscription failures -------------------------------------------------
def test_declined_messaging_permission_connects_but_needs_reconnect(
    admin_client, workspace, control
):
    granted = [s for s in oauth.FACEBOOK_LOGIN_SCOPES if s != "instagram_manage_messages"]
    control.define_person(**{**PERSON, "scopes": granted})

    page = to_choices(admin_client, "facebook", workspace)
    assert "Meta did not grant instagram_manage_messages" in page.content.decode()
    response = choose(admin_client, page, PAGE_ID)

    account = InstagramAccount.objects.get()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.reconnect_reason == "permission_missing"
    assert "instagram_manage_messages (to send messages and private replies)" in (
        account.status_reason
    )
    assert "instagram_manage_messages" not in account.scopes
    followed = admin_client.get(response["Location"]).content.decode()
    assert 'id="reconnect-banner"' in followed
    assert f'id="reconnect-button-{account.pk}"' in followed
    assert "not granted: instagram_manage_messages" in (
        AuditEntry.objects.get(action="connected").note
    )


def test_declined_pages_messaging_is_needed_and_named(admin_client, workspace, control):
    # Without pages_messaging Meta refuses every message from the Page token with code 230
    # (https://developers.facebook.com/docs/messenger-platform/error-codes): it is needed.
    granted = [s for s in oauth.FACEBOOK_LOGIN_SCOPES if s != "pages_messaging"]
    control.define_person(**{**PERSON, "scopes": granted})

    page = to_choices(admin_client, "facebook", workspace)
    assert "Meta did not grant pages_messaging" in page.content.decode()
    choose(admin_client, page, PAGE_ID)

    account = InstagramAccount.objects.get()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.reconnect_reason == "permission_missing"
    assert "pages_messaging (to message people from the Page" in account.status_reason


def test_subscription_failure_keeps_the_account_and_can_be_retried(
    admin_client, workspace, control
):
    control.add_fault(
        "subscribed_apps", status=400, error={"code": 200, "message": "(#200) Permissions error"}
    )
    page = to_choices(admin_client, "facebook", workspace)

    response = choose(admin_client, page, PAGE_ID)

    account = InstagramAccount.objects.get()
    assert account.status == AccountStatus.ACTIVE
    assert response["Location"] == reverse("connect_subscribe", args=[account.pk])
    shown = admin_client.get(response["Location"]).content.decode()
    assert "is connected, but Meta refused the webhook subscription" in shown
    assert "(#200) Permissions error" in shown
    assert 'id="subscribe-again"' in shown
    assert AuditEntry.objects.filter(action="subscribe_failed").exists()
    assert PAGE_ID not in control.subscriptions()

    again = admin_client.post(response["Location"])

    assert again.status_code == 302
    assert set(control.subscriptions()[PAGE_ID]) == set(oauth.PAGE_WEBHOOK_FIELDS)
    assert AuditEntry.objects.filter(action="subscribed").exists()
    # What Meta lists, read back after the POST, and when: on the page and in the admin.
    shown = admin_client.get(response["Location"]).content.decode()
    assert "What Meta lists" in shown and "<td>feed</td>" in shown
    assert "none has arrived yet" in shown
    change = admin_client.get(
        reverse("admin:accounts_instagramaccount_change", args=[account.pk])
    ).content.decode()
    assert "Subscribed: feed (checked " in change


# --- who may connect -----------------------------------------------------------------------------
def test_anonymous_people_are_sent_to_sign_in(client, workspace):
    response = start(client, "facebook", workspace)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("role", [Role.MARKETER, Role.SUPPORT])
def test_marketers_and_support_cannot_connect_a_new_account(
    client, workspace, django_user_model, role
):
    client.force_login(person_with(role, workspace, django_user_model))

    response = start(client, "facebook", workspace)

    assert response.status_code == 403
    assert "You may not connect accounts to Acme" in error_text(response)


def test_support_cannot_reconnect(client, workspace, django_user_model):
    account = InstagramAccountFactory(workspace=workspace)
    client.force_login(person_with(Role.SUPPORT, workspace, django_user_model))

    assert start(client, "facebook", workspace, account).status_code == 403


def test_a_marketer_reconnects_an_account_of_their_workspace(
    client, workspace, control, django_user_model
):
    account = InstagramAccountFactory(
        workspace=workspace,
        ig_user_id=IG_ID,
        page_id=PAGE_ID,
        status=AccountStatus.NEEDS_RECONNECT,
        reconnect_reason="token_invalid",
    )
    marketer = person_with(Role.MARKETER, workspace, django_user_model)
    client.force_login(marketer)

    page = to_choices(client, "facebook", workspace, account)
    response = choose(client, page, PAGE_ID)

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE
    assert account.connected_by == marketer


def test_a_marketer_cannot_reconnect_another_workspaces_account(
    client, workspace, django_user_model
):
    elsewhere = InstagramAccountFactory(workspace=WorkspaceFactory(name="Not theirs"))
    client.force_login(person_with(Role.MARKETER, workspace, django_user_model))

    assert start(client, "facebook", elsewhere.workspace, elsewhere).status_code == 403
    # Naming their own workspace with someone else's account does not help either.
    assert start(client, "facebook", workspace, elsewhere).status_code == 400


def test_can_connect(django_user_model, workspace):
    account = InstagramAccountFactory(workspace=workspace)
    other = InstagramAccountFactory()
    admin = django_user_model.objects.create_superuser("a", "a@example.com", "pw")
    agency = person_with(Role.AGENCY_ADMIN, workspace, django_user_model)
    marketer = person_with(Role.MARKETER, workspace, django_user_model)
    support = person_with(Role.SUPPORT, workspace, django_user_model)

    assert connecting.can_connect(admin, workspace)
    # An agency-admin membership grants nothing: agency admins are superusers.
    assert not connecting.can_connect(agency, workspace)
    assert not connecting.can_connect(agency, other.workspace)
    assert not connecting.can_connect(marketer, workspace)
    assert connecting.can_connect(marketer, workspace, account=account)
    assert not connecting.can_connect(marketer, other.workspace, account=other)
    assert not connecting.can_connect(support, workspace, account=account)
    marketer.is_active = False
    assert not connecting.can_connect(marketer, workspace, account=account)


# --- the console: entry point and reconnect banner -----------------------------------------------
def test_admin_shows_the_entry_point_to_agency_admins(admin_client):
    index = admin_client.get("/admin/").content.decode()
    changelist = admin_client.get("/admin/accounts/instagramaccount/").content.decode()

    assert 'id="connect-instagram-link"' in index
    assert 'id="connect-instagram-button"' in changelist
    assert "Connect an Instagram account" in changelist


def test_banner_lists_the_persons_accounts_that_need_reconnecting(
    client, workspace, django_user_model
):
    mine = InstagramAccountFactory(
        workspace=workspace,
        username="mine",
        status=AccountStatus.NEEDS_RECONNECT,
        reconnect_reason="permission_missing",
        status_reason="Reconnect @mine: Meta did not grant instagram_manage_messages.",
    )
    InstagramAccountFactory(username="fine", workspace=workspace)
    theirs = InstagramAccountFactory(username="theirs", status=AccountStatus.NEEDS_RECONNECT)
    support = person_with(Role.SUPPORT, workspace, django_user_model)
    marketer = person_with(Role.MARKETER, workspace, django_user_model)

    client.force_login(marketer)
    page = client.get("/admin/").content.decode()
    assert "Reconnect @mine: Meta did not grant instagram_manage_messages." in page
    assert connecting.reconnect_url(mine).replace("&", "&amp;") in page
    assert "@theirs" not in page
    # The banner names only what needs reconnecting (the dashboard below lists every account).
    banner = page[page.index('id="reconnect-banner"') :]
    assert "@fine" not in banner[: banner.index("</div>")]
    assert 'id="connect-instagram-link"' not in page

    client.force_login(support)
    page = client.get("/admin/").content.decode()
    assert f'id="reconnect-{mine.pk}"' in page
    assert f'id="reconnect-button-{mine.pk}"' not in page
    assert "Ask an agency admin or a marketer of Acme" in page

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    page = client.get("/admin/").content.decode()
    assert f'id="reconnect-button-{mine.pk}"' in page
    assert f'id="reconnect-button-{theirs.pk}"' in page


def test_anonymous_pages_read_nothing_for_the_banner(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert "reconnect-banner" not in response.content.decode()
