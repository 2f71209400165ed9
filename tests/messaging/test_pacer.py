"""The per-account pacer: budgets per kind, slowing on usage, and what one pacer run dispatches."""

import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

import messaging.tasks
from accounts.models import AccountStatus
from messaging.models import Delivery, DeliveryKind, DeliveryStatus, Lane, lane_for
from messaging.pacer import HEADROOM, account_pace, budgets_for, pacer_request, usage_factor
from messaging.sharedstate import Budget, RedisState, shared_state
from tests.factories import ContactFactory, DeliveryFactory, InstagramAccountFactory
from tests.messaging.doubles import TaskRecorder

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def queued(monkeypatch, settings):
    """Pacer runs and sends are recorded, not run: each test sees one pacer run's decisions."""
    settings.SEND_LIMIT_PER_SECOND = 100
    settings.PRIVATE_REPLY_LIMIT_PER_HOUR = 750
    settings.COMMENT_REPLY_LIMIT_PER_SECOND = 20
    settings.PACER_MAX_IN_FLIGHT = 8
    recorded = SimpleNamespace(pace=TaskRecorder(), send=TaskRecorder())
    monkeypatch.setattr(messaging.tasks, "pace_account", recorded.pace)
    monkeypatch.setattr(messaging.tasks, "send_delivery", recorded.send)
    return recorded


def make_account(**fields):
    """An account with fresh shared state (Redis outlives the test database and its ids)."""
    account = InstagramAccountFactory(**fields)
    state = shared_state()
    if isinstance(state, RedisState):
        names = (
            "send",
            "private_reply",
            "comment_reply",
            "live_private_reply",
            "media_send",
        )
        keys = [f"budget:{account.pk}:{name}" for name in names]
        state.client.delete(*keys, f"flag:pacer:{account.pk}")
    return account


def queue(account, kind=DeliveryKind.PRIVATE_REPLY, **fields):
    return DeliveryFactory(account=account, kind=kind, **fields)


def backlog(account, count, kind=DeliveryKind.PRIVATE_REPLY):
    contact = ContactFactory(account=account)
    created = timezone.now() - timedelta(minutes=5)
    Delivery.objects.bulk_create(
        Delivery(
            account=account,
            workspace_id=account.workspace_id,
            contact=contact,
            kind=kind,
            comment_id=f"backlog-{account.pk}-{n}",
            recipient=f"backlog-{account.pk}-{n}",
            payload={"text": "Here is the guide"},
            dedupe_key=f"{kind}:backlog-{account.pk}-{n}",
            interaction_at=created,
            created_at=created + timedelta(milliseconds=n),
        )
        for n in range(count)
    )


def dispatched(account) -> int:
    return Delivery.objects.filter(account=account, dispatched_at__isnull=False).count()


# --- budgets per kind -----------------------------------------------------------------------------
def test_private_reply_takes_the_send_and_the_hourly_private_reply_budgets():
    account = make_account()

    assert budgets_for(account, DeliveryKind.PRIVATE_REPLY) == [
        Budget(f"{account.pk}:send", 100, 1.0 / HEADROOM),
        Budget(f"{account.pk}:private_reply", 750, 3600.0 / HEADROOM),
    ]


def test_message_takes_only_the_send_budget():
    account = make_account()

    assert budgets_for(account, DeliveryKind.MESSAGE) == [
        Budget(f"{account.pk}:send", 100, 1.0 / HEADROOM)
    ]


def test_public_reply_takes_the_comment_reply_budget_not_the_send_api():
    account = make_account()

    assert budgets_for(account, DeliveryKind.PUBLIC_REPLY) == [
        Budget(f"{account.pk}:comment_reply", 20, 1.0 / HEADROOM)
    ]


def test_live_private_replies_have_their_own_per_second_budget_not_the_hourly_one():
    # Meta's limits (meta-api.md 5; https://developers.facebook.com/documentation/
    # business-messaging/messenger-platform/overview/rate-limiting): private replies to live
    # comments 100/s; to posts and reels 750/hour; audio and video sends 10/s.
    account = make_account()

    assert budgets_for(account, Lane.LIVE_PRIVATE_REPLY) == [
        Budget(f"{account.pk}:send", 100, 1.0 / HEADROOM),
        Budget(f"{account.pk}:live_private_reply", 100, 1.0 / HEADROOM),
    ]


def test_audio_and_video_messages_take_the_10_per_second_budget():
    account = make_account()

    assert budgets_for(account, Lane.MEDIA_MESSAGE) == [
        Budget(f"{account.pk}:send", 100, 1.0 / HEADROOM),
        Budget(f"{account.pk}:media_send", 10, 1.0 / HEADROOM),
    ]


