"""Token upkeep: Instagram-Login refresh, the daily permission check, check_tokens.

Meta is mocked with `responses` at the HTTP seam; the last tests run the same code against a
real Graph stand-in (tokens issued by its OAuth endpoints, then aged, expired or stripped of a
scope through its control API).
"""

import json
import re
from datetime import timedelta
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses as responses_lib
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts import tokens
from accounts.models import AccountStatus, AuditEntry, InstagramAccount
from accounts.tasks import check_tokens, refresh_tokens
from messaging import services as messaging_services
from messaging.models import Delivery, DeliveryStatus
from meta import oauth
from meta.standin import StandInControl
from tests.conftest import GRAPH, INSTAGRAM_GRAPH
from tests.factories import (
    DeliveryFactory,
    InstagramAccountFactory,
    InstagramLoginAccountFactory,
)

pytestmark = pytest.mark.django_db

REFRESH_URL = "https://graph-ig.test/refresh_access_token"  # unversioned, as Meta serves it
DEBUG_URL = f"{GRAPH}/debug_token"
ME_URL = f"{INSTAGRAM_GRAPH}/me"
FB_SCOPES = [
    "instagram_basic",
    "instagram_manage_comments",
    "instagram_manage_messages",
    "pages_show_list",
    "pages_manage_metadata",
    "pages_messaging",
]


def ig_account(*, age_days: float, expires_in_days: float | None, **fields) -> InstagramAccount:
    now = timezone.now()
    return InstagramLoginAccountFactory(
        token="IGold-long-lived",
        token_refreshed_at=now - timedelta(days=age_days),
        token_expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        **fields,
    )


def meta_error(code, subcode=None, message="Error validating access token", status=400):
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AtT1"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"status": status, "json": {"error": error}}


def debug_answer(mocked_graph, *, is_valid=True, scopes=FB_SCOPES, **data):
    body = {"app_id": "demo-app-id", "type": "PAGE", "is_valid": is_valid, "scopes": scopes}
    body.update(data)
    mocked_graph.get(DEBUG_URL, json={"data": body})


def audit(account, action):
    return AuditEntry.objects.filter(object_id=str(account.pk), action=action)


def send_now(delivery):
    """What the pacer does when a delivery's turn comes."""
    Delivery.objects.filter(pk=delivery.pk).update(dispatched_at=timezone.now())
    messaging_services.delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


# --- refresh: when ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("age_days", "expires_in_days", "due"),
    [
        (51, 9, True),  # within 10 days of expiry
        (0.5, 2, False),  # too young for Meta (24 h), even close to expiry
        (5, 55, False),  # young and far from expiry
        (31, 29, True),  # older than 30 days
        (2, None, False),  # expiry unknown: wait for the 30-day age
        (40, None, True),
        (61, -1, True),  # expired: the refresh will tell (190) and mark it
    ],
)
def test_refresh_due(age_days, expires_in_days, due):
    account = ig_account(age_days=age_days, expires_in_days=expires_in_days)
    assert tokens.token_refresh_due(account, timezone.now()) is due
    assert (account.pk in tokens.accounts_due_for_refresh()) is due


def test_facebook_and_inactive_accounts_are_never_refreshed(mocked_graph):
    facebook = InstagramAccountFactory(
        token_refreshed_at=timezone.now() - timedelta(days=59),
        token_expires_at=timezone.now() + timedelta(days=1),
    )
    held = ig_account(age_days=51, expires_in_days=9, status=AccountStatus.NEEDS_RECONNECT)

    assert tokens.accounts_due_for_refresh() == []
    outcome = tokens.account_token_refresh(account_id=facebook.pk)
    assert outcome.result == tokens.SKIPPED
    assert "does not expire" in outcome.message
    assert tokens.account_token_refresh(account_id=held.pk).result == tokens.SKIPPED
    assert len(mocked_graph.calls) == 0


