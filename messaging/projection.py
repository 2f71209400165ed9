"""Sends that cannot make their window at the account's rate end now, with that stated.

A backlog is sent oldest first at the pacer's rate. When the estimated time of a queued
private reply or DM falls after its window closes, waiting would only end it later as
`window_expired` (or worse, get it refused by Meta); ending it now tells the operator why.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta

from django.db.models import Q

from accounts.models import InstagramAccount
from messaging.checks import MESSAGE_WINDOW, PRIVATE_REPLY_WINDOW, window_end
from messaging.models import Delivery, DeliveryReason, DeliveryStatus, Lane
from messaging.selectors import kind_rate_per_second

# Only look at backlogs longer than this: shorter ones cannot miss a 24-hour window.
MIN_BACKLOG_SECONDS = 600


def unreachable_deliveries(
    account: InstagramAccount, now: datetime
) -> Iterator[tuple[Delivery, float, datetime, datetime]]:
    """Queued sends whose estimated send time falls after their window.

    Yields (delivery, rate per second, estimated send time, window end).
    """
    # Live private replies are left out: their window is the broadcast, checked at send time.
    for lane in (Lane.PRIVATE_REPLY, Lane.MESSAGE, Lane.MEDIA_MESSAGE):
        rate = kind_rate_per_second(account, lane)
        in_lane = Q(lane=lane) | Q(lane="", kind=lane)
        queued = Delivery.objects.filter(
            in_lane, account=account, status=DeliveryStatus.QUEUED, held_since__isnull=True
        )
        depth = queued.count()
        if depth / rate < MIN_BACKLOG_SECONDS:
            continue
        ordered = (
            queued.filter(Q(dispatched_at__isnull=True))
            .select_related("contact")
            .order_by("created_at", "pk")
        )
        for position, delivery in enumerate(ordered.iterator(), start=1):
            eta = now + timedelta(seconds=position / rate)
            ends = window_end(delivery)
            if ends is not None and eta > ends:
                yield delivery, rate, eta, ends


def _per_hour(rate_per_second: float) -> str:
    """9.7, 727.5, 349,200: a rate per hour with at most one decimal."""
    return f"{rate_per_second * 3600:,.1f}".removesuffix(".0")


def deliveries_expire_unreachable(*, account_id: int, now: datetime) -> int:
    account = InstagramAccount.objects.filter(pk=account_id).first()
    if account is None:
        return 0
    expired = 0
    for delivery, rate, eta, ends in list(unreachable_deliveries(account, now)):
        expired += Delivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.QUEUED, dispatched_at__isnull=True
        ).update(
            status=DeliveryStatus.SKIPPED,
            reason=DeliveryReason.WINDOW_EXPIRED,
            finished_at=now,
            detail=(
                f"At @{account.username}'s sending rate ({_per_hour(rate)}/hour) this send "
                f"would go out around {eta:%Y-%m-%d %H:%M} UTC, after its window closes at "
                f"{ends:%Y-%m-%d %H:%M} UTC; ended now instead of waiting."
            ),
        )
    return expired


def _window_end_of(
    kind: str, comment_created_at, interaction_at, last_interaction_at
) -> datetime | None:
    """checks.window_end from a row's values (no model instance): the same rules."""
    if kind == "private_reply":
        made = comment_created_at or interaction_at
        return made + PRIVATE_REPLY_WINDOW if made else None
    return last_interaction_at + MESSAGE_WINDOW if last_interaction_at else None


def unreachable_count(account: InstagramAccount, now: datetime) -> int:
    """How many queued sends ``unreachable_deliveries`` would yield, read as plain values
    (the dashboard shows it live; the sweeper ends them). Only a long backlog is read."""
    missing = 0
    for lane in (Lane.PRIVATE_REPLY, Lane.MESSAGE, Lane.MEDIA_MESSAGE):
        rate = kind_rate_per_second(account, lane)
        in_lane = Q(lane=lane) | Q(lane="", kind=lane)
        queued = Delivery.objects.filter(
            in_lane, account=account, status=DeliveryStatus.QUEUED, held_since__isnull=True
        )
        if queued.count() / rate < MIN_BACKLOG_SECONDS:
            continue
        rows = (
            queued.filter(dispatched_at__isnull=True)
            .order_by("created_at", "pk")
            .values_list(
                "kind", "comment_created_at", "interaction_at", "contact__last_interaction_at"
            )
        )
        for position, row in enumerate(rows.iterator(chunk_size=5000), start=1):
            ends = _window_end_of(*row)
            if ends is not None and now + timedelta(seconds=position / rate) > ends:
                missing += 1
    return missing
