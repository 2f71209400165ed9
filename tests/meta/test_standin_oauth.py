"""The OAuth journeys against a real stand-in over HTTP, driven by the product's meta/oauth.py.

Bases as the product would configure them against the stand-in (docs/standin.md, "Hosts and
URL prefixes"): META_GRAPH_URL and META_OAUTH_URL = {url}/v24.0, META_INSTAGRAM_GRAPH_URL =
{url}/ig/v24.0, INSTAGRAM_OAUTH_URL = {url}/instagram, INSTAGRAM_API_URL = {url}/instagram-api.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from meta import oauth
from meta.client import GraphClient, Outcome
from meta.errors import Reason
from meta.oauth import OAuthError
from meta.signatures import parse_signed_request
from meta.standin import StandIn, StandInControl

FB_APP, FB_SECRET = "demo-app-id", "demo-app-secret"
IG_APP, IG_SECRET = "demo-instagram-app-id", "demo-instagram-app-secret"
REDIRECT = "http://dm.test/connect/instagram/callback/"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Bases:
    url: str

    @property
    def graph(self) -> str:
        return f"{self.url}/v24.0"

    @property
    def oauth(self) -> str:
        return f"{self.url}/v24.0"

    @property
    def ig_graph(self) -> str:
        return f"{self.url}/ig/v24.0"

    @property
    def ig_oauth(self) -> str:
        return f"{self.url}/instagram"

    @property
    def ig_api(self) -> str:
        return f"{self.url}/instagram-api"


@pytest.fixture
def control(standin: StandIn):
    ctl = StandInControl(standin.url)
    ctl.reset()
    yield ctl
    ctl.close()


@pytest.fixture
def bases(standin: StandIn, control: StandInControl) -> Bases:
    return Bases(standin.url)


class _Form(HTMLParser):
    """The consent page's form as a browser would submit it."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self.buttons: dict[str, tuple[str, str]] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and (a.get("type") == "hidden" or "checked" in a):
            self.fields.append((a["name"], a["value"]))
        if tag == "button":
            self.buttons[a["id"]] = (a["name"], a["value"])

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_form(page: str) -> _Form:
    form = _Form()
    form.feed(page)
    return form


def click(url: str, page: str, button: str, untick: tuple[str, ...] = ()) -> requests.Response:
    """Submit the consent form with one of its buttons, like Playwright clicking it."""
    form = parse_form(page)
    fields = [(k, v) for k, v in form.fields if not (k == "granted" and v in untick)]
    fields.append(form.buttons[button])
    return requests.post(url, data=fields, allow_redirects=False, timeout=5)


def redirect_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def facebook_code(bases: Bases, scopes=oauth.FACEBOOK_LOGIN_SCOPES, state: str = "st") -> str:
    """The dialog with auto-approve on: a plain GET answers the redirect at once."""
    url = oauth.facebook_dialog_url(bases.oauth, FB_APP, REDIRECT, scopes, state)
    response = requests.get(url, allow_redirects=False, timeout=5)
    params = redirect_params(response)
    assert params["state"] == state
    return params["code"]


def facebook_login(bases: Bases) -> tuple[oauth.Token, list[oauth.PageChoice]]:
    code = facebook_code(bases)
    short = oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)
    user = oauth.facebook_long_lived(bases.graph, FB_APP, FB_SECRET, short.access_token)
    return user, oauth.facebook_pages(bases.graph, user.access_token)


def instagram_redirect(bases: Bases, state: str = "ig-st") -> requests.Response:
    url = oauth.instagram_authorize_url(
        bases.ig_oauth, IG_APP, REDIRECT, oauth.INSTAGRAM_LOGIN_SCOPES, state
    )
    return requests.get(url, allow_redirects=False, timeout=5)


def instagram_login(bases: Bases) -> tuple[oauth.InstagramToken, oauth.Token]:
    response = instagram_redirect(bases)
    redirect = oauth.read_redirect(redirect_params(response))
    short = oauth.instagram_exchange_code(bases.ig_api, IG_APP, IG_SECRET, REDIRECT, redirect.code)
    long = oauth.instagram_long_lived(bases.ig_graph, IG_SECRET, short.access_token)
    return short, long


def private_reply(base: str, token: str, sender: str, comment: str = "1790001"):
    return GraphClient(base, token).send_private_reply(sender, comment, {"text": "Here you go"})


