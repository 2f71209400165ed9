"""SQL statements on the hot paths, counted (issue 14): processing a matched comment and
each of its two sends. Query counts are stable, so these guard against a round trip
creeping back in; docs/performance.md has the breakdown and what bounds the rest."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import messaging.tasks
import webhooks.tasks
from messaging import services as messaging_services
from messaging.models import Delivery, DeliveryKind, DeliveryStatus
from meta.samples import comment_body
from tests.conftest import GRAPH
from tests.factories import InstagramAccountFactory, TriggerFactory
from webhooks import services
from webhooks.models import EventState

# Issue 14's aims: at most 10 per matched comment, 5 per send. BEGIN and COMMIT of the
# event's transaction are round trips too: counted apart.
MOST_STATEMENTS_PER_MATCHED_COMMENT = 9
MOST_STATEMENTS_PER_SEND = 4
TRANSACTION_CONTROL = {"BEGIN", "COMMIT"}

# Committed for real: the counts must include what runs after the event's commit (the pacer).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued_tasks(monkeypatch):
    """Tasks are recorded, not run: each path is counted on its own."""
    queued = []
    for task in (messaging.tasks.send_delivery, messaging.tasks.pace_account):
        monkeypatch.setattr(task, "apply_async", lambda *a, **k: queued.append((a, k)))
    monkeypatch.setattr(webhooks.tasks.process_event, "apply_async", lambda *a, **k: None)
    return queued


def _comment(account, n: int):
    body = comment_body(
        account_id=account.ig_user_id,
        text="guide please",
        comment_id=f"5550{n}",
        from_id=f"84806741832207{n}",
    )
    return services.webhook_event_receive(raw_body=json.dumps(body).encode()).event


def _statements(run) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        run()
    return [query["sql"] for query in captured.captured_queries]


def test_a_matched_comment_and_its_sends_take_few_statements(mocked_graph, queued_tasks):
    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"], public_replies=["On its way!"])
    mocked_graph.post(
        f"{GRAPH}/{account.page_id}/messages", json={"recipient_id": "9", "message_id": "m.1"}
    )
    mocked_graph.add("POST", re.compile(rf"{GRAPH}/\d+/replies"), json={"id": "1790"})
    # The first comment warms the per-process trigger index, as a running worker has it.
    services.webhook_event_process(event_id=_comment(account, 0).pk)

    event = _comment(account, 1)
    processing = _statements(lambda: services.webhook_event_process(event_id=event.pk))
    event.refresh_from_db()
    assert event.state == EventState.PROCESSED
    statements = [sql for sql in processing if sql not in TRANSACTION_CONTROL]
    assert len(statements) <= MOST_STATEMENTS_PER_MATCHED_COMMENT, "\n".join(processing)
    assert len(processing) - len(statements) <= 2  # one transaction
    new = Delivery.objects.filter(event=event)
    assert new.count() == 2
    assert all(delivery.dispatched_at is not None for delivery in new)  # paced after commit

    for delivery in new:
        sending = _statements(lambda d=delivery: messaging_services.delivery_send(delivery_id=d.pk))
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SENT
        assert delivery.attempt_log.get().outcome == "sent"
        assert len(sending) <= MOST_STATEMENTS_PER_SEND, "\n".join(sending)
        assert not TRANSACTION_CONTROL & set(sending)  # each write is one atomic statement
    assert {d.kind for d in new} == {DeliveryKind.PUBLIC_REPLY, DeliveryKind.PRIVATE_REPLY}


def test_a_private_reply_already_used_is_skipped_without_calling_meta(mocked_graph, queued_tasks):
    """The one-private-reply check is read with the claim: still enforced."""
    account = InstagramAccountFactory()
    TriggerFactory(account=account, keywords=["guide"], public_replies=[])
    event = _comment(account, 2)
    services.webhook_event_process(event_id=event.pk)
    first = Delivery.objects.get(event=event, kind=DeliveryKind.PRIVATE_REPLY)
    Delivery.objects.filter(pk=first.pk).update(status=DeliveryStatus.SENT)
    twin = Delivery.objects.create(
        account=account,
        workspace=account.workspace,
        contact=first.contact,
        kind=DeliveryKind.PRIVATE_REPLY,
        comment_id=first.comment_id,
        recipient=first.comment_id,
        payload=first.payload,
        dedupe_key="private_reply:again",
        dispatched_at=first.dispatched_at,
    )
    messaging_services.delivery_send(delivery_id=twin.pk)
    twin.refresh_from_db()
    assert twin.status == DeliveryStatus.SKIPPED
    assert twin.reason == "already_replied"
    assert len(mocked_graph.calls) == 0
