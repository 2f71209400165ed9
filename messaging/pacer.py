"""Per-account pacing: the account's queued deliveries go to the send queue at its own rate.

Why not one FIFO of send tasks: a viral post queues ten thousand sends, and a quiet
account's next send would wait behind all of them. Instead deliveries wait in the database
(the durable queue) and each account's pacer hands at most `PACER_MAX_IN_FLIGHT` of them at
a time to the shared send queue, and only when the account's budgets have room. The send
queue therefore never holds more than a few sends per account, whatever the backlog.
"""

import contextlib
import logging
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import CharField, Count, Min, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from accounts.models import AccountStatus, InstagramAccount
from config import rawsql
from config.prepared import SHAPE, PreparedRead
from messaging.models import Delivery, DeliveryStatus, Lane
from messaging.sharedstate import Budget, shared_state

logger = logging.getLogger(__name__)

# Run this far under Meta's published limits, so network jitter never pushes us over. The
# headroom stretches each window (100 per 1.03 s) rather than cutting the count (97 per
# 1 s): cutting rounds small limits down (10/s became 9/s, a tenth of the budget unused)
# while stretching keeps the same ~30 ms of tolerance at every limit.
HEADROOM = 0.97
# A pacer waiting longer than this leaves the wake-up to beat instead of a Celery countdown.
MAX_COUNTDOWN_SECONDS = 30.0
# A send whose budget has room within this long is dispatched now, with a countdown to the
# moment its place frees. Under one window, so the place is a known use leaving it.
DISPATCH_AHEAD_SECONDS = 1.0
# Sent this much after the place frees, so timer jitter does not make it a hair early; a
# send still early by at most EARLY_TOLERANCE_SECONDS waits for its place instead of
# going back to the queue.
SLOT_MARGIN_SECONDS = 0.005
EARLY_TOLERANCE_SECONDS = 0.05


def usage_factor(usage_percent: int) -> float:
    """Slow down as Meta's usage headers approach 100%, before Meta blocks."""
    if usage_percent < 75:
        return 1.0
    if usage_percent >= 95:
        return 0.1
    return max(0.1, (95 - usage_percent) / 20)


def budgets_for(account: InstagramAccount, lane: str) -> list[Budget]:
    """The account's budgets a send of this lane (``Lane``; a kind is its own lane) uses."""
    factor = usage_factor(account.usage_percent)
    per_second = account.send_limit_per_second or settings.SEND_LIMIT_PER_SECOND
    per_hour = account.private_reply_limit_per_hour or settings.PRIVATE_REPLY_LIMIT_PER_HOUR

    def budget(name: str, limit: int, window: float) -> Budget:
        return Budget(f"{account.pk}:{name}", max(1, int(limit * factor)), window / HEADROOM)

    if lane == Lane.PUBLIC_REPLY:
        # Comment replies are not Send API calls; they count against the account's business
        # use case quota, which Meta does not publish per second: a separate budget.
        return [budget("comment_reply", settings.COMMENT_REPLY_LIMIT_PER_SECOND, 1.0)]
    budgets = [budget("send", per_second, 1.0)]
    if lane == Lane.PRIVATE_REPLY:
        budgets.append(budget("private_reply", per_hour, 3600.0))
    elif lane == Lane.LIVE_PRIVATE_REPLY:
        # Live comments have their own per-second budget: a burst during a broadcast must
        # not wait for the hourly budget of posts, or the broadcast ends first.
        limit = settings.LIVE_PRIVATE_REPLY_LIMIT_PER_SECOND
        budgets.append(budget("live_private_reply", limit, 1.0))
    elif lane == Lane.MEDIA_MESSAGE:
        budgets.append(budget("media_send", settings.MEDIA_SEND_LIMIT_PER_SECOND, 1.0))
    return budgets


def read_budgets(account: InstagramAccount) -> list[Budget]:
    """Graph reads made for sends (a comment's creation time, whether a broadcast is live):
    they count against the account's business use case quota, like public replies."""
    return budgets_for(account, Lane.PUBLIC_REPLY)


def _due(now: datetime) -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


