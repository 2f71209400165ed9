"""Beat's sweeper: lost dispatches, stale sends, held sends expiring or freed, pacer wake-ups."""

from datetime import timedelta

import pytest
from django.utils import timezone

import messaging.tasks
from accounts.models import AccountStatus
from messaging.models import (
    BudgetUse,
    DeliveryAttempt,
    DeliveryKind,
    DeliveryReason,
    DeliveryStatus,
)
from messaging.selectors import accounts_with_due_work
from messaging.services import deliveries_sweep, sends_recover
from tests.factories import DeliveryFactory, InstagramAccountFactory
from tests.messaging.doubles import TaskRecorder

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def pacer_runs(monkeypatch, settings):
    settings.PENDING_EVENT_GRACE_SECONDS = 15.0
    settings.STALE_SENDING_SECONDS = 60.0
    settings.HOLD_LIMIT_SECONDS = 6 * 3600.0
    recorder = TaskRecorder()
    monkeypatch.setattr(messaging.tasks, "pace_account", recorder)
    monkeypatch.setattr(messaging.tasks, "send_delivery", TaskRecorder())
    return recorder


@pytest.fixture
def now():
    return timezone.now()


def needs_reconnect(reason=DeliveryReason.PERMISSION_MISSING, **fields):
    return InstagramAccountFactory(
        username="acme.studio",
        status=AccountStatus.NEEDS_RECONNECT,
        reconnect_reason=reason,
        status_reason="Reconnect @acme.studio: Meta says a permission is missing",
        **fields,
    )


def reloaded(delivery):
    delivery.refresh_from_db()
    return delivery


# --- lost dispatches and stale sends --------------------------------------------------------------
def test_a_dispatch_never_claimed_within_the_grace_is_cleared(now):
    lost = DeliveryFactory(dispatched_at=now - timedelta(seconds=16))

    result = deliveries_sweep(now=now)

    assert reloaded(lost).dispatched_at is None
    assert result["lost_dispatches"] == 1


def test_a_recent_dispatch_is_left_alone(now):
    recent = DeliveryFactory(dispatched_at=now - timedelta(seconds=5))

    deliveries_sweep(now=now)

    assert reloaded(recent).dispatched_at == now - timedelta(seconds=5)


def test_a_stale_send_with_a_request_in_flight_becomes_unknown(now):
    stale = DeliveryFactory(
        status=DeliveryStatus.SENDING, attempts=1, sending_started_at=now - timedelta(seconds=61)
    )
    DeliveryAttempt.objects.create(delivery=stale, number=1, outcome="in_flight")

    result = deliveries_sweep(now=now)

    assert reloaded(stale).status == DeliveryStatus.UNKNOWN
    assert stale.attempt_log.get().outcome == "lost"
    assert result["marked_unknown"] == 1


def test_a_stale_send_that_never_called_meta_is_queued_again(now):
    stale = DeliveryFactory(
        status=DeliveryStatus.SENDING, attempts=1, sending_started_at=now - timedelta(seconds=61)
    )

    result = deliveries_sweep(now=now)

    assert reloaded(stale).status == DeliveryStatus.QUEUED
    assert result["recovered"] == 1


def test_a_send_in_progress_is_left_alone(now):
    sending = DeliveryFactory(
        status=DeliveryStatus.SENDING, attempts=1, sending_started_at=now - timedelta(seconds=10)
    )
    DeliveryAttempt.objects.create(delivery=sending, number=1, outcome="in_flight")

    deliveries_sweep(now=now)

    assert reloaded(sending).status == DeliveryStatus.SENDING


# --- leases: a dead worker's send is settled in seconds, not after the stale window --------------
def test_a_send_whose_lease_ran_out_is_unknown_within_seconds(now):
    # Claimed 6 s ago, far inside STALE_SENDING_SECONDS (60): only the lease tells it is lost.
    dead = DeliveryFactory(
        status=DeliveryStatus.SENDING,
        attempts=1,
        sending_started_at=now - timedelta(seconds=6),
        call_started_at=now - timedelta(seconds=6),
        lease_expires_at=now - timedelta(seconds=1),
    )
    DeliveryAttempt.objects.create(delivery=dead, number=1, outcome="in_flight")

    result = sends_recover(now=now)

    dead = reloaded(dead)
    assert dead.status == DeliveryStatus.UNKNOWN
    assert "may have reached Meta" in dead.detail
    assert dead.attempt_log.get().outcome == "lost"
    assert result["marked_unknown"] == 1
    # Meta is asked about it once it had time to finish the request (messaging/resolve.py).
    assert dead.next_attempt_at is not None


def test_a_send_whose_lease_ran_out_before_calling_meta_is_queued_again(now, pacer_runs):
    dead = DeliveryFactory(
        status=DeliveryStatus.SENDING,
        sending_started_at=now - timedelta(seconds=6),
        lease_expires_at=now - timedelta(seconds=1),
    )

    result = sends_recover(now=now)

    assert reloaded(dead).status == DeliveryStatus.QUEUED
    assert reloaded(dead).dispatched_at is None
    assert result["recovered"] == 1


def test_a_slow_send_whose_worker_renews_its_lease_is_left_alone(now):
    # Older than the stale window, but its worker is alive: the lease is fresh.
    slow = DeliveryFactory(
        status=DeliveryStatus.SENDING,
        attempts=1,
        sending_started_at=now - timedelta(seconds=90),
        lease_expires_at=now + timedelta(seconds=3),
    )
    DeliveryAttempt.objects.create(delivery=slow, number=1, outcome="in_flight")

    deliveries_sweep(now=now)
    sends_recover(now=now)

    assert reloaded(slow).status == DeliveryStatus.SENDING