# --- Facebook Login: the consent page ------------------------------------------------------------
def test_facebook_consent_page_continue(bases: Bases, control: StandInControl) -> None:
    control.define_person(
        name="Ana Owner", pages=[{"name": "Acme", "instagram": {"username": "acme"}}]
    )
    url = oauth.facebook_dialog_url(
        bases.oauth, FB_APP, REDIRECT, oauth.FACEBOOK_LOGIN_SCOPES, "s1"
    )
    page = requests.get(url, allow_redirects=False, timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    text = page.text
    assert 'id="standin-approve"' in text and ">Continue<" in text
    assert 'id="standin-cancel"' in text and ">Cancel<" in text
    assert FB_APP in text and "Ana Owner" in text and "@acme" in text
    for scope in oauth.FACEBOOK_LOGIN_SCOPES:
        assert f'id="standin-scope-{scope}"' in text

    params = redirect_params(click(url, text, "standin-approve"))
    assert params["state"] == "s1"
    assert set(params) == {"code", "state"}
    token = oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, params["code"])
    info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, token.access_token)
    assert info.is_valid and info.missing(oauth.FACEBOOK_LOGIN_SCOPES) == ()


def test_facebook_consent_page_unticked_scope_is_declined(bases: Bases) -> None:
    url = oauth.facebook_dialog_url(bases.oauth, FB_APP, REDIRECT, oauth.FACEBOOK_LOGIN_SCOPES, "s")
    page = requests.get(url, timeout=5).text
    response = click(url, page, "standin-approve", untick=("instagram_manage_messages",))
    code = redirect_params(response)["code"]
    token = oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)
    info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, token.access_token)
    assert info.missing(oauth.FACEBOOK_LOGIN_SCOPES) == ("instagram_manage_messages",)


def test_facebook_consent_page_cancel(bases: Bases) -> None:
    url = oauth.facebook_dialog_url(bases.oauth, FB_APP, REDIRECT, ["pages_show_list"], "s2")
    page = requests.get(url, timeout=5).text
    params = redirect_params(click(url, page, "standin-cancel"))
    assert params == {
        "error": "access_denied",
        "error_reason": "user_denied",
        "error_description": "Permissions error",
        "state": "s2",
    }
    redirect = oauth.read_redirect(params)
    assert redirect.denied and redirect.state == "s2"


def test_consent_setting_cancel_redirects_at_once(bases: Bases, control: StandInControl) -> None:
    control.set_oauth_settings(consent="cancel")
    url = oauth.facebook_dialog_url(bases.oauth, FB_APP, REDIRECT, ["pages_show_list"], "s3")
    assert redirect_params(requests.get(url, allow_redirects=False, timeout=5))["error"] == (
        "access_denied"
    )


