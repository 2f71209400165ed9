"""The dashboard: a person's workspaces in numbers, each figure with the list behind it.

Counts come from the daily figures beat keeps (console.rollups): a few small GROUP BY queries
over them, whatever the number of deliveries. What must be live is read live, each from an
index: queue depths (queued sends per account), accounts needing reconnecting, the last
webhook. A figure links to its list only where the person may open that list.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlencode

from django.db.models import Count, Q, Sum
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone

from accounts.admin_tools import duration_words
from accounts.models import AccountStatus, InstagramAccount, Workspace
from accounts.permissions import (
    MARKETER_ROLES,
    MEMBER_ROLES,
    SUPPORT_ROLES,
    is_agency_admin,
    member_workspace_ids,
    workspaces_for,
)
from config.console import charts
from config.console.models import DailyFigure, Metric, RollupState
from messaging.explain import PAUSED_UNTIL_RESUMED
from messaging.models import Delivery, DeliveryKind, DeliveryReason, DeliveryStatus
from messaging.projection import MIN_BACKLOG_SECONDS, unreachable_count
from messaging.selectors import drain_seconds, kind_rate_per_second
from triggers.models import Trigger

# Delivery lists are open to support and marketers (their triggers' sends).
DELIVERY_ROLES = SUPPORT_ROLES + MARKETER_ROLES
# An account that has heard nothing from Meta for this long is flagged.
QUIET_WEBHOOK_AFTER = timedelta(hours=24)
PERIODS = (("today", "Today", 0), ("7d", "7 days", 6), ("30d", "30 days", 29))
FAILURE_METRICS = (Metric.FAILED, Metric.SKIPPED)


def reason_label(reason: str, metric: str = "") -> str:
    if not reason:
        return "cancelled or other" if metric == Metric.SKIPPED else "no reason given"
    try:
        return DeliveryReason(reason).label
    except ValueError:
        return reason


@dataclass
class Access:
    """What the person may open in one workspace (a figure links only to those)."""

    deliveries: bool
    triggers: bool
    contacts: bool
    queues: bool


@dataclass
class Figure:
    value: int
    link: str = ""


@dataclass
class AccountRow:
    account: InstagramAccount
    figures: dict[str, dict[str, Figure]]
    queued: int = 0
    held: int = 0
    drain: str = ""
    will_miss: int = 0
    paused: str = ""
    webhook_quiet: bool = False
    queue_link: str = ""


@dataclass
class FunnelStage:
    label: str
    value: int
    link: str = ""


@dataclass
class TriggerRow:
    trigger: Trigger
    link: str
    fired: Figure
    sent: Figure
    failed: Figure
    taps: list[tuple[str, int]]
    funnel: list[FunnelStage]


@dataclass
class WorkspaceBoard:
    workspace: Workspace
    access: Access
    totals: dict[str, dict[str, Figure]]
    accounts: list[AccountRow]
    chart: str
    chart_rows: list[tuple[str, list[int], int]]
    chart_days: list[date]
    triggers: list[TriggerRow]
    reconnect: list[InstagramAccount] = field(default_factory=list)


@dataclass
class Dashboard:
    boards: list[WorkspaceBoard]
    period: str
    period_label: str
    counted_at: datetime | None
    today: date


@lru_cache(maxsize=64)
def _base(url_name: str, prefix: str, urlconf: str | None) -> str:
    return reverse(url_name, urlconf=urlconf)


def _link(url_name: str, **params) -> str:
    """A list's address with filters; the list's own address is worked out once (a dashboard
    links to hundreds of filtered lists)."""
    base = _base(url_name, get_script_prefix(), get_urlconf())
    # An empty value is left out, except an explicit "is empty" (``reason__exact=""``).
    query = urlencode(
        {
            key: value
            for key, value in params.items()
            if value not in (None, "") or key.endswith("__exact")
        }
    )
    return f"{base}?{query}" if query else base


def _deliveries_link(**params) -> str:
    return _link("admin:messaging_delivery_changelist", **params)


def _access(user, workspace_id: int) -> Access:
    if is_agency_admin(user):
        return Access(deliveries=True, triggers=True, contacts=True, queues=True)
    roles = {
        name: workspace_id in member_workspace_ids(user, wanted)
        for name, wanted in (
            ("deliveries", DELIVERY_ROLES),
            ("triggers", MARKETER_ROLES),
            ("contacts", SUPPORT_ROLES),
        )
    }
    return Access(queues=False, **roles)


def _midnight(day: date) -> str:
    """A day's start in UTC, as a list's filter reads it (an aware time: no guessing)."""
    return f"{day.isoformat()}T00:00:00+00:00"


def _since(today: date, back: int) -> date:
    return today - timedelta(days=back)


def dashboard_for(*, user, period: str = "7d", now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    chosen = next((p for p in PERIODS if p[0] == period), PERIODS[1])
    workspaces = list(workspaces_for(user, MEMBER_ROLES).order_by("name"))
    ids = [workspace.pk for workspace in workspaces]
    accounts = list(
        InstagramAccount.objects.filter(workspace_id__in=ids)
        .select_related("workspace")
        .order_by("username")
    )
    oldest = _since(today, PERIODS[-1][2])
    figures = DailyFigure.objects.filter(workspace_id__in=ids, day__gte=oldest)

    # 1. Per account and metric, each period's sum (one query).
    by_account: dict[int, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    period_sums = {
        key: Sum("count", filter=Q(day__gte=_since(today, back)), default=0)
        for key, _, back in PERIODS
    }
    for row in (
        figures.filter(metric__in=[Metric.SENT, Metric.FAILED, Metric.SKIPPED])
        .values("account_id", "metric")
        .annotate(**period_sums)
        .order_by()
    ):
        for key, _, _ in PERIODS:
            by_account[row["account_id"]][key][row["metric"]] = row[key]

    # 2. Failures by reason and day, per workspace (one query).
    failures: dict[int, dict[tuple[date, str, str], int]] = defaultdict(dict)
    for row in (
        figures.filter(metric__in=FAILURE_METRICS)
        .values("workspace_id", "day", "metric", "label")
        .annotate(n=Sum("count"))
        .order_by()
    ):
        failures[row["workspace_id"]][(row["day"], row["metric"], row["label"])] = row["n"]

    # 3. Per trigger over the chosen period (two queries: metrics, and taps by title).
    since = _since(today, chosen[2])
    per_trigger: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    private_sent: dict[int, int] = defaultdict(int)
    seen: dict[int, int] = defaultdict(int)
    in_period = figures.filter(day__gte=since, trigger__isnull=False)
    for row in (
        in_period.exclude(metric=Metric.TAPPED)
        .values("trigger_id", "metric", "kind")
        .annotate(n=Sum("count"))
        .order_by()
    ):
        per_trigger[row["trigger_id"]][row["metric"]] += row["n"]
        if row["kind"] == DeliveryKind.PRIVATE_REPLY and row["metric"] == Metric.SENT:
            private_sent[row["trigger_id"]] += row["n"]
        if row["kind"] == DeliveryKind.PRIVATE_REPLY and row["metric"] == Metric.SEEN:
            seen[row["trigger_id"]] += row["n"]
    taps: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for row in (
        in_period.filter(metric=Metric.TAPPED)
        .values("trigger_id", "label")
        .annotate(n=Sum("count"))
        .order_by("-n")
    ):
        taps[row["trigger_id"]].append((row["label"], row["n"]))

    queues = _queues(accounts)
    triggers = list(
        Trigger.objects.filter(account__workspace_id__in=ids)
        .select_related("account")
        .order_by("account__username", "-priority", "name")
    )
    boards = []
    for workspace in workspaces:
        access = _access(user, workspace.pk)
        mine = [account for account in accounts if account.workspace_id == workspace.pk]
        rows = [
            _account_row(account, by_account[account.pk], queues, access, today, now)
            for account in mine
        ]
        totals = _totals(rows, workspace, access, today)
        chart, chart_rows, days = _failure_chart(failures[workspace.pk], workspace, access, today)
        trigger_rows = [
            _trigger_row(
                trigger,
                per_trigger[trigger.pk],
                private_sent[trigger.pk],
                seen[trigger.pk],
                taps[trigger.pk],
                access,
                since,
            )
            for trigger in triggers
            if trigger.account.workspace_id == workspace.pk
        ]
        boards.append(
            WorkspaceBoard(
                workspace=workspace,
                access=access,
                totals=totals,
                accounts=rows,
                chart=chart,
                chart_rows=chart_rows,
                chart_days=days,
                triggers=trigger_rows,
                reconnect=[a for a in mine if a.status == AccountStatus.NEEDS_RECONNECT],
            )
        )
    state = RollupState.objects.filter(pk=1).values_list("last_run_at", flat=True).first()
    return Dashboard(
        boards=boards, period=chosen[0], period_label=chosen[1], counted_at=state, today=today
    )


def _queues(accounts: list[InstagramAccount]) -> dict[int, dict]:
    """Queued sends per account and kind, and how many are held (one query, live)."""
    found: dict[int, dict] = defaultdict(lambda: {"kinds": defaultdict(int), "held": 0})
    rows = (
        Delivery.objects.filter(
            account_id__in=[a.pk for a in accounts], status=DeliveryStatus.QUEUED
        )
        .values("account_id", "kind")
        .annotate(n=Count("pk"), held=Count("pk", filter=Q(held_since__isnull=False)))
        .order_by()
    )
    for row in rows:
        found[row["account_id"]]["kinds"][row["kind"]] += row["n"]
        found[row["account_id"]]["held"] += row["held"]
    return found


def _account_row(account, sums, queues, access: Access, today: date, now) -> AccountRow:
    figures = {}
    for key, _, back in PERIODS:
        since = _midnight(_since(today, back))
        figures[key] = {
            metric: Figure(
                sums[key].get(metric, 0),
                _deliveries_link(account=account.pk, status=metric, finished_at__gte=since)
                if access.deliveries
                else "",
            )
            for metric in (Metric.SENT, Metric.FAILED, Metric.SKIPPED)
        }
    queue = queues.get(account.pk, {"kinds": {}, "held": 0})
    queued = sum(queue["kinds"].values())
    row = AccountRow(account=account, figures=figures, queued=queued, held=queue["held"])
    if queued:
        row.drain = duration_words(drain_seconds(account, dict(queue["kinds"])))
        row.queue_link = (
            _deliveries_link(account=account.pk, status=DeliveryStatus.QUEUED)
            if access.deliveries
            else ""
        )
        row.will_miss = _will_miss(account, queue["kinds"], now)
    if account.paused_until and account.paused_until > now:
        row.paused = (
            "until resumed"
            if account.paused_until >= PAUSED_UNTIL_RESUMED
            else f"until {account.paused_until:%H:%M:%S} UTC"
        )
    last = account.last_webhook_at
    row.webhook_quiet = account.status == AccountStatus.ACTIVE and (
        last is None or now - last > QUIET_WEBHOOK_AFTER
    )
    return row


def _will_miss(account: InstagramAccount, kinds: dict[str, int], now) -> int:
    """Queued sends that will miss their window at the account's rate: only a long backlog
    can (the same projection the sweeper ends them by, so it is read only then)."""
    long = any(
        kinds.get(kind, 0) / kind_rate_per_second(account, kind) >= MIN_BACKLOG_SECONDS
        for kind in (DeliveryKind.PRIVATE_REPLY, DeliveryKind.MESSAGE)
    )
    return unreachable_count(account, now) if long else 0


def _totals(rows: list[AccountRow], workspace, access: Access, today: date) -> dict:
    totals = {}
    for key, _, back in PERIODS:
        since = _midnight(_since(today, back))
        totals[key] = {
            metric: Figure(
                sum(row.figures[key][metric].value for row in rows),
                _deliveries_link(workspace=workspace.pk, status=metric, finished_at__gte=since)
                if access.deliveries
                else "",
            )
            for metric in (Metric.SENT, Metric.FAILED, Metric.SKIPPED)
        }
    return totals


def _failure_chart(counts: dict, workspace, access: Access, today: date):
    days = [_since(today, back) for back in range(PERIODS[-1][2], -1, -1)]
    series = sorted({(metric, label) for _, metric, label in counts})
    bars = []
    for day in days:
        segments = []
        for metric, label in series:
            value = counts.get((day, metric, label), 0)
            if not value:
                continue
            link = ""
            if access.deliveries:
                reason = {"reason": label} if label else {"reason__exact": ""}
                link = _deliveries_link(
                    workspace=workspace.pk,
                    status=metric,
                    finished_at__gte=_midnight(day),
                    finished_at__lt=_midnight(day + timedelta(days=1)),
                    **reason,
                )
            segments.append(charts.Segment(_series_name(metric, label), value, link))
        bars.append(charts.Bar(day, tuple(segments)))
    table = [
        (
            _series_name(metric, label),
            [counts.get((day, metric, label), 0) for day in days],
            sum(counts.get((day, metric, label), 0) for day in days),
        )
        for metric, label in series
    ]
    title = f"Failed and skipped sends of {workspace.name} by reason, last 30 days"
    return charts.stacked_bars(bars, title=title), table, days


def _series_name(metric: str, label: str) -> str:
    word = "failed" if metric == Metric.FAILED else "skipped"
    return f"{reason_label(label, metric)} ({word})"


def _trigger_row(
    trigger: Trigger,
    sums: dict[str, int],
    private_sent: int,
    seen: int,
    taps: list[tuple[str, int]],
    access: Access,
    since: date,
) -> TriggerRow:
    start = _midnight(since)
    delivery_link = (
        (lambda **params: _deliveries_link(trigger=trigger.pk, **params))
        if access.deliveries
        else (lambda **params: "")
    )
    firing_link = (
        _link("admin:triggers_triggerfiring_changelist", trigger=trigger.pk, fired_at__gte=start)
        if access.triggers
        else ""
    )
    funnel = []
    if trigger.event == "comment":
        tapped = sum(n for _, n in taps)
        funnel = [
            FunnelStage("Comments answered", sums.get(Metric.FIRED, 0), firing_link),
            FunnelStage(
                "Private reply sent",
                private_sent,
                delivery_link(
                    kind=DeliveryKind.PRIVATE_REPLY, status=Metric.SENT, finished_at__gte=start
                ),
            ),
            FunnelStage(
                "Seen",
                seen,
                delivery_link(kind=DeliveryKind.PRIVATE_REPLY, seen_at__gte=start),
            ),
            FunnelStage(
                "Tapped a choice",
                tapped,
                _link("admin:webhooks_interaction_changelist", trigger=trigger.pk, taps=start)
                if access.contacts
                else "",
            ),
            FunnelStage(
                "Opened a link",
                sums.get(Metric.CLICKED, 0),
                delivery_link(clicked=since.isoformat()),
            ),
        ]
    return TriggerRow(
        trigger=trigger,
        link=reverse("admin:triggers_trigger_change", args=[trigger.pk]) if access.triggers else "",
        fired=Figure(sums.get(Metric.FIRED, 0), firing_link),
        sent=Figure(sums.get(Metric.SENT, 0), delivery_link(status="sent", finished_at__gte=start)),
        failed=Figure(
            sums.get(Metric.FAILED, 0), delivery_link(status="failed", finished_at__gte=start)
        ),
        taps=taps,
        funnel=funnel,
    )
