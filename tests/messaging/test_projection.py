"""Window projection (sends that cannot make their window end now) and the queue outlook."""

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Delivery, DeliveryKind, DeliveryReason, DeliveryStatus
from messaging.projection import deliveries_expire_unreachable
from messaging.selectors import account_queue_stats
from tests.factories import ContactFactory, DeliveryFactory, InstagramAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.SEND_LIMIT_PER_SECOND = 100
    settings.PRIVATE_REPLY_LIMIT_PER_HOUR = 750
    settings.COMMENT_REPLY_LIMIT_PER_SECOND = 20


@pytest.fixture
def now():
    return timezone.now()


def private_reply_backlog(account, count, *, window_closes_at, now):
    """`count` queued private replies, oldest first, whose comments' 7 days end together."""
    commented_at = window_closes_at - timedelta(days=7)
    return [
        DeliveryFactory(
            account=account,
            kind=DeliveryKind.PRIVATE_REPLY,
            interaction_at=commented_at,
            created_at=now - timedelta(minutes=count - n),
        )
        for n in range(count)
    ]


def statuses(deliveries) -> list[str]:
    by_pk = dict(
        Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).values_list("pk", "status")
    )
    return [by_pk[d.pk] for d in deliveries]


# --- private replies: 10 an hour (9.7 with headroom), comments whose 7 days end in an hour --------
def _slow_account_with_backlog(now, count=20):
    account = InstagramAccountFactory(username="acme.studio", private_reply_limit_per_hour=10)
    # At 9.7 an hour the n-th goes out at now + n * 371 s: the first 10 fit before the window
    # closes.
    closes = now + timedelta(hours=1, seconds=200)
    return account, private_reply_backlog(account, count, window_closes_at=closes, now=now), closes


def test_sends_that_cannot_make_their_window_end_skipped_window_expired(now):
    account, backlog, _ = _slow_account_with_backlog(now)

    expired = deliveries_expire_unreachable(account_id=account.pk, now=now)

    assert expired == 10
    assert statuses(backlog[10:]) == [DeliveryStatus.SKIPPED] * 10
    assert {d.reason for d in Delivery.objects.filter(status=DeliveryStatus.SKIPPED)} == {
        DeliveryReason.WINDOW_EXPIRED
    }


def test_sends_that_can_make_their_window_stay_queued(now):
    account, backlog, _ = _slow_account_with_backlog(now)

    deliveries_expire_unreachable(account_id=account.pk, now=now)

    assert statuses(backlog[:10]) == [DeliveryStatus.QUEUED] * 10


def test_the_detail_states_the_rate_and_the_times(now):
    account, backlog, closes = _slow_account_with_backlog(now)

    deliveries_expire_unreachable(account_id=account.pk, now=now)

    eleventh = Delivery.objects.get(pk=backlog[10].pk)
    eta = now + timedelta(seconds=11 * 3600 / 9.7)
    assert eleventh.detail == (
        f"At @acme.studio's sending rate (9.7/hour) this send would go out around "
        f"{eta:%Y-%m-%d %H:%M} UTC, after its window closes at {closes:%Y-%m-%d %H:%M} UTC; "
        "ended now instead of waiting."
    )
    assert eleventh.finished_at == now


def test_a_short_backlog_is_left_alone(now):
    account = InstagramAccountFactory(private_reply_limit_per_hour=10)
    # One send at 9.7 an hour is 371 s of backlog: under the 600 s worth looking at.
    [only] = private_reply_backlog(
        account, 1, window_closes_at=now + timedelta(seconds=60), now=now
    )

    assert deliveries_expire_unreachable(account_id=account.pk, now=now) == 0
    assert statuses([only]) == [DeliveryStatus.QUEUED]


def test_dispatched_and_held_sends_are_left_alone(now):
    account = InstagramAccountFactory(private_reply_limit_per_hour=10)
    closes_soon = now - timedelta(days=7) + timedelta(seconds=60)
    for _ in range(5):
        DeliveryFactory(account=account, interaction_at=closes_soon)
    dispatched = DeliveryFactory(account=account, interaction_at=closes_soon, dispatched_at=now)
    held = DeliveryFactory(account=account, interaction_at=closes_soon, held_since=now)

    assert deliveries_expire_unreachable(account_id=account.pk, now=now) == 5
    assert statuses([dispatched, held]) == [DeliveryStatus.QUEUED] * 2


def test_public_replies_have_no_window_to_miss(now):
    account = InstagramAccountFactory()
    for _ in range(20):
        DeliveryFactory(account=account, kind=DeliveryKind.PUBLIC_REPLY)
    Delivery.objects.update(created_at=now - timedelta(days=30))

    assert deliveries_expire_unreachable(account_id=account.pk, now=now) == 0