@pytest.mark.parametrize(
    ("drop", "change", "text"),
    [
        (None, {"client_id": "nope"}, "Invalid App ID"),
        ("redirect_uri", {}, "redirect_uri is required"),
        ("response_type", {}, "response_type is required"),
        (None, {"response_type": "token"}, "use response_type=code"),
        (None, {"scope": "pages_show_list,made_up_scope"}, "Invalid Scopes: made_up_scope"),
        (None, {"redirect_uri": "javascript:alert(1)"}, "URL Blocked"),
    ],
)
def test_facebook_dialog_errors_are_html_400(
    bases: Bases, drop: str | None, change: dict[str, str], text: str
) -> None:
    params = {
        "client_id": FB_APP,
        "redirect_uri": REDIRECT,
        "scope": "pages_show_list",
        "state": "s",
        "response_type": "code",
        **change,
    }
    params.pop(drop or "", None)
    response = requests.get(f"{bases.oauth}/dialog/oauth", params=params, timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert text in response.text


def test_registered_redirect_uris_are_enforced(bases: Bases, control: StandInControl) -> None:
    control.set_oauth_app("facebook", redirect_uris=["https://dm.example.com/cb/"])
    url = oauth.facebook_dialog_url(bases.oauth, FB_APP, REDIRECT, ["pages_show_list"], "s")
    response = requests.get(url, timeout=5)
    assert response.status_code == 400
    assert "URL Blocked" in response.text


# --- Facebook Login: the journey -----------------------------------------------------------------
def test_facebook_journey(bases: Bases, control: StandInControl) -> None:
    person = control.define_person(
        id="10150000000000777",
        name="Ana",
        pages=[
            {
                "id": "102000000000777",
                "name": "Acme Studio",
                "instagram": {"id": "17841400000000777", "username": "acme.studio"},
            }
        ],
    )
    assert person["current"] is True
    control.set_auto_approve(True)
    code = facebook_code(bases)

    short = oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)
    assert short.expires_in is not None and 3000 < short.expires_in <= 3600
    user = oauth.facebook_long_lived(bases.graph, FB_APP, FB_SECRET, short.access_token)
    assert user.expires_in is not None and user.expires_in > 5_000_000
    assert user.access_token != short.access_token

    (page,) = oauth.facebook_pages(bases.graph, user.access_token)
    assert (page.page_id, page.name) == ("102000000000777", "Acme Studio")
    assert (page.ig_user_id, page.ig_username) == ("17841400000000777", "acme.studio")
    assert {"MESSAGING", "MODERATE"} <= set(page.tasks)
    assert page.missing_tasks == ()
    # Asking again gives the same Page token.
    assert oauth.facebook_pages(bases.graph, user.access_token)[0].page_token == page.page_token

    info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, page.page_token)
    assert info.is_valid and info.type == "PAGE"
    assert info.profile_id == page.page_id
    assert info.user_id == "10150000000000777"
    assert info.expires_at is None  # from a long-lived user token: never expires
    assert info.missing(oauth.FACEBOOK_LOGIN_SCOPES) == ()
    assert ("instagram_manage_messages", ("17841400000000777",)) in info.granular_scopes
    user_info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, user.access_token)
    assert user_info.type == "USER" and user_info.expires_at is not None

    # The Page token installs the app on the Page (a Page field) and sends for it.
    fields = oauth.PAGE_WEBHOOK_FIELDS
    assert oauth.subscribe_webhooks(bases.graph, page.page_id, page.page_token, fields)
    assert control.subscriptions() == {page.page_id: list(fields)}
    assert oauth.subscribed_fields(
        bases.graph, page.page_id, page.page_token, app_id=FB_APP
    ) == tuple(fields)
    # Another app's entry is not ours.
    assert oauth.subscribed_fields(bases.graph, page.page_id, page.page_token, app_id="x") is None
    result = private_reply(bases.graph, page.page_token, page.page_id)
    assert result.outcome is Outcome.SENT, result.message
    me = GraphClient(bases.graph, page.page_token).get("/me", {"fields": "name"})
    assert me.data == {"id": page.page_id, "name": "Acme Studio"}
    ig = GraphClient(bases.graph, page.page_token).get(
        f"/{page.ig_user_id}", {"fields": "username"}
    )
    assert ig.data == {"id": page.ig_user_id, "username": "acme.studio"}

    (sent,) = control.requests(endpoint="private_reply")
    assert sent["sender"] == page.page_id


def test_facebook_code_is_single_use(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    code = facebook_code(bases)
    oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)
    assert (caught.value.code, caught.value.subcode) == (100, 36009)
    assert "has been used" in caught.value.message
    assert caught.value.fbtrace_id


def test_facebook_code_is_bound_to_redirect_uri(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    code = facebook_code(bases)
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT + "other/", code)
    assert (caught.value.code, caught.value.subcode) == (100, 36008)
    assert "redirect_uri is identical" in caught.value.message
    # The mismatch did not use the code up.
    oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)


def test_facebook_exchange_refuses_bad_app_or_code(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    code = facebook_code(bases)
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_exchange_code(bases.graph, FB_APP, "wrong", REDIRECT, code)
    assert caught.value.code == 1
    assert caught.value.message == "Error validating client secret."
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_exchange_code(bases.graph, "other-app", FB_SECRET, REDIRECT, code)
    assert caught.value.code == 101
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, "AQmadeup")
    assert caught.value.code == 100
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_long_lived(bases.graph, FB_APP, FB_SECRET, "EAAnever-issued")
    assert caught.value.token_invalid


def test_configured_app_credentials(bases: Bases, control: StandInControl) -> None:
    control.set_oauth_app("facebook", app_id="42", app_secret="forty-two")
    assert control.oauth_apps()["facebook"]["app_id"] == "42"
    assert control.oauth_apps()["facebook"]["app_secret"] == "fort…"  # masked
    control.set_auto_approve(True)
    url = oauth.facebook_dialog_url(bases.oauth, "42", REDIRECT, ["pages_show_list"], "s")
    code = redirect_params(requests.get(url, allow_redirects=False, timeout=5))["code"]
    token = oauth.facebook_exchange_code(bases.graph, "42", "forty-two", REDIRECT, code)
    assert oauth.debug_token(bases.graph, "42", "forty-two", token.access_token).app_id == "42"
    with pytest.raises(OAuthError):
        oauth.debug_token(bases.graph, FB_APP, FB_SECRET, token.access_token)