def pacer_request(account_id: int, *, delay: float = 0.0) -> None:
    """Make sure a pacer run for the account is queued (at most one waits at a time)."""
    from messaging.tasks import pace_account

    delay = max(0.0, min(delay, MAX_COUNTDOWN_SECONDS))
    flag = f"pacer:{account_id}"
    try:
        if not shared_state().flag_set(flag, ttl=delay + 30):
            return
        pace_account.apply_async((account_id,), countdown=delay or None)
    except Exception:
        # Redis or the broker is down: beat's sweeper wakes every account with due work.
        logger.exception("Could not queue the pacer for account %s; beat will run it", account_id)
        with contextlib.suppress(Exception):
            shared_state().flag_clear(flag)


def _reserved(account: InstagramAccount, lane: str, on_the_way: Counter) -> int:
    """Sends on their way that will take a use of one of this lane's budgets: a private
    reply shares the Send API budget with DMs, a public reply shares nothing. Counting
    every lane made a lane wait for budget another lane was using."""
    keys = {budget.key for budget in budgets_for(account, lane)}
    return sum(
        count
        for other, count in on_the_way.items()
        if keys & {budget.key for budget in budgets_for(account, other)}
    )


def _lanes(rows) -> Counter:
    """(kind, lane, count) rows -> {effective lane: count} (an empty lane is the kind's)."""
    counts: Counter = Counter()
    for kind, lane, count in rows:
        counts[lane or kind] += count
    return counts


def _not_in_lanes(lanes: set[str]) -> Q:
    return Q(lane__in=lanes) | Q(lane="", kind__in=lanes)


def _on_the_way(deliveries):
    return deliveries.filter(
        Q(status=DeliveryStatus.SENDING)
        | Q(status=DeliveryStatus.QUEUED, dispatched_at__isnull=False)
    )


def _account_with_sends(account_id: int, now: datetime, most: int) -> QuerySet:
    mine = Delivery.objects.filter(account_id=OuterRef("pk"))
    # "kind:lane" and "id:kind:lane" strings: a handful per account, parsed below.
    tag = Concat("kind", Value(":"), "lane", output_field=CharField())
    due = (
        mine.filter(_due(now), status=DeliveryStatus.QUEUED, dispatched_at__isnull=True)
        .order_by("created_at", "pk")
        .annotate(tag=Concat(Cast("pk", CharField()), Value(":"), tag, output_field=CharField()))
        .values("tag")[:most]
    )
    return InstagramAccount.objects.filter(pk=account_id).annotate(
        sends_on_the_way=ArraySubquery(_on_the_way(mine).annotate(tag=tag).values("tag")),
        sends_due=ArraySubquery(due),
    )


# Every pacer run reads it: compiled once per process (config/prepared.py).
_ACCOUNT_AND_SENDS = PreparedRead(_account_with_sends, account_id=int, now=datetime, most=SHAPE)


def _account_and_its_sends(
    account_id: int, now: datetime
) -> tuple[InstagramAccount | None, Counter | None, list[tuple[int, str, str]] | None]:
    """The account, its sends on their way by lane and its oldest due sends (as many as
    could be dispatched), read by one query on PostgreSQL; elsewhere only the account
    (the others None: the pacer asks for them itself)."""
    if not rawsql.on_postgresql(InstagramAccount):
        return InstagramAccount.objects.filter(pk=account_id).first(), None, None
    account = _ACCOUNT_AND_SENDS.first(
        account_id=account_id, now=now, most=settings.PACER_MAX_IN_FLIGHT
    )
    if account is None:
        return None, None, None
    on_the_way = _lanes((*item.split(":", 1), 1) for item in account.sends_on_the_way)
    first_due = []
    for item in account.sends_due:
        delivery_id, kind, lane = item.split(":", 2)
        first_due.append((int(delivery_id), kind, lane))
    return account, on_the_way, first_due