@pytest.mark.parametrize(
    ("kind", "payload", "live", "lane"),
    [
        ("private_reply", {"text": "hi"}, "", "private_reply"),
        ("private_reply", {"text": "hi"}, "17900000000000042", "live_private_reply"),
        (
            "message",
            {"attachment": {"type": "audio", "payload": {"url": "u"}}},
            "",
            "media_message",
        ),
        (
            "message",
            {"attachment": {"type": "video", "payload": {"url": "u"}}},
            "",
            "media_message",
        ),
        ("message", {"attachment": {"type": "image", "payload": {"url": "u"}}}, "", "message"),
        ("public_reply", {"text": "hi"}, "", "public_reply"),
    ],
)
def test_a_sends_lane(kind, payload, live, lane):
    assert lane_for(kind, payload, live) == lane


def test_a_burst_of_live_comments_does_not_wait_for_the_hourly_budget(queued):
    account = make_account(private_reply_limit_per_hour=1)
    queue(account, DeliveryKind.PRIVATE_REPLY)
    post_reply = queue(account, DeliveryKind.PRIVATE_REPLY)
    live = [
        queue(account, live_media_id="17900000000000042", lane=Lane.LIVE_PRIVATE_REPLY)
        for _ in range(5)
    ]

    account_pace(account_id=account.pk)

    assert all(delivery.pk in queued.send.ids for delivery in live)
    assert post_reply.pk not in queued.send.ids  # the hourly budget of posts is spent


def test_account_limits_override_the_defaults():
    account = make_account(send_limit_per_second=300, private_reply_limit_per_hour=200)

    assert budgets_for(account, DeliveryKind.PRIVATE_REPLY) == [
        Budget(f"{account.pk}:send", 300, 1.0 / HEADROOM),
        Budget(f"{account.pk}:private_reply", 200, 3600.0 / HEADROOM),
    ]


def test_defaults_come_from_settings(settings):
    settings.SEND_LIMIT_PER_SECOND = 10
    settings.PRIVATE_REPLY_LIMIT_PER_HOUR = 100
    account = make_account()

    assert [b.limit for b in budgets_for(account, DeliveryKind.PRIVATE_REPLY)] == [10, 100]


def test_a_tiny_limit_still_allows_one_use_per_window():
    account = make_account(send_limit_per_second=1, private_reply_limit_per_hour=1)

    assert [b.limit for b in budgets_for(account, DeliveryKind.PRIVATE_REPLY)] == [1, 1]


@pytest.mark.parametrize("limit", [1, 3, 10, 40, 100])
def test_a_budget_paces_close_to_its_limit_and_never_over_it(limit):
    # Sends try every 5 ms for 20 s, taking each use the budget gives; Meta counts arrivals
    # in any 1 s window. Headroom by count (97%) used to round 10/s down to 9/s.
    account = make_account(send_limit_per_second=limit)
    budgets = budgets_for(account, DeliveryKind.MESSAGE)
    start = 1_800_000_000.0
    taken = [
        start + step * 0.005
        for step in range(4000)
        if shared_state().try_acquire(budgets, now=start + step * 0.005) == 0
    ]

    rate = len(taken) / 20.0
    busiest_second = max(sum(1 for t in taken if first <= t < first + 1.0) for first in taken)
    assert rate >= 0.95 * limit
    assert busiest_second <= limit


@pytest.mark.parametrize(
    ("usage_percent", "factor"),
    [(0, 1.0), (74, 1.0), (75, 1.0), (85, 0.5), (90, 0.25), (95, 0.1), (100, 0.1)],
)
def test_usage_factor_slows_from_75_percent_to_a_tenth_at_95(usage_percent, factor):
    assert usage_factor(usage_percent) == pytest.approx(factor)


def test_high_usage_shrinks_every_budget():
    account = make_account(usage_percent=85)

    assert [b.limit for b in budgets_for(account, DeliveryKind.PRIVATE_REPLY)] == [50, 375]
    assert budgets_for(account, DeliveryKind.PUBLIC_REPLY)[0].limit == 10


# --- one pacer run --------------------------------------------------------------------------------
def test_dispatches_at_most_the_in_flight_cap(settings, queued):
    settings.PACER_MAX_IN_FLIGHT = 3
    account = make_account()
    backlog(account, 10)

    result = account_pace(account_id=account.pk)

    assert result["dispatched"] == 3
    assert dispatched(account) == 3
    assert len(queued.send.calls) == 3


def test_dispatched_and_sending_deliveries_fill_the_cap(settings, queued):
    settings.PACER_MAX_IN_FLIGHT = 3
    account = make_account()
    queue(account, status=DeliveryStatus.SENDING)
    queue(account, dispatched_at=timezone.now())
    backlog(account, 5)

    assert account_pace(account_id=account.pk)["dispatched"] == 1


