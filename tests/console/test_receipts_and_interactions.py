"""Read receipts mark our messages seen (costing only the read's own statements), and processed
events are read into the interactions a person's timeline and search are built from."""

import json

import pytest
from django.utils import timezone

from messaging.models import DeliveryKind, DeliveryStatus
from meta import samples
from tests.factories import ContactFactory, DeliveryFactory, InstagramAccountFactory, TriggerFactory
from tests.triggers.conftest import PERSON
from webhooks import services
from webhooks.interactions import interactions_read
from webhooks.models import Interaction, WebhookEventPart

pytestmark = pytest.mark.django_db


def read_body(account, mid: str, at: float) -> dict:
    item = {"sender": {"id": PERSON}, "read": {"mid": mid}}
    return samples.messaging_item_body(account_id=account.ig_user_id, item=item, occurred_at=at)


def sent_to(contact, mid: str, minutes_ago: float, **fields):
    sent_at = timezone.now() - timezone.timedelta(minutes=minutes_ago)
    return DeliveryFactory(
        account=contact.account,
        contact=contact,
        kind=DeliveryKind.MESSAGE,
        status=DeliveryStatus.SENT,
        sent_at=sent_at,
        meta_response_id=mid,
        **fields,
    )


def test_a_read_marks_the_message_and_what_came_before_seen(account, process):
    contact = ContactFactory(account=account, igsid=PERSON)
    older = sent_to(contact, "m.1", 10)
    named = sent_to(contact, "m.2", 5)
    later = sent_to(contact, "m.3", -5)  # sent after the read's time: not seen yet
    someone_else = sent_to(ContactFactory(account=account), "m.4", 10)
    event = process(read_body(account, "m.2", timezone.now().timestamp()))
    assert event.result[0]["outcome"] == "recorded" and event.result[0]["seen"] == 2
    for delivery, seen in [(older, True), (named, True), (later, False), (someone_else, False)]:
        delivery.refresh_from_db()
        assert (delivery.seen_at is not None) == seen


def test_reads_are_not_recorded_when_the_workspace_switched_them_off(account, process):
    account.workspace.track_seen = False
    account.workspace.save()
    delivery = sent_to(ContactFactory(account=account, igsid=PERSON), "m.1", 5)
    process(read_body(account, "m.1", timezone.now().timestamp()))
    delivery.refresh_from_db()
    assert delivery.seen_at is None


def test_a_read_costs_its_own_few_statements(account, django_assert_max_num_queries):
    ContactFactory(account=account, igsid=PERSON)
    event = services.webhook_event_receive(
        raw_body=json.dumps(read_body(account, "m.1", timezone.now().timestamp())).encode()
    ).event
    # Processing a read: the event's usual bookkeeping and one UPDATE for the receipt.
    with django_assert_max_num_queries(14):
        services.webhook_event_process(event_id=event.pk)


def test_processed_events_become_interactions_with_what_happened(account, graph, process):
    TriggerFactory(account=account, name="Guide giveaway", keywords=["guide"])
    comment = samples.comment_body(
        account_id=account.ig_user_id,
        text="guide please",
        from_id=PERSON,
        from_username="fay.films",
    )
    process(comment)
    process(samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="hi"))
    own = samples.comment_body(
        account_id=account.ig_user_id, text="Sent!", from_id=account.ig_user_id
    )
    process(own)
    assert interactions_read() == 3
    rows = list(Interaction.objects.order_by("occurred_at", "pk"))
    assert [(row.kind, row.text) for row in rows] == [
        ("comment", "guide please"),
        ("message", "hi"),
    ]
    said = rows[0]
    assert (said.username, said.igsid, said.outcome) == ("fay.films", PERSON, "matched")
    assert said.trigger.name == "Guide giveaway" and said.contact.igsid == PERSON
    assert said.result["deliveries"]
    # Read once: another run finds nothing new, and nothing is counted twice.
    assert interactions_read() == 0
    assert Interaction.objects.count() == 2


def test_processing_an_event_again_replaces_its_interactions(account, graph, process):
    from webhooks.services import webhook_event_reprocess

    event = process(
        samples.message_body(account_id=account.ig_user_id, sender_id=PERSON, text="hi")
    )
    interactions_read()
    webhook_event_reprocess(event_id=event.pk)
    services.webhook_event_process(event_id=event.pk)
    interactions_read()
    assert Interaction.objects.count() == 1
    assert WebhookEventPart.objects.filter(interactions_read=False).count() == 0


def test_other_accounts_parts_are_theirs(graph, process):
    mine, theirs = InstagramAccountFactory(), InstagramAccountFactory()
    body = samples.comment_body(account_id=mine.ig_user_id, text="mine", from_id=PERSON)
    body["entry"] += samples.comment_body(
        account_id=theirs.ig_user_id, text="theirs", from_id=PERSON
    )["entry"]
    process(body)
    interactions_read()
    assert dict(Interaction.objects.values_list("text", "account")) == {
        "mine": mine.pk,
        "theirs": theirs.pk,
    }