# --- refresh: what it does ----------------------------------------------------------------------
def test_refresh_before_expiry_stores_the_new_token_encrypted(mocked_graph):
    account = ig_account(age_days=51, expires_in_days=9)
    mocked_graph.get(
        REFRESH_URL,
        json={"access_token": "IGnew-token-value", "token_type": "bearer", "expires_in": 5184000},
    )
    before = timezone.now()

    outcome = tokens.account_token_refresh(account_id=account.pk)

    assert outcome.result == tokens.REFRESHED
    query = parse_qs(urlsplit(mocked_graph.calls[0].request.url).query)
    assert query == {"grant_type": ["ig_refresh_token"], "access_token": ["IGold-long-lived"]}
    account.refresh_from_db()
    assert account.access_token == "IGnew-token-value"
    assert "IGnew" not in account.access_token_encrypted
    assert account.token_refreshed_at >= before
    expected = before + timedelta(days=60)
    assert abs((account.token_expires_at - expected).total_seconds()) < 60
    assert account.status == AccountStatus.ACTIVE
    (entry,) = audit(account, "token_refreshed")
    assert entry.actor_label == "beat"
    assert "IGnew" not in json.dumps(entry.changes) + entry.note
    assert "IGold" not in json.dumps(entry.changes) + entry.note


def test_refresh_twice_calls_meta_once(mocked_graph):
    account = ig_account(age_days=51, expires_in_days=9)
    mocked_graph.get(REFRESH_URL, json={"access_token": "IGnew", "expires_in": 5184000})

    tokens.account_token_refresh(account_id=account.pk)
    second = tokens.account_token_refresh(account_id=account.pk)

    assert second.result == tokens.NOT_DUE
    assert len(mocked_graph.calls) == 1


def test_a_token_replaced_during_the_refresh_is_kept(mocked_graph):
    account = ig_account(age_days=51, expires_in_days=9)

    def reconnected_meanwhile(request):
        fresh = InstagramAccount.objects.get(pk=account.pk)
        fresh.access_token = "IGfrom-a-reconnect"
        fresh.save(update_fields=["access_token_encrypted"])
        return 200, {}, json.dumps({"access_token": "IGrefreshed-old", "expires_in": 5184000})

    mocked_graph.add_callback(responses_lib.GET, REFRESH_URL, callback=reconnected_meanwhile)

    outcome = tokens.account_token_refresh(account_id=account.pk)

    assert outcome.result == tokens.SKIPPED
    account.refresh_from_db()
    assert account.access_token == "IGfrom-a-reconnect"


def test_expired_token_marks_the_account_and_later_sends_are_held(mocked_graph):
    account = ig_account(age_days=61, expires_in_days=-1, username="acme.studio")
    mocked_graph.get(
        REFRESH_URL, **meta_error(190, 463, "Error validating access token: Session has expired")
    )

    outcome = tokens.account_token_refresh(account_id=account.pk)

    assert outcome.result == tokens.NEEDS_RECONNECT
    account.refresh_from_db()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.reconnect_reason == "token_invalid"
    assert account.status_reason.startswith("Reconnect @acme.studio:")
    assert "Session has expired" in account.status_reason
    assert account.access_token == "IGold-long-lived"  # nothing refreshed
    (entry,) = audit(account, "needs_reconnect")
    assert entry.actor_label == "beat"

    # A send created afterwards is held by the checklist; Meta is not called.
    delivery = send_now(DeliveryFactory(account=account))
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.held_since is not None
    assert "Held until @acme.studio is reconnected" in delivery.detail
    assert len(mocked_graph.calls) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "json": {"error": {"message": "An unknown error occurred", "code": 1}}},
        {"status": 503, "body": "upstream unavailable"},
        meta_error(2, message="Service temporarily unavailable"),
        meta_error(100, message="The token is too young to be refreshed"),
        {"body": requests.ConnectionError("connection refused")},
    ],
)
def test_transient_refresh_errors_mark_nothing(mocked_graph, caplog, answer):
    account = ig_account(age_days=51, expires_in_days=9)
    mocked_graph.get(REFRESH_URL, **answer)

    outcome = tokens.account_token_refresh(account_id=account.pk)

    assert outcome.result == tokens.RETRY
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE
    assert account.access_token == "IGold-long-lived"
    assert tokens.token_refresh_due(account, timezone.now())  # the next run tries again
    assert "the next run tries again" in caplog.text
    assert not AuditEntry.objects.exists()


