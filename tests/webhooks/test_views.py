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


# --- no 500 for any signed body (issue 12) -------------------------------------------------------
def _post_raw(client, raw: bytes, sign):
    from django.conf import settings

    from meta.signatures import sign_body

    return client.post(
        URL,
        raw,
        content_type="application/json",
        headers={"X-Hub-Signature-256": sign_body(raw, settings.META_APP_SECRET)},
    )


ENVELOPE = '{"object": "instagram", "entry": [%s]}'


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "why"),
    [
        # Deeper than the recursion limit: was a RecursionError (500) in _decode_object.
        (ENVELOPE.replace("%s", "[" * 5000 + "]" * 5000).encode(), "nested too deeply"),
        # Deep, but not past the recursion limit: refused all the same.
        (ENVELOPE.replace("%s", "[" * 200 + "]" * 200).encode(), "nests deeper than 64"),
        # json.loads guesses these encodings; the stored text must be UTF-8.
        (json.dumps({"object": "instagram", "entry": []}).encode("utf-16"), "not UTF-8"),
        (json.dumps({"object": "instagram", "entry": []}).encode("utf-32"), "not UTF-8"),
        (json.dumps({"object": "instagram", "entry": []}).encode("utf-16-le"), "not UTF-8"),
        # The UTF-8 bytes of a lone surrogate (U+D800) are not UTF-8.
        (b'{"object": "instagram", "entry": [], "x": "\xed\xa0\x80"}', "not UTF-8"),
        (b'\xef\xbb\xbf{"object": "instagram", "entry": []}', "byte order mark"),
        (b'{"id": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_bodies_that_are_not_utf8_json_objects_get_400_saying_why(client, sign, raw, why):
    response = _post_raw(client, raw, sign)
    assert response.status_code == 400
    assert why in response.content.decode()
    (event,) = WebhookEvent.objects.all()
    assert event.state == EventState.REJECTED
    assert why in event.error


@pytest.mark.django_db
def test_nul_and_lone_surrogate_escapes_are_stored_as_escapes_and_processed_safely(
    client, sign, caplog
):
    from webhooks.services import webhook_event_process

    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"])
    body = comment_body(account_id=account.ig_user_id, text="guide \u0000 \ud800 please")
    body["entry"][0]["changes"][0]["value"]["from"]["username"] = "nul\u0000name"
    body["entry"].append(
        {"id": "17841\u00000", "time": 1, "changes": [{"field": "comments", "value": {"id": "1"}}]}
    )
    raw = json.dumps(body).encode()  # NUL and the surrogate as \u escapes, valid UTF-8
    assert b"\\u0000" in raw and b"\\ud800" in raw

    response = _post_raw(client, raw, sign)

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.raw_body.encode() == raw  # kept exactly, escapes and all
    # An id with a NUL is no id: not stored among the event's accounts.
    assert event.account_ids == [account.ig_user_id]
    event = webhook_event_process(event_id=event.pk)
    assert event.state == EventState.PROCESSED
    comment, odd = event.result
    assert comment["outcome"] == "matched"
    assert odd["outcome"] == "ignored"
    assert not [record for record in caplog.records if record.exc_info]
    contact = account.contacts.get()
    assert contact.username == "nul\ufffdname"
