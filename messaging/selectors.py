"""Reads for deliveries."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet

from accounts.models import AccountStatus, InstagramAccount
from messaging.models import Delivery, DeliveryKind, DeliveryStatus
from messaging.pacer import budgets_for

EXPORT_FIELDS = (
    "id",
    "workspace",
    "account",
    "trigger",
    "kind",
    "recipient",
    "contact",
    "comment_id",
    "status",
    "reason",
    "detail",
    "attempts",
    "meta_code",
    "meta_subcode",
    "meta_message",
    "meta_trace_id",
    "meta_response_id",
    "interaction_at",
    "event_received_at",
    "sent_at",
    "created_at",
    "finished_at",
)


def deliveries_for_export(
    *, since: datetime | None = None, workspace_name: str | None = None
) -> QuerySet[Delivery]:
    queryset = Delivery.objects.select_related("workspace", "account", "trigger", "contact")
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if workspace_name is not None:
        queryset = queryset.filter(workspace__name=workspace_name)
    return queryset.order_by("created_at", "id")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def delivery_as_record(delivery: Delivery) -> dict:
    return {
        "id": delivery.pk,
        "workspace": delivery.workspace.name,
        "account": delivery.account.username,
        "trigger": delivery.trigger.name if delivery.trigger else None,
        "kind": delivery.kind,
        "recipient": delivery.recipient,
        "contact": delivery.contact.igsid if delivery.contact else None,
        "comment_id": delivery.comment_id or None,
        "status": delivery.status,
        "reason": delivery.reason,
        "detail": delivery.detail,
        "attempts": delivery.attempts,
        "meta_code": delivery.meta_code,
        "meta_subcode": delivery.meta_subcode,
        "meta_message": delivery.meta_message,
        "meta_trace_id": delivery.meta_trace_id,
        "meta_response_id": delivery.meta_response_id,
        "interaction_at": _iso(delivery.interaction_at),
        "event_received_at": _iso(delivery.event_received_at),
        "sent_at": _iso(delivery.sent_at),
        "created_at": _iso(delivery.created_at),
        "finished_at": _iso(delivery.finished_at),
    }


def accounts_with_due_work(*, now: datetime) -> list[int]:
    """Active accounts with queued deliveries waiting for the pacer."""
    return list(
        Delivery.objects.filter(
            status=DeliveryStatus.QUEUED,
            dispatched_at__isnull=True,
            held_since__isnull=True,
            account__status=AccountStatus.ACTIVE,
        )
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by()
        .values_list("account_id", flat=True)
        .distinct()
    )


def kind_rate_per_second(account: InstagramAccount, kind: str) -> float:
    """The steady rate the pacer allows for one kind (or lane) of send: the tightest of its
    budgets."""
    return min(budget.limit / budget.window for budget in budgets_for(account, kind))


def drain_seconds(account: InstagramAccount, queued: dict[str, int]) -> float:
    """How long the account's queued sends take at its budgets (``queued``: count per kind).
    Reads nothing: the sending-queues list computes it for every row from annotated counts."""
    budget = {kind: kind_rate_per_second(account, kind) for kind in DeliveryKind.values}
    # Private replies and DMs share the Send API budget; public replies have their own.
    messaging_kinds = (DeliveryKind.PRIVATE_REPLY, DeliveryKind.MESSAGE)
    drains = [queued.get(kind, 0) / budget[kind] for kind in DeliveryKind.values]
    drains.append(
        sum(queued.get(kind, 0) for kind in messaging_kinds) / budget[DeliveryKind.MESSAGE]
    )
    return max(drains)


@dataclass(frozen=True)
class QueueStats:
    queued: dict[str, int]
    held: int
    in_flight: int
    sent_last_minute: int
    rate_per_second: float
    budget_per_second: dict[str, float]
    drain_seconds: float
    paused_until: datetime | None

    @property
    def depth(self) -> int:
        return sum(self.queued.values())


def account_queue_stats(*, account: InstagramAccount, now: datetime) -> QueueStats:
    rows = (
        Delivery.objects.filter(account=account, status=DeliveryStatus.QUEUED)
        .values("kind")
        .annotate(total=Count("pk"), held=Count("pk", filter=Q(held_since__isnull=False)))
    )
    queued = {row["kind"]: row["total"] for row in rows}
    held = sum(row["held"] for row in rows)
    in_flight = Delivery.objects.filter(
        Q(status=DeliveryStatus.SENDING)
        | Q(status=DeliveryStatus.QUEUED, dispatched_at__isnull=False),
        account=account,
    ).count()
    sent_last_minute = Delivery.objects.filter(
        account=account, status=DeliveryStatus.SENT, sent_at__gte=now - timedelta(minutes=1)
    ).count()
    budget = {kind: kind_rate_per_second(account, kind) for kind in DeliveryKind.values}
    return QueueStats(
        queued=queued,
        held=held,
        in_flight=in_flight,
        sent_last_minute=sent_last_minute,
        rate_per_second=sent_last_minute / 60,
        budget_per_second=budget,
        drain_seconds=drain_seconds(account, queued),
        paused_until=account.paused_until
        if account.paused_until and account.paused_until > now
        else None,
    )