def test_the_beat_task_refreshes_every_due_account(mocked_graph):
    due = ig_account(age_days=51, expires_in_days=9)
    young = ig_account(age_days=2, expires_in_days=58)
    mocked_graph.get(REFRESH_URL, json={"access_token": "IGnew", "expires_in": 5184000})

    assert refresh_tokens.delay().get() == 1

    due.refresh_from_db()
    young.refresh_from_db()
    assert due.access_token == "IGnew"
    assert young.access_token == "IGold-long-lived"


# --- check: Facebook Login ----------------------------------------------------------------------
def test_facebook_check_stores_scopes_and_time(mocked_graph):
    account = InstagramAccountFactory(scopes=[], meta_user_id="")
    debug_answer(mocked_graph, user_id="10150000000000777", expires_at=0)

    outcome = tokens.account_token_check(account_id=account.pk)

    assert outcome.result == tokens.OK
    request = mocked_graph.calls[0].request
    assert "input_token=token-" in request.url
    assert request.headers["Authorization"] == "Bearer demo-app-id|demo-app-secret"
    account.refresh_from_db()
    assert account.scopes == FB_SCOPES
    assert account.permissions_checked_at is not None
    assert account.meta_user_id == "10150000000000777"
    assert account.token_expires_at is None  # a Page token does not expire
    assert account.status == AccountStatus.ACTIVE


def test_facebook_invalid_token_needs_reconnect(mocked_graph):
    account = InstagramAccountFactory(username="acme.studio")
    debug_answer(
        mocked_graph,
        is_valid=False,
        scopes=[],
        error={"code": 190, "subcode": 460, "message": "The session has been invalidated"},
    )

    outcome = tokens.account_token_check(account_id=account.pk)

    assert outcome.result == tokens.NEEDS_RECONNECT
    account.refresh_from_db()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.reconnect_reason == "token_invalid"
    assert "The session has been invalidated (code 190/460)" in account.status_reason


def test_facebook_revoked_permission_needs_reconnect_naming_it(mocked_graph):
    account = InstagramAccountFactory(username="acme.studio")
    debug_answer(mocked_graph, scopes=[s for s in FB_SCOPES if s != "instagram_manage_messages"])

    outcome = tokens.account_token_check(account_id=account.pk)

    assert outcome.result == tokens.NEEDS_RECONNECT
    account.refresh_from_db()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.reconnect_reason == "permission_missing"
    assert account.status_reason.startswith("Reconnect @acme.studio:")
    assert "no longer grants instagram_manage_messages" in account.status_reason
    assert "private replies and DMs" in account.status_reason
    assert "instagram_manage_messages" not in account.scopes
    (changed,) = audit(account, "scopes_changed")
    assert "instagram_manage_messages" in changed.changes["scopes"][0]
    assert audit(account, "needs_reconnect").count() == 1


@pytest.mark.parametrize(
    "answer",
    [
        # Our app token is wrong: a 190 about the *check*, not about the account's token.
        meta_error(190, message="Invalid OAuth access token signature."),
        {"status": 502, "body": "bad gateway"},
        {"body": requests.Timeout("read timed out")},
    ],
)
def test_a_failed_check_marks_nothing(mocked_graph, answer):
    account = InstagramAccountFactory()
    mocked_graph.get(DEBUG_URL, **answer)

    outcome = tokens.account_token_check(account_id=account.pk)

    assert outcome.result == tokens.RETRY
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE
    assert account.permissions_checked_at is None


def test_an_account_needing_reconnect_is_not_reactivated_by_a_good_check(mocked_graph):
    account = InstagramAccountFactory(
        status=AccountStatus.NEEDS_RECONNECT,
        reconnect_reason="permission_missing",
        status_reason="Reconnect @x: Meta says a permission is missing",
    )
    debug_answer(mocked_graph)

    outcome = tokens.account_token_check(account_id=account.pk)

    assert outcome.result == tokens.STILL_NEEDS_RECONNECT
    assert "someone reconnects" in outcome.message
    account.refresh_from_db()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.permissions_checked_at is not None