def test_a_second_run_adds_nothing_while_the_cap_is_full(settings, queued):
    settings.PACER_MAX_IN_FLIGHT = 3
    account = make_account()
    backlog(account, 10)
    account_pace(account_id=account.pk)

    assert account_pace(account_id=account.pk)["dispatched"] == 0
    assert len(queued.send.calls) == 3


def test_dispatches_no_more_than_the_budget_and_leaves_the_next_run_to_the_sends(settings, queued):
    settings.SEND_LIMIT_PER_SECOND = 4  # 4 per 1.03 s
    account = make_account()
    backlog(account, 10, kind=DeliveryKind.MESSAGE)

    result = account_pace(account_id=account.pk)

    assert result["dispatched"] == 4
    assert 0 < result["wait"] <= 1.0 / HEADROOM
    # Each of the four paces the account again when it finishes: no countdown run as well.
    assert queued.pace.calls_with_countdown == []


def test_sends_on_their_way_reserve_only_the_budgets_they_will_take(settings, queued):
    settings.SEND_LIMIT_PER_SECOND = 4
    settings.COMMENT_REPLY_LIMIT_PER_SECOND = 4
    account = make_account()
    backlog(account, 4, kind=DeliveryKind.MESSAGE)
    assert account_pace(account_id=account.pk)["dispatched"] == 4
    backlog(account, 4, kind=DeliveryKind.PUBLIC_REPLY)
    backlog(account, 4, kind=DeliveryKind.PRIVATE_REPLY)

    account_pace(account_id=account.pk)

    # Four DMs on their way fill the Send API budget that private replies share, not the
    # comment-reply budget.
    kinds = Delivery.objects.filter(pk__in=queued.send.ids).values_list("kind", flat=True)
    assert sorted(kinds) == [DeliveryKind.MESSAGE] * 4 + [DeliveryKind.PUBLIC_REPLY] * 4


def test_a_place_freeing_within_the_second_is_dispatched_ahead_with_a_countdown(settings, queued):
    settings.SEND_LIMIT_PER_SECOND = 2
    account = make_account()
    budgets = budgets_for(account, DeliveryKind.MESSAGE)
    used_at = time.time() - 0.5
    for offset in (0.0, 0.1):
        assert shared_state().try_acquire(budgets, now=used_at + offset) == 0
    backlog(account, 3, kind=DeliveryKind.MESSAGE)

    result = account_pace(account_id=account.pk)

    # Both places free within the second (as the two uses leave the 1.03 s window): two sends
    # go now, timed to arrive then; the third waits for the pacer to run again.
    assert result["dispatched"] == 2
    first, second = (countdown for _, countdown in queued.send.calls_with_countdown)
    assert first == pytest.approx(used_at + 1 / HEADROOM - time.time(), abs=0.05)
    assert second == pytest.approx(first + 0.1, abs=0.01)


def test_a_spent_budget_with_nothing_on_its_way_runs_again_when_it_frees(settings, queued):
    settings.SEND_LIMIT_PER_SECOND = 4
    account = make_account()
    backlog(account, 10, kind=DeliveryKind.MESSAGE)
    # Four sends took the budget and finished: nothing is on its way to pace the account.
    for _ in range(4):
        assert shared_state().try_acquire(budgets_for(account, DeliveryKind.MESSAGE)) == 0

    result = account_pace(account_id=account.pk)

    assert result["dispatched"] == 0
    assert 0 < result["wait"] <= 1.0 / HEADROOM
    [(args, countdown)] = queued.pace.calls_with_countdown
    assert args == (account.pk,)
    assert countdown == pytest.approx(result["wait"])


def test_never_dispatches_for_a_paused_account_and_runs_again_when_the_pause_ends(queued):
    now = timezone.now()
    account = make_account(paused_until=now + timedelta(seconds=20))
    backlog(account, 3)

    result = account_pace(account_id=account.pk, now=now)

    assert result["dispatched"] == 0
    assert dispatched(account) == 0
    assert queued.pace.calls_with_countdown == [((account.pk,), 20.0)]


def test_a_long_pause_leaves_the_wake_up_to_a_bounded_countdown(queued):
    now = timezone.now()
    account = make_account(paused_until=now + timedelta(hours=1))
    backlog(account, 3)

    account_pace(account_id=account.pk, now=now)

    assert queued.pace.calls_with_countdown == [((account.pk,), 30.0)]


def test_a_pause_that_ended_no_longer_holds_the_account():
    now = timezone.now()
    account = make_account(paused_until=now - timedelta(seconds=1))
    backlog(account, 3)

    assert account_pace(account_id=account.pk, now=now)["dispatched"] == 3


