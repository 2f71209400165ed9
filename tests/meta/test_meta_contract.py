"""The contract: each documented Meta behaviour the product relies on, one row each, with the
Meta doc page it comes from, run against the Graph API stand-in.

The stand-in was written from the same understanding as the product's client, so it cannot
catch a mistake they share; this table is where its assumptions are written down, each next
to the page that justifies it, so a reader can check them against Meta's own words (and
../shared/meta-api.md). Where a row rests on something Meta does not state (an error code
seen in production, not documented), its ``note`` says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from meta import oauth
from meta.client import GraphClient
from meta.errors import Reason, classify_error
from meta.standin import StandIn, StandInControl

APP, SECRET = "demo-app-id", "demo-app-secret"
PAGE_TOKEN = "EAA-contract-page"
PAGE, IG_USER = "100000000000777", "17841400000000777"
REDIRECT = "http://dm.test/connect/instagram/callback/"
DOCS = "https://developers.facebook.com/docs"


@dataclass(frozen=True)
class Behaviour:
    name: str
    doc: str
    check: Callable[[Any], None]
    note: str = ""


class Meta:
    """The stand-in as the product sees it: Graph bases, a registered Page token, control."""

    def __init__(self, url: str, control: StandInControl) -> None:
        self.url = url
        self.graph = f"{url}/v24.0"
        self.ig_graph = f"{url}/ig/v24.0"
        self.control = control
        control.register_account(PAGE_TOKEN, id=PAGE, username="acme.contract")

    def client(self, token: str = PAGE_TOKEN, base: str | None = None) -> GraphClient:
        return GraphClient(base or self.graph, token)

    def raw(self, method: str, path: str, token: str | None = PAGE_TOKEN, **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.graph + path, headers=headers, timeout=5, **kwargs)

    def page_token_without(self, scope: str) -> str:
        """A Page token from Facebook Login where the person declined ``scope``."""
        granted = [s for s in oauth.FACEBOOK_LOGIN_SCOPES if s != scope]
        self.control.define_person(
            pages=[{"id": PAGE, "name": "Acme", "instagram": {"id": IG_USER}}], scopes=granted
        )
        self.control.set_auto_approve(True)
        url = oauth.facebook_dialog_url(self.graph, APP, REDIRECT, oauth.FACEBOOK_LOGIN_SCOPES, "s")
        location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
        code = oauth.read_redirect(
            dict(item.split("=", 1) for item in location.split("?", 1)[1].split("&"))
        ).code
        short = oauth.facebook_exchange_code(self.graph, APP, SECRET, REDIRECT, code)
        user = oauth.facebook_long_lived(self.graph, APP, SECRET, short.access_token)
        (page,) = oauth.facebook_pages(self.graph, user.access_token)
        return page.page_token


def _error(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert response.status_code >= 400, body
    assert set(body) == {"error"}
    return body["error"]


# --- the checks ----------------------------------------------------------------------------------
def error_shape(meta: Meta) -> None:
    error = _error(meta.raw("POST", f"/{PAGE}/messages", json={"recipient": {"id": "1"}}))
    assert {"message", "type", "code", "fbtrace_id"} <= set(error)
    assert error["type"] == "OAuthException" and error["code"] == 100


def page_subscription_takes_page_fields(meta: Meta) -> None:
    refused = _error(
        meta.raw("POST", f"/{PAGE}/subscribed_apps", params={"subscribed_fields": "comments"})
    )
    assert refused["code"] == 100 and "subscribed_fields[0] must be one of" in refused["message"]
    assert oauth.subscribe_webhooks(meta.graph, PAGE, PAGE_TOKEN, oauth.PAGE_WEBHOOK_FIELDS)
    assert oauth.subscribed_fields(meta.graph, PAGE, PAGE_TOKEN, app_id=APP) == ("feed",)


def instagram_login_subscription_takes_instagram_fields(meta: Meta) -> None:
    assert oauth.subscribe_webhooks(meta.ig_graph, "me", PAGE_TOKEN, oauth.WEBHOOK_FIELDS)
    assert oauth.subscribed_fields(meta.ig_graph, "me", PAGE_TOKEN) == oauth.WEBHOOK_FIELDS


def app_subscriptions_need_the_app_token(meta: Meta) -> None:
    error = _error(meta.raw("GET", f"/{APP}/subscriptions"))
    assert error["code"] == 15
    assert oauth.app_subscriptions(meta.graph, APP, SECRET) == []


def app_subscription_verifies_the_callback_first(meta: Meta) -> None:
    # No server answers there: Meta refuses (2200) and saves nothing.
    with pytest.raises(oauth.OAuthError) as refused:
        oauth.app_subscribe(
            meta.graph, APP, SECRET, callback_url="http://127.0.0.1:9/webhooks/instagram/",
            verify_token="t",
        )  # fmt: skip
    assert refused.value.code == 2200
    assert meta.control.app_subscriptions() == {}


def private_reply_once_per_comment(meta: Meta) -> None:
    client = meta.client()
    first = client.send_private_reply(PAGE, "17900000000000001", {"text": "Here"})
    assert first.ok and first.recipient_id and first.response_id
    again = client.send_private_reply(PAGE, "17900000000000001", {"text": "Here"})
    assert (again.code, again.subcode, again.reason) == (10, 2534025, Reason.ALREADY_REPLIED)


def text_is_counted_in_utf8_bytes(meta: Meta) -> None:
    client = meta.client()
    assert client.send_message(PAGE, "6001", {"text": "🎁" * 250}).ok  # 1,000 bytes
    refused = client.send_message(PAGE, "6001", {"text": "🎁" * 251})  # 251 chars, 1,004 bytes
    assert refused.code == 100 and "less than or equal to 1000" in refused.message


def button_text_is_640_characters(meta: Meta) -> None:
    def buttons(text: str) -> dict:
        button = {"type": "web_url", "url": "https://e.x", "title": "Open"}
        template = {"template_type": "button", "text": text, "buttons": [button]}
        return {"attachment": {"type": "template", "payload": template}}

    client = meta.client()
    assert client.send_message(PAGE, "6002", buttons("é" * 640)).ok
    assert client.send_message(PAGE, "6002", buttons("e" * 641)).code == 100


def quick_reply_limits(meta: Meta) -> None:
    client = meta.client()

    def quick(count: int, title: str = "Yes") -> dict:
        options = [{"content_type": "text", "title": title, "payload": "p"}] * count
        return {"text": "Pick", "quick_replies": options}

    assert client.send_message(PAGE, "6003", quick(13)).ok
    assert client.send_message(PAGE, "6003", quick(14)).code == 100
    assert client.send_message(PAGE, "6003", quick(1, "x" * 21)).code == 100


def profile_needs_consent(meta: Meta) -> None:
    client = meta.client()
    before = client.get("/6004", {"fields": "is_user_follow_business"})
    assert not before.ok and "User consent is required" in before.message
    assert classify_error(before.code, None, message=before.message).reason is (
        Reason.WINDOW_EXPIRED
    )  # the person's, never the account's
    meta.control.record_consent("6004")
    after = client.get("/6004", {"fields": "is_user_follow_business"})
    assert after.ok and after.data["is_user_follow_business"] is False


def comment_has_its_creation_time(meta: Meta) -> None:
    meta.control.register_comment("17900000000000002", "6005", timestamp="2026-11-25T10:00:00+0000")
    answer = meta.client().get("/17900000000000002", {"fields": "timestamp"})
    assert answer.data == {"id": "17900000000000002", "timestamp": "2026-11-25T10:00:00+0000"}


def live_media_lists_only_live_broadcasts(meta: Meta) -> None:
    meta.control.register_media("17900000000000003", live=True)
    meta.control.register_media("17900000000000004", live=False)
    answer = meta.client().get(f"/{IG_USER}/live_media", {"fields": "id"})
    assert answer.data == {"data": [{"id": "17900000000000003"}]}


def pages_messaging_missing_is_230(meta: Meta) -> None:
    token = meta.page_token_without("pages_messaging")
    result = meta.client(token).send_message(PAGE, "6006", {"text": "hi"})
    assert result.code == 230 and "pages_messaging" in result.message
    assert result.account_problem and result.missing_scope == "pages_messaging"


def revoked_and_expired_tokens_are_190(meta: Meta) -> None:
    meta.control.revoke_token(PAGE_TOKEN)
    result = meta.client().send_message(PAGE, "6007", {"text": "hi"})
    assert (result.code, result.subcode, result.reason) == (190, 460, Reason.TOKEN_INVALID)


def per_second_and_hourly_limits(meta: Meta) -> None:
    meta.control.set_limits(send_per_second=1, private_replies_per_hour=1)
    client = meta.client()
    assert client.send_private_reply(PAGE, "17900000000000005", {"text": "a"}).ok
    over_hour = client.send_private_reply(PAGE, "17900000000000006", {"text": "b"})
    assert over_hour.code in (613, 80002) and over_hour.reason is Reason.RATE_LIMITED


def usage_headers(meta: Meta) -> None:
    result = meta.client().send_message(PAGE, "6008", {"text": "hi"})
    assert result.usage is not None  # X-Business-Use-Case-Usage and X-App-Usage, parsed


def debug_token_describes_a_token(meta: Meta) -> None:
    info = oauth.debug_token(meta.graph, APP, SECRET, PAGE_TOKEN)
    assert info.is_valid and "pages_messaging" in info.scopes


BEHAVIOURS = [
    Behaviour("errors have Meta's shape", f"{DOCS}/graph-api/guides/error-handling", error_shape),
    Behaviour(
        "a Page takes Page fields only",
        f"{DOCS}/graph-api/reference/page/subscribed_apps",
        page_subscription_takes_page_fields,
        "the error text is [seen]; Page fields per https://developers.facebook.com/docs/"
        "pages-api/webhooks-for-pages",
    ),
    Behaviour(
        "Instagram Login subscribes with Instagram fields",
        f"{DOCS}/instagram-platform/webhooks",
        instagram_login_subscription_takes_instagram_fields,
    ),
    Behaviour(
        "the app subscriptions edge needs the app access token",
        f"{DOCS}/graph-api/reference/app/subscriptions/",
        app_subscriptions_need_the_app_token,
    ),
    Behaviour(
        "Meta verifies the callback before saving a subscription",
        f"{DOCS}/graph-api/webhooks/getting-started#verification-requests",
        app_subscription_verifies_the_callback_first,
        "code 2200 and its wording are [seen]",
    ),
    Behaviour(
        "one private reply per comment",
        f"{DOCS}/messenger-platform/instagram/features/private-replies",
        private_reply_once_per_comment,
        "subcode 2534025 is [seen]",
    ),
    Behaviour(
        "message text is at most 1,000 UTF-8 bytes",
        f"{DOCS}/messenger-platform/instagram/features/send-message",
        text_is_counted_in_utf8_bytes,
    ),
    Behaviour(
        "a button template's text is at most 640 characters",
        "https://developers.facebook.com/documentation/business-messaging/instagram-messaging/"
        "button-template",
        button_text_is_640_characters,
    ),
    Behaviour(
        "up to 13 quick replies of at most 20 characters",
        f"{DOCS}/messenger-platform/instagram/features/quick-replies",
        quick_reply_limits,
        "the limits are [seen]",
    ),
    Behaviour(
        "a profile needs the person's consent (a message or a tap)",
        f"{DOCS}/messenger-platform/instagram/features/user-profile",
        profile_needs_consent,
        "the code (230) is [unsure]: the product goes by the text",
    ),
    Behaviour(
        "a comment has its own creation time",
        f"{DOCS}/instagram-platform/instagram-graph-api/reference/ig-comment",
        comment_has_its_creation_time,
    ),
    Behaviour(
        "live_media lists only media being broadcast now",
        f"{DOCS}/instagram-platform/instagram-graph-api/reference/ig-user/live_media/",
        live_media_lists_only_live_broadcasts,
    ),
    Behaviour(
        "a Page token without pages_messaging gets code 230",
        f"{DOCS}/messenger-platform/error-codes",
        pages_messaging_missing_is_230,
    ),
    Behaviour(
        "a revoked token is code 190, subcode 460",
        f"{DOCS}/graph-api/guides/error-handling",
        revoked_and_expired_tokens_are_190,
    ),
    Behaviour(
        "per-second and hourly limits answer throttling codes",
        "https://developers.facebook.com/documentation/business-messaging/messenger-platform/"
        "overview/rate-limiting",
        per_second_and_hourly_limits,
    ),
    Behaviour(
        "usage headers come with messaging calls",
        f"{DOCS}/graph-api/overview/rate-limiting",
        usage_headers,
        "they appear only once an endpoint is used enough at Meta; the stand-in always sends",
    ),
    Behaviour(
        "debug_token describes validity and scopes",
        f"{DOCS}/facebook-login/guides/access-tokens/debugging",
        debug_token_describes_a_token,
    ),
]


@pytest.fixture(scope="module")
def standin():
    server = StandIn(host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture
def meta(standin):
    control = StandInControl(standin.url)
    control.reset()
    yield Meta(standin.url, control)
    control.close()


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=[b.name for b in BEHAVIOURS])
def test_meta_behaviour(behaviour: Behaviour, meta: Meta) -> None:
    behaviour.check(meta)


def test_every_row_cites_metas_own_documentation() -> None:
    for behaviour in BEHAVIOURS:
        assert behaviour.doc.startswith("https://developers.facebook.com/"), behaviour.name
    assert len({b.name for b in BEHAVIOURS}) == len(BEHAVIOURS)