def test_data_access_expiring_is_shown_without_stopping_sends(mocked_graph):
    account = InstagramAccountFactory(username="acme.studio")
    soon = timezone.now() + timedelta(days=5)
    debug_answer(mocked_graph, expires_at=0, data_access_expires_at=int(soon.timestamp()))

    outcome = tokens.account_token_check(account_id=account.pk)

    assert outcome.result == tokens.OK
    assert "data access" in outcome.warning
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE
    assert account.status_reason.startswith(tokens.EXPIRY_WARNING_PREFIX)
    assert "reconnect @acme.studio" in account.status_reason
    assert f"{soon:%Y-%m-%d}" in account.status_reason

    # Sends still go.
    mocked_graph.post(
        f"{GRAPH}/{account.page_id}/messages", json={"recipient_id": "1", "message_id": "m.1"}
    )
    assert send_now(DeliveryFactory(account=account)).status == DeliveryStatus.SENT

    # After a new login the date moves away and the warning goes.
    later = timezone.now() + timedelta(days=85)
    mocked_graph.replace(
        responses_lib.GET,
        DEBUG_URL,
        json={
            "data": {
                "is_valid": True,
                "scopes": FB_SCOPES,
                "data_access_expires_at": int(later.timestamp()),
            }
        },
    )
    assert tokens.account_token_check(account_id=account.pk).warning == ""
    account.refresh_from_db()
    assert account.status_reason == ""


def test_an_operators_status_note_is_neither_cleared_nor_overwritten(mocked_graph):
    account = InstagramAccountFactory(status_reason="Client pays monthly; keep an eye on it.")
    soon = timezone.now() + timedelta(days=5)
    debug_answer(mocked_graph, data_access_expires_at=int(soon.timestamp()))

    assert tokens.account_token_check(account_id=account.pk).warning  # printed, logged
    account.refresh_from_db()
    assert account.status_reason == "Client pays monthly; keep an eye on it."

    mocked_graph.replace(responses_lib.GET, DEBUG_URL, json={"data": {"is_valid": True}})
    tokens.account_token_check(account_id=account.pk)
    account.refresh_from_db()
    assert account.status_reason == "Client pays monthly; keep an eye on it."


# --- check: Instagram Login ---------------------------------------------------------------------
def test_instagram_check_reads_me(mocked_graph):
    account = ig_account(age_days=3, expires_in_days=57)
    mocked_graph.get(
        ME_URL,
        json={"id": account.ig_alt_id, "user_id": account.ig_user_id, "username": "x"},
    )

    outcome = tokens.account_token_check(account_id=account.pk)

    assert outcome.result == tokens.OK
    assert outcome.message == ""
    assert mocked_graph.calls[0].request.headers["Authorization"] == "Bearer IGold-long-lived"
    account.refresh_from_db()
    assert account.permissions_checked_at is not None


def test_instagram_check_with_an_expired_token_needs_reconnect(mocked_graph):
    account = ig_account(age_days=61, expires_in_days=-1)
    mocked_graph.get(ME_URL, **meta_error(190, 463, "Session has expired"))

    assert tokens.account_token_check(account_id=account.pk).result == tokens.NEEDS_RECONNECT
    account.refresh_from_db()
    assert account.reconnect_reason == "token_invalid"


def test_instagram_check_with_a_scope_missing_at_connect(mocked_graph):
    account = ig_account(
        age_days=3,
        expires_in_days=57,
        scopes=["instagram_business_basic", "instagram_business_manage_messages"],
    )
    mocked_graph.get(ME_URL, json={"id": account.ig_alt_id, "user_id": account.ig_user_id})

    assert tokens.account_token_check(account_id=account.pk).result == tokens.NEEDS_RECONNECT
    account.refresh_from_db()
    assert account.reconnect_reason == "permission_missing"
    assert "instagram_business_manage_comments" in account.status_reason


def test_instagram_token_close_to_expiry_warns(mocked_graph):
    account = ig_account(age_days=57, expires_in_days=3)
    mocked_graph.get(ME_URL, json={"id": account.ig_alt_id, "user_id": account.ig_user_id})

    outcome = tokens.account_token_check(account_id=account.pk)

    assert "could not be refreshed" in outcome.warning


