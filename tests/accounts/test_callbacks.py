"""Meta's deauthorize and data-deletion callbacks, through real HTTP requests to the views."""

import json
import logging
from datetime import timedelta

import pytest
from django.test import Client, TestCase
from django.utils import timezone

from accounts import callbacks
from accounts.models import (
    AccountStatus,
    AuditEntry,
    Contact,
    DataDeletionRequest,
    InstagramAccount,
)
from messaging import services as messaging_services
from messaging.models import Delivery, DeliveryAttempt, DeliveryStatus
from meta.samples import comment_body, message_body
from meta.signatures import make_signed_request
from tests.factories import (
    ContactFactory,
    DeliveryFactory,
    FlowRunFactory,
    InstagramAccountFactory,
    InstagramLoginAccountFactory,
    TriggerFactory,
)
from triggers.models import FlowRun, Trigger
from webhooks import services as webhook_services
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

PERSON = "10150000000000777"  # the person who connected accounts (app-scoped user id)
COMMENTER = "848067418322071"  # someone who commented on a business (Instagram-scoped id)
IG_SECRET = "instagram-app-secret-for-tests"


@pytest.fixture(autouse=True)
def _instagram_app(settings):
    settings.INSTAGRAM_APP_SECRET = IG_SECRET


def signed(user_id=PERSON, secret=None, **payload):
    from django.conf import settings

    body = {"user_id": user_id, "issued_at": int(timezone.now().timestamp()), **payload}
    return make_signed_request(body, secret or settings.META_APP_SECRET)


def post(path, signed_request=None, client=None, *, run_queued_work=True):
    """Meta's POST; then what it queued runs (the data deletion task), unless told not to."""
    data = {} if signed_request is None else {"signed_request": signed_request}
    with TestCase.captureOnCommitCallbacks(execute=run_queued_work):
        return (client or Client()).post(path, data)


def store_event(body: dict) -> WebhookEvent:
    return webhook_services.webhook_event_receive(raw_body=json.dumps(body).encode()).event


# --- the signed_request ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/meta/deauthorize/", "/meta/data-deletion/"])
@pytest.mark.parametrize(
    ("signed_request", "error"),
    [
        (None, "The signed_request is empty."),
        ("", "The signed_request is empty."),
        ("not-a-signed-request", "not in the form <signature>.<payload>"),
        ("!!.??", "not valid base64url"),
        ("SIGNED_BY_ANOTHER_APP", "signature does not match"),
        ("TAMPERED", "signature does not match"),
        ("OTHER_ALGORITHM", "only HMAC-SHA256 is accepted"),
        ("NO_USER", "names no user_id"),
        ("ODD_USER", "is not a Meta user id"),
        ("STALE", "only those issued in the last 300 s are accepted"),
        ("NO_TIME", "has no issued_at time"),
        ("FUTURE", "issued_at is in the future"),
    ],
)
def test_a_bad_signed_request_is_400_and_changes_nothing(path, signed_request, error, caplog):
    account = InstagramAccountFactory(meta_user_id=PERSON)
    special = {
        "SIGNED_BY_ANOTHER_APP": signed(secret="someone-elses-app-secret"),
        "TAMPERED": signed().split(".")[0]
        + "."
        + signed(user_id="10150000000000999").split(".")[1],
        "OTHER_ALGORITHM": signed(algorithm="HMAC-SHA1"),
        "NO_USER": signed(user_id=None),
        "ODD_USER": signed(user_id="1 OR 1=1"),
        # Captured a while ago and replayed (after the person reconnected, say).
        "STALE": signed(issued_at=int(timezone.now().timestamp()) - 301),
        "NO_TIME": signed(issued_at=None),
        "FUTURE": signed(issued_at=int(timezone.now().timestamp()) + 600),
    }
    signed_request = special.get(signed_request, signed_request)

    with caplog.at_level(logging.WARNING, logger="accounts.callback_views"):
        response = post(path, signed_request)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert error in response.json()["error"]
    assert "Refused Meta" in caplog.text
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE
    assert account.access_token
    assert not DataDeletionRequest.objects.exists()


