"""Replay after a reconnect: sends whose hold ran out and events missed while disconnected."""

import json
import re
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import tokens
from accounts.models import AccountStatus, AuditEntry
from accounts.services import account_connect
from messaging import services as messaging_services
from messaging.models import Delivery, DeliveryAttempt, DeliveryKind, DeliveryStatus
from meta.samples import comment_body
from tests.conftest import GRAPH
from tests.factories import DeliveryFactory, InstagramAccountFactory, TriggerFactory
from webhooks import services as webhook_services
from webhooks.models import EventState, WebhookEvent
from webhooks.replay import ReplayError, account_replay_disconnected

pytestmark = pytest.mark.django_db

HOLD_EXPIRED = timedelta(hours=7)  # past HOLD_LIMIT_SECONDS (6 h)


@pytest.fixture
def account(mocked_graph):
    account = InstagramAccountFactory(username="acme.studio")
    TriggerFactory(account=account, keywords=["guide"], public_replies=["On its way!"])
    mocked_graph.post(
        f"{GRAPH}/{account.page_id}/messages", json={"recipient_id": "9", "message_id": "m.1"}
    )
    mocked_graph.add("POST", re.compile(rf"{GRAPH}/\d+/replies"), json={"id": "17900000000001"})
    return account


def sends(mocked_graph) -> Counter:
    """What reached Meta: (kind, comment id) -> number of calls."""
    counted: Counter = Counter()
    for call in mocked_graph.calls:
        url = call.request.url
        if url.endswith("/messages"):
            counted["private", json.loads(call.request.body)["recipient"]["comment_id"]] += 1
        elif "/replies" in url:
            counted["public", url.split("/")[-2]] += 1
    return counted


def comment(account, comment_id, capture, *, occurred_at=None, text="guide please", **extra):
    """A comment webhook stored and processed the way the worker does it."""
    body = comment_body(
        account_id=account.ig_user_id,
        text=text,
        comment_id=comment_id,
        occurred_at=occurred_at.timestamp() if occurred_at else None,
        **extra,
    )
    with capture(execute=True):
        event = webhook_services.webhook_event_receive(raw_body=json.dumps(body).encode()).event
    event.refresh_from_db()
    return event


def stored(account, comment_id, *, state, received_at=None, error="") -> WebhookEvent:
    """An event that ended in ``state`` (processing left it there), not processed again."""
    body = comment_body(account_id=account.ig_user_id, text="guide", comment_id=comment_id)
    event = webhook_services.webhook_event_receive(raw_body=json.dumps(body).encode()).event
    WebhookEvent.objects.filter(pk=event.pk).update(
        state=state, error=error, received_at=received_at or timezone.now()
    )
    return event


def disconnect_by_the_daily_check(account, mocked_graph):
    mocked_graph.get(
        f"{GRAPH}/debug_token",
        json={"data": {"is_valid": False, "error": {"code": 190, "message": "Session expired"}}},
    )
    assert tokens.account_token_check(account_id=account.pk).result == tokens.NEEDS_RECONNECT


def reconnect(account, capture):
    with capture(execute=True):
        account_connect(
            workspace_name=account.workspace.name,
            ig_user_id=account.ig_user_id,
            username=account.username,
            access_token="fresh-token",
            page_id=account.page_id,
        )
    account.refresh_from_db()
    assert account.status == AccountStatus.ACTIVE


def of_comment(comment_id):
    return {d.kind: d for d in Delivery.objects.filter(comment_id=comment_id)}