# --- unusable stored tokens ---------------------------------------------------------------------
def test_a_token_that_cannot_be_decrypted_needs_reconnect_with_the_key_hint(mocked_graph, settings):
    account = InstagramAccountFactory(username="acme.studio")
    settings.TOKEN_ENCRYPTION_KEYS = ["a-new-key-without-the-old-one"]

    outcome = tokens.account_token_check(account_id=account.pk)

    assert outcome.result == tokens.NEEDS_RECONNECT
    account.refresh_from_db()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.reconnect_reason == "token_invalid"
    assert "cannot be decrypted" in account.status_reason
    assert "rotate_token_key" in account.status_reason
    assert len(mocked_graph.calls) == 0
    # Run again: nothing new happens.
    assert tokens.account_token_check(account_id=account.pk).result == (
        tokens.STILL_NEEDS_RECONNECT
    )
    assert audit(account, "needs_reconnect").count() == 1


def test_an_active_account_without_a_token_needs_reconnect(mocked_graph):
    account = InstagramAccountFactory()
    InstagramAccount.objects.filter(pk=account.pk).update(access_token_encrypted="")

    assert tokens.account_token_check(account_id=account.pk).result == tokens.NEEDS_RECONNECT
    assert len(mocked_graph.calls) == 0


# --- the command and the beat task --------------------------------------------------------------
def _command(*args) -> list[str]:
    out = StringIO()
    call_command("check_tokens", *args, stdout=out)
    return out.getvalue().splitlines()


def test_check_tokens_prints_one_line_per_account(mocked_graph):
    good = InstagramAccountFactory(username="a.good")
    revoked = InstagramAccountFactory(username="b.revoked", token="revoked-token")
    InstagramAccountFactory(username="c.disabled", status=AccountStatus.DISABLED)

    def answer(request):
        revoked_call = "revoked-token" in request.url
        data = {"is_valid": not revoked_call, "scopes": [] if revoked_call else FB_SCOPES}
        if revoked_call:
            data["error"] = {"code": 190, "subcode": 460, "message": "Session invalidated"}
        return 200, {}, json.dumps({"data": data})

    mocked_graph.add_callback(responses_lib.GET, DEBUG_URL, callback=answer)

    lines = _command()

    assert lines == [
        "@a.good: ok",
        "@b.revoked: needs reconnect - Reconnect @b.revoked: Meta says its token no longer "
        "works (Session invalidated (code 190/460))",
    ]
    assert InstagramAccount.objects.get(pk=good.pk).status == AccountStatus.ACTIVE
    entry = audit(revoked, "needs_reconnect").get()
    assert entry.actor_label == "check_tokens"


def test_check_tokens_for_one_account(mocked_graph):
    InstagramAccountFactory(username="a.other")
    InstagramAccountFactory(username="acme.studio")
    debug_answer(mocked_graph)

    assert _command("--account", "@acme.studio") == ["@acme.studio: ok"]
    assert len(mocked_graph.calls) == 1


def test_check_tokens_with_an_unknown_account_fails():
    with pytest.raises(CommandError, match="No connected account 'nobody'"):
        _command("--account", "nobody")


def test_the_daily_beat_task_checks_every_account(mocked_graph):
    accounts = [InstagramAccountFactory(), InstagramAccountFactory()]
    debug_answer(mocked_graph)

    assert check_tokens.delay().get() == 2

    for account in accounts:
        account.refresh_from_db()
        assert account.permissions_checked_at is not None


# --- against the Graph stand-in ------------------------------------------------------------------
FB_APP, FB_SECRET = "demo-app-id", "demo-app-secret"
IG_APP, IG_SECRET = "demo-instagram-app-id", "demo-instagram-app-secret"
REDIRECT = "http://dm.test/connect/instagram/callback/"


@pytest.fixture
def control(standin, settings):
    ctl = StandInControl(standin.url)
    ctl.reset()
    ctl.set_auto_approve(True)
    settings.META_GRAPH_URL = f"{standin.url}/v24.0"
    settings.META_INSTAGRAM_GRAPH_URL = f"{standin.url}/ig/v24.0"
    yield ctl
    ctl.close()


def _code(response: requests.Response) -> str:
    location = response.headers["Location"]
    return oauth.clean_code(parse_qs(urlsplit(location).query)["code"][0])


