"""Flows: quick replies and buttons that open the window, delays, the follow gate."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging import services as messaging_services
from messaging.models import Delivery, DeliveryKind, DeliveryStatus
from meta import samples
from tests.conftest import GRAPH
from tests.factories import ContactFactory, DeliveryFactory, TriggerFactory
from tests.triggers.conftest import PERSON
from triggers import flows
from triggers.models import FlowRun, FlowStatus

pytestmark = pytest.mark.django_db

LINK_FLOW = {
    "messages": [
        {
            "text": "Want the guide?",
            "quick_replies": [{"title": "Send me the link", "next": "link"}],
        }
    ],
    "steps": {"link": [{"text": "Here it is: https://example.com/guide"}]},
}


def flow_trigger(account, **overrides):
    fields = {
        "account": account,
        "keywords": ["guide"],
        "public_replies": ["Check your DMs"],
        "messages": LINK_FLOW["messages"],
        "extra": {"steps": LINK_FLOW["steps"]},
    }
    fields.update(overrides)
    return TriggerFactory(**fields)


def comment(account, comment_id="4001", **kwargs):
    return samples.comment_body(
        account_id=account.ig_user_id, text="guide", comment_id=comment_id, from_id=PERSON, **kwargs
    )


def tap(account, payload, title="Send me the link", **kwargs):
    return samples.quick_reply_body(
        account_id=account.ig_user_id, sender_id=PERSON, title=title, payload=payload, **kwargs
    )


def test_private_reply_carries_the_quick_reply_and_the_tap_sends_the_link(account, graph, process):
    flow_trigger(account)

    process(comment(account))

    (private,) = graph.messages()
    run = FlowRun.objects.get()
    assert private["recipient"] == {"comment_id": "4001"}
    assert private["message"] == {
        "text": "Want the guide?",
        "quick_replies": [
            {"content_type": "text", "title": "Send me the link", "payload": f"flow:{run.pk}:link"}
        ],
    }
    assert run.status == FlowStatus.WAITING_TAP

    event = process(tap(account, f"flow:{run.pk}:link"))

    assert event.result[0]["outcome"] == "matched"
    link = graph.messages()[-1]
    assert link == {
        "recipient": {"id": PERSON},
        "messaging_type": "RESPONSE",
        "message": {"text": "Here it is: https://example.com/guide"},
    }
    run.refresh_from_db()
    assert run.status == FlowStatus.DONE
    assert (
        Delivery.objects.filter(kind=DeliveryKind.MESSAGE, status=DeliveryStatus.SENT).count() == 1
    )


def test_a_redelivered_tap_sends_nothing_twice_but_a_new_tap_does(account, graph, process):
    flow_trigger(account)
    process(comment(account))
    run = FlowRun.objects.get()
    body = tap(account, f"flow:{run.pk}:link")
    process(body)
    again = json.loads(json.dumps(body))
    again["entry"][0]["time"] += 1  # same tap (same mid), other bytes
    process(again)
    assert len(graph.messages()) == 2
    process(tap(account, f"flow:{run.pk}:link"))  # the person taps once more
    assert len(graph.messages()) == 3


def test_a_typed_reply_naming_the_option_continues_the_flow(account, graph, process):
    flow_trigger(account)
    process(comment(account))
    process(
        samples.message_body(
            account_id=account.ig_user_id, sender_id=PERSON, text="send me the LINK!"
        )
    )
    assert graph.messages()[-1]["message"] == {"text": "Here it is: https://example.com/guide"}


def test_a_tap_from_someone_else_or_on_a_deleted_flow_is_ignored(account, graph, process):
    trigger = flow_trigger(account)
    process(comment(account))
    run = FlowRun.objects.get()
    stranger = samples.quick_reply_body(
        account_id=account.ig_user_id, sender_id="1789000000000009", title="x",
        payload=f"flow:{run.pk}:link",
    )  # fmt: skip
    assert process(stranger).result[0]["outcome"] == "ignored"
    trigger.delete()
    assert process(tap(account, f"flow:{run.pk}:link")).result[0]["outcome"] == "ignored"
    assert len(graph.messages()) == 1


def test_postback_button_continues_the_flow(account, graph, process):
    flow_trigger(
        account,
        event="dm",
        public_replies=[],
        messages=[
            {
                "text": "Pick one",
                "buttons": [
                    {"title": "Shop", "url": "https://example.com/shop"},
                    {"title": "Get the guide", "next": "link"},
                ],
            }
        ],
    )
    process(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="guide"))
    run = FlowRun.objects.get()
    template = graph.messages()[0]["message"]["attachment"]["payload"]
    assert template["buttons"] == [
        {"type": "web_url", "url": "https://example.com/shop", "title": "Shop"},
        {"type": "postback", "title": "Get the guide", "payload": f"flow:{run.pk}:link"},
    ]
    process(
        samples.postback_body(
            account_id=account.ig_user_id, sender_id=PERSON, title="Get the guide",
            payload=f"flow:{run.pk}:link",
        )
    )  # fmt: skip
    assert graph.messages()[-1]["message"] == {"text": "Here it is: https://example.com/guide"}


def test_messages_go_in_order_and_a_delay_is_a_durable_due_time(account, graph, process):
    flow_trigger(
        account,
        event="dm",
        public_replies=[],
        messages=[{"text": "one"}, {"text": "two"}, {"text": "three", "delay_seconds": 3600}],
        extra={},
    )
    process(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="guide"))

    assert [item["message"]["text"] for item in graph.messages()] == ["one", "two"]
    later = Delivery.objects.get(payload={"text": "three"})
    assert later.status == DeliveryStatus.QUEUED
    assert later.next_attempt_at > timezone.now() + timedelta(minutes=59)
    run = FlowRun.objects.get()
    assert (run.status, run.position, run.waiting_delivery_id) == ("running", 2, later.pk)


def test_a_delayed_message_is_checked_against_the_window_when_it_runs(
    account, graph, process, django_capture_on_commit_callbacks
):
    flow_trigger(
        account, event="dm", public_replies=[], extra={},
        messages=[{"text": "one"}, {"text": "a day later", "delay_seconds": 90000}],
    )  # fmt: skip
    process(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="guide"))
    later = Delivery.objects.get(payload={"text": "a day later"})
    # The day passes: the person's window (24 h) has closed when the message is due.
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now())
    later.contact.__class__.objects.filter(pk=later.contact_id).update(
        last_interaction_at=timezone.now() - timedelta(hours=25)
    )
    with django_capture_on_commit_callbacks(execute=True):
        Delivery.objects.filter(pk=later.pk).update(dispatched_at=timezone.now())
        messaging_services.delivery_send(delivery_id=later.pk)
    later.refresh_from_db()
    assert (later.status, later.reason) == (DeliveryStatus.SKIPPED, "window_expired")
    run = FlowRun.objects.get()
    assert run.status == FlowStatus.STOPPED
    assert "window_expired" in run.detail
    assert [item["message"]["text"] for item in graph.messages()] == ["one"]


def _gated(account):
    return flow_trigger(
        account,
        extra={
            "steps": {
                "link": [{"text": "Here it is: https://example.com/guide", "follow_gate": True}]
            },
            "follow_gate": {"text": "Follow @{username} first!", "button": "Done, I follow"},
        },
    )


def test_follow_gate_asks_non_followers_and_sends_once_they_follow(account, graph, process):
    _gated(account)
    graph.get(f"{GRAPH}/{PERSON}", json={"id": PERSON, "is_user_follow_business": False})
    process(comment(account))
    run = FlowRun.objects.get()
    process(tap(account, f"flow:{run.pk}:link"))

    ask = graph.messages()[-1]["message"]
    assert ask == {
        "text": f"Follow @{account.username} first!",
        "quick_replies": [
            {
                "content_type": "text",
                "title": "Done, I follow",
                "payload": f"flow:{run.pk}:_recheck",
            }
        ],
    }
    run.refresh_from_db()
    assert run.status == FlowStatus.WAITING_FOLLOW

    # Still not following: asked again, never dropped.
    process(tap(account, f"flow:{run.pk}:_recheck", title="Done, I follow"))
    assert graph.messages()[-1]["message"]["text"] == f"Follow @{account.username} first!"

    graph.replace("GET", f"{GRAPH}/{PERSON}", json={"id": PERSON, "is_user_follow_business": True})
    process(tap(account, f"flow:{run.pk}:_recheck", title="Done, I follow"))
    assert graph.messages()[-1]["message"] == {"text": "Here it is: https://example.com/guide"}
    run.refresh_from_db()
    assert run.status == FlowStatus.DONE
    lookups = [c for c in graph.calls if c.request.method == "GET"]
    assert "fields=is_user_follow_business" in lookups[0].request.url


def test_follow_gate_sends_the_resource_when_meta_cannot_say(account, graph, process, caplog):
    _gated(account)
    graph.get(
        f"{GRAPH}/{PERSON}",
        status=400,
        json={"error": {"message": "(#100) Invalid", "type": "OAuthException", "code": 100}},
    )
    process(comment(account))
    run = FlowRun.objects.get()
    process(tap(account, f"flow:{run.pk}:link"))
    assert graph.messages()[-1]["message"] == {"text": "Here it is: https://example.com/guide"}
    assert "Follow check for flow run" in caplog.text


def test_private_reply_without_choices_when_switched_off(account, graph, process, settings):
    settings.PRIVATE_REPLY_CHOICES = False
    flow_trigger(account)
    process(comment(account))
    assert graph.messages()[0]["message"] == {"text": "Want the guide?"}
    # Any reply continues the single option.
    process(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="yes pls"))
    assert graph.messages()[-1]["message"] == {"text": "Here it is: https://example.com/guide"}


def test_a_failed_message_stops_the_run_with_the_reason(account, mocked_graph, process):
    mocked_graph.add(
        "POST",
        re.compile(rf"{GRAPH}/\d+/messages"),
        status=400,
        json={"error": {"message": "(#551) unavailable", "type": "OAuthException", "code": 551}},
    )
    flow_trigger(
        account, event="dm", public_replies=[], extra={}, messages=[{"text": "a"}, {"text": "b"}]
    )
    process(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="guide"))
    run = FlowRun.objects.get()
    assert run.status == FlowStatus.STOPPED
    assert "conversation_closed" in run.detail
    assert Delivery.objects.count() == 1


def test_sweeper_moves_on_a_run_that_missed_its_signal(account, graph, process):
    trigger = flow_trigger(
        account, event="dm", public_replies=[], extra={}, messages=[{"text": "a"}, {"text": "b"}]
    )
    process(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="guide"))
    run = FlowRun.objects.get()
    assert run.status == FlowStatus.DONE
    # Rewind as if the signal after the first send had been lost.
    first = Delivery.objects.get(payload={"text": "a"})
    Delivery.objects.exclude(pk=first.pk).delete()
    FlowRun.objects.filter(pk=run.pk).update(
        status=FlowStatus.RUNNING, position=0, waiting_delivery_id=first.pk,
        updated_at=timezone.now() - timedelta(minutes=5), finished_at=None,
    )  # fmt: skip
    result = flows.flows_sweep(now=timezone.now())
    assert result["advanced"] == 1
    assert Delivery.objects.filter(trigger=trigger, payload={"text": "b"}).exists()


# --- the follow gate and Meta's consent rule ---------------------------------------------------
# User Profile API (https://developers.facebook.com/docs/messenger-platform/instagram/features/
# user-profile): "User consent is required to access user profile" until the person messages
# the account or taps a button; a comment alone gives none.
def test_a_gate_on_a_comments_first_message_asks_first_and_looks_up_only_after_the_tap(
    account, graph, process
):
    # Stored before the trigger file refused such gates: never looked up before consent.
    flow_trigger(
        account,
        messages=[{"text": "Here it is: https://example.com/guide", "follow_gate": True}],
        extra={"follow_gate": {"text": "Follow @{username}, then tap", "button": "I follow"}},
    )
    graph.get(f"{GRAPH}/{PERSON}", json={"id": PERSON, "is_user_follow_business": True})

    process(comment(account))

    run = FlowRun.objects.get()
    (private,) = graph.messages()
    assert private["recipient"] == {"comment_id": "4001"}
    assert private["message"] == {
        "text": f"Follow @{account.username}, then tap",
        "quick_replies": [
            {"content_type": "text", "title": "I follow", "payload": f"flow:{run.pk}:_recheck"}
        ],
    }
    assert run.status == FlowStatus.WAITING_FOLLOW
    assert not [c for c in graph.calls if c.request.method == "GET"]  # nobody looked up

    process(tap(account, f"flow:{run.pk}:_recheck", title="I follow"))

    lookups = [c for c in graph.calls if c.request.method == "GET"]
    assert len(lookups) == 1 and "is_user_follow_business" in lookups[0].request.url
    assert graph.messages()[-1]["message"] == {"text": "Here it is: https://example.com/guide"}
    run.refresh_from_db()
    assert run.status == FlowStatus.DONE


def test_consent_required_is_never_taken_for_following(account, graph, process):
    _gated(account)
    graph.get(
        f"{GRAPH}/{PERSON}",
        status=400,
        json={
            "error": {
                "message": "(#230) User consent is required to access user profile",
                "type": "OAuthException",
                "code": 230,
            }
        },
    )
    process(comment(account))
    run = FlowRun.objects.get()
    process(tap(account, f"flow:{run.pk}:link"))

    ask = graph.messages()[-1]["message"]
    assert ask["text"] == f"Follow @{account.username} first!"  # asked, not sent the link
    run.refresh_from_db()
    assert run.status == FlowStatus.WAITING_FOLLOW
    assert "consent" in run.detail
    # A consent refusal on a profile read never holds the account.
    account.refresh_from_db()
    assert account.status == "active"


def test_sweeper_finds_an_older_run_behind_a_thousand_newer_waiting_ones(account):
    """Selected by state in SQL: newer runs still waiting for their message cannot hide an
    older one whose message was sent (the sweeper took the 1,000 newest before)."""
    trigger = flow_trigger(account, messages=[{"text": "a"}, {"text": "b"}], extra={})
    contact = ContactFactory(account=account, last_interaction_at=timezone.now())
    sent = DeliveryFactory(account=account, contact=contact, status=DeliveryStatus.SENT)
    waiting = DeliveryFactory(account=account, contact=contact, status=DeliveryStatus.QUEUED)
    now = timezone.now()
    old = FlowRun.objects.create(
        account=account, trigger=trigger, contact=contact, origin_key="mid:old",
        segment_key="mid:old", waiting_delivery_id=sent.pk,
    )  # fmt: skip
    newer = {"account": account, "trigger": trigger, "contact": contact}
    FlowRun.objects.bulk_create(
        FlowRun(
            **newer, origin_key=f"mid:{n}", segment_key=f"mid:{n}", waiting_delivery_id=waiting.pk
        )
        for n in range(1001)
    )
    FlowRun.objects.filter(pk=old.pk).update(
        started_at=now - timedelta(hours=2), updated_at=now - timedelta(hours=1)
    )
    FlowRun.objects.exclude(pk=old.pk).update(updated_at=now - timedelta(minutes=5))

    result = flows.flows_sweep(now=now)

    assert result["advanced"] == 1
    old.refresh_from_db()
    assert old.position == 1
    assert Delivery.objects.filter(trigger=trigger, payload={"text": "b"}).exists()


def test_sweeper_hands_follow_checks_to_tasks_instead_of_calling_meta(
    account, mocked_graph, monkeypatch
):
    trigger = flow_trigger(account, messages=[{"text": "a", "follow_gate": True}], extra={})
    contact = ContactFactory(account=account)
    stale = timezone.now() - timedelta(minutes=5)
    for n in range(3):
        run = FlowRun.objects.create(
            account=account, trigger=trigger, contact=contact, origin_key=f"mid:{n}",
            segment_key=f"mid:{n}", status=FlowStatus.CHECKING_FOLLOW,
        )  # fmt: skip
        FlowRun.objects.filter(pk=run.pk).update(updated_at=stale)
    queued = []
    monkeypatch.setattr("triggers.tasks.check_follow.delay", queued.append)

    first = flows.flows_sweep()
    again = flows.flows_sweep()  # the next sweep, before the tasks ran

    assert first["follow_rechecked"] == 3
    assert sorted(queued) == sorted(FlowRun.objects.values_list("pk", flat=True))
    assert again["follow_rechecked"] == 0
    assert len(mocked_graph.calls) == 0  # the sweep itself called nobody


def test_a_run_waits_while_meta_is_asked_about_an_unknown_message(account, mocked_graph, process):
    # Issue 12: an unknown send is checked with Meta; the flow goes on if it went out.
    import requests

    from messaging import resolve

    mocked_graph.add(
        "POST", re.compile(rf"{GRAPH}/\d+/messages"), body=requests.exceptions.ReadTimeout("slow")
    )
    flow_trigger(
        account, event="dm", public_replies=[], extra={}, messages=[{"text": "a"}, {"text": "b"}]
    )
    process(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="guide"))
    run = FlowRun.objects.get()
    first = Delivery.objects.get()
    assert first.status == DeliveryStatus.UNKNOWN and first.next_attempt_at is not None
    assert run.status == FlowStatus.RUNNING  # not stopped: the first may well have gone out

    # Meta confirms it (here: what the conversation lookup concludes).
    from meta.lookups import Lookup

    resolve._confirm_sent(first, Lookup(True, item_id="m.first", checked="Found."), checks=1)
    flows.flow_advance(run_id=run.pk)
    run.refresh_from_db()
    assert run.position == 1
    assert Delivery.objects.filter(payload={"text": "b"}).exists()


def test_moving_a_run_on_locks_the_run_row_only(account, graph, process):
    # Locking the joined trigger, contact and account rows too deadlocked concurrent flows of
    # one trigger on PostgreSQL (found by bench/soak.py in a burst of "link" comments).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    flow_trigger(
        account, event="dm", public_replies=[], extra={}, messages=[{"text": "a"}, {"text": "b"}]
    )
    process(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="guide"))
    run = FlowRun.objects.get()
    FlowRun.objects.filter(pk=run.pk).update(status=FlowStatus.RUNNING)

    with CaptureQueriesContext(connection) as queries:
        flows.flow_advance(run_id=run.pk)

    locks = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert locks, "the run is locked"
    if connection.vendor == "postgresql":
        assert all(sql.endswith('FOR UPDATE OF "triggers_flowrun"') for sql in locks), locks
