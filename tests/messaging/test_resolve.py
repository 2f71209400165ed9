"""Unknown sends resolved with Meta's help (issue 12, point 4): the Graph API stand-in over real
HTTP remembers what was sent (conversations, comment replies), so every lookup here is real."""

from datetime import timedelta

import pytest
from django.utils import timezone

import messaging.tasks
from messaging import resolve, services
from messaging.models import Delivery, DeliveryKind, DeliveryStatus
from meta.standin import StandInControl
from tests.factories import ContactFactory, DeliveryFactory, InstagramAccountFactory
from tests.messaging.doubles import TaskRecorder

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def pacer_runs(monkeypatch):
    recorder = TaskRecorder()
    monkeypatch.setattr(messaging.tasks, "pace_account", recorder)
    return recorder


@pytest.fixture
def meta(standin, settings):
    settings.META_GRAPH_URL = f"{standin.url}/v24.0"
    settings.META_INSTAGRAM_GRAPH_URL = f"{standin.url}/ig/v24.0"
    settings.META_HTTP_TIMEOUT = (1.0, 1.0)
    settings.UNKNOWN_MAX_CHECKS = 3
    control = StandInControl(standin.url)
    control.reset()
    yield control
    control.close()


@pytest.fixture
def account(meta):
    account = InstagramAccountFactory(username="acme.studio")
    # The token's account at Meta: what it shows as the sender of our messages and replies.
    meta.register_account(account.access_token, account.ig_user_id, username=account.username)
    return account


def send(delivery):
    Delivery.objects.filter(pk=delivery.pk, status="queued").update(
        dispatched_at=timezone.now(), next_attempt_at=None
    )
    services.delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def dm(account, text="Here is the guide"):
    contact = ContactFactory(account=account, last_interaction_at=timezone.now())
    return DeliveryFactory(
        account=account,
        contact=contact,
        kind=DeliveryKind.MESSAGE,
        comment_id="",
        recipient=contact.igsid,
        payload={"text": text},
        dedupe_key=f"message:{contact.igsid}:{text}",
    )


def public_reply(account, comment_id="17900000000000777"):
    return DeliveryFactory(
        account=account,
        kind=DeliveryKind.PUBLIC_REPLY,
        comment_id=comment_id,
        recipient=comment_id,
        payload={"text": "Sent! Check your DMs"},
        dedupe_key=f"public_reply:{comment_id}",
    )


def lost_answer(meta, endpoint, delivery, *, meta_acted=True):
    """Send it with Meta's answer lost on the way back (Meta acted, or did not)."""
    meta.add_fault(endpoint, drop=True, apply=meta_acted)
    delivery = send(delivery)
    assert delivery.status == DeliveryStatus.UNKNOWN
    return delivery


def test_an_unknown_dm_found_in_the_conversation_is_sent_with_meta_s_id(meta, account):
    delivery = dm(account)
    meta.person_wrote(account.page_id, delivery.recipient, "price?")
    delivery = lost_answer(meta, "send_message", delivery)

    assert resolve.delivery_resolve(delivery_id=delivery.pk) == "found"

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    sent = [e for e in meta.requests(endpoint="send_message") if e["dropped"]]
    assert delivery.meta_response_id == sent[0]["response"]["message_id"]
    assert "Found in the conversation" in delivery.detail
    check = delivery.attempt_log.order_by("pk").last()
    assert check.outcome == "confirmed"
    assert "/conversations" in check.request_summary
    # Sent once, and looked up within the Conversations API's calls (3: conversation,
    # messages, the message's details).
    assert len(meta.requests(endpoint="send_message")) == 1
    assert [e["endpoint"] for e in meta.requests() if e["method"] == "GET"] == [
        "conversations",
        "conversation",
        "message",
    ]