@pytest.mark.parametrize("path", ["/meta/deauthorize/", "/meta/data-deletion/"])
def test_get_is_not_allowed(path):
    assert Client().get(path).status_code == 405


@pytest.mark.parametrize("path", ["/meta/deauthorize/", "/meta/data-deletion/"])
def test_meta_can_post_without_a_csrf_token(path):
    InstagramAccountFactory(meta_user_id=PERSON)
    client = Client(enforce_csrf_checks=True)

    response = post(path, signed(), client=client)

    assert response.status_code == 200


# --- deauthorize ---------------------------------------------------------------------------------
def test_deauthorize_disconnects_the_persons_accounts_and_wipes_their_tokens(caplog):
    first = InstagramAccountFactory(meta_user_id=PERSON, username="acme.studio")
    second = InstagramAccountFactory(meta_user_id=PERSON)
    other = InstagramAccountFactory(meta_user_id="10150000000000999")

    response = post("/meta/deauthorize/", signed())

    assert response.status_code == 200
    assert response.json() == {"success": True}
    for account in (first, second):
        account.refresh_from_db()
        assert account.status == AccountStatus.NEEDS_RECONNECT
        assert account.reconnect_reason == "token_invalid"
        assert account.access_token_encrypted == ""
        assert account.access_token == ""
        assert account.scopes == []
        assert "the app was removed on Facebook/Instagram" in account.status_reason
        entry = AuditEntry.objects.get(object_id=str(account.pk), action="deauthorized")
        assert entry.actor_label == "Meta"
    assert first.status_reason.startswith("Reconnect @acme.studio:")
    other.refresh_from_db()
    assert other.status == AccountStatus.ACTIVE and other.access_token
    record = DataDeletionRequest.objects.get()
    assert record.source == "deauthorize"
    assert record.summary["accounts_disconnected"] == 2


def test_deauthorize_keeps_held_sends_held_and_holds_new_ones(mocked_graph):
    account = InstagramAccountFactory(meta_user_id=PERSON, username="acme.studio")
    held = DeliveryFactory(account=account, held_since=timezone.now())
    queued = DeliveryFactory(account=account)

    post("/meta/deauthorize/", signed())

    Delivery.objects.filter(pk=queued.pk).update(dispatched_at=timezone.now())
    messaging_services.delivery_send(delivery_id=queued.pk)
    for delivery in (held, queued):
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.QUEUED
        assert delivery.held_since is not None
    assert "the app was removed" in queued.detail
    assert len(mocked_graph.calls) == 0


def test_deauthorize_with_the_instagram_app_secret_matches_instagram_login_accounts():
    account = InstagramLoginAccountFactory(ig_alt_id="27841490000000001", meta_user_id="")

    response = post("/meta/deauthorize/", signed("27841490000000001", secret=IG_SECRET))

    assert response.status_code == 200
    account.refresh_from_db()
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert account.access_token == ""


def test_deauthorize_twice_changes_nothing_more():
    account = InstagramAccountFactory(meta_user_id=PERSON)
    post("/meta/deauthorize/", signed())
    changed_at = InstagramAccount.objects.get(pk=account.pk).status_changed_at

    assert post("/meta/deauthorize/", signed()).status_code == 200

    account.refresh_from_db()
    assert account.status_changed_at == changed_at
    record = DataDeletionRequest.objects.get()
    assert record.summary["runs"] == 2
    assert record.summary["accounts_disconnected"] == 1