def account_pace(*, account_id: int, now: datetime | None = None) -> dict:
    """Dispatch the account's due deliveries that its budgets and in-flight cap allow."""
    from messaging.services import deliveries_dispatch

    # Cleared first: a request arriving while we run queues another run instead of being lost.
    shared_state().flag_clear(f"pacer:{account_id}")
    now = now or timezone.now()
    account, on_the_way, first_due = _account_and_its_sends(account_id, now)
    if account is None:
        return {"dispatched": 0, "why": "no such account"}
    if account.status != AccountStatus.ACTIVE:
        return {"dispatched": 0, "why": "held: the account needs attention"}
    if account.paused_until and account.paused_until > now:
        pacer_request(account_id, delay=(account.paused_until - now).total_seconds())
        return {"dispatched": 0, "why": f"paused until {account.paused_until.isoformat()}"}

    def queued() -> QuerySet:
        # Built only when asked: on PostgreSQL the account's read above usually answers.
        return Delivery.objects.filter(account_id=account_id, status=DeliveryStatus.QUEUED)

    if on_the_way is None:
        on_the_way = _lanes(
            _on_the_way(Delivery.objects.filter(account_id=account_id))
            .values_list("kind", "lane")
            .annotate(n=Count("pk"))
            .order_by()
        )
    in_flight = on_the_way.total()
    free = settings.PACER_MAX_IN_FLIGHT - in_flight
    dispatched, wait = 0, None
    chosen: list[tuple[int, float, str]] = []  # (delivery, countdown, kind): dispatched below
    if free > 0:
        blocked: set[str] = set()

        def due_sends() -> QuerySet:
            due = queued().filter(_due(now), dispatched_at__isnull=True)
            due = due.order_by("created_at", "pk")
            if chosen:  # chosen by an earlier look, not yet marked dispatched
                due = due.exclude(pk__in=[delivery_id for delivery_id, _, _ in chosen])
            return due.exclude(_not_in_lanes(blocked)) if blocked else due

        # Oldest first. When a lane's budget is spent (private replies at their hourly
        # limit), look again without it, so it never hides the DMs and public replies
        # queued behind it; at most once per lane.
        for look in range(len(Lane.values)):
            if look == 0 and first_due is not None:
                candidates = first_due[:free]  # read with the account
            else:
                candidates = list(due_sends().values_list("pk", "kind", "lane")[:free])
            newly_blocked = False
            for delivery_id, kind, lane in candidates:
                lane = lane or kind
                if lane in blocked:
                    continue
                # Only a look: the send itself takes the budget right before calling Meta,
                # so time spent in the queue cannot bunch calls up past Meta's limit.
                lane_wait = shared_state().room(
                    budgets_for(account, lane), reserved=_reserved(account, lane, on_the_way)
                )
                if lane_wait > DISPATCH_AHEAD_SECONDS:
                    blocked.add(lane)
                    newly_blocked = True
                    wait = lane_wait if wait is None else min(wait, lane_wait)
                    continue
                # Room within the second: the send goes now, timed to reach the budget as
                # its place frees (a wake-up and a queue hop later would leave it unused).
                countdown = lane_wait + SLOT_MARGIN_SECONDS if lane_wait > 0 else 0.0
                chosen.append((delivery_id, countdown, kind))
                on_the_way[lane] += 1
                free -= 1
            if free <= 0 or not newly_blocked or len(candidates) == 0:
                break
        # An account with more sends due and on their way than it may have in flight has a
        # backlog: backlog work, which never takes every worker slot (config/backlog.py).
        due_now = len(first_due) if first_due is not None else len(candidates)
        backlog = in_flight + due_now >= settings.PACER_MAX_IN_FLIGHT
        dispatched = deliveries_dispatch(chosen, now=now, backlog=backlog)
    if wait is not None:
        # With sends on their way, each one paces the account again when it finishes
        # (delivery_send); a countdown run as well would only repeat this pass, and at a
        # budget's pace that was most of a draining account's worker time.
        if in_flight + dispatched == 0:
            pacer_request(account_id, delay=wait)
    elif in_flight + dispatched == 0:
        # Sends on their way pace the account again when they finish: the last of them
        # looks for later work; asking here as well would be a statement per pass for nothing.
        later = (
            queued()
            .filter(dispatched_at__isnull=True, next_attempt_at__gt=now)
            .aggregate(at=Min("next_attempt_at"))["at"]
        )
        if later is not None and later - now <= timedelta(seconds=MAX_COUNTDOWN_SECONDS):
            pacer_request(account_id, delay=(later - now).total_seconds())
    return {"dispatched": dispatched, "in_flight": in_flight + dispatched, "wait": wait}
