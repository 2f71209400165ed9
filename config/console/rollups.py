"""The dashboard's daily figures, recounted by beat from finished work (never on a hot path).

A day's figures are counted again as a whole from the rows intake, processing and sending
leave behind (finished deliveries by their finish time, read receipts, firings, interactions,
link clicks), each read through an index on its time, and replace that day's rows in one
transaction. Each run recounts today and yesterday (most sends finish the day they are
queued) and one older day in turn, so a day changed late (a retry, a replay, a delayed flow
message) is right again within ``ROLLUP_DAYS`` runs. ``manage.py count_figures`` recounts
every day at once (after an upgrade, or to check).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from config.console.models import DailyFigure, Metric, RollupState
from messaging.models import FINAL_STATUSES, Delivery, LinkClick
from triggers.models import TriggerFiring
from webhooks.interactions import TAP_KINDS
from webhooks.models import Interaction, InteractionKind

# The dashboard looks back this far.
ROLLUP_DAYS = 30
_MESSAGE_KINDS = (
    InteractionKind.MESSAGE,
    InteractionKind.STORY_REPLY,
    InteractionKind.STORY_MENTION,
)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _figures(day: date) -> list[DailyFigure]:
    start, end = day_bounds(day)
    rows: list[DailyFigure] = []

    def add(metric: str, items, *, kind: str = "", label_of=None) -> None:
        for item in items:
            rows.append(
                DailyFigure(
                    day=day,
                    workspace_id=item["in_workspace"],
                    account_id=item["of_account"],
                    trigger_id=item.get("by_trigger"),
                    metric=metric or item["status_of"],
                    kind=item.get("kind", kind) or "",
                    label=(label_of(item) if label_of else "")[:100],
                    count=item["n"],
                )
            )

    owner = {
        "in_workspace": F("workspace_id"),
        "of_account": F("account_id"),
        "by_trigger": F("trigger_id"),
    }
    finished = (
        Delivery.objects.filter(
            finished_at__gte=start, finished_at__lt=end, status__in=FINAL_STATUSES
        )
        .values("kind", "reason", status_of=F("status"), **owner)
        .annotate(n=Count("pk"))
        .order_by()
    )
    add("", finished, label_of=lambda item: item["reason"])
    seen = (
        Delivery.objects.filter(seen_at__gte=start, seen_at__lt=end)
        .values("kind", **owner)
        .annotate(n=Count("pk"))
        .order_by()
    )
    add(Metric.SEEN, seen)
    fired = (
        TriggerFiring.objects.filter(fired_at__gte=start, fired_at__lt=end)
        .values(
            in_workspace=F("trigger__account__workspace_id"),
            of_account=F("trigger__account_id"),
            by_trigger=F("trigger_id"),
        )
        .annotate(n=Count("pk"))
        .order_by()
    )
    add(Metric.FIRED, fired)
    inbound = Interaction.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    people = inbound.values(
        in_workspace=F("account__workspace_id"),
        of_account=F("account_id"),
        by_trigger=F("trigger_id"),
    )
    add(
        Metric.COMMENTS,
        people.filter(kind=InteractionKind.COMMENT).annotate(n=Count("pk")).order_by(),
    )
    add(Metric.MESSAGES, people.filter(kind__in=_MESSAGE_KINDS).annotate(n=Count("pk")).order_by())
    taps = (
        inbound.filter(kind__in=TAP_KINDS, outcome="matched", trigger__isnull=False)
        .values(
            "text",
            in_workspace=F("account__workspace_id"),
            of_account=F("account_id"),
            by_trigger=F("trigger_id"),
        )
        .annotate(n=Count("pk"))
        .order_by()
    )
    add(Metric.TAPPED, taps, label_of=lambda item: item["text"])
    clicks = (
        LinkClick.objects.filter(clicked_at__gte=start, clicked_at__lt=end)
        .values(**owner)
        .annotate(n=Count("delivery_id", distinct=True))
        .order_by()
    )
    add(Metric.CLICKED, clicks)
    return rows


@transaction.atomic
def figures_recount(*, day: date) -> int:
    """Count one day again and replace its figures; returns how many rows it stored."""
    rows = _figures(day)
    DailyFigure.objects.filter(day=day).delete()
    DailyFigure.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def figures_refresh(*, now: datetime | None = None) -> dict:
    """Beat's run: today, yesterday and the next older day in turn (see the module doc)."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    state, _ = RollupState.objects.get_or_create(pk=1)
    older = state.next_older_day if 2 <= state.next_older_day < ROLLUP_DAYS else 2
    days = [today, today - timedelta(days=1), today - timedelta(days=older)]
    stored = sum(figures_recount(day=day) for day in days)
    RollupState.objects.filter(pk=1).update(
        last_run_at=now,
        next_older_day=older + 1 if older + 1 < ROLLUP_DAYS else 2,
        updated_at=now,
    )
    return {"days": [day.isoformat() for day in days], "rows": stored}


def figures_recount_all(*, days: int = ROLLUP_DAYS, now: datetime | None = None) -> int:
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    stored = sum(figures_recount(day=today - timedelta(days=back)) for back in range(days))
    RollupState.objects.update_or_create(pk=1, defaults={"last_run_at": now, "updated_at": now})
    return stored
