"""The dashboard's daily figures: counted by beat from finished work, a whole day at a time."""

from datetime import UTC, date, datetime, timedelta

import pytest

from config.console.models import DailyFigure, Metric, RollupState
from config.console.rollups import (
    ROLLUP_DAYS,
    figures_recount,
    figures_recount_all,
    figures_refresh,
)
from messaging.models import DeliveryKind, DeliveryStatus, LinkClick
from tests.factories import (
    ContactFactory,
    DeliveryFactory,
    InstagramAccountFactory,
    TriggerFactory,
    TriggerFiringFactory,
)
from webhooks.models import Interaction

pytestmark = pytest.mark.django_db
DAY = date(2026, 11, 20)


def at(hour: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def figures(**filters) -> dict:
    return {
        (row.metric, row.kind, row.label): row.count
        for row in DailyFigure.objects.filter(**filters)
    }


@pytest.fixture
def trigger():
    return TriggerFactory(name="Guide giveaway")


def finished(trigger, status, hour, reason="", kind=DeliveryKind.PRIVATE_REPLY, day=DAY):
    return DeliveryFactory(
        account=trigger.account,
        trigger=trigger,
        kind=kind,
        status=status,
        reason=reason,
        finished_at=at(hour, day),
        sent_at=at(hour, day) if status == DeliveryStatus.SENT else None,
    )


def test_a_day_counts_finished_sends_by_status_kind_and_reason(trigger):
    finished(trigger, DeliveryStatus.SENT, 9)
    finished(trigger, DeliveryStatus.SENT, 23)
    finished(trigger, DeliveryStatus.FAILED, 10, reason="window_expired")
    finished(trigger, DeliveryStatus.SKIPPED, 11, reason="content_rejected")
    finished(trigger, DeliveryStatus.SENT, 1, day=DAY + timedelta(days=1))  # the next day
    DeliveryFactory(account=trigger.account, trigger=trigger)  # queued: not finished

    figures_recount(day=DAY)

    assert figures(day=DAY, trigger=trigger) == {
        (Metric.SENT, "private_reply", ""): 2,
        (Metric.FAILED, "private_reply", "window_expired"): 1,
        (Metric.SKIPPED, "private_reply", "content_rejected"): 1,
    }


def test_seen_fired_taps_comments_and_clicks_are_counted_per_trigger(trigger):
    account = trigger.account
    sent = finished(trigger, DeliveryStatus.SENT, 9)
    sent.seen_at = at(12)
    sent.save()
    contact = ContactFactory(account=account)
    TriggerFiringFactory(trigger=trigger, contact=contact, fired_at=at(9))
    TriggerFiringFactory(trigger=trigger, fired_at=at(10))
    LinkClick.objects.create(
        delivery=sent, workspace=account.workspace, account=account, trigger=trigger,
        link_index=0, url="https://example.com", clicked_at=at(13),
    )  # fmt: skip
    LinkClick.objects.create(  # the same message clicked twice: one message with a click
        delivery=sent, workspace=account.workspace, account=account, trigger=trigger,
        link_index=0, url="https://example.com", clicked_at=at(14),
    )  # fmt: skip
    interaction(account, "comment", "guide please", trigger, at(9))
    interaction(account, "quick_reply", "Send me the link", trigger, at(11))
    interaction(account, "quick_reply", "Send me the link", trigger, at(11), outcome="ignored")

    figures_recount(day=DAY)

    counted = figures(day=DAY, trigger=trigger)
    assert counted[(Metric.SEEN, "private_reply", "")] == 1
    assert counted[(Metric.FIRED, "", "")] == 2
    assert counted[(Metric.CLICKED, "", "")] == 1
    assert counted[(Metric.COMMENTS, "", "")] == 1
    assert counted[(Metric.TAPPED, "", "Send me the link")] == 1  # the ignored tap is not


def interaction(account, kind, text, trigger, when, outcome="matched"):
    from tests.factories import WebhookEventFactory
    from webhooks.models import WebhookEventPart

    event = WebhookEventFactory()
    part = WebhookEventPart.objects.create(event=event, account=account, body="{}")
    return Interaction.objects.create(
        event=event, part=part, position=0, account=account, kind=kind, text=text,
        occurred_at=when, outcome=outcome, trigger=trigger,
    )  # fmt: skip


def test_recounting_a_day_replaces_it(trigger):
    delivery = finished(trigger, DeliveryStatus.FAILED, 9, reason="meta_error")
    figures_recount(day=DAY)
    # Retried and sent later that day: the day says so once recounted, nothing counted twice.
    delivery.status, delivery.reason = DeliveryStatus.SENT, ""
    delivery.save()
    figures_recount(day=DAY)
    assert figures(day=DAY) == {(Metric.SENT, "private_reply", ""): 1}


def test_each_run_counts_today_yesterday_and_one_older_day_in_turn(trigger):
    now = at(12)
    finished(trigger, DeliveryStatus.SENT, 9)
    finished(trigger, DeliveryStatus.SENT, 9, day=DAY - timedelta(days=2))
    finished(trigger, DeliveryStatus.SENT, 9, day=DAY - timedelta(days=3))
    first = figures_refresh(now=now)
    assert first["days"] == ["2026-11-20", "2026-11-19", "2026-11-18"]
    second = figures_refresh(now=now)
    assert second["days"][-1] == "2026-11-17"
    assert DailyFigure.objects.filter(day=DAY - timedelta(days=3)).exists()
    assert RollupState.objects.get().last_run_at == now
    # After going back ROLLUP_DAYS, it starts again two days back.
    RollupState.objects.update(next_older_day=ROLLUP_DAYS - 1)
    figures_refresh(now=now)
    assert RollupState.objects.get().next_older_day == 2


def test_recounting_everything_covers_the_dashboard_period(trigger):
    finished(trigger, DeliveryStatus.SENT, 9, day=DAY - timedelta(days=ROLLUP_DAYS - 1))
    figures_recount_all(now=at(12))
    assert DailyFigure.objects.filter(day=DAY - timedelta(days=ROLLUP_DAYS - 1)).exists()


def test_counting_needs_no_statement_per_delivery(trigger, django_assert_max_num_queries):
    for hour in range(20):
        finished(trigger, DeliveryStatus.SENT, hour % 24)
    other = InstagramAccountFactory()
    for hour in range(20):
        DeliveryFactory(account=other, status="failed", reason="meta_error", finished_at=at(hour))
    with django_assert_max_num_queries(12):
        figures_recount(day=DAY)