def test_messages_past_the_24_hour_window_at_the_send_rate_end_now(now):
    account = InstagramAccountFactory(send_limit_per_second=1)  # 0.97 a second with headroom
    contact = ContactFactory(
        account=account, last_interaction_at=now - timedelta(hours=24) + timedelta(seconds=650.5)
    )
    Delivery.objects.bulk_create(
        Delivery(
            account=account,
            workspace_id=account.workspace_id,
            contact=contact,
            kind=DeliveryKind.MESSAGE,
            recipient=contact.igsid,
            payload={"text": "hi"},
            dedupe_key=f"message:{n}",
            created_at=now - timedelta(seconds=700 - n),
        )
        for n in range(700)
    )

    # The n-th message goes out at now + n / 0.97 s: the first 630 make the window, 70 do not.
    assert deliveries_expire_unreachable(account_id=account.pk, now=now) == 70


# --- the queue outlook (selectors.account_queue_stats) --------------------------------------------
def _busy_account(now, **fields):
    account = InstagramAccountFactory(**fields)
    for _ in range(3):
        DeliveryFactory(account=account, kind=DeliveryKind.PRIVATE_REPLY)
    DeliveryFactory(account=account, kind=DeliveryKind.PRIVATE_REPLY, held_since=now)
    DeliveryFactory(account=account, kind=DeliveryKind.PRIVATE_REPLY, dispatched_at=now)
    DeliveryFactory(account=account, kind=DeliveryKind.PUBLIC_REPLY)
    for _ in range(2):
        DeliveryFactory(account=account, kind=DeliveryKind.MESSAGE)
    DeliveryFactory(account=account, status=DeliveryStatus.SENDING)
    for seconds_ago in (10, 50, 120):
        DeliveryFactory(
            account=account,
            status=DeliveryStatus.SENT,
            sent_at=now - timedelta(seconds=seconds_ago),
        )
    DeliveryFactory(account=account, status=DeliveryStatus.FAILED)
    DeliveryFactory(kind=DeliveryKind.MESSAGE)  # another account's
    return account


def test_queue_depth_per_kind(now):
    stats = account_queue_stats(account=_busy_account(now), now=now)

    assert stats.queued == {
        DeliveryKind.PRIVATE_REPLY: 5,
        DeliveryKind.PUBLIC_REPLY: 1,
        DeliveryKind.MESSAGE: 2,
    }
    assert stats.depth == 8


def test_queue_counts_held_and_in_flight(now):
    stats = account_queue_stats(account=_busy_account(now), now=now)

    assert stats.held == 1
    assert stats.in_flight == 2  # one dispatched, one sending


def test_queue_counts_sends_in_the_last_minute(now):
    stats = account_queue_stats(account=_busy_account(now), now=now)

    assert stats.sent_last_minute == 2
    assert stats.rate_per_second == pytest.approx(2 / 60)


def test_queue_budget_per_second_per_kind(now):
    stats = account_queue_stats(account=_busy_account(now), now=now)

    assert stats.budget_per_second == pytest.approx(
        {
            DeliveryKind.PRIVATE_REPLY: 727.5 / 3600,
            DeliveryKind.MESSAGE: 97.0,
            DeliveryKind.PUBLIC_REPLY: 19.4,
        }
    )


def test_queue_drain_time_is_the_slowest_kind(now):
    stats = account_queue_stats(account=_busy_account(now), now=now)

    # 5 private replies at 727.5 an hour outlast everything else.
    assert stats.drain_seconds == pytest.approx(5 * 3600 / 727.5)


def test_queue_drain_time_counts_dms_and_private_replies_on_one_send_budget(now):
    # Both kinds go at the send budget's 1.94 a second (the hourly private-reply budget is looser).
    account = InstagramAccountFactory(send_limit_per_second=2, private_reply_limit_per_hour=36000)
    for _ in range(3):
        DeliveryFactory(account=account, kind=DeliveryKind.PRIVATE_REPLY)
    for _ in range(4):
        DeliveryFactory(account=account, kind=DeliveryKind.MESSAGE)

    stats = account_queue_stats(account=account, now=now)

    assert stats.drain_seconds == pytest.approx((3 + 4) / 1.94)


def test_queue_shows_a_pause_only_while_it_lasts(now):
    paused = InstagramAccountFactory(paused_until=now + timedelta(minutes=5))
    was_paused = InstagramAccountFactory(paused_until=now - timedelta(minutes=5))

    assert account_queue_stats(account=paused, now=now).paused_until == paused.paused_until
    assert account_queue_stats(account=was_paused, now=now).paused_until is None