# --- data deletion: the person who connected accounts ------------------------------------------
def _connected_account_with_history():
    account = InstagramAccountFactory(meta_user_id=PERSON, username="acme.studio")
    trigger = TriggerFactory(account=account, name="Guide giveaway")
    contact = ContactFactory(account=account, igsid="848067418399999")
    delivery = DeliveryFactory(account=account, contact=contact, status=DeliveryStatus.SENT)
    DeliveryAttempt.objects.create(delivery=delivery, number=1, outcome="sent")
    FlowRunFactory(trigger=trigger, contact=contact)
    event = store_event(
        comment_body(account_id=account.ig_user_id, text="my secret words", from_id=contact.igsid)
    )
    AuditEntry.objects.create(
        actor_label="connect",
        action="changed",
        object_type="accounts.instagramaccount",
        object_id=str(account.pk),
        object_repr="@acme.studio",
        changes={"meta_user_id": ["", PERSON], "username": ["old", "acme.studio"]},
    )
    return account, trigger, event


def test_data_deletion_answers_metas_json_and_a_status_page():
    _connected_account_with_history()

    response = post("/meta/data-deletion/", signed())

    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"url", "confirmation_code"}
    code = answer["confirmation_code"]
    assert answer["url"] == f"http://testserver/meta/data-deletion/{code}/"
    record = DataDeletionRequest.objects.get(confirmation_code=code)
    assert record.status == "completed"
    assert record.source == "data_deletion"
    assert record.completed_at is not None

    page = Client().get(f"/meta/data-deletion/{code}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert code in text
    assert "Completed" in text
    assert f"{record.requested_at:%Y-%m-%d %H:%M}" in text
    assert PERSON not in text and "acme.studio" not in text


def test_data_deletion_removes_what_the_persons_login_gave_us():
    account, trigger, event = _connected_account_with_history()
    dedupe_key = event.dedupe_key

    post("/meta/data-deletion/", signed())

    account.refresh_from_db()
    assert account.access_token_encrypted == ""
    assert account.meta_user_id == ""
    assert account.status == AccountStatus.NEEDS_RECONNECT
    assert "deleted at the request of the person who connected it" in account.status_reason
    assert not Contact.objects.filter(account=account).exists()
    assert not Delivery.objects.filter(account=account).exists()
    assert not DeliveryAttempt.objects.exists()
    assert not FlowRun.objects.exists()
    # The agency's own content stays, ready for a reconnect.
    assert Trigger.objects.get(pk=trigger.pk).name == "Guide giveaway"
    event.refresh_from_db()
    assert "my secret words" not in event.raw_body
    assert account.ig_user_id not in event.raw_body
    assert event.result == []
    assert event.error.startswith("Redacted")
    assert event.dedupe_key == dedupe_key
    entry = AuditEntry.objects.get(action="changed", object_id=str(account.pk))
    assert entry.changes["meta_user_id"] == ["(deleted)", "(deleted)"]
    assert entry.changes["username"] == ["old", "acme.studio"]
    record = DataDeletionRequest.objects.get()
    assert record.summary | {"runs": 1} == {
        "accounts": 1,
        "contacts": 1,
        "flow_runs": 1,
        "trigger_firings": 0,
        "deliveries": 1,
        "events_redacted": 1,
        "pending_connections": 0,
        "runs": 1,
    }
    assert AuditEntry.objects.get(action="data_deleted").actor_label == "Meta"


def test_a_redacted_event_redelivered_by_meta_sends_nothing(django_capture_on_commit_callbacks):
    _, _, event = _connected_account_with_history()
    post("/meta/data-deletion/", signed())
    raw = event.raw_body  # the original bytes, as Meta would send them again

    with django_capture_on_commit_callbacks(execute=True):
        intake = webhook_services.webhook_event_receive(raw_body=raw.encode())

    assert intake.duplicate
    assert not Delivery.objects.exists()


def test_instagram_login_account_loses_its_app_scoped_id():
    account = InstagramLoginAccountFactory(ig_alt_id="27841490000000001", meta_user_id="")

    post("/meta/data-deletion/", signed("27841490000000001", secret=IG_SECRET))

    account.refresh_from_db()
    assert account.ig_alt_id == ""
    assert account.access_token == ""


# --- data deletion: a person who messaged or commented -------------------------------------------
def test_data_deletion_for_an_instagram_scoped_id_removes_them_everywhere():
    shop, studio = InstagramAccountFactory(), InstagramAccountFactory()
    theirs = [
        ContactFactory(account=shop, igsid=COMMENTER),
        ContactFactory(account=studio, igsid=COMMENTER),
    ]
    bystander = ContactFactory(account=shop, igsid=f"9{COMMENTER}")  # contains the id
    their_delivery = DeliveryFactory(account=shop, contact=theirs[0])
    unlinked = DeliveryFactory(
        account=studio, contact=None, recipient=COMMENTER, kind="message", comment_id=""
    )
    kept = DeliveryFactory(account=shop, contact=bystander)
    their_comment = store_event(
        comment_body(account_id=shop.ig_user_id, text="send me the guide", from_id=COMMENTER)
    )
    their_message = store_event(
        message_body(account_id=studio.ig_user_id, sender_id=COMMENTER, text="hello there")
    )
    other_event = store_event(
        comment_body(account_id=shop.ig_user_id, text="nice", from_id=bystander.igsid)
    )

    response = post("/meta/data-deletion/", signed(COMMENTER))

    assert response.status_code == 200
    assert not Contact.objects.filter(igsid=COMMENTER).exists()
    assert Contact.objects.filter(pk=bystander.pk).exists()
    assert not Delivery.objects.filter(pk__in=[their_delivery.pk, unlinked.pk]).exists()
    assert Delivery.objects.filter(pk=kept.pk).exists()
    for event in (their_comment, their_message):
        event.refresh_from_db()
        assert COMMENTER not in event.raw_body
        assert "send me the guide" not in event.raw_body and "hello there" not in event.raw_body
    other_event.refresh_from_db()
    assert "nice" in other_event.raw_body
    # The businesses they wrote to are untouched.
    for account in (shop, studio):
        account.refresh_from_db()
        assert account.status == AccountStatus.ACTIVE and account.access_token
    summary = DataDeletionRequest.objects.get().summary
    assert summary["accounts"] == 0
    assert summary["contacts"] == 2
    assert summary["deliveries"] == 2
    assert summary["events_redacted"] == 2


# --- repeats and the status page -----------------------------------------------------------------
def test_a_repeat_within_a_day_answers_the_same_code_and_catches_new_data():
    InstagramAccountFactory(meta_user_id=PERSON)
    first = post("/meta/data-deletion/", signed()).json()
    shop = InstagramAccountFactory()
    ContactFactory(account=shop, igsid=PERSON)  # arrived after the first request

    again = post("/meta/data-deletion/", signed()).json()

    assert again == first
    assert not Contact.objects.filter(igsid=PERSON).exists()
    record = DataDeletionRequest.objects.get()
    assert record.summary["runs"] == 2
    assert record.summary["contacts"] == 1


def test_a_request_after_a_day_gets_a_new_code():
    first = post("/meta/data-deletion/", signed()).json()
    DataDeletionRequest.objects.update(requested_at=timezone.now() - timedelta(days=2))

    second = post("/meta/data-deletion/", signed()).json()

    assert second["confirmation_code"] != first["confirmation_code"]
    assert DataDeletionRequest.objects.count() == 2


def test_the_status_of_an_unknown_code_is_404():
    assert Client().get("/meta/data-deletion/0123456789abcdef0123/").status_code == 404


def test_a_deauthorize_record_has_no_public_status_page():
    post("/meta/deauthorize/", signed())
    record = DataDeletionRequest.objects.get()

    assert Client().get(f"/meta/data-deletion/{record.confirmation_code}/").status_code == 404


# --- data deletion runs in a task, in batches, with its progress on the status page ---------------
def test_data_deletion_answers_meta_at_once_and_the_work_runs_in_a_task():
    account, _, event = _connected_account_with_history()

    response = post("/meta/data-deletion/", signed(), run_queued_work=False)

    assert response.status_code == 200
    code = response.json()["confirmation_code"]
    # Nothing deleted inside Meta's request: the answer does not wait for the work.
    assert Contact.objects.filter(account=account).exists()
    record = DataDeletionRequest.objects.get()
    assert record.status == "in_progress"
    page = Client().get(f"/meta/data-deletion/{code}/").content.decode()
    assert "In progress: about 0% done" in page

    assert callbacks.data_deletion_run(record_id=record.pk) == "completed"
    assert not Contact.objects.filter(account=account).exists()
    event.refresh_from_db()
    assert event.error.startswith("Redacted")
    assert "Completed" in Client().get(f"/meta/data-deletion/{code}/").content.decode()


def test_data_deletion_works_in_bounded_batches_and_shows_how_far_it_got(monkeypatch):
    monkeypatch.setattr(callbacks, "DELETE_BATCH", 2)
    monkeypatch.setattr(callbacks, "EVENT_SCAN_BATCH", 3)
    queued = []
    monkeypatch.setattr(callbacks, "_queue_run", queued.append)
    shop = InstagramAccountFactory()
    for n in range(5):
        contact = ContactFactory(account=shop, igsid=f"{COMMENTER}{n}" if n else COMMENTER)
        DeliveryFactory(account=shop, contact=contact if n == 0 else None, recipient=COMMENTER)
    their_events = [
        store_event(comment_body(account_id=shop.ig_user_id, text=f"hi {n}", from_id=COMMENTER))
        for n in range(4)
    ]
    others = [
        store_event(comment_body(account_id=shop.ig_user_id, text=f"yo {n}", from_id="5550001"))
        for n in range(4)
    ]
    record = callbacks.meta_data_deletion(user_id=COMMENTER)
    percents, runs = [], 0
    while DataDeletionRequest.objects.get(pk=record.pk).status == "in_progress":
        callbacks.data_deletion_run(record_id=record.pk, seconds=0)  # one batch per run
        runs += 1
        assert runs < 30
        page = Client().get(f"/meta/data-deletion/{record.confirmation_code}/").content.decode()
        percents.append(callbacks.data_deletion_share_done(DataDeletionRequest.objects.get()))
        assert "Completed" in page or f"about {percents[-1]}% done" in page
    assert len(queued) == runs - 1  # each run that stopped early queued the next
    assert percents == sorted(percents) and percents[-1] == 100
    record.refresh_from_db()
    assert record.summary["deliveries"] == 5
    assert record.summary["contacts"] == 1
    assert record.summary["events_redacted"] == 4
    for event in their_events:
        event.refresh_from_db()
        assert COMMENTER not in event.raw_body
    for event in others:
        event.refresh_from_db()
        assert "yo" in event.raw_body


def test_a_deletion_whose_task_was_lost_is_queued_again_by_beat(monkeypatch):
    queued = []
    monkeypatch.setattr(callbacks, "_queue_run", queued.append)
    record = callbacks.meta_data_deletion(user_id=PERSON)
    assert callbacks.data_deletions_resume() == 0  # just queued: not lost
    DataDeletionRequest.objects.filter(pk=record.pk).update(
        updated_at=timezone.now() - timedelta(minutes=10)
    )
    assert callbacks.data_deletions_resume() == 1
    assert record.pk in queued


def test_a_deauthorize_captured_earlier_cannot_wipe_a_reconnected_token():
    account = InstagramAccountFactory(meta_user_id=PERSON)
    captured = signed(issued_at=int(timezone.now().timestamp()) - 3600)
    response = post("/meta/deauthorize/", captured)
    assert response.status_code == 400
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE and account.access_token
