"""meta/oauth.py against mocked Meta answers: URLs, parameters, both answer shapes, paging and
the mapping of every error shape to OAuthError."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from meta import oauth
from meta.oauth import OAuthError

GRAPH = "https://graph.facebook.com/v24.0"
IG_GRAPH = "https://graph.instagram.com/v24.0"
IG_API = "https://api.instagram.com"
APP_ID, APP_SECRET = "1234567890", "s3cret-app"
REDIRECT = "https://dm.example.com/connect/instagram/callback/"


@pytest.fixture
def mock():
    with responses.RequestsMock() as rsps:
        yield rsps


def graph_error(code: int, message: str, subcode: int | None = None, **extra: Any) -> dict:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "ATrace1"}
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    return {"error": error}


def query_of(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


# --- constants -----------------------------------------------------------------------------------
def test_scope_constants_follow_meta_api_md() -> None:
    assert set(oauth.FACEBOOK_LOGIN_SCOPES) >= {
        "instagram_basic",
        "instagram_manage_comments",
        "instagram_manage_messages",
        "pages_show_list",
        "pages_read_engagement",
        "pages_manage_metadata",
        "pages_messaging",
    }
    assert oauth.INSTAGRAM_LOGIN_SCOPES == (
        "instagram_business_basic",
        "instagram_business_manage_messages",
        "instagram_business_manage_comments",
    )
    assert not any(s.startswith("business_") for s in oauth.INSTAGRAM_LOGIN_SCOPES)
    assert oauth.WEBHOOK_FIELDS == (
        "comments",
        "live_comments",
        "messages",
        "messaging_postbacks",
        "messaging_seen",
        "message_reactions",
        "messaging_referral",
    )


# --- URLs and the redirect ------------------------------------------------------------------
def test_facebook_dialog_url() -> None:
    url = oauth.facebook_dialog_url(
        "https://www.facebook.com/v24.0/", APP_ID, REDIRECT, ["a_b", "c"], "st&ate"
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://www.facebook.com/v24.0/dialog/oauth"
    )
    assert parse_qs(parts.query) == {
        "client_id": [APP_ID],
        "redirect_uri": [REDIRECT],
        "scope": ["a_b,c"],
        "state": ["st&ate"],
        "response_type": ["code"],
    }
    assert "scope=a_b,c" in url  # commas kept readable


def test_instagram_authorize_url() -> None:
    url = oauth.instagram_authorize_url(
        "https://www.instagram.com", "ig-app", REDIRECT, oauth.INSTAGRAM_LOGIN_SCOPES, "xyz"
    )
    parts = urlsplit(url)
    assert parts.path == "/oauth/authorize"
    query = parse_qs(parts.query)
    assert query["client_id"] == ["ig-app"]
    assert query["scope"] == [",".join(oauth.INSTAGRAM_LOGIN_SCOPES)]
    assert query["response_type"] == ["code"]
    assert query["state"] == ["xyz"]
    assert query["redirect_uri"] == [REDIRECT]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("AQabc#_", "AQabc"), ("AQabc", "AQabc"), (" AQabc#_ ", "AQabc"), ("AQ#_#_", "AQ")],
)
def test_clean_code(raw: str, clean: str) -> None:
    assert oauth.clean_code(raw) == clean


def test_read_redirect_with_code_and_with_error() -> None:
    ok = oauth.read_redirect({"code": "AQxyz#_", "state": "s1"})
    assert (ok.code, ok.state, ok.denied) == ("AQxyz", "s1", False)
    assert "AQxyz" not in repr(ok)
    denied = oauth.read_redirect(
        {
            "error": "access_denied",
            "error_reason": "user_denied",
            "error_description": "Permissions error",
            "state": "s2",
        }
    )
    assert denied.denied
    assert (denied.error, denied.error_reason, denied.state) == (
        "access_denied",
        "user_denied",
        "s2",
    )
    assert oauth.read_redirect({}).denied


@pytest.mark.parametrize(
    ("base", "unversioned"),
    [
        ("https://graph.instagram.com/v24.0", "https://graph.instagram.com"),
        ("https://graph.instagram.com/v24.0/", "https://graph.instagram.com"),
        ("https://graph.instagram.com/v25", "https://graph.instagram.com"),
        ("https://graph.instagram.com", "https://graph.instagram.com"),
        ("http://127.0.0.1:8001/ig/v24.0", "http://127.0.0.1:8001/ig"),
        ("http://127.0.0.1:8001/ig", "http://127.0.0.1:8001/ig"),
        ("http://127.0.0.1:8001/v24.0", "http://127.0.0.1:8001"),
    ],
)
def test_instagram_unversioned_base(base: str, unversioned: str) -> None:
    assert oauth.instagram_unversioned_base(base) == unversioned


# --- Facebook Login ----------------------------------------------------------------------------
def test_facebook_exchange_code(mock: responses.RequestsMock) -> None:
    call = mock.get(
        f"{GRAPH}/oauth/access_token",
        json={"access_token": "EAAshort", "token_type": "bearer", "expires_in": 5183},
    )
    before = datetime.now(UTC)
    token = oauth.facebook_exchange_code(GRAPH, APP_ID, APP_SECRET, REDIRECT, "AQcode#_")
    assert token.access_token == "EAAshort"
    assert token.expires_in == 5183
    assert token.expires_at is not None
    assert 5180 <= (token.expires_at - before).total_seconds() <= 5190
    assert "EAAshort" not in repr(token)
    assert query_of(call.calls[0]) == {
        "client_id": [APP_ID],
        "client_secret": [APP_SECRET],
        "redirect_uri": [REDIRECT],
        "code": ["AQcode"],
    }


def test_facebook_long_lived(mock: responses.RequestsMock) -> None:
    call = mock.get(
        f"{GRAPH}/oauth/access_token",
        json={"access_token": "EAAlong", "token_type": "bearer", "expires_in": 5184000},
    )
    token = oauth.facebook_long_lived(GRAPH, APP_ID, APP_SECRET, "EAAshort")
    assert (token.access_token, token.expires_in) == ("EAAlong", 5184000)
    assert query_of(call.calls[0]) == {
        "grant_type": ["fb_exchange_token"],
        "client_id": [APP_ID],
        "client_secret": [APP_SECRET],
        "fb_exchange_token": ["EAAshort"],
    }


def test_token_without_expiry() -> None:
    token = oauth.Token("EAAx")
    assert token.expires_in is None
    assert token.expires_at is None


def test_graph_error_maps_to_oauth_error(mock: responses.RequestsMock) -> None:
    mock.get(
        f"{GRAPH}/oauth/access_token",
        status=400,
        json=graph_error(100, "This authorization code has been used.", 36009),
    )
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_exchange_code(GRAPH, APP_ID, APP_SECRET, REDIRECT, "AQused")
    error = caught.value
    assert error.message == "This authorization code has been used."
    assert (error.code, error.subcode, error.fbtrace_id) == (100, 36009, "ATrace1")
    assert error.http_status == 400
    assert error.error_type == "OAuthException"
    assert error.retryable is False
    assert error.token_invalid is False
    assert str(error) == (
        "This authorization code has been used. (code 100/36009) [fbtrace_id ATrace1]"
    )


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        # Code 1 is "unknown error" on the Graph, but a wrong secret here: not worth retrying.
        (400, graph_error(1, "Error validating client secret."), False),
        (500, graph_error(1, "An unknown error occurred", is_transient=True), True),
        (500, graph_error(2, "Service temporarily unavailable"), True),
        (400, graph_error(100, "x", is_transient=True), True),
        (400, graph_error(190, "Error validating access token", 463), False),
    ],
)
def test_retryable_follows_meta(
    mock: responses.RequestsMock, status: int, body: dict, retryable: bool
) -> None:
    mock.get(f"{GRAPH}/oauth/access_token", status=status, json=body)
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_long_lived(GRAPH, APP_ID, APP_SECRET, "EAAx")
    assert caught.value.retryable is retryable


def test_expired_token_is_token_invalid(mock: responses.RequestsMock) -> None:
    mock.get(
        f"{GRAPH}/me/accounts",
        status=400,
        json=graph_error(190, "Error validating access token: Session has expired", 463),
    )
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_pages(GRAPH, "EAAexpired")
    assert caught.value.token_invalid
    assert (caught.value.code, caught.value.subcode) == (190, 463)


def test_error_inside_a_200_answer_is_an_error(mock: responses.RequestsMock) -> None:
    mock.get(f"{GRAPH}/oauth/access_token", json=graph_error(100, "odd"))
    with pytest.raises(OAuthError, match="odd"):
        oauth.facebook_long_lived(GRAPH, APP_ID, APP_SECRET, "EAAx")


@pytest.mark.parametrize(
    ("status", "body", "match", "retryable"),
    [
        (502, "<html>Bad gateway</html>", "HTTP 502 with a body that is not JSON", True),
        (200, "not json", "HTTP 200 with a body that is not JSON", False),
        (200, "[1, 2]", "HTTP 200 with an answer it did not explain", False),
        (400, "", "HTTP 400 with a body that is not JSON", False),
    ],
)
def test_unreadable_answers(
    mock: responses.RequestsMock, status: int, body: str, match: str, retryable: bool
) -> None:
    mock.get(f"{GRAPH}/oauth/access_token", status=status, body=body)
    with pytest.raises(OAuthError, match=match) as caught:
        oauth.facebook_exchange_code(GRAPH, APP_ID, APP_SECRET, REDIRECT, "AQ")
    assert caught.value.code is None
    assert caught.value.http_status == status
    assert caught.value.retryable is retryable


def test_answer_without_access_token(mock: responses.RequestsMock) -> None:
    mock.get(f"{GRAPH}/oauth/access_token", json={"token_type": "bearer"})
    with pytest.raises(OAuthError, match="no access_token"):
        oauth.facebook_exchange_code(GRAPH, APP_ID, APP_SECRET, REDIRECT, "AQ")


def test_network_failure_hides_secrets(mock: responses.RequestsMock) -> None:
    leak = requests.ConnectionError(
        "Max retries exceeded with url: /v24.0/oauth/access_token?client_secret=s3cret-app"
        "&code=AQsecretcode (Caused by NewConnectionError)"
    )
    mock.get(f"{GRAPH}/oauth/access_token", body=leak)
    with pytest.raises(OAuthError) as caught:
        oauth.facebook_exchange_code(GRAPH, APP_ID, APP_SECRET, REDIRECT, "AQsecretcode")
    error = caught.value
    assert error.retryable is True
    assert error.http_status is None
    assert "ConnectionError" in error.message
    assert APP_SECRET not in str(error)
    assert "AQsecretcode" not in str(error)
    # The original exception (which quotes the URL) is not chained into tracebacks.
    assert error.__cause__ is None
    assert error.__suppress_context__ is True


def test_timeout_and_session_are_passed() -> None:
    seen: dict[str, Any] = {}

    class Session:
        def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
            seen.update(kwargs, method=method, url=url)
            response = requests.Response()
            response.status_code = 200
            response._content = b'{"access_token": "EAAx", "expires_in": 10}'
            return response

    oauth.facebook_long_lived(GRAPH, APP_ID, APP_SECRET, "EAAs", timeout=[1, 2], session=Session())
    assert seen["timeout"] == (1.0, 2.0)
    assert seen["method"] == "GET"
    assert seen["url"] == f"{GRAPH}/oauth/access_token"


def _page(index: int, ig: dict | None = None, tasks: list[str] | None = None) -> dict:
    item: dict[str, Any] = {
        "id": f"10{index}",
        "name": f"Page {index}",
        "access_token": f"EAApage{index}",
        "tasks": tasks if tasks is not None else ["MANAGE", "MESSAGING", "MODERATE"],
    }
    if ig is not None:
        item["instagram_business_account"] = ig
    return item


def test_facebook_pages_follows_paging_with_cursor(mock: responses.RequestsMock) -> None:
    first = mock.get(
        f"{GRAPH}/me/accounts",
        match=[matchers.query_param_matcher({"fields": oauth.PAGES_FIELDS, "limit": "100"})],
        json={
            "data": [_page(1, {"id": "17841", "username": "one"}), _page(2)],
            "paging": {
                "cursors": {"before": "MA", "after": "MQ"},
                "next": "https://graph.facebook.com/v24.0/me/accounts?access_token=EAAuser&after=MQ",
            },
        },
    )
    second = mock.get(
        f"{GRAPH}/me/accounts",
        match=[
            matchers.query_param_matcher(
                {"fields": oauth.PAGES_FIELDS, "limit": "100", "after": "MQ"}
            )
        ],
        json={
            "data": [_page(3, {"id": "17843", "username": "three"}, tasks=["ANALYZE"])],
            "paging": {"cursors": {"before": "Mg", "after": "Mg"}},
        },
    )
    pages = oauth.facebook_pages(GRAPH, "EAAuser")
    assert [p.page_id for p in pages] == ["101", "102", "103"]
    assert pages[0].ig_user_id == "17841"
    assert pages[0].ig_username == "one"
    assert pages[0].page_token == "EAApage1"
    assert pages[0].tasks == ("MANAGE", "MESSAGING", "MODERATE")
    assert pages[0].missing_tasks == ()
    assert pages[1].has_instagram is False
    assert pages[2].missing_tasks == ("MESSAGING", "MODERATE")
    assert "EAApage1" not in repr(pages[0])
    for call in (first.calls[0], second.calls[0]):
        # The user token travels in the header, never in our URLs.
        assert call.request.headers["Authorization"] == "Bearer EAAuser"
        assert "EAAuser" not in call.request.url


def test_facebook_pages_reads_missing_username_with_page_token(
    mock: responses.RequestsMock,
) -> None:
    mock.get(f"{GRAPH}/me/accounts", json={"data": [_page(1, {"id": "17841"})]})
    lookup = mock.get(
        f"{GRAPH}/17841",
        match=[matchers.query_param_matcher({"fields": "username"})],
        json={"id": "17841", "username": "found_it"},
    )
    (page,) = oauth.facebook_pages(GRAPH, "EAAuser")
    assert page.ig_username == "found_it"
    assert lookup.calls[0].request.headers["Authorization"] == "Bearer EAApage1"


def test_facebook_pages_username_failure_is_not_fatal(mock: responses.RequestsMock) -> None:
    mock.get(f"{GRAPH}/me/accounts", json={"data": [_page(1, {"id": "17841"})]})
    mock.get(f"{GRAPH}/17841", status=400, json=graph_error(10, "(#10) no"))
    (page,) = oauth.facebook_pages(GRAPH, "EAAuser")
    assert (page.ig_user_id, page.ig_username) == ("17841", "")


def test_facebook_pages_stops_on_a_repeated_cursor(mock: responses.RequestsMock) -> None:
    looping = {
        "data": [_page(1)],
        "paging": {"cursors": {"after": "MQ"}, "next": "https://graph.facebook.com/next"},
    }
    call = mock.get(f"{GRAPH}/me/accounts", json=looping)
    pages = oauth.facebook_pages(GRAPH, "EAAuser")
    assert len(call.calls) == 2  # the first page, then the cursor once: never a loop
    assert [p.page_id for p in pages] == ["101", "101"]


def test_facebook_pages_empty(mock: responses.RequestsMock) -> None:
    mock.get(f"{GRAPH}/me/accounts", json={"data": []})
    assert oauth.facebook_pages(GRAPH, "EAAuser") == []


def test_debug_token_valid_page_token(mock: responses.RequestsMock) -> None:
    call = mock.get(
        f"{GRAPH}/debug_token",
        json={
            "data": {
                "app_id": APP_ID,
                "type": "PAGE",
                "application": "App",
                "data_access_expires_at": 1800000000,
                "expires_at": 0,
                "is_valid": True,
                "profile_id": "101",
                "scopes": ["pages_show_list", "instagram_basic"],
                "granular_scopes": [
                    {"scope": "pages_show_list", "target_ids": ["101"]},
                    {"scope": "instagram_basic"},
                ],
                "user_id": "555",
            }
        },
    )
    info = oauth.debug_token(GRAPH, APP_ID, APP_SECRET, "EAApage")
    assert info.is_valid
    assert (info.type, info.app_id, info.user_id, info.profile_id) == ("PAGE", APP_ID, "555", "101")
    assert info.expires_at is None  # 0: never
    assert info.data_access_expires_at == datetime.fromtimestamp(1800000000, tz=UTC)
    assert info.granular_scopes == (("pages_show_list", ("101",)), ("instagram_basic", ()))
    assert info.missing(["instagram_basic", "instagram_manage_messages"]) == (
        "instagram_manage_messages",
    )
    request = call.calls[0].request
    assert query_of(call.calls[0]) == {"input_token": ["EAApage"]}
    assert request.headers["Authorization"] == f"Bearer {APP_ID}|{APP_SECRET}"


def test_debug_token_invalid_token_is_not_an_exception(mock: responses.RequestsMock) -> None:
    mock.get(
        f"{GRAPH}/debug_token",
        json={
            "data": {
                "app_id": APP_ID,
                "type": "USER",
                "is_valid": False,
                "expires_at": 1700000000,
                "scopes": [],
                "error": {"code": 190, "subcode": 463, "message": "Session has expired"},
                "user_id": "555",
            }
        },
    )
    info = oauth.debug_token(GRAPH, APP_ID, APP_SECRET, "EAAold")
    assert info.is_valid is False
    assert (info.error_code, info.error_subcode) == (190, 463)
    assert info.error_message == "Session has expired"
    assert info.expires_at == datetime.fromtimestamp(1700000000, tz=UTC)


def test_debug_token_with_wrong_app_credentials_raises(mock: responses.RequestsMock) -> None:
    mock.get(
        f"{GRAPH}/debug_token",
        status=400,
        json=graph_error(190, "Invalid OAuth access token signature."),
    )
    with pytest.raises(OAuthError, match="signature"):
        oauth.debug_token(GRAPH, APP_ID, "wrong", "EAAx")


def test_debug_token_without_data_raises(mock: responses.RequestsMock) -> None:
    mock.get(f"{GRAPH}/debug_token", json={"nothing": True})
    with pytest.raises(OAuthError, match="without data"):
        oauth.debug_token(GRAPH, APP_ID, APP_SECRET, "EAAx")


# --- Instagram Login ---------------------------------------------------------------------------
def test_instagram_exchange_code_flat_answer(mock: responses.RequestsMock) -> None:
    call = mock.post(
        f"{IG_API}/oauth/access_token",
        json={
            "access_token": "IGAAshort",
            "user_id": 27841400000000001,  # a JSON number in the flat answer
            "permissions": ["instagram_business_basic", "instagram_business_manage_messages"],
        },
    )
    token = oauth.instagram_exchange_code(IG_API, "ig-app", "ig-secret", REDIRECT, "AQcode#_")
    assert token.access_token == "IGAAshort"
    assert token.user_id == "27841400000000001"
    assert token.permissions == ("instagram_business_basic", "instagram_business_manage_messages")
    assert "IGAAshort" not in repr(token)
    assert parse_qs(call.calls[0].request.body) == {
        "client_id": ["ig-app"],
        "client_secret": ["ig-secret"],
        "grant_type": ["authorization_code"],
        "redirect_uri": [REDIRECT],
        "code": ["AQcode"],
    }


def test_instagram_exchange_code_data_answer(mock: responses.RequestsMock) -> None:
    mock.post(
        f"{IG_API}/oauth/access_token",
        json={
            "data": [
                {
                    "access_token": "IGAAshort",
                    "user_id": "2784",
                    "permissions": "instagram_business_basic, instagram_business_manage_comments",
                }
            ]
        },
    )
    token = oauth.instagram_exchange_code(IG_API, "ig-app", "ig-secret", REDIRECT, "AQcode")
    assert (token.access_token, token.user_id) == ("IGAAshort", "2784")
    assert token.permissions == ("instagram_business_basic", "instagram_business_manage_comments")


def test_instagram_api_error_shape(mock: responses.RequestsMock) -> None:
    mock.post(
        f"{IG_API}/oauth/access_token",
        status=400,
        json={
            "error_type": "OAuthException",
            "code": 400,
            "error_message": "This authorization code has been used",
        },
    )
    with pytest.raises(OAuthError) as caught:
        oauth.instagram_exchange_code(IG_API, "ig-app", "ig-secret", REDIRECT, "AQcode")
    error = caught.value
    assert error.message == "This authorization code has been used"
    assert (error.code, error.subcode, error.error_type) == (400, None, "OAuthException")
    assert error.retryable is False


def test_instagram_long_lived_uses_unversioned_base(mock: responses.RequestsMock) -> None:
    call = mock.get(
        "https://graph.instagram.com/access_token",
        json={"access_token": "IGAAlong", "token_type": "bearer", "expires_in": 5184000},
    )
    token = oauth.instagram_long_lived(IG_GRAPH, "ig-secret", "IGAAshort")
    assert (token.access_token, token.expires_in) == ("IGAAlong", 5184000)
    assert query_of(call.calls[0]) == {
        "grant_type": ["ig_exchange_token"],
        "client_secret": ["ig-secret"],
        "access_token": ["IGAAshort"],
    }


def test_instagram_refresh(mock: responses.RequestsMock) -> None:
    call = mock.get(
        "https://graph.instagram.com/refresh_access_token",
        json={"access_token": "IGAAnew", "token_type": "bearer", "expires_in": 5183000},
    )
    token = oauth.instagram_refresh(IG_GRAPH, "IGAAlong")
    assert token.access_token == "IGAAnew"
    assert query_of(call.calls[0]) == {
        "grant_type": ["ig_refresh_token"],
        "access_token": ["IGAAlong"],
    }


def test_instagram_refresh_of_expired_token(mock: responses.RequestsMock) -> None:
    mock.get(
        "https://graph.instagram.com/refresh_access_token",
        status=400,
        json=graph_error(190, "Error validating access token: Session has expired", 463),
    )
    with pytest.raises(OAuthError) as caught:
        oauth.instagram_refresh(IG_GRAPH, "IGAAold")
    assert caught.value.token_invalid


def test_instagram_me(mock: responses.RequestsMock) -> None:
    call = mock.get(
        f"{IG_GRAPH}/me",
        json={"id": "2784", "user_id": "17841", "username": "shop"},
    )
    assert oauth.instagram_me(IG_GRAPH, "IGAAlong") == ("2784", "17841", "shop")
    assert query_of(call.calls[0]) == {"fields": ["id,user_id,username"]}
    assert call.calls[0].request.headers["Authorization"] == "Bearer IGAAlong"


def test_instagram_me_without_user_id_falls_back_to_id(mock: responses.RequestsMock) -> None:
    mock.get(f"{IG_GRAPH}/me", json={"id": "17841", "username": "shop"})
    assert oauth.instagram_me(IG_GRAPH, "IGAA") == ("17841", "17841", "shop")


def test_instagram_me_without_id_raises(mock: responses.RequestsMock) -> None:
    mock.get(f"{IG_GRAPH}/me", json={"username": "shop"})
    with pytest.raises(OAuthError, match="no id"):
        oauth.instagram_me(IG_GRAPH, "IGAA")


# --- webhooks ----------------------------------------------------------------------------------
def test_subscribe_webhooks_page(mock: responses.RequestsMock) -> None:
    call = mock.post(f"{GRAPH}/101/subscribed_apps", json={"success": True})
    assert oauth.subscribe_webhooks(GRAPH, "101", "EAApage") is True
    request = call.calls[0].request
    assert parse_qs(request.body) == {"subscribed_fields": [",".join(oauth.WEBHOOK_FIELDS)]}
    assert request.headers["Authorization"] == "Bearer EAApage"


def test_subscribe_webhooks_answer_without_success(mock: responses.RequestsMock) -> None:
    mock.post(f"{IG_GRAPH}/me/subscribed_apps", json={"success": False})
    assert oauth.subscribe_webhooks(IG_GRAPH, "me", "IGAA", ["messages"]) is False


def test_subscribe_webhooks_refused(mock: responses.RequestsMock) -> None:
    mock.post(
        f"{GRAPH}/101/subscribed_apps",
        status=403,
        json=graph_error(200, "(#200) Requires pages_manage_metadata permission"),
    )
    with pytest.raises(OAuthError) as caught:
        oauth.subscribe_webhooks(GRAPH, "101", "EAApage")
    assert (caught.value.code, caught.value.http_status) == (200, 403)
