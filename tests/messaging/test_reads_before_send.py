"""What a private reply reads from Meta right before it goes.

- The 7-day clock runs from the comment's creation; the webhook's ``entry.time`` is when Meta
  sent it (later on a redelivery, up to 36 hours), so near the edge the comment's own
  ``timestamp`` is read: https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-comment
  and https://developers.facebook.com/docs/messenger-platform/instagram/features/private-replies
- A live comment's private reply is allowed only while the broadcast is live; ``live_media``
  lists only media being broadcast at the time of the request:
  https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/live_media/
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Delivery, DeliveryReason, DeliveryStatus, Lane
from messaging.pacer import budgets_for
from messaging.services import REDELIVERY_SPAN
from messaging.sharedstate import shared_state
from tests.conftest import GRAPH
from tests.factories import InstagramAccountFactory
from tests.messaging.test_send import (
    answer,
    pacer_runs,  # noqa: F401  (autouse fixture)
    private_reply,
    send,
)

pytestmark = pytest.mark.django_db
LIVE = "17900000000000042"


def _methods(mocked_graph) -> list[str]:
    return [f"{c.request.method} {c.request.path_url.split('?')[0]}" for c in mocked_graph.calls]


# --- the comment's own time -----------------------------------------------------------------
def test_far_from_the_edge_the_webhooks_time_is_enough(mocked_graph):
    delivery = private_reply(interaction_at=timezone.now() - timedelta(days=2))
    answer(mocked_graph, delivery.account)
    assert send(delivery).status == DeliveryStatus.SENT
    assert [c.request.method for c in mocked_graph.calls] == ["POST"]


def test_a_late_redelivery_near_the_edge_is_checked_against_the_comments_time(mocked_graph):
    now = timezone.now()
    # Meta sent the webhook 6 days ago, but after a day of retries: the comment is 7 days old.
    delivery = private_reply(interaction_at=now - timedelta(days=6))
    made = now - timedelta(days=7, minutes=5)
    mocked_graph.get(
        f"{GRAPH}/{delivery.comment_id}",
        json={"id": delivery.comment_id, "timestamp": made.strftime("%Y-%m-%dT%H:%M:%S+0000")},
    )
    answer(mocked_graph, delivery.account)

    delivery = send(delivery)

    assert (delivery.status, delivery.reason) == (
        DeliveryStatus.SKIPPED,
        DeliveryReason.WINDOW_EXPIRED,
    )
    assert abs(delivery.comment_created_at - made) < timedelta(seconds=1)
    assert delivery.interaction_at == delivery.comment_created_at
    assert [c.request.method for c in mocked_graph.calls] == ["GET"]  # never sent
    assert "fields=timestamp" in mocked_graph.calls[0].request.url


def test_the_comments_time_inside_the_window_lets_it_go_and_is_read_once(mocked_graph):
    now = timezone.now()
    delivery = private_reply(interaction_at=now - timedelta(days=7) + REDELIVERY_SPAN / 2)
    made = now - timedelta(days=6)
    mocked_graph.get(
        f"{GRAPH}/{delivery.comment_id}",
        json={"id": delivery.comment_id, "timestamp": made.strftime("%Y-%m-%dT%H:%M:%S+0000")},
    )
    mocked_graph.post(
        f"{GRAPH}/{delivery.account.page_id}/messages",
        status=500,
        json={"error": {"message": "x", "type": "OAuthException", "code": 2, "is_transient": True}},
    )
    delivery = send(delivery)  # transient failure: retried later
    assert delivery.status == DeliveryStatus.QUEUED
    answer(mocked_graph, delivery.account)
    mocked_graph.upsert(
        "POST",
        f"{GRAPH}/{delivery.account.page_id}/messages",
        json={"recipient_id": "1", "message_id": "m"},
    )
    delivery = send(delivery)
    assert delivery.status == DeliveryStatus.SENT
    # The comment's time was read once; the retry used what was stored.
    assert [c.request.method for c in mocked_graph.calls] == ["GET", "POST", "POST"]


def test_when_meta_cannot_say_the_webhooks_time_stands(mocked_graph, caplog):
    delivery = private_reply(interaction_at=timezone.now() - timedelta(days=6, hours=20))
    mocked_graph.get(
        f"{GRAPH}/{delivery.comment_id}",
        status=400,
        json={"error": {"message": "(#100) nope", "type": "OAuthException", "code": 100}},
    )
    answer(mocked_graph, delivery.account)
    assert send(delivery).status == DeliveryStatus.SENT
    assert "the webhook's time stands" in caplog.text


def test_the_read_counts_against_the_accounts_business_budget(mocked_graph, settings):
    settings.COMMENT_REPLY_LIMIT_PER_SECOND = 1
    account = InstagramAccountFactory()
    # The business use case budget is spent this second: no read, the send still goes.
    assert shared_state().try_acquire(budgets_for(account, Lane.PUBLIC_REPLY)) == 0
    delivery = private_reply(account, interaction_at=timezone.now() - timedelta(days=6, hours=20))
    answer(mocked_graph, account)
    assert send(delivery).status == DeliveryStatus.SENT
    assert [c.request.method for c in mocked_graph.calls] == ["POST"]


# --- live comments --------------------------------------------------------------------------
def _live_list(mocked_graph, account, media_ids):
    mocked_graph.upsert(
        "GET",
        f"{GRAPH}/{account.ig_user_id}/live_media",
        json={"data": [{"id": m} for m in media_ids]},
    )


def test_a_live_reply_goes_while_the_broadcast_is_on(mocked_graph):
    account = InstagramAccountFactory()
    _live_list(mocked_graph, account, [LIVE])
    answer(mocked_graph, account)
    first = send(private_reply(account, live_media_id=LIVE, lane=Lane.LIVE_PRIVATE_REPLY))
    second = send(private_reply(account, live_media_id=LIVE, lane=Lane.LIVE_PRIVATE_REPLY))
    assert first.status == second.status == DeliveryStatus.SENT
    # Confirmed live moments ago: asked once for the burst.
    assert _methods(mocked_graph).count(f"GET /v24.0/{account.ig_user_id}/live_media") == 1


def test_a_live_reply_after_the_broadcast_ended_is_skipped_with_why(mocked_graph):
    account = InstagramAccountFactory()
    _live_list(mocked_graph, account, [])
    answer(mocked_graph, account)
    delivery = send(private_reply(account, live_media_id=LIVE, lane=Lane.LIVE_PRIVATE_REPLY))
    assert (delivery.status, delivery.reason) == (
        DeliveryStatus.SKIPPED,
        DeliveryReason.WINDOW_EXPIRED,
    )
    assert "only while the broadcast is live" in delivery.detail
    assert [c.request.method for c in mocked_graph.calls] == ["GET"]
    assert Delivery.objects.get(pk=delivery.pk).attempts == 0


def test_past_the_webhooks_own_edge_nothing_is_read(mocked_graph):
    # entry.time is an upper bound of the comment's time: 7 days past it, the comment is older
    # still, so the window is closed without asking Meta.
    delivery = private_reply(interaction_at=timezone.now() - timedelta(days=7, minutes=1))
    answer(mocked_graph, delivery.account)
    delivery = send(delivery)
    assert (delivery.status, delivery.reason) == (
        DeliveryStatus.SKIPPED,
        DeliveryReason.WINDOW_EXPIRED,
    )
    assert len(mocked_graph.calls) == 0
