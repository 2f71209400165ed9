"""Reads for deliveries."""

from datetime import datetime

from django.db.models import QuerySet

from messaging.models import Delivery

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
