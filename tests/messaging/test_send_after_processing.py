"""The worker that processed an event sends what it queued for now itself (issue 14):
no send task and no broker round trip per send, private reply first."""

import json
import re

import pytest

import messaging.services
import messaging.tasks
import webhooks.tasks
from messaging.models import Delivery, DeliveryKind, DeliveryStatus
from meta.samples import comment_body
from tests.conftest import GRAPH
from tests.factories import InstagramAccountFactory, TriggerFactory
from webhooks import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published(monkeypatch):
    tasks = []
    monkeypatch.setattr(
        messaging.tasks.send_delivery, "apply_async", lambda *a, **k: tasks.append(a[0][0])
    )
    monkeypatch.setattr(webhooks.tasks.process_event, "apply_async", lambda *a, **k: None)
    return tasks


def _comment_event(mocked_graph, comment_id: str):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"], public_replies=["On its way!"])
    mocked_graph.post(
        f"{GRAPH}/{account.page_id}/messages", json={"recipient_id": "9", "message_id": "m.1"}
    )
    mocked_graph.add("POST", re.compile(rf"{GRAPH}/\d+/replies"), json={"id": "1790"})
    body = comment_body(account_id=account.ig_user_id, text="guide", comment_id=comment_id)
    return services.webhook_event_receive(raw_body=json.dumps(body).encode()).event


def test_the_processing_task_sends_private_reply_then_public_reply(mocked_graph, published):
    event = _comment_event(mocked_graph, "4401")

    webhooks.tasks.process_event(event.pk)

    assert published == []  # no send task went through the broker
    sent = Delivery.objects.filter(event=event)
    assert {d.kind: d.status for d in sent} == {
        DeliveryKind.PRIVATE_REPLY: DeliveryStatus.SENT,
        DeliveryKind.PUBLIC_REPLY: DeliveryStatus.SENT,
    }
    urls = [call.request.url for call in mocked_graph.calls]
    assert urls[0].endswith("/messages") and urls[1].endswith("/4401/replies")


def test_switched_off_every_send_is_a_task(mocked_graph, published, settings):
    settings.SEND_AFTER_PROCESSING = False
    event = _comment_event(mocked_graph, "4402")

    webhooks.tasks.process_event(event.pk)

    assert sorted(published) == sorted(
        Delivery.objects.filter(event=event).values_list("pk", flat=True)
    )
    assert len(mocked_graph.calls) == 0


def test_a_send_failing_after_processing_leaves_the_others_going(
    mocked_graph, published, monkeypatch
):
    event = _comment_event(mocked_graph, "4403")
    real_send = messaging.services.delivery_send

    def private_reply_crashes(*, delivery_id):
        if Delivery.objects.get(pk=delivery_id).kind == DeliveryKind.PRIVATE_REPLY:
            raise RuntimeError("worker trouble")
        return real_send(delivery_id=delivery_id)

    monkeypatch.setattr(messaging.services, "delivery_send", private_reply_crashes)
    webhooks.tasks.process_event(event.pk)

    by_kind = {d.kind: d for d in Delivery.objects.filter(event=event)}
    assert by_kind[DeliveryKind.PUBLIC_REPLY].status == DeliveryStatus.SENT
    # Dispatched and never claimed: the sweeper's "lost dispatch" recovery takes it back.
    assert by_kind[DeliveryKind.PRIVATE_REPLY].status == DeliveryStatus.QUEUED
    assert by_kind[DeliveryKind.PRIVATE_REPLY].dispatched_at is not None


def test_a_flooded_accounts_event_sends_too_inside_its_backlog_slot(mocked_graph, published):
    """Backlog tasks (events_bulk) send what they queue as well, within their backlog slot."""
    event = _comment_event(mocked_graph, "4404")
    task = webhooks.tasks.process_event
    task.push_request(delivery_info={"routing_key": "events_bulk"})
    try:
        task(event.pk)
    finally:
        task.pop_request()

    assert published == []
    assert len(mocked_graph.calls) == 2
