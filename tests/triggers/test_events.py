"""Every event type through processing: which trigger answers, and what is sent.

Bodies are built from Meta's documented shapes (meta.samples); sends go through the real
Graph client against `responses`.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import Contact
from messaging.models import Delivery, DeliveryKind, DeliveryStatus
from meta import samples
from tests.conftest import GRAPH
from tests.factories import ContactFactory, TriggerFactory
from tests.triggers.conftest import PERSON
from triggers.models import TriggerFiring
from webhooks.models import EventState

pytestmark = pytest.mark.django_db


def dm(account, text, **kwargs):
    return samples.message_body(
        account_id=account.ig_user_id, sender_id=PERSON, text=text, **kwargs
    )


def texts(graph) -> list[str]:
    return [item["message"].get("text", "") for item in graph.sent() if "message" in item]


# --- direct messages ---------------------------------------------------------------------------
def test_dm_keyword_answers_with_a_message_to_the_sender(account, graph, process):
    trigger = TriggerFactory(
        account=account, event="dm", keywords=["price"], public_replies=[],
        messages=[{"text": "It is 20 EUR"}],
    )  # fmt: skip

    event = process(dm(account, "What's the PRICE?"))

    assert event.state == EventState.PROCESSED
    assert event.result[0]["trigger"] == trigger.name
    (sent,) = graph.sent()
    assert sent["recipient"] == {"id": PERSON}
    assert sent["message"] == {"text": "It is 20 EUR"}
    delivery = Delivery.objects.get()
    assert (delivery.kind, delivery.status) == (DeliveryKind.MESSAGE, DeliveryStatus.SENT)
    assert Contact.objects.get(igsid=PERSON).last_interaction_at is not None


def test_dm_matching_nothing_is_kept_as_no_match(account, graph, process):
    TriggerFactory(account=account, event="dm", keywords=["price"], public_replies=[])
    event = process(dm(account, "hello there"))
    assert event.state == EventState.NO_MATCH
    assert graph.sent() == []


def test_redelivered_dm_in_another_batch_sends_once(account, graph, process):
    TriggerFactory(account=account, event="dm", keywords=["price"], public_replies=[])
    body = dm(account, "price", mid="mid.same")
    process(body)
    batched = dm(account, "price", mid="mid.same")
    batched["entry"][0]["time"] += 1  # other bytes, same message
    process(batched)
    assert len(graph.sent()) == 1


def test_comment_keyword_trigger_does_not_answer_a_dm(account, graph, process):
    TriggerFactory(account=account, event="comment", keywords=["price"])
    assert process(dm(account, "price")).state == EventState.NO_MATCH


# --- default reply and welcome -------------------------------------------------------------
def _default_and_welcome(account):
    TriggerFactory(
        account=account, event="dm", match="any", keywords=[], public_replies=[],
        messages=[{"text": "Thanks, we'll get back to you"}], extra={"fires_on": "no_match"},
    )  # fmt: skip
    TriggerFactory(
        account=account, event="dm", match="any", keywords=[], public_replies=[],
        messages=[{"text": "Welcome!"}], extra={"fires_on": "first_message"},
    )  # fmt: skip
    TriggerFactory(
        account=account, event="dm", keywords=["price"], public_replies=[],
        messages=[{"text": "20 EUR"}],
    )  # fmt: skip


def test_first_message_gets_the_welcome_then_the_default_reply(account, graph, process):
    _default_and_welcome(account)
    process(dm(account, "hi!"))
    process(dm(account, "are you there?", occurred_at=timezone.now().timestamp() + 5))
    assert texts(graph) == ["Welcome!", "Thanks, we'll get back to you"]


def test_keyword_wins_over_welcome_and_default(account, graph, process):
    _default_and_welcome(account)
    process(dm(account, "price?"))
    assert texts(graph) == ["20 EUR"]


def test_default_reply_is_rate_limited_per_contact(account, graph, process):
    _default_and_welcome(account)
    ContactFactory(account=account, igsid=PERSON, last_interaction_at=timezone.now())
    now = timezone.now().timestamp()
    first = process(dm(account, "hello", occurred_at=now))
    second = process(dm(account, "hello again", occurred_at=now + 60))
    assert texts(graph) == ["Thanks, we'll get back to you"]
    assert first.result[0]["outcome"] == "matched"
    assert second.result[0]["outcome"] == "cooled_down"
    assert second.state == EventState.PROCESSED
    # A day later the default reply answers again.
    process(dm(account, "still there?", occurred_at=now + 86400 + 120))
    assert len(texts(graph)) == 2


def test_cooldown_stops_the_same_trigger_answering_the_same_person(account, graph, process):
    TriggerFactory(
        account=account, event="dm", keywords=["price"], public_replies=[],
        extra={"cooldown_seconds": 600},
    )  # fmt: skip
    now = timezone.now().timestamp()
    process(dm(account, "price", occurred_at=now))
    process(dm(account, "price??", occurred_at=now + 30))
    other = samples.message_body(
        account_id=account.ig_user_id, sender_id="1789000000000002", text="price",
        occurred_at=now + 40,
    )  # fmt: skip
    process(other)
    assert [item["recipient"]["id"] for item in graph.sent()] == [PERSON, "1789000000000002"]
    assert TriggerFiring.objects.count() == 2


# --- stories -------------------------------------------------------------------------------
def test_story_reply_on_keywords_and_on_any_reply(account, graph, process):
    TriggerFactory(
        account=account, event="story_reply", keywords=["link"], public_replies=[],
        messages=[{"text": "Here's the link"}], priority=1,
    )  # fmt: skip
    TriggerFactory(
        account=account, event="story_reply", match="any", keywords=[], public_replies=[],
        messages=[{"text": "Thanks for replying to our story"}],
    )  # fmt: skip
    process(samples.story_reply_body(account_id=account.ig_user_id, sender_id=PERSON, text="link?"))
    process(
        samples.story_reply_body(
            account_id=account.ig_user_id, sender_id="1789000000000003", text="wow"
        )
    )
    assert texts(graph) == ["Here's the link", "Thanks for replying to our story"]


def test_story_reply_does_not_fire_dm_triggers(account, graph, process):
    TriggerFactory(account=account, event="dm", keywords=["link"], public_replies=[])
    event = process(
        samples.story_reply_body(account_id=account.ig_user_id, sender_id=PERSON, text="link")
    )
    assert event.state == EventState.NO_MATCH


def test_story_mention_thanks_once_per_cooldown(account, graph, process):
    TriggerFactory(
        account=account, event="story_mention", match="any", keywords=[], public_replies=[],
        messages=[{"text": "Thanks for the mention!"}],
    )  # fmt: skip
    now = timezone.now().timestamp()
    body = samples.story_mention_body
    process(body(account_id=account.ig_user_id, sender_id=PERSON, occurred_at=now))
    again = process(body(account_id=account.ig_user_id, sender_id=PERSON, occurred_at=now + 3600))
    assert texts(graph) == ["Thanks for the mention!"]
    assert again.result[0]["outcome"] == "cooled_down"


# --- things that never trigger ---------------------------------------------------------------
@pytest.mark.parametrize(
    "build",
    [
        lambda a: samples.echo_body(account_id=a.ig_user_id, recipient_id=PERSON, text="price"),
        lambda a: samples.deleted_body(account_id=a.ig_user_id, sender_id=PERSON),
        lambda a: samples.reaction_body(account_id=a.ig_user_id, sender_id=PERSON),
        lambda a: samples.read_body(account_id=a.ig_user_id, sender_id=PERSON),
        lambda a: samples.message_body(
            account_id=a.ig_user_id, sender_id=a.ig_user_id, text="price"
        ),
    ],
    ids=["echo", "deleted", "reaction", "read", "own-message"],
)
def test_events_that_are_recorded_but_never_answered(account, graph, process, build):
    TriggerFactory(
        account=account, event="dm", match="any", keywords=[], public_replies=[],
        extra={"fires_on": "no_match"},
    )  # fmt: skip
    TriggerFactory(account=account, event="dm", keywords=["price"], public_replies=[])
    event = process(build(account))
    assert event.state == EventState.IGNORED
    assert event.result[0]["outcome"] == "recorded"
    assert graph.sent() == []
    assert not Contact.objects.filter(last_interaction_at__isnull=False).exists()


def test_referral_opens_the_window_without_answering(account, graph, process):
    TriggerFactory(account=account, event="dm", match="any", keywords=[], public_replies=[])
    event = process(samples.referral_body(account_id=account.ig_user_id, sender_id=PERSON))
    assert graph.sent() == []
    assert event.result[0]["window"] == "opened"
    assert Contact.objects.get(igsid=PERSON).last_interaction_at is not None


# --- comments: replies, live, next post ----------------------------------------------------------
def test_reply_to_a_comment_is_answered_only_by_triggers_that_take_replies(account, graph, process):
    trigger = TriggerFactory(account=account, keywords=["guide"])
    reply = samples.comment_body(
        account_id=account.ig_user_id, text="guide", comment_id="2002", parent_id="2001"
    )
    assert process(reply).result[0]["outcome"] == "ignored"
    trigger.extra = {"include_replies": True}
    trigger.save()
    reply = samples.comment_body(
        account_id=account.ig_user_id, text="guide", comment_id="2003", parent_id="2001"
    )
    event = process(reply)
    assert event.state == EventState.PROCESSED
    sent = graph.sent()
    # The public reply goes under the top-level comment; the private reply to the reply's author.
    assert {"public_reply": "2001"} in sent
    assert {"comment_id": "2003"} in [item.get("recipient") for item in sent]


def test_live_comment_gets_a_private_reply_only_when_the_trigger_takes_live(
    account, graph, process
):
    trigger = TriggerFactory(account=account, keywords=["guide"])
    body = samples.live_comment_body(account_id=account.ig_user_id, text="guide", comment_id="3001")
    assert process(body).state == EventState.NO_MATCH
    trigger.extra = {"include_live": True}
    trigger.save()
    # The broadcast is on: Meta's live_media lists it (a reply goes only while live).
    graph.get(
        f"{GRAPH}/{account.ig_user_id}/live_media", json={"data": [{"id": "18050310947722369"}]}
    )
    body = samples.live_comment_body(account_id=account.ig_user_id, text="guide", comment_id="3002")
    process(body)
    assert graph.sent() == [
        {
            "recipient": {"comment_id": "3002"},
            "message": {"text": "Here is the guide: https://example.com"},
        }
    ]
    reply = Delivery.objects.get(comment_id="3002")
    # Its own budget lane (100/s while live), not the hourly budget of posts.
    assert (reply.live_media_id, reply.pace_lane) == ("18050310947722369", "live_private_reply")


@pytest.mark.parametrize("published_after_arming", [True, False])
def test_next_post_trigger_binds_to_a_post_published_after_it_was_armed(
    account, graph, process, published_after_arming
):
    trigger = TriggerFactory(account=account, keywords=["guide"], extra={"scope": "next_post"})
    published = trigger.updated_at + timedelta(minutes=5 if published_after_arming else -5)
    graph.get(
        f"{GRAPH}/18000000000000042",
        json={"id": "18000000000000042", "timestamp": published.strftime("%Y-%m-%dT%H:%M:%S+0000")},
    )
    event = process(
        samples.comment_body(
            account_id=account.ig_user_id, text="guide", media_id="18000000000000042"
        )
    )
    trigger.refresh_from_db()
    if published_after_arming:
        assert trigger.media_ids == ["18000000000000042"]
        assert "scope" not in trigger.extra
        assert event.state == EventState.PROCESSED
    else:
        assert trigger.media_ids == []
        assert event.state == EventState.NO_MATCH
        assert graph.sent() == []


def test_comment_cooldown_per_person(account, graph, process):
    TriggerFactory(account=account, keywords=["guide"], extra={"cooldown_seconds": 3600})
    now = timezone.now().timestamp()
    process(samples.comment_body(account_id=account.ig_user_id, text="guide", occurred_at=now))
    second = process(
        samples.comment_body(account_id=account.ig_user_id, text="guide!!", occurred_at=now + 9)
    )
    assert second.result[0]["outcome"] == "cooled_down"
    assert len(graph.sent()) == 2  # one public and one private reply, for the first comment


@pytest.mark.skipif(not __import__("triggers.intent").intent.intent_available(), reason="no model")
def test_intent_trigger_answers_by_meaning(account, graph, process):
    TriggerFactory(
        account=account, event="dm", match="intent", keywords=["price"],
        examples=["how much is it"], public_replies=[], messages=[{"text": "It is 20 EUR"}],
    )  # fmt: skip
    TriggerFactory(
        account=account, event="dm", match="intent", keywords=["shipping"],
        examples=["do you ship abroad", "delivery time"], public_replies=[],
        messages=[{"text": "We ship worldwide"}],
    )  # fmt: skip
    first = process(dm(account, "how much does it cost"))
    process(dm(account, "I love this photo", occurred_at=timezone.now().timestamp() + 1))
    assert texts(graph) == ["It is 20 EUR"]
    assert first.result[0]["mode"] == "intent"
    assert first.result[0]["score"] >= 58


def test_a_comment_kicks_its_accounts_pacer_once(
    account, django_capture_on_commit_callbacks, monkeypatch
):
    from accounts import services as account_services
    from meta.payloads import parse_webhook
    from triggers.services import comment_answer

    kicked = []
    monkeypatch.setattr(
        "messaging.services.pacer_kick", lambda account_id: kicked.append(account_id)
    )
    TriggerFactory(account=account, keywords=["guide"])
    body = samples.comment_body(account_id=account.ig_user_id, text="guide")
    (comment,) = parse_webhook(body)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        contact = account_services.contact_record_comment(
            account=account, igsid=comment.from_id, username="", commented_at=comment.occurred_at
        )
        comment_answer(
            account=account, comment=comment, contact=contact, event_id=None,
            event_received_at=None,
        )  # fmt: skip
    assert Delivery.objects.count() == 2
    assert kicked == [account.pk]


def test_a_rolled_back_transaction_does_not_swallow_the_next_kick(
    account, django_capture_on_commit_callbacks, monkeypatch
):
    from messaging.services import pace_after_commit

    kicked = []
    monkeypatch.setattr(
        "messaging.services.pacer_kick", lambda account_id: kicked.append(account_id)
    )
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                pace_after_commit(account.pk)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        with transaction.atomic():
            with transaction.atomic():  # a savepoint rolled back inside the transaction
                pace_after_commit(account.pk)
                transaction.set_rollback(True)
            pace_after_commit(account.pk)
            pace_after_commit(account.pk)
    assert kicked == [account.pk]


@pytest.mark.parametrize(
    "then", ["other_trigger_wins", "first_trigger_deleted", "a_flow_wins", "deleted_then_a_flow"]
)
def test_processing_a_dm_again_never_answers_it_twice(
    account, graph, process, django_capture_on_commit_callbacks, then
):
    """ "Process again" after the triggers changed: one answer per message a person sent."""
    from webhooks.services import webhook_event_reprocess

    first = TriggerFactory(
        account=account, event="dm", keywords=["price"], public_replies=[],
        messages=[{"text": "It is 20 EUR"}],
    )  # fmt: skip
    event = process(dm(account, "price?"))
    assert texts(graph) == ["It is 20 EUR"]
    if then in ("first_trigger_deleted", "deleted_then_a_flow"):
        first.delete()
    else:
        first.enabled = False
        first.save()
    messages = [{"text": "Now 25 EUR"}]
    if then in ("a_flow_wins", "deleted_then_a_flow"):
        messages = [{"text": "Now 25 EUR"}, {"text": "And shipping is free"}]
    TriggerFactory(
        account=account, event="dm", keywords=["price"], public_replies=[], messages=messages,
        priority=5,
    )  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        webhook_event_reprocess(event_id=event.pk)

    event.refresh_from_db()
    assert event.state == EventState.PROCESSED
    assert texts(graph) == ["It is 20 EUR"]
    assert Delivery.objects.count() == 1