@pytest.mark.parametrize("status", [AccountStatus.NEEDS_RECONNECT, AccountStatus.DISABLED])
def test_never_dispatches_for_an_account_that_is_not_active(status, queued):
    account = make_account(status=status)
    backlog(account, 3)

    assert account_pace(account_id=account.pk)["dispatched"] == 0
    assert dispatched(account) == 0
    assert queued.send.calls == []


def test_a_spent_budget_of_one_kind_does_not_block_another_kind(queued):
    account = make_account(private_reply_limit_per_hour=1)
    first = queue(account, DeliveryKind.PRIVATE_REPLY)
    queue(account, DeliveryKind.PRIVATE_REPLY)
    message = queue(account, DeliveryKind.MESSAGE)
    public_reply = queue(account, DeliveryKind.PUBLIC_REPLY)

    result = account_pace(account_id=account.pk)

    assert sorted(queued.send.ids) == sorted([first.pk, message.pk, public_reply.pk])
    assert result["wait"] > 3000  # the next private reply waits for the hourly budget


def test_a_spent_budget_does_not_block_another_kind_behind_a_long_backlog(settings, queued):
    settings.PACER_MAX_IN_FLIGHT = 2
    account = make_account(private_reply_limit_per_hour=1)
    backlog(account, 10, kind=DeliveryKind.PRIVATE_REPLY)
    message = queue(account, DeliveryKind.MESSAGE)

    account_pace(account_id=account.pk)

    assert message.pk in queued.send.ids


def test_oldest_first(settings, queued):
    settings.PACER_MAX_IN_FLIGHT = 1
    account = make_account()
    now = timezone.now()
    queue(account, created_at=now - timedelta(minutes=1))
    oldest = queue(account, created_at=now - timedelta(minutes=3))
    queue(account, created_at=now - timedelta(minutes=2))

    account_pace(account_id=account.pk)

    assert queued.send.ids == [oldest.pk]


def test_a_delivery_waiting_for_its_retry_time_is_not_dispatched(queued):
    now = timezone.now()
    account = make_account()
    queue(account, next_attempt_at=now + timedelta(minutes=5))
    due = queue(account, next_attempt_at=now - timedelta(seconds=1))

    account_pace(account_id=account.pk, now=now)

    assert queued.send.ids == [due.pk]


def test_runs_again_when_a_retry_falls_due_soon(queued):
    now = timezone.now()
    account = make_account()
    queue(account, next_attempt_at=now + timedelta(seconds=12))

    account_pace(account_id=account.pk, now=now)

    assert queued.send.calls == []
    assert queued.pace.calls_with_countdown == [((account.pk,), 12.0)]


# --- fairness between accounts --------------------------------------------------------------------
def test_a_busy_account_does_not_delay_another_accounts_dispatch(queued):
    busy, quiet = make_account(), make_account()
    backlog(busy, 1000)
    quiet_delivery = queue(quiet)
    account_pace(account_id=busy.pk)

    account_pace(account_id=quiet.pk)

    assert quiet_delivery.pk in queued.send.ids
    Delivery.objects.get(pk=quiet_delivery.pk, dispatched_at__isnull=False)


def test_pacing_an_account_touches_only_its_own_deliveries(queued):
    busy, quiet = make_account(), make_account()
    backlog(busy, 1000)
    queue(quiet)

    account_pace(account_id=quiet.pk)

    assert dispatched(busy) == 0
    assert queued.send.calls and all(
        Delivery.objects.get(pk=pk).account_id == quiet.pk for pk in queued.send.ids
    )


def test_one_accounts_spent_budget_does_not_slow_another(settings, queued):
    settings.SEND_LIMIT_PER_SECOND = 1  # one send per 1.03 s per account
    busy, quiet = make_account(), make_account()
    backlog(busy, 1000, kind=DeliveryKind.MESSAGE)
    backlog(quiet, 1, kind=DeliveryKind.MESSAGE)
    assert account_pace(account_id=busy.pk)["dispatched"] == 1

    assert account_pace(account_id=quiet.pk)["dispatched"] == 1


# --- asking for a pacer run -----------------------------------------------------------------------
def test_at_most_one_pacer_run_waits_per_account(queued):
    account = make_account()

    pacer_request(account.pk, delay=5)
    pacer_request(account.pk, delay=1)

    assert queued.pace.calls_with_countdown == [((account.pk,), 5)]


def test_a_pacer_run_lets_the_next_request_through(queued):
    account = make_account()
    pacer_request(account.pk)

    account_pace(account_id=account.pk)
    pacer_request(account.pk)

    assert queued.pace.ids == [account.pk, account.pk]