def test_an_unknown_dm_not_in_the_conversation_is_queued_again_and_sent_once(meta, account):
    delivery = dm(account)
    meta.person_wrote(account.page_id, delivery.recipient, "price?")
    delivery = lost_answer(meta, "send_message", delivery, meta_acted=False)

    assert resolve.delivery_resolve(delivery_id=delivery.pk) == "not sent: queued again"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED
    assert "It never went out, so it is sent again" in delivery.detail

    delivery = send(delivery)
    assert delivery.status == DeliveryStatus.SENT
    assert meta.stats()["duplicates"] == {"private_replies": 0, "send_messages": 0}
    acted = [e for e in meta.requests(endpoint="send_message") if e["status"] == 200]
    assert len(acted) == 1


def test_an_unknown_public_reply_found_among_the_comment_replies_is_sent(meta, account):
    delivery = lost_answer(meta, "comment_reply", public_reply(account))

    assert resolve.delivery_resolve(delivery_id=delivery.pk) == "found"

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    (acted,) = meta.requests(endpoint="comment_reply")
    assert delivery.meta_response_id == acted["response"]["id"]


def test_an_unknown_public_reply_not_among_the_replies_is_sent_again(meta, account):
    delivery = lost_answer(meta, "comment_reply", public_reply(account), meta_acted=False)

    assert resolve.delivery_resolve(delivery_id=delivery.pk) == "not sent: queued again"
    delivery = send(Delivery.objects.get(pk=delivery.pk))
    assert delivery.status == DeliveryStatus.SENT


def test_when_meta_cannot_tell_it_asks_again_then_leaves_it_unknown_saying_what_was_checked(
    meta, account
):
    delivery = dm(account)
    meta.person_wrote(account.page_id, delivery.recipient, "price?")
    delivery = lost_answer(meta, "send_message", delivery)
    meta.add_fault("conversations", status=500, times=None)

    for check in (1, 2):
        assert resolve.delivery_resolve(delivery_id=delivery.pk) == "cannot tell"
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.UNKNOWN
        assert delivery.resolution_checks == check
        assert delivery.next_attempt_at > timezone.now()
        assert f"Check {check}: The conversation could not be read" in delivery.detail

    assert resolve.delivery_resolve(delivery_id=delivery.pk) == "cannot tell"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.UNKNOWN
    assert delivery.next_attempt_at is None  # left to a person now
    assert "could not confirm it in 3 check(s)" in delivery.detail
    assert "Check the conversation on Instagram" in delivery.detail
    assert [a.outcome for a in delivery.attempt_log.order_by("pk")] == [
        "unknown",
        "checked",
        "checked",
        "checked",
    ]
    assert len(meta.requests(endpoint="send_message")) == 1


def test_the_conversations_budget_is_respected(meta, account):
    meta.set_limits(conversations_per_second=2)
    deliveries = []
    for i in range(3):
        delivery = dm(account, text=f"guide {i}")
        meta.person_wrote(account.page_id, delivery.recipient, "hi")
        deliveries.append(lost_answer(meta, "send_message", delivery))

    for delivery in deliveries:
        assert resolve.delivery_resolve(delivery_id=delivery.pk) == "found"

    assert meta.stats()["violations"]["total"] == 0


def test_due_unknown_sends_are_handed_to_a_check_once(meta, account, monkeypatch):
    queued = TaskRecorder()
    monkeypatch.setattr(messaging.tasks, "resolve_delivery", queued)
    due = DeliveryFactory(
        account=account,
        status=DeliveryStatus.UNKNOWN,
        next_attempt_at=timezone.now() - timedelta(seconds=1),
    )
    DeliveryFactory(
        account=account,
        status=DeliveryStatus.UNKNOWN,
        next_attempt_at=timezone.now() + timedelta(seconds=30),
    )
    DeliveryFactory(account=account, status=DeliveryStatus.UNKNOWN, next_attempt_at=None)

    assert resolve.deliveries_resolve_due() == 1
    assert resolve.deliveries_resolve_due() == 0  # claimed: not handed out twice
    assert queued.ids == [due.pk]