def test_disconnect_hold_expiry_reconnect_replay(
    account, mocked_graph, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    now = timezone.now()
    # The story runs over the last ten hours; the disconnection came 8 hours ago.
    # Before it: answered normally, and an event ignored for its own reasons.
    comment(account, "1790000000000001", capture, occurred_at=now - timedelta(hours=10))
    before = stored(
        account,
        "1790000000000009",
        state=EventState.IGNORED,
        received_at=now - timedelta(hours=9),
    )
    assert sends(mocked_graph) == {
        ("private", "1790000000000001"): 1,
        ("public", "1790000000000001"): 1,
    }
    disconnect_by_the_daily_check(account, mocked_graph)
    AuditEntry.objects.filter(action="needs_reconnect").update(at=now - timedelta(hours=8))

    # While disconnected: a comment, one a week old (arriving late), and two events that
    # ended ignored / failed without answering.
    comment(account, "1790000000000002", capture, occurred_at=now - timedelta(hours=7))
    comment(account, "1790000000000003", capture, occurred_at=now - timedelta(days=8))
    failed = stored(
        account,
        "1790000000000004",
        state=EventState.FAILED,
        error="OperationalError: gone",
        received_at=now - timedelta(hours=6),
    )
    ignored = stored(
        account, "1790000000000005", state=EventState.IGNORED, received_at=now - timedelta(hours=5)
    )
    held = [*of_comment("1790000000000002").values(), *of_comment("1790000000000003").values()]
    assert len(held) == 4
    assert all(d.status == DeliveryStatus.QUEUED for d in held)

    # The sweeper holds them (7 hours ago), and the hold runs out before anyone reconnects.
    messaging_services.deliveries_sweep(now=timezone.now())
    Delivery.objects.filter(held_since__isnull=False).update(held_since=now - HOLD_EXPIRED)
    messaging_services.deliveries_sweep(now=timezone.now())
    for delivery in held:
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SKIPPED
        assert delivery.reason == "token_invalid"
        assert delivery.attempts == 0

    reconnect(account, capture)
    assert len(mocked_graph.calls) == 3  # only the debug_token call since: nothing was released

    with capture(execute=True):
        result = account_replay_disconnected(account=account)

    assert result == {"deliveries_requeued": 2, "events_reprocessed": 2, "too_old": 2}
    fresh = of_comment("1790000000000002")
    assert {d.status for d in fresh.values()} == {DeliveryStatus.SENT}
    late = of_comment("1790000000000003")
    assert {d.status for d in late.values()} == {DeliveryStatus.SKIPPED}
    failed.refresh_from_db()
    ignored.refresh_from_db()
    assert failed.state == EventState.PROCESSED
    assert {d.status for d in of_comment("1790000000000004").values()} == {DeliveryStatus.SENT}
    assert ignored.state == EventState.PROCESSED
    before.refresh_from_db()
    assert before.state == EventState.IGNORED  # arrived before the disconnection
    assert before.processing_attempts == 0
    # Everything answered exactly once.
    assert set(sends(mocked_graph).values()) == {1}
    assert set(sends(mocked_graph)) == {
        (kind, f"179000000000000{n}") for kind in ("private", "public") for n in (1, 2, 4, 5)
    }
    entry = AuditEntry.objects.get(action="replayed", object_id=str(account.pk))
    assert "2 send(s) queued again" in entry.note

    # Again: nothing more to do, nothing sent twice.
    calls = len(mocked_graph.calls)
    with capture(execute=True):
        again = account_replay_disconnected(account=account)
    assert again == {"deliveries_requeued": 0, "events_reprocessed": 0, "too_old": 0}
    assert len(mocked_graph.calls) == calls


@pytest.mark.parametrize("status", [AccountStatus.NEEDS_RECONNECT, AccountStatus.DISABLED])
def test_replay_refuses_an_account_that_is_not_active(status):
    account = InstagramAccountFactory(username="acme.studio", status=status)
    skipped = DeliveryFactory(
        account=account, status=DeliveryStatus.SKIPPED, reason="token_invalid",
        held_since=timezone.now(), finished_at=timezone.now(),
    )  # fmt: skip

    with pytest.raises(ReplayError, match=r"@acme.studio is .*: reconnect it first"):
        account_replay_disconnected(account=account)

    skipped.refresh_from_db()
    assert skipped.status == DeliveryStatus.SKIPPED
    assert not AuditEntry.objects.filter(action="replayed").exists()


def test_only_sends_that_waited_for_a_reconnect_and_never_reached_meta_are_requeued(
    mocked_graph, django_capture_on_commit_callbacks
):
    account = InstagramAccountFactory()
    now = timezone.now()
    skipped = {"status": DeliveryStatus.SKIPPED, "finished_at": now}
    waited = DeliveryFactory(
        account=account, reason="permission_missing", held_since=now, **skipped
    )
    refused = DeliveryFactory(account=account, reason="token_invalid", held_since=now, **skipped)
    DeliveryAttempt.objects.create(delivery=refused, number=1, outcome="failed")  # Meta said 190
    maybe_sent = DeliveryFactory(account=account, reason="token_invalid", held_since=now, **skipped)
    DeliveryAttempt.objects.create(delivery=maybe_sent, number=1, outcome="unknown")
    disabled = DeliveryFactory(account=account, reason="permission_missing", **skipped)
    window = DeliveryFactory(account=account, reason="window_expired", held_since=now, **skipped)
    mocked_graph.post(
        f"{GRAPH}/{account.page_id}/messages", json={"recipient_id": "9", "message_id": "m.1"}
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = account_replay_disconnected(account=account)

    assert result["deliveries_requeued"] == 2
    for delivery in (waited, refused):
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SENT
        assert delivery.reason == ""
        assert delivery.held_since is None
    for delivery in (maybe_sent, disabled, window):
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SKIPPED


def test_a_message_is_replayed_within_the_day_of_the_message_it_answers():
    account = InstagramAccountFactory()
    now = timezone.now()
    common = {
        "account": account,
        "kind": DeliveryKind.MESSAGE,
        "comment_id": "",
        "status": DeliveryStatus.SKIPPED,
        "reason": "token_invalid",
        "held_since": now - timedelta(hours=8),
        "finished_at": now - timedelta(hours=2),
    }
    recent = DeliveryFactory(
        **common, dedupe_key="message:a", interaction_at=now - timedelta(hours=10)
    )
    old = DeliveryFactory(
        **common, dedupe_key="message:b", interaction_at=now - timedelta(hours=30)
    )
    # The person wrote again since: Meta's window is open, but that message gets its own answer.
    old.contact.last_interaction_at = now - timedelta(minutes=5)
    old.contact.save()

    result = messaging_services.deliveries_requeue_skipped_for_reconnect(account_id=account.pk)

    assert result == {"requeued": 1, "too_old": 1}
    recent.refresh_from_db()
    assert recent.status == DeliveryStatus.QUEUED
    assert recent.dedupe_key == "message:a"
    assert recent.dispatched_at is None and recent.next_attempt_at is None


def test_the_reconnect_itself_still_releases_held_sends(
    account, mocked_graph, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    disconnect_by_the_daily_check(account, mocked_graph)
    comment(account, "1790000000000006", capture)
    messaging_services.deliveries_sweep(now=timezone.now())
    assert all(d.held_since for d in of_comment("1790000000000006").values())

    reconnect(account, capture)
    with capture(execute=True):
        messaging_services.deliveries_sweep(now=timezone.now())  # the pacer's next turn

    assert {d.status for d in of_comment("1790000000000006").values()} == {DeliveryStatus.SENT}
    with capture(execute=True):
        result = account_replay_disconnected(account=account)
    assert result["deliveries_requeued"] == 0
    assert set(sends(mocked_graph).values()) == {1}


def test_other_accounts_events_never_crowd_out_the_accounts_own(
    account, mocked_graph, django_capture_on_commit_callbacks
):
    """The account's events are chosen in SQL before any limit: 5,001 older ignored events of
    another account (more than the old cap, applied before filtering) do not hide its one."""
    capture = django_capture_on_commit_callbacks
    now = timezone.now()
    disconnect_by_the_daily_check(account, mocked_graph)
    AuditEntry.objects.filter(action="needs_reconnect").update(at=now - timedelta(hours=8))
    other = InstagramAccountFactory()
    old = now - timedelta(hours=7)
    WebhookEvent.objects.bulk_create(
        WebhookEvent(
            raw_body="{}",
            dedupe_key=f"other-{n:058d}",
            state=EventState.IGNORED,
            account_ids=[other.ig_user_id],
            received_at=old,
        )
        for n in range(5001)
    )
    ours = stored(
        account, "1790000000000077", state=EventState.IGNORED, received_at=now - timedelta(hours=6)
    )
    reconnect(account, capture)

    with capture(execute=True):
        result = account_replay_disconnected(account=account)

    assert result["events_reprocessed"] == 1
    ours.refresh_from_db()
    assert ours.state == EventState.PROCESSED
    assert sends(mocked_graph)[("private", "1790000000000077")] == 1
    assert (
        not WebhookEvent.objects.filter(dedupe_key__startswith="other-")
        .exclude(state=EventState.IGNORED)
        .exists()
    )


def test_replay_queues_every_missed_event_in_batches(
    account, mocked_graph, django_capture_on_commit_callbacks, monkeypatch
):
    from webhooks import replay

    monkeypatch.setattr(replay, "REPLAY_BATCH", 2)
    capture = django_capture_on_commit_callbacks
    now = timezone.now()
    disconnect_by_the_daily_check(account, mocked_graph)
    AuditEntry.objects.filter(action="needs_reconnect").update(at=now - timedelta(hours=8))
    events = [
        stored(
            account,
            f"17900000000001{n}",
            state=EventState.FAILED,
            received_at=now - timedelta(hours=5),
        )
        for n in range(5)
    ]
    reconnect(account, capture)
    with capture(execute=True):
        result = account_replay_disconnected(account=account)
    assert result["events_reprocessed"] == 5
    for event in events:
        event.refresh_from_db()
        assert event.state == EventState.PROCESSED
