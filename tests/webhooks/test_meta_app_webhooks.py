"""`manage.py meta_app_webhooks`: the app-level webhook subscription, set and checked.

Meta's app subscriptions edge (https://developers.facebook.com/docs/graph-api/reference/app/
subscriptions/) takes the object, fields, callback URL and verify token with the app access
token, and verifies the callback with a GET before it answers
(https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests).
The stand-in does the same, so these run the real handshake against our own webhook view.
"""

import pytest
from django.core.management import CommandError, call_command

from meta import oauth

pytestmark = pytest.mark.django_db


@pytest.fixture
def meta_at_standin(settings, standin):
    settings.META_GRAPH_URL = f"{standin.url}/v24.0"
    settings.META_APP_ID, settings.META_APP_SECRET = "demo-app-id", "demo-app-secret"
    settings.META_VERIFY_TOKEN = "our-verify-token"
    return settings


@pytest.fixture
def callback(live_server) -> str:
    return f"{live_server.url}/webhooks/instagram/"


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("meta_app_webhooks", *args, stdout=out)
    return out.getvalue()


def test_subscribes_the_instagram_fields_after_metas_handshake_with_our_callback(
    meta_at_standin, control, callback
):
    output = run("--callback-url", callback)

    assert "OK: the app receives every Instagram field" in output
    instagram = control.app_subscriptions()["demo-app-id"]["instagram"]
    assert instagram["callback_url"] == callback
    assert instagram["active"] is True
    assert set(instagram["fields"]) == set(oauth.WEBHOOK_FIELDS)
    (call,) = control.requests(endpoint="app_subscriptions")[:1]
    assert call["method"] == "POST" and call["token"] == "demo-app-id|…"
    assert "our-verify-token" not in str(call)  # the verify token never reaches a log
    # And --check agrees, changing nothing.
    assert "OK" in run("--callback-url", callback, "--check")


def test_a_callback_that_fails_metas_handshake_is_refused_and_nothing_is_set(
    meta_at_standin, control, callback, settings
):
    # Meta is told a verify token our webhook view does not hold: the view answers 403 to the
    # handshake, and Meta refuses the subscription with code 2200.
    with pytest.raises(oauth.OAuthError) as excinfo:
        oauth.app_subscribe(
            settings.META_GRAPH_URL,
            "demo-app-id",
            "demo-app-secret",
            callback_url=callback,
            verify_token="a-token-the-view-refuses",
        )
    assert excinfo.value.code == 2200
    assert "callback verification failed" in excinfo.value.message
    assert "HTTP Status Code = 403" in excinfo.value.message
    assert control.app_subscriptions() == {}


def test_check_names_a_missing_subscription(meta_at_standin, control, callback):
    with pytest.raises(CommandError, match="no webhook subscription for the Instagram object"):
        run("--callback-url", callback, "--check")


def test_check_names_missing_fields_and_a_different_callback(
    meta_at_standin, control, callback, settings
):
    oauth.app_subscribe(
        settings.META_GRAPH_URL,
        "demo-app-id",
        "demo-app-secret",
        callback_url=callback,
        verify_token=settings.META_VERIFY_TOKEN,
        fields=("comments", "messages"),
    )
    with pytest.raises(CommandError) as excinfo:
        run("--callback-url", "https://other.example/webhooks/instagram/", "--check")
    message = str(excinfo.value)
    assert "Fields not subscribed: live_comments, messaging_postbacks" in message
    assert "The callback URL is" in message
    # The check changed nothing.
    instagram = control.app_subscriptions()["demo-app-id"]["instagram"]
    assert instagram["fields"] == ["comments", "messages"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://shop.example/webhooks/instagram/", "Meta calls only HTTPS callbacks"),
        ("https://shop.example/hooks/", "must be this product's webhook URL"),
        ("not a url", "is not a URL"),
    ],
)
def test_a_callback_meta_would_refuse_is_an_error_before_calling_meta(
    meta_at_standin, control, url, why
):
    with pytest.raises(CommandError, match=why):
        run("--callback-url", url)
    assert control.requests(endpoint="app_subscriptions") == []


def test_missing_app_settings_are_named(meta_at_standin, control, callback, settings):
    settings.META_VERIFY_TOKEN = ""
    with pytest.raises(CommandError, match="Set META_VERIFY_TOKEN"):
        run("--callback-url", callback)


def test_stand_in_refuses_unknown_fields_and_non_app_tokens(meta_at_standin, control, callback):
    with pytest.raises(oauth.OAuthError) as excinfo:
        oauth.app_subscribe(
            meta_at_standin.META_GRAPH_URL,
            "demo-app-id",
            "demo-app-secret",
            callback_url=callback,
            verify_token="our-verify-token",
            fields=("comments", "feed"),
        )
    assert excinfo.value.code == 100 and 'got "feed"' in excinfo.value.message
    with pytest.raises(oauth.OAuthError) as wrong_secret:
        oauth.app_subscriptions(meta_at_standin.META_GRAPH_URL, "demo-app-id", "wrong")
    assert wrong_secret.value.code == 190