def test_declined_scope(bases: Bases, control: StandInControl) -> None:
    granted = [s for s in oauth.FACEBOOK_LOGIN_SCOPES if s != "instagram_manage_messages"]
    control.define_person(scopes=granted)
    control.set_auto_approve(True)
    user, (page,) = facebook_login(bases)

    info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, user.access_token)
    assert info.is_valid
    assert info.missing(oauth.FACEBOOK_LOGIN_SCOPES) == ("instagram_manage_messages",)
    permissions = GraphClient(bases.graph, user.access_token).get("/me/permissions").data["data"]
    assert {"permission": "instagram_manage_messages", "status": "declined"} in permissions
    assert {"permission": "pages_show_list", "status": "granted"} in permissions

    # Sending needs the declined permission: Meta's code 10, permission_missing for us.
    result = private_reply(bases.graph, page.page_token, page.page_id)
    assert result.outcome is Outcome.FAILED
    assert (result.code, result.reason) == (10, Reason.PERMISSION_MISSING)
    # Comments were granted.
    assert GraphClient(bases.graph, page.page_token).reply_to_comment("1790002", "hi").ok


def test_pages_list_needs_pages_show_list(bases: Bases, control: StandInControl) -> None:
    control.define_person(scopes=["instagram_basic"])
    control.set_auto_approve(True)
    _, pages = facebook_login(bases)
    assert pages == []


def test_pages_paging_tasks_and_unlinked_pages(
    bases: Bases, control: StandInControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    control.define_person(
        pages=[
            {
                "id": "9001",
                "name": "One",
                "instagram": {"id": "17841000000009001", "username": "one"},
            },
            {"id": "9002", "name": "No IG", "instagram": None},
            {
                "id": "9003",
                "name": "Analyst only",
                "tasks": ["ANALYZE"],
                "instagram": {"id": "17841000000009003", "username": "three"},
            },
        ]
    )
    control.set_auto_approve(True)
    monkeypatch.setattr(oauth, "PAGES_PER_REQUEST", 2)
    _, pages = facebook_login(bases)
    assert [p.page_id for p in pages] == ["9001", "9002", "9003"]
    assert [p.has_instagram for p in pages] == [True, False, True]
    assert pages[2].ig_username == "three"
    assert pages[2].missing_tasks == ("MESSAGING", "MODERATE")
    calls = control.requests(endpoint="me_accounts")
    assert [c["query"].get("after") is not None for c in calls] == [False, True]
    assert "next" in calls[0]["response"]["paging"]
    assert "next" not in calls[1]["response"]["paging"]

    # A Page where the person lacks the MESSAGING task cannot send.
    result = private_reply(bases.graph, pages[2].page_token, "9003")
    assert (result.code, result.reason) == (10, Reason.PERMISSION_MISSING)


def test_page_token_acts_only_for_its_page(bases: Bases, control: StandInControl) -> None:
    control.define_person(pages=[{"id": "9101", "instagram": {}}, {"id": "9102", "instagram": {}}])
    control.set_auto_approve(True)
    _, pages = facebook_login(bases)
    token_9101 = pages[0].page_token
    assert private_reply(bases.graph, token_9101, "9101").ok
    other = private_reply(bases.graph, token_9101, "9102", comment="1790003")
    assert (other.code, other.subcode) == (100, 33)
    refused = requests.post(
        f"{bases.graph}/9102/subscribed_apps",
        params={"subscribed_fields": "messages", "access_token": token_9101},
        timeout=5,
    )
    assert refused.status_code == 400


def test_revoked_and_deauthorized_tokens(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    user, (page,) = facebook_login(bases)

    control.revoke_token(user.access_token)
    info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, user.access_token)
    assert info.is_valid is False
    assert (info.error_code, info.error_subcode) == (190, 460)
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_pages(bases.graph, user.access_token)
    assert caught.value.token_invalid
    # The Page token is its own token: revoking the user token leaves it working.
    assert oauth.debug_token(bases.graph, FB_APP, FB_SECRET, page.page_token).is_valid

    # The person removes the app: every token of the login dies, and Meta calls back.
    callback = control.deauthorize(page.page_token)
    assert callback["revoked"] >= 2
    payload = parse_signed_request(callback["signed_request"], [FB_SECRET])
    assert payload["user_id"] == callback["user_id"]
    assert payload["algorithm"] == "HMAC-SHA256"
    page_info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, page.page_token)
    assert (page_info.is_valid, page_info.error_subcode) == (False, 458)
    result = private_reply(bases.graph, page.page_token, page.page_id)
    assert (result.code, result.subcode, result.reason) == (190, 458, Reason.TOKEN_INVALID)