def test_recover_sends_runs_on_the_sends_queue_every_few_seconds(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["recover-sends"]
    assert entry["task"] == "messaging.recover_sends"
    assert entry["schedule"] <= 5
    assert settings.CELERY_TASK_ROUTES["messaging.recover_sends"] == {"queue": "sends"}


# --- held sends -----------------------------------------------------------------------------------
def test_queued_sends_of_an_account_needing_reconnect_become_held(now):
    delivery = DeliveryFactory(account=needs_reconnect())

    deliveries_sweep(now=now)

    assert reloaded(delivery).held_since == now
    assert delivery.status == DeliveryStatus.QUEUED


def test_a_send_held_past_the_hold_limit_is_skipped_with_the_accounts_reason(now):
    delivery = DeliveryFactory(
        account=needs_reconnect(DeliveryReason.PERMISSION_MISSING),
        held_since=now - timedelta(hours=6, seconds=1),
    )

    result = deliveries_sweep(now=now)

    delivery = reloaded(delivery)
    assert delivery.status == DeliveryStatus.SKIPPED
    assert delivery.reason == DeliveryReason.PERMISSION_MISSING
    assert "@acme.studio" in delivery.detail
    assert "not reconnected in time" in delivery.detail
    assert delivery.finished_at == now
    assert result["held_expired"] == 1


def test_a_held_send_past_its_window_is_skipped(now):
    delivery = DeliveryFactory(
        account=needs_reconnect(DeliveryReason.TOKEN_INVALID),
        kind=DeliveryKind.PRIVATE_REPLY,
        interaction_at=now - timedelta(days=7, minutes=1),
        held_since=now - timedelta(minutes=5),
    )

    deliveries_sweep(now=now)

    delivery = reloaded(delivery)
    assert delivery.status == DeliveryStatus.SKIPPED
    assert delivery.reason == DeliveryReason.TOKEN_INVALID


def test_a_held_send_within_its_limit_and_window_keeps_waiting(now):
    delivery = DeliveryFactory(
        account=needs_reconnect(),
        interaction_at=now - timedelta(days=1),
        held_since=now - timedelta(hours=5),
    )

    deliveries_sweep(now=now)

    delivery = reloaded(delivery)
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.held_since == now - timedelta(hours=5)


def test_held_sends_of_an_account_active_again_are_released(now, pacer_runs):
    account = InstagramAccountFactory()
    delivery = DeliveryFactory(account=account, held_since=now - timedelta(hours=1))

    deliveries_sweep(now=now)

    assert reloaded(delivery).held_since is None
    assert delivery.status == DeliveryStatus.QUEUED
    assert account.pk in pacer_runs.ids


# --- waking the pacers ----------------------------------------------------------------------------
def test_accounts_with_due_work_get_a_pacer_run(now, pacer_runs):
    due = InstagramAccountFactory()
    DeliveryFactory(account=due)
    DeliveryFactory(account=due)
    later = InstagramAccountFactory()
    DeliveryFactory(account=later, next_attempt_at=now + timedelta(minutes=5))
    in_flight = InstagramAccountFactory()
    DeliveryFactory(account=in_flight, dispatched_at=now)
    DeliveryFactory(account=needs_reconnect())

    deliveries_sweep(now=now)

    assert set(pacer_runs.ids) == {due.pk}


DISTINCT_BUG = (
    "BUG: accounts_with_due_work calls .distinct() on a queryset that keeps Delivery's default "
    "ordering (-created_at), so the DISTINCT covers created_at too and an account comes back "
    "once per due delivery: a backlog of N queues N pacer runs and N projections per sweep"
)


def test_an_account_with_many_due_sends_gets_one_pacer_run_per_sweep(now, pacer_runs):
    account = InstagramAccountFactory()
    for _ in range(3):
        DeliveryFactory(account=account)

    deliveries_sweep(now=now)

    assert pacer_runs.ids == [account.pk]


def test_accounts_with_due_work_lists_each_account_once(now):
    account = InstagramAccountFactory()
    for _ in range(3):
        DeliveryFactory(account=account)

    assert accounts_with_due_work(now=now) == [account.pk]


def test_accounts_with_due_work_counts_a_retry_that_fell_due(now):
    account = InstagramAccountFactory()
    DeliveryFactory(account=account, next_attempt_at=now - timedelta(seconds=1))
    DeliveryFactory(status=DeliveryStatus.SENT)
    DeliveryFactory(held_since=now)

    assert accounts_with_due_work(now=now) == [account.pk]


def test_the_sweep_ends_sends_that_cannot_make_their_window(now):
    account = InstagramAccountFactory(private_reply_limit_per_hour=10)
    closing_in_an_hour = now - timedelta(days=7) + timedelta(hours=1, seconds=200)
    for _ in range(20):
        DeliveryFactory(account=account, interaction_at=closing_in_an_hour)

    result = deliveries_sweep(now=now)

    assert result["window_misses"] == 10  # at 9.7 an hour, 10 of 20 make it


def test_the_database_backend_drops_budget_uses_older_than_an_hour(settings, now):
    settings.REDIS_URL = ""
    stamp = now.timestamp()
    BudgetUse.objects.create(key="1:send", at=stamp - 4000)
    BudgetUse.objects.create(key="1:send", at=stamp - 10)

    deliveries_sweep(now=now)

    assert list(BudgetUse.objects.values_list("at", flat=True)) == [stamp - 10]
