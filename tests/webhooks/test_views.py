"""The webhook endpoint: handshake, signatures, bodies, storage and scheduling."""

import json

import pytest
from django.urls import reverse

from meta.samples import comment_body
from tests.factories import InstagramAccountFactory, TriggerFactory
from webhooks.models import EventState, WebhookEvent

URL = "/webhooks/instagram/"


def test_url_is_stable():
    assert reverse("instagram-webhook") == URL


def test_handshake_answers_the_challenge(client, settings):
    response = client.get(
        URL,
        {
            "hub.mode": "subscribe",
            "hub.verify_token": settings.META_VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.content == b"1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "demo-verify-token", "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_handshake_refuses_wrong_token_or_mode(client, params):
    assert client.get(URL, params).status_code == 403


@pytest.mark.django_db
def test_signed_event_is_stored_and_scheduled(client, sign, django_capture_on_commit_callbacks):
    raw, headers = sign(comment_body(account_id="1", text="hello"))
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            URL,
            raw,
            content_type="application/json",
            headers={"X-Hub-Signature-256": headers["X-Hub-Signature-256"]},
        )
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.raw_body.encode() == raw
    assert event.account_ids == ["1"]
    assert len(callbacks) == 1, "processing is scheduled once, after commit"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=", "sha256=" + "0" * 64, "sha1=abc", "garbage"],
)
def test_missing_or_wrong_signature_is_403_and_stores_nothing(client, signature):
    raw = json.dumps(comment_body(account_id="1", text="hello")).encode()
    headers = {"X-Hub-Signature-256": signature} if signature is not None else {}
    response = client.post(URL, raw, content_type="application/json", headers=headers)
    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_signature_with_another_secret_is_refused(client, sign):
    raw, headers = sign(comment_body(account_id="1", text="hi"), secret="not-our-secret")
    response = client.post(URL, raw, content_type="application/json", headers=headers)
    assert response.status_code == 403


@pytest.mark.django_db
def test_instagram_app_secret_also_verifies(client, sign, settings):
    settings.INSTAGRAM_APP_SECRET = "instagram-app-secret"
    raw, headers = sign(comment_body(account_id="1", text="hi"), secret="instagram-app-secret")
    response = client.post(URL, raw, content_type="application/json", headers=headers)
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe\x00"])
def test_body_that_is_not_a_json_object_is_400_and_logged(client, settings, raw, caplog):
    from meta.signatures import sign_body

    response = client.post(
        URL,
        raw,
        content_type="application/json",
        headers={"X-Hub-Signature-256": sign_body(raw, settings.META_APP_SECRET)},
    )
    assert response.status_code == 400
    event = WebhookEvent.objects.get()
    assert event.state == EventState.REJECTED
    assert event.error
    assert event.deliveries.count() == 0
    assert "Rejected webhook body" in caplog.text


@pytest.mark.django_db
def test_redelivery_is_acknowledged_but_stored_once(
    client, sign, django_capture_on_commit_callbacks
):
    raw, headers = sign(comment_body(account_id="1", text="hello"))
    with django_capture_on_commit_callbacks() as callbacks:
        first = client.post(URL, raw, content_type="application/json", headers=headers)
        second = client.post(URL, raw, content_type="application/json", headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    event = WebhookEvent.objects.get()
    assert event.redeliveries == 1
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_get_and_post_only(client):
    assert client.put(URL).status_code == 405


@pytest.mark.django_db
def test_intake_makes_no_graph_call_and_no_matching(client, sign, mocked_graph):
    account = InstagramAccountFactory()
    TriggerFactory(account=account)
    raw, headers = sign(comment_body(account_id=account.ig_user_id, text="guide"))
    # No on_commit capture: scheduling does not run, so nothing beyond storing happens.
    response = client.post(URL, raw, content_type="application/json", headers=headers)
    assert response.status_code == 200
    assert WebhookEvent.objects.get().state == EventState.PENDING
    assert len(mocked_graph.calls) == 0