def test_expired_user_token(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    code = facebook_code(bases)
    short = oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)
    described = control.expire_token(short.access_token)
    assert described["is_valid"] is False and described["error_subcode"] == 463
    info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, short.access_token)
    assert (info.is_valid, info.error_code, info.error_subcode) == (False, 190, 463)
    assert "expired" in info.error_message
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_long_lived(bases.graph, FB_APP, FB_SECRET, short.access_token)
    assert (caught.value.code, caught.value.subcode) == (190, 463)


def test_permission_removed_later(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    user, (page,) = facebook_login(bases)
    scopes = [s for s in oauth.FACEBOOK_LOGIN_SCOPES if s != "pages_manage_metadata"]
    control.update_token(page.page_token, scopes=scopes)
    # Scopes belong to the login: the user token sees the change too.
    info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, user.access_token)
    assert info.missing(oauth.FACEBOOK_LOGIN_SCOPES) == ("pages_manage_metadata",)
    with pytest.raises(OAuthError) as caught:
        oauth.subscribe_webhooks(bases.graph, page.page_id, page.page_token)
    assert caught.value.code == 200


def test_strict_tokens_and_lenient_default(bases: Bases, control: StandInControl) -> None:
    # By default a token nobody issued still works (the stand-in's old behaviour)...
    assert GraphClient(bases.graph, "EAAmadeup").get("/me").ok
    info = oauth.debug_token(bases.graph, FB_APP, FB_SECRET, "EAAmadeup")
    assert info.is_valid
    # ...and is refused once strict.
    control.set_oauth_settings(strict_tokens=True)
    assert GraphClient(bases.graph, "EAAmadeup").get("/me").code == 190
    assert oauth.debug_token(bases.graph, FB_APP, FB_SECRET, "EAAmadeup").is_valid is False
    control.register_account("EAAregistered", "17841400000000009")
    assert GraphClient(bases.graph, "EAAregistered").get("/me").ok


# --- Instagram Login -----------------------------------------------------------------------------
def test_instagram_consent_page(bases: Bases, control: StandInControl) -> None:
    control.define_person(instagram={"id": "17841400000000555", "username": "studio.ig"})
    url = oauth.instagram_authorize_url(
        bases.ig_oauth, IG_APP, REDIRECT, oauth.INSTAGRAM_LOGIN_SCOPES, "x"
    )
    page = requests.get(url, timeout=5)
    assert page.status_code == 200
    assert "@studio.ig" in page.text and IG_APP in page.text
    response = click(url, page.text, "standin-approve")
    assert response.headers["Location"].endswith("#_")
    assert redirect_params(response)["state"] == "x"
    cancel = redirect_params(click(url, page.text, "standin-cancel"))
    assert cancel["error"] == "access_denied" and cancel["error_reason"] == "user_denied"


def test_instagram_journey(bases: Bases, control: StandInControl) -> None:
    control.define_person(instagram={"id": "17841400000000555", "username": "studio.ig"})
    control.set_auto_approve(True)
    response = instagram_redirect(bases)
    location = response.headers["Location"]
    assert location.endswith("#_")  # as Meta does: the product strips it
    redirect = oauth.read_redirect(redirect_params(response))
    assert not redirect.code.endswith("#_")

    # The code with its "#_" still on is refused by Meta: clean_code takes it off.
    raw = requests.post(
        f"{bases.ig_api}/oauth/access_token",
        data={
            "client_id": IG_APP,
            "client_secret": IG_SECRET,
            "grant_type": "authorization_code",
            "redirect_uri": REDIRECT,
            "code": redirect.code + "#_",
        },
        timeout=5,
    )
    assert raw.status_code == 400
    assert raw.json() == {
        "error_type": "OAuthException",
        "code": 400,
        "error_message": "Invalid authorization code",
    }
    short = oauth.instagram_exchange_code(
        bases.ig_api, IG_APP, IG_SECRET, REDIRECT, redirect.code + "#_"
    )
    assert short.permissions == oauth.INSTAGRAM_LOGIN_SCOPES
    long = oauth.instagram_long_lived(bases.ig_graph, IG_SECRET, short.access_token)
    assert long.expires_in is not None and long.expires_in > 5_000_000
    app_scoped_id, ig_user_id, username = oauth.instagram_me(bases.ig_graph, long.access_token)
    assert (ig_user_id, username) == ("17841400000000555", "studio.ig")
    assert app_scoped_id == short.user_id != ig_user_id  # meta-api.md 2.1: keep both

    assert oauth.subscribe_webhooks(bases.ig_graph, "me", long.access_token)
    assert control.subscriptions() == {app_scoped_id: list(oauth.WEBHOOK_FIELDS)}
    client = GraphClient(bases.ig_graph, long.access_token)
    assert client.send_message(ig_user_id, "6301", {"text": "hi"}).ok
    assert client.send_message("me", "6301", {"text": "hi again"}).ok

    # An Instagram Login token means nothing to graph.facebook.com, and the other way round.
    wrong_host = GraphClient(bases.graph, long.access_token).get("/me")
    assert (wrong_host.code, wrong_host.reason) == (190, Reason.TOKEN_INVALID)
    assert oauth.debug_token(bases.graph, FB_APP, FB_SECRET, long.access_token).is_valid is False