def instagram_login(standin) -> tuple[oauth.Token, tuple[str, str, str], tuple[str, ...]]:
    url = oauth.instagram_authorize_url(
        f"{standin.url}/instagram", IG_APP, REDIRECT, oauth.INSTAGRAM_LOGIN_SCOPES, "s"
    )
    code = _code(requests.get(url, allow_redirects=False, timeout=5))
    short = oauth.instagram_exchange_code(
        f"{standin.url}/instagram-api", IG_APP, IG_SECRET, REDIRECT, code
    )
    long = oauth.instagram_long_lived(f"{standin.url}/ig/v24.0", IG_SECRET, short.access_token)
    me = oauth.instagram_me(f"{standin.url}/ig/v24.0", long.access_token)
    return long, me, short.permissions


def facebook_login(standin) -> tuple[oauth.Token, oauth.PageChoice]:
    base = f"{standin.url}/v24.0"
    url = oauth.facebook_dialog_url(base, FB_APP, REDIRECT, oauth.FACEBOOK_LOGIN_SCOPES, "s")
    code = _code(requests.get(url, allow_redirects=False, timeout=5))
    short = oauth.facebook_exchange_code(base, FB_APP, FB_SECRET, REDIRECT, code)
    user = oauth.facebook_long_lived(base, FB_APP, FB_SECRET, short.access_token)
    (page,) = oauth.facebook_pages(base, user.access_token)
    return user, page


def test_standin_refresh_of_an_aging_instagram_token(control, standin):
    long, (app_scoped_id, ig_user_id, username), permissions = instagram_login(standin)
    control.update_token(long.access_token, age=51 * 86400)  # expires in 9 days
    now = timezone.now()
    account = InstagramLoginAccountFactory(
        ig_user_id=ig_user_id,
        ig_alt_id=app_scoped_id,
        username=username,
        token=long.access_token,
        scopes=list(permissions),
        token_refreshed_at=now - timedelta(days=51),
        token_expires_at=now + timedelta(days=9),
    )

    assert tokens.account_token_refresh(account_id=account.pk).result == tokens.REFRESHED

    account.refresh_from_db()
    assert account.access_token != long.access_token
    assert account.token_expires_at > now + timedelta(days=59)
    assert oauth.instagram_me(f"{standin.url}/ig/v24.0", account.access_token)[1] == ig_user_id
    assert tokens.account_token_check(account_id=account.pk).result == tokens.OK


def test_standin_expired_instagram_token_needs_reconnect(control, standin):
    long, (app_scoped_id, ig_user_id, username), _ = instagram_login(standin)
    control.update_token(long.access_token, age=61 * 86400)
    control.expire_token(long.access_token)
    account = InstagramLoginAccountFactory(
        ig_user_id=ig_user_id,
        ig_alt_id=app_scoped_id,
        username=username,
        token=long.access_token,
        token_refreshed_at=timezone.now() - timedelta(days=61),
        token_expires_at=timezone.now() - timedelta(days=1),
    )

    outcome = tokens.account_token_refresh(account_id=account.pk)

    assert outcome.result == tokens.NEEDS_RECONNECT
    account.refresh_from_db()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.reconnect_reason == "token_invalid"
    assert re.search(r"Session has expired", account.status_reason)


def test_standin_permission_removed_later_is_found_by_the_daily_check(control, standin):
    user, page = facebook_login(standin)
    account = InstagramAccountFactory(
        ig_user_id=page.ig_user_id,
        page_id=page.page_id,
        username=page.ig_username or "standin_0001",
        token=page.page_token,
        scopes=list(oauth.FACEBOOK_LOGIN_SCOPES),
    )
    assert tokens.account_token_check(account_id=account.pk).result == tokens.OK

    granted = [s for s in oauth.FACEBOOK_LOGIN_SCOPES if s != "instagram_manage_messages"]
    control.update_token(user.access_token, scopes=granted)
    outcome = tokens.account_token_check(account_id=account.pk)

    assert outcome.result == tokens.NEEDS_RECONNECT
    account.refresh_from_db()
    assert account.reconnect_reason == "permission_missing"
    assert "no longer grants instagram_manage_messages" in account.status_reason
