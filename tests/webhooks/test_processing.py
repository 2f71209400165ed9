"""Processing a stored event: parse, match, create deliveries, send through the Graph client."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Delivery, DeliveryKind, DeliveryStatus
from meta.samples import comment_body, message_body
from tests.conftest import GRAPH
from tests.factories import ContactFactory, InstagramAccountFactory, TriggerFactory
from triggers.models import Trigger
from webhooks import services
from webhooks.models import EventState, WebhookEvent

pytestmark = pytest.mark.django_db


def _store(body: dict) -> WebhookEvent:
    intake = services.webhook_event_receive(raw_body=json.dumps(body).encode())
    return intake.event


def _process(body: dict, capture) -> WebhookEvent:
    """Store and process the event the way the worker does, running on-commit sends inline."""
    with capture(execute=True):
        event = _store(body)
    event.refresh_from_db()
    return event


def _ok_graph(mocked_graph, account):
    mocked_graph.post(
        f"{GRAPH}/{account.page_id}/messages", json={"recipient_id": "9", "message_id": "m.1"}
    )
    mocked_graph.add(
        "POST",
        __import__("re").compile(rf"{GRAPH}/\d+/replies"),
        json={"id": "17900000000000001"},
    )


def test_matching_comment_sends_public_and_private_reply(
    mocked_graph, django_capture_on_commit_callbacks
):
    account = InstagramAccountFactory()
    trigger = TriggerFactory(account=account, keywords=["guide"], public_replies=["On its way!"])
    _ok_graph(mocked_graph, account)

    event = _process(
        comment_body(account_id=account.ig_user_id, text="Guide please!", comment_id="555"),
        django_capture_on_commit_callbacks,
    )

    assert event.state == EventState.PROCESSED
    assert event.result[0]["trigger"] == trigger.name
    deliveries = {d.kind: d for d in Delivery.objects.all()}
    assert set(deliveries) == {DeliveryKind.PUBLIC_REPLY, DeliveryKind.PRIVATE_REPLY}
    for delivery in deliveries.values():
        assert delivery.status == DeliveryStatus.SENT
        assert delivery.attempts == 1
        assert delivery.comment_id == "555"
        assert delivery.contact.igsid == "848067418322071"
        assert delivery.attempt_log.count() == 1
    assert deliveries[DeliveryKind.PRIVATE_REPLY].meta_response_id == "m.1"
    assert deliveries[DeliveryKind.PUBLIC_REPLY].meta_response_id == "17900000000000001"
    bodies = {call.request.url: call.request.body for call in mocked_graph.calls}
    private = json.loads(bodies[f"{GRAPH}/{account.page_id}/messages"])
    assert private == {
        "recipient": {"comment_id": "555"},
        "message": {"text": "Here is the guide: https://example.com"},
    }
    assert "message=On+its+way%21" in bodies[f"{GRAPH}/555/replies"]


def test_interaction_time_is_metas_not_ours(mocked_graph, django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    TriggerFactory(account=account)
    _ok_graph(mocked_graph, account)
    _process(
        comment_body(account_id=account.ig_user_id, text="guide", occurred_at=1776339591),
        django_capture_on_commit_callbacks,
    )
    delivery = Delivery.objects.get(kind=DeliveryKind.PRIVATE_REPLY)
    assert delivery.interaction_at.timestamp() == 1776339591
    assert delivery.event_received_at > delivery.interaction_at


def test_instagram_login_account_sends_through_instagram_graph(
    mocked_graph, django_capture_on_commit_callbacks
):
    from tests.conftest import INSTAGRAM_GRAPH

    account = InstagramAccountFactory(login_kind="instagram", page_id="")
    TriggerFactory(account=account, public_replies=[])
    mocked_graph.post(
        f"{INSTAGRAM_GRAPH}/{account.ig_user_id}/messages",
        json={"recipient_id": "9", "message_id": "m.2"},
    )
    _process(
        comment_body(account_id=account.ig_user_id, text="guide"),
        django_capture_on_commit_callbacks,
    )
    assert Delivery.objects.get().status == DeliveryStatus.SENT
    assert (
        mocked_graph.calls[0].request.headers["Authorization"]
        == f"Bearer token-{account.ig_user_id}"
    )


def test_redelivered_event_processed_again_sends_nothing_twice(
    mocked_graph, django_capture_on_commit_callbacks
):
    account = InstagramAccountFactory()
    TriggerFactory(account=account)
    _ok_graph(mocked_graph, account)
    body = comment_body(account_id=account.ig_user_id, text="guide", comment_id="777")
    _process(body, django_capture_on_commit_callbacks)
    # The same comment inside a differently batched body (a new raw event) and a task that
    # runs twice for the first event.
    other = dict(body, entry=body["entry"] + [comment_body(account_id="999", text="x")["entry"][0]])
    _process(other, django_capture_on_commit_callbacks)
    first = WebhookEvent.objects.order_by("pk").first()
    services.webhook_event_process(event_id=first.pk)
    assert Delivery.objects.count() == 2
    assert len(mocked_graph.calls) == 2


def test_process_task_twice_is_harmless(mocked_graph, django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    TriggerFactory(account=account)
    _ok_graph(mocked_graph, account)
    event = _process(
        comment_body(account_id=account.ig_user_id, text="guide"),
        django_capture_on_commit_callbacks,
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.webhook_event_process(event_id=event.pk)
    assert Delivery.objects.count() == 2
    assert len(mocked_graph.calls) == 2


def test_own_comment_is_ignored(mocked_graph, django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    TriggerFactory(account=account)
    event = _process(
        comment_body(account_id=account.ig_user_id, text="guide", from_id=account.ig_user_id),
        django_capture_on_commit_callbacks,
    )
    assert event.state == EventState.IGNORED
    assert "own comment" in event.result[0]["why"]
    assert Delivery.objects.count() == 0
    assert len(mocked_graph.calls) == 0


def test_own_comment_by_alternate_id_is_ignored(mocked_graph, django_capture_on_commit_callbacks):
    account = InstagramAccountFactory(ig_alt_id="2222")
    TriggerFactory(account=account)
    event = _process(
        comment_body(account_id="2222", text="guide", from_id=account.ig_user_id),
        django_capture_on_commit_callbacks,
    )
    assert event.state == EventState.IGNORED
    assert Delivery.objects.count() == 0


def test_comment_without_author_is_ignored(mocked_graph, django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    TriggerFactory(account=account)
    body = comment_body(account_id=account.ig_user_id, text="guide")
    del body["entry"][0]["changes"][0]["value"]["from"]
    event = _process(body, django_capture_on_commit_callbacks)
    assert event.state == EventState.IGNORED
    assert Delivery.objects.count() == 0


def test_unknown_account_is_ignored(django_capture_on_commit_callbacks):
    event = _process(
        comment_body(account_id="404", text="guide"), django_capture_on_commit_callbacks
    )
    assert event.state == EventState.IGNORED
    assert "no connected account" in event.result[0]["why"]


def test_no_match_is_kept_and_marked(mocked_graph, django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"])
    event = _process(
        comment_body(account_id=account.ig_user_id, text="guidelines?"),
        django_capture_on_commit_callbacks,
    )
    assert event.state == EventState.NO_MATCH
    assert WebhookEvent.objects.filter(pk=event.pk).exists()
    assert Delivery.objects.count() == 0


@pytest.mark.parametrize(
    ("mode", "text", "matches"),
    [
        ("exact", "guide", True),
        ("exact", "GUIDE!", True),
        ("exact", "guide please", False),
        ("contains", "guide please", True),
        ("contains", "the Guide?", True),
        ("contains", "guidebook", False),
    ],
)
def test_exact_versus_contains(
    mocked_graph, django_capture_on_commit_callbacks, mode, text, matches
):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, match=mode, keywords=["guide"])
    _ok_graph(mocked_graph, account)
    event = _process(
        comment_body(account_id=account.ig_user_id, text=text), django_capture_on_commit_callbacks
    )
    assert (event.state == EventState.PROCESSED) is matches
    assert Delivery.objects.exists() is matches


def test_post_scoped_trigger_only_answers_its_post(
    mocked_graph, django_capture_on_commit_callbacks
):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, media_ids=["111"])
    _ok_graph(mocked_graph, account)
    other = _process(
        comment_body(account_id=account.ig_user_id, text="guide", media_id="222"),
        django_capture_on_commit_callbacks,
    )
    assert other.state == EventState.NO_MATCH
    same = _process(
        comment_body(account_id=account.ig_user_id, text="guide", media_id="111"),
        django_capture_on_commit_callbacks,
    )
    assert same.state == EventState.PROCESSED


def test_disabled_trigger_does_not_answer(django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, enabled=False)
    event = _process(
        comment_body(account_id=account.ig_user_id, text="guide"),
        django_capture_on_commit_callbacks,
    )
    assert event.state == EventState.NO_MATCH


def test_reply_to_a_comment_is_not_answered(django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    TriggerFactory(account=account)
    event = _process(
        comment_body(account_id=account.ig_user_id, text="guide", parent_id="1"),
        django_capture_on_commit_callbacks,
    )
    assert event.state == EventState.IGNORED
    assert Delivery.objects.count() == 0


def test_malformed_payload_is_ignored_saying_why(django_capture_on_commit_callbacks, caplog):
    # Issue 12: a shape processing does not understand is an outcome, not a crash to retry.
    event = _process(
        {"object": "instagram", "entry": "not a list"}, django_capture_on_commit_callbacks
    )
    assert event.state == EventState.IGNORED
    assert event.error == ""
    assert event.result == [
        {
            "type": "envelope",
            "outcome": "ignored",
            "why": "The webhook 'entry' must be a list, got str.",
        }
    ]
    assert not [record for record in caplog.records if record.exc_info]


def test_unhashable_object_is_ignored_without_a_traceback(
    django_capture_on_commit_callbacks, caplog
):
    # It was `TypeError: unhashable type: 'dict'` in meta/payloads.py _entries.
    event = _process({"object": {"a": 1}, "entry": []}, django_capture_on_commit_callbacks)
    assert event.state == EventState.IGNORED
    assert "'dict'" in event.result[0]["why"]
    assert not [record for record in caplog.records if record.exc_info]


def test_meta_error_is_recorded_on_the_delivery(mocked_graph, django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, public_replies=[])
    mocked_graph.post(
        f"{GRAPH}/{account.page_id}/messages",
        status=400,
        json={
            "error": {
                "message": "(#10) This message is sent outside of allowed window.",
                "type": "OAuthException",
                "code": 10,
                "error_subcode": 2534022,
                "fbtrace_id": "A6LJy",
            }
        },
    )
    _process(
        comment_body(account_id=account.ig_user_id, text="guide"),
        django_capture_on_commit_callbacks,
    )
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.reason == "window_expired"
    assert (delivery.meta_code, delivery.meta_subcode) == (10, 2534022)
    assert "allowed window" in delivery.meta_message
    assert delivery.meta_trace_id == "A6LJy"
    attempt = delivery.attempt_log.get()
    assert attempt.http_status == 400
    assert "token" not in attempt.request_summary.lower()


def test_timeout_leaves_delivery_unknown(mocked_graph, django_capture_on_commit_callbacks):
    import requests

    account = InstagramAccountFactory()
    TriggerFactory(account=account, public_replies=[])
    mocked_graph.post(
        f"{GRAPH}/{account.page_id}/messages", body=requests.exceptions.ReadTimeout("slow")
    )
    _process(
        comment_body(account_id=account.ig_user_id, text="guide"),
        django_capture_on_commit_callbacks,
    )
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.UNKNOWN
    assert "not retried" in delivery.detail


def test_message_event_opens_the_window(django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    contact = ContactFactory(account=account)
    before = timezone.now()
    _process(
        message_body(account_id=account.ig_user_id, sender_id=contact.igsid, text="hi"),
        django_capture_on_commit_callbacks,
    )
    contact.refresh_from_db()
    assert contact.last_interaction_at is not None
    assert abs((contact.last_interaction_at - before).total_seconds()) < 5


def test_crash_during_processing_leaves_event_pending_then_failed(
    monkeypatch, django_capture_on_commit_callbacks
):
    account = InstagramAccountFactory()
    TriggerFactory(account=account)

    def explode(**kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr("triggers.services.comment_answer", explode)
    event = _process(
        comment_body(account_id=account.ig_user_id, text="guide"),
        django_capture_on_commit_callbacks,
    )
    assert event.state == EventState.PENDING
    assert "database hiccup" in event.error
    for _ in range(services.MAX_PROCESSING_ATTEMPTS):
        services.webhook_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert event.state == EventState.FAILED


@pytest.fixture
def requeued(monkeypatch):
    queued = []
    monkeypatch.setattr(
        "webhooks.tasks.process_event.apply_async",
        lambda args, queue=None, **kw: queued.append((args[0], queue)),
    )
    monkeypatch.setattr(services, "intake_backlog", lambda: 0)  # the broker lost everything
    return queued


def test_sweeper_requeues_pending_events(requeued):
    event = _store(comment_body(account_id="1", text="x"))  # on_commit not run: still pending
    assert services.webhook_events_requeue_pending(older_than_seconds=60) == 0
    assert services.webhook_events_requeue_pending(older_than_seconds=0) == 1
    assert requeued == [(event.pk, "events")]
    event.refresh_from_db()
    assert (event.requeued_count, event.last_requeued_at is not None) == (1, True)


def test_sweeper_spaces_requeues_of_the_same_event_exponentially(requeued):
    event = _store(comment_body(account_id="1", text="x"))
    long_ago = timezone.now() - timedelta(seconds=100)
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=long_ago, dispatched_at=long_ago)
    assert services.webhook_events_requeue_pending(older_than_seconds=10) == 1
    # Just re-queued: the next try waits 2 x 10 s, then 4 x 10 s.
    assert services.webhook_events_requeue_pending(older_than_seconds=10) == 0
    WebhookEvent.objects.filter(pk=event.pk).update(
        last_requeued_at=timezone.now() - timedelta(seconds=21)
    )
    assert services.webhook_events_requeue_pending(older_than_seconds=10) == 1
    WebhookEvent.objects.filter(pk=event.pk).update(
        last_requeued_at=timezone.now() - timedelta(seconds=21)
    )
    assert services.webhook_events_requeue_pending(older_than_seconds=10) == 0
    assert len(requeued) == 2


def test_sweeper_leaves_events_that_are_waiting_in_the_queue(requeued, monkeypatch):
    events = [_store(comment_body(account_id="1", text=f"x {n}")) for n in range(3)]
    for age, event in zip((30, 20, 10), events, strict=True):
        WebhookEvent.objects.filter(pk=event.pk).update(
            received_at=timezone.now() - timedelta(seconds=age)
        )
    monkeypatch.setattr(services, "intake_backlog", lambda: 3)  # a burst is being worked off
    assert services.webhook_events_requeue_pending(older_than_seconds=0) == 0
    # One message waits for three events: two are missing (lost, or in a worker's hands),
    # and a queue hands out its oldest first, so the newest is the one still queued.
    monkeypatch.setattr(services, "intake_backlog", lambda: 1)
    assert services.webhook_events_requeue_pending(older_than_seconds=0) == 2
    assert [event_id for event_id, _ in requeued] == [events[0].pk, events[1].pk]


def test_intake_backlog_counts_messages_waiting_on_the_broker():
    assert isinstance(services.intake_backlog(), int)


def test_a_flooded_account_goes_to_the_bulk_queue_and_others_do_not(settings, monkeypatch):
    from messaging.sharedstate import RedisState, shared_state

    if not isinstance(shared_state(), RedisState):
        pytest.skip("flood detection needs Redis (REDIS_URL)")
    settings.HOT_ACCOUNT_EVENTS_PER_WINDOW = 3
    for key in shared_state().client.scan_iter("count:intake:*"):
        shared_state().client.delete(key)
    routes = [services.intake_queue_for(["viral"]) for _ in range(5)]
    assert routes == ["events", "events", "events", "events_bulk", "events_bulk"]
    assert services.intake_queue_for(["quiet"]) == "events"


def test_broker_down_keeps_the_event(monkeypatch, django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr("webhooks.tasks.process_event.apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        event = _store(comment_body(account_id="1", text="x"))
    event.refresh_from_db()
    assert event.state == EventState.PENDING


def test_an_accounts_last_webhook_is_noted_to_the_minute(django_capture_on_commit_callbacks):
    account = InstagramAccountFactory()
    first = _process(
        comment_body(account_id=account.ig_user_id, text="hi", comment_id="8801"),
        django_capture_on_commit_callbacks,
    )
    account.refresh_from_db()
    assert account.last_webhook_at == first.received_at

    # Within the minute nothing is written (most events cost no extra write).
    _process(
        comment_body(account_id=account.ig_user_id, text="hi again", comment_id="8802"),
        django_capture_on_commit_callbacks,
    )
    account.refresh_from_db()
    assert account.last_webhook_at == first.received_at

    later = timezone.now() - timedelta(minutes=5)
    type(account).objects.filter(pk=account.pk).update(last_webhook_at=later)
    third = _process(
        comment_body(account_id=account.ig_user_id, text="hi later", comment_id="8803"),
        django_capture_on_commit_callbacks,
    )
    account.refresh_from_db()
    assert account.last_webhook_at == third.received_at


def test_one_failing_update_of_a_batched_event_does_not_stop_the_others(
    mocked_graph, django_capture_on_commit_callbacks
):
    """Workspace A's malformed trigger (stored before triggers were validated) must not cost
    workspace B's comment in the same POST its replies."""
    account_a, account_b = InstagramAccountFactory(), InstagramAccountFactory()
    broken = TriggerFactory(account=account_a, keywords=["guide"])
    Trigger.objects.filter(pk=broken.pk).update(messages=["x"])  # bypasses every form
    TriggerFactory(account=account_b, keywords=["guide"], name="B guide")
    _ok_graph(mocked_graph, account_b)
    entry_a = comment_body(account_id=account_a.ig_user_id, text="guide", comment_id="901")
    entry_b = comment_body(account_id=account_b.ig_user_id, text="guide", comment_id="902")
    body = {"object": "instagram", "entry": entry_a["entry"] + entry_b["entry"]}

    event = _process(body, django_capture_on_commit_callbacks)

    failed, answered = event.result
    assert (failed["account"], failed["outcome"]) == (account_a.ig_user_id, "failed")
    assert "AttributeError" in failed["why"]
    assert (answered["account"], answered["trigger"]) == (account_b.ig_user_id, "B guide")
    assert event.state == EventState.FAILED
    assert event.error.startswith("1 of 2 update(s) could not be processed")
    sent = Delivery.objects.filter(account=account_b, status=DeliveryStatus.SENT)
    assert {d.comment_id for d in sent} == {"902"}
    # Nothing of A's failed update was kept (its savepoint was rolled back).
    assert not Delivery.objects.filter(account=account_a).exists()