def test_instagram_data_shape(bases: Bases, control: StandInControl) -> None:
    control.set_oauth_settings(instagram_token_shape="data", auto_approve=True)
    redirect = oauth.read_redirect(redirect_params(instagram_redirect(bases)))
    raw = requests.post(
        f"{bases.ig_api}/oauth/access_token",
        data={
            "client_id": IG_APP,
            "client_secret": IG_SECRET,
            "grant_type": "authorization_code",
            "redirect_uri": REDIRECT,
            "code": redirect.code,
        },
        timeout=5,
    )
    (item,) = raw.json()["data"]
    assert isinstance(item["user_id"], str)
    assert item["permissions"] == ",".join(oauth.INSTAGRAM_LOGIN_SCOPES)

    control.set_auto_approve(True)
    redirect = oauth.read_redirect(redirect_params(instagram_redirect(bases)))
    token = oauth.instagram_exchange_code(bases.ig_api, IG_APP, IG_SECRET, REDIRECT, redirect.code)
    assert token.permissions == oauth.INSTAGRAM_LOGIN_SCOPES
    assert token.user_id == item["user_id"]


def test_instagram_code_errors(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    code = oauth.read_redirect(redirect_params(instagram_redirect(bases))).code
    with pytest.raises(OAuthError) as caught:
        oauth.instagram_exchange_code(bases.ig_api, IG_APP, IG_SECRET, REDIRECT + "x/", code)
    assert "redirect_uri is identical" in caught.value.message
    with pytest.raises(OAuthError, match="client secret"):
        oauth.instagram_exchange_code(bases.ig_api, IG_APP, "wrong", REDIRECT, code)
    with pytest.raises(OAuthError, match="Invalid platform app"):
        oauth.instagram_exchange_code(bases.ig_api, FB_APP, IG_SECRET, REDIRECT, code)
    oauth.instagram_exchange_code(bases.ig_api, IG_APP, IG_SECRET, REDIRECT, code)
    with pytest.raises(OAuthError) as caught:
        oauth.instagram_exchange_code(bases.ig_api, IG_APP, IG_SECRET, REDIRECT, code)
    assert caught.value.message == "This authorization code has been used"
    assert (caught.value.code, caught.value.http_status) == (400, 400)
    get = requests.get(f"{bases.ig_api}/oauth/access_token", timeout=5)
    assert get.status_code == 405


@pytest.mark.parametrize(
    ("scope", "text"),
    [
        ("business_basic,business_manage_messages", "Retired in January 2025"),
        ("instagram_business_manage_messages", "must include instagram_business_basic"),
        ("instagram_business_basic,pages_show_list", "Invalid Scopes: pages_show_list"),
    ],
)
def test_instagram_authorize_scope_errors(bases: Bases, scope: str, text: str) -> None:
    url = oauth.instagram_authorize_url(bases.ig_oauth, IG_APP, REDIRECT, [scope], "s")
    response = requests.get(url, timeout=5)
    assert response.status_code == 400
    assert text in response.text


def test_instagram_authorize_refuses_facebook_app_id(bases: Bases) -> None:
    url = oauth.instagram_authorize_url(
        bases.ig_oauth, FB_APP, REDIRECT, ["instagram_business_basic"], "s"
    )
    response = requests.get(url, timeout=5)
    assert response.status_code == 400
    assert "Invalid platform app" in response.text


def test_instagram_refresh_age_and_expiry(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    short, long = instagram_login(bases)

    # Younger than 24 h: refused.
    with pytest.raises(OAuthError) as caught:
        oauth.instagram_refresh(bases.ig_graph, long.access_token)
    assert caught.value.code == 100
    assert "24 hours" in caught.value.message
    # A short-lived token cannot be refreshed at all.
    control.update_token(short.access_token, age=3 * 86400, expires_at=time.time() + 600)
    with pytest.raises(OAuthError, match="long-lived"):
        oauth.instagram_refresh(bases.ig_graph, short.access_token)

    # Two days old: refreshed into a new 60-day token.
    aged = control.update_token(long.access_token, age=2 * 86400)
    assert aged["issued_at"] <= time.time() - 2 * 86400 + 5
    fresh = oauth.instagram_refresh(bases.ig_graph, long.access_token)
    assert fresh.access_token != long.access_token
    assert fresh.expires_in is not None and fresh.expires_in > 5_000_000
    assert oauth.instagram_me(bases.ig_graph, fresh.access_token)[2]

    # Expired: refused with 190 (reconnect), both to refresh and to use.
    control.expire_token(fresh.access_token)
    with pytest.raises(OAuthError) as caught:
        oauth.instagram_refresh(bases.ig_graph, fresh.access_token)
    assert caught.value.token_invalid and caught.value.subcode == 463
    with pytest.raises(OAuthError) as caught:
        oauth.instagram_me(bases.ig_graph, fresh.access_token)
    assert caught.value.token_invalid


def test_instagram_early_refresh_allowed_by_setting(bases: Bases, control: StandInControl) -> None:
    control.set_oauth_settings(allow_early_refresh=True, consent="approve")
    _, long = instagram_login(bases)
    assert oauth.instagram_refresh(bases.ig_graph, long.access_token).access_token


def test_instagram_token_endpoints_versioned_and_not(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    short, _ = instagram_login(bases)
    for path in ("/ig/access_token", "/ig/v24.0/access_token"):
        again = oauth.read_redirect(redirect_params(instagram_redirect(bases)))
        token = oauth.instagram_exchange_code(bases.ig_api, IG_APP, IG_SECRET, REDIRECT, again.code)
        response = requests.get(
            bases.url + path,
            params={
                "grant_type": "ig_exchange_token",
                "client_secret": IG_SECRET,
                "access_token": token.access_token,
            },
            timeout=5,
        )
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "bearer"
    # graph.facebook.com has no such endpoint.
    facebook_host = requests.get(
        bases.graph + "/access_token",
        params={
            "grant_type": "ig_exchange_token",
            "client_secret": IG_SECRET,
            "access_token": short.access_token,
        },
        timeout=5,
    )
    assert facebook_host.json()["error"]["error_subcode"] == 33
    with pytest.raises(OAuthError, match="client secret"):
        oauth.instagram_long_lived(bases.ig_graph, "wrong", short.access_token)


def test_single_base_setup_when_host_checks_are_off(bases: Bases, control: StandInControl) -> None:
    # Older setups point META_INSTAGRAM_GRAPH_URL at /v24.0 too.
    control.set_oauth_settings(check_token_host=False, consent="approve")
    short, _ = instagram_login(bases)
    long = oauth.instagram_long_lived(bases.graph, IG_SECRET, short.access_token)
    assert oauth.instagram_me(bases.graph, long.access_token)[1]


# --- control API, faults and the log -------------------------------------------------------------
def test_tokens_list_is_masked_and_filterable(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    user, (page,) = facebook_login(bases)
    _, ig_long = instagram_login(bases)
    tokens = control.tokens()
    assert len(tokens) == 5  # Facebook short, long and Page; Instagram short and long
    dumped = json.dumps(tokens)
    for secret in (user.access_token, page.page_token, ig_long.access_token):
        assert secret not in dumped
    pages = control.tokens(kind="PAGE")
    assert [t["page_id"] for t in pages] == [page.page_id]
    assert pages[0]["expires_at"] == 0 and pages[0]["is_valid"] is True
    by_handle = control.expire_token(pages[0]["handle"])
    assert by_handle["is_valid"] is False
    assert {t["login"] for t in control.tokens(login="instagram")} == {"instagram"}


def test_control_validation(control: StandInControl) -> None:
    with pytest.raises(requests.HTTPError, match="consent"):
        control.set_oauth_settings(consent="maybe")
    with pytest.raises(requests.HTTPError, match="unknown setting"):
        control.set_oauth_settings(colour="blue")
    with pytest.raises(requests.HTTPError, match="unknown login"):
        control._call("POST", "oauth/apps", json={"tiktok": {}})
    with pytest.raises(requests.HTTPError, match="pages must be a list"):
        control.define_person(pages="many")  # type: ignore[arg-type]
    with pytest.raises(requests.HTTPError, match="no issued token"):
        control.expire_token("EAAnever")
    with pytest.raises(requests.HTTPError, match="unknown field"):
        control._call("POST", "oauth/tokens/update", json={"token": "x", "colour": 1})


def test_reset_restores_oauth_defaults(bases: Bases, control: StandInControl) -> None:
    control.set_oauth_app("facebook", app_id="42", app_secret="x")
    control.set_oauth_settings(consent="approve", strict_tokens=True)
    control.define_person(name="Someone")
    control.reset()
    assert control.oauth_apps()["facebook"]["app_id"] == FB_APP
    assert control.oauth_settings() == {
        "consent": "ask",
        "auto_approve": False,
        "instagram_token_shape": "flat",
        "allow_early_refresh": False,
        "check_token_host": True,
        "strict_tokens": False,
    }
    assert control.people() == {"people": [], "current": None}
    assert control.tokens() == []


def test_people_defaults(control: StandInControl) -> None:
    person = control.define_person()
    (page,) = person["pages"]
    assert page["instagram"]["id"] != page["instagram"]["app_user_id"]
    assert person["instagram"] == page["instagram"]
    assert page["tasks"] == [
        "ADVERTISE",
        "ANALYZE",
        "CREATE_CONTENT",
        "MESSAGING",
        "MODERATE",
        "MANAGE",
    ]
    other = control.define_person(name="Not logging in", login=False)
    listed = control.people()
    assert listed["current"] == person["id"] != other["id"]
    assert len(listed["people"]) == 2


def test_signed_request_helper(control: StandInControl) -> None:
    signed = control.signed_request("instagram", user_id="27841")
    payload = parse_signed_request(signed, [FB_SECRET, IG_SECRET])
    assert payload["user_id"] == "27841" and payload["issued_at"] > 0
    with pytest.raises(Exception, match="signature"):
        parse_signed_request(signed, FB_SECRET)


def test_faults_on_oauth_endpoints(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    code = facebook_code(bases)
    control.add_fault("oauth_access_token", status=503)
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)
    assert caught.value.retryable and caught.value.http_status == 503
    # The fault had no side effect: the code still works.
    oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)
    control.add_fault("oauth_dialog", status=500)
    url = oauth.facebook_dialog_url(bases.oauth, FB_APP, REDIRECT, ["pages_show_list"], "s")
    page = requests.get(url, allow_redirects=False, timeout=5)
    assert page.status_code == 500 and page.headers["Content-Type"].startswith("text/html")


def test_log_masks_tokens_secrets_and_codes(bases: Bases, control: StandInControl) -> None:
    control.set_auto_approve(True)
    code = facebook_code(bases)
    short = oauth.facebook_exchange_code(bases.graph, FB_APP, FB_SECRET, REDIRECT, code)
    user = oauth.facebook_long_lived(bases.graph, FB_APP, FB_SECRET, short.access_token)
    (page,) = oauth.facebook_pages(bases.graph, user.access_token)
    oauth.debug_token(bases.graph, FB_APP, FB_SECRET, page.page_token)
    ig_short, ig_long = instagram_login(bases)
    log = control.requests()
    assert [e["endpoint"] for e in log] == [
        "oauth_dialog",
        "oauth_access_token",
        "oauth_access_token",
        "me_accounts",
        "debug_token",
        "ig_authorize",
        "ig_oauth_access_token",
        "ig_exchange_token",
    ]
    assert [e["host"] for e in log][-3:] == ["instagram-web", "instagram-api", "instagram"]
    dumped = json.dumps(log, ensure_ascii=False)
    secrets = [code, short.access_token, user.access_token, page.page_token]
    secrets += [ig_short.access_token, ig_long.access_token, FB_SECRET, IG_SECRET]
    for secret in secrets:
        assert secret not in dumped
    assert log[0]["response"]["redirect"].startswith(REDIRECT + "?code=AQ")
    assert log[4]["token"] == f"{FB_APP}|…"


def test_command_line_apps_and_auto_approve() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meta.standin",
            "--port",
            "0",
            "--app-id",
            "777",
            "--app-secret",
            "seven",
            "--auto-approve",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline())
        assert match
        bases = Bases(match.group(0))
        control = StandInControl(bases.url)
        control.reset()  # the command line's apps and consent survive a reset
        url = oauth.facebook_dialog_url(bases.oauth, "777", REDIRECT, ["pages_show_list"], "s")
        code = redirect_params(requests.get(url, allow_redirects=False, timeout=5))["code"]
        token = oauth.facebook_exchange_code(bases.graph, "777", "seven", REDIRECT, code)
        assert oauth.debug_token(bases.graph, "777", "seven", token.access_token).is_valid
        control.close()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
