"""Writes for deliveries: create, claim, check, send, record."""

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Contact, InstagramAccount
from messaging import graph
from messaging.checks import run_checklist
from messaging.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryKind,
    DeliveryReason,
    DeliveryStatus,
)
from meta.client import GraphResult, Outcome

logger = logging.getLogger(__name__)


def _delivery_get_or_create(*, account: InstagramAccount, dedupe_key: str, **fields) -> tuple:
    existing = Delivery.objects.filter(account=account, dedupe_key=dedupe_key).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            return (
                Delivery.objects.create(
                    account=account,
                    workspace_id=account.workspace_id,
                    dedupe_key=dedupe_key,
                    **fields,
                ),
                True,
            )
    except IntegrityError:
        # Another worker created it between our read and write: theirs stands.
        return Delivery.objects.get(account=account, dedupe_key=dedupe_key), False


def deliveries_create_for_comment(
    *,
    account: InstagramAccount,
    trigger,
    contact: Contact,
    comment_id: str,
    commented_at: datetime,
    event_id: int | None,
    event_received_at: datetime | None,
    public_reply_text: str,
    private_message: dict | None,
) -> list[Delivery]:
    """Queue the public reply and the private reply for one comment, once per comment."""
    common = {
        "trigger": trigger,
        "contact": contact,
        "comment_id": comment_id,
        "recipient": comment_id,
        "event_id": event_id,
        "interaction_at": commented_at,
        "event_received_at": event_received_at,
    }
    planned = []
    if public_reply_text:
        planned.append(
            (DeliveryKind.PUBLIC_REPLY, f"public_reply:{comment_id}", {"text": public_reply_text})
        )
    if private_message:
        planned.append((DeliveryKind.PRIVATE_REPLY, f"private_reply:{comment_id}", private_message))

    deliveries = []
    for kind, dedupe_key, payload in planned:
        delivery, created = _delivery_get_or_create(
            account=account, dedupe_key=dedupe_key, kind=kind, payload=payload, **common
        )
        deliveries.append(delivery)
        if created:
            transaction.on_commit(partial(delivery_schedule, delivery_id=delivery.pk))
    return deliveries


def delivery_schedule(*, delivery_id: int) -> None:
    """Hand a delivery to the send queue; if the broker is down the sweeper retries later."""
    from messaging.tasks import send_delivery

    try:
        send_delivery.delay(delivery_id)
    except Exception:
        logger.exception(
            "Could not queue delivery %s; the sweeper will queue it again", delivery_id
        )


def _finish(
    delivery: Delivery,
    *,
    status: str,
    reason: str = "",
    detail: str = "",
    result: GraphResult | None = None,
) -> Delivery:
    now = timezone.now()
    fields = {"status": status, "reason": reason, "detail": detail, "finished_at": now}
    if status == DeliveryStatus.SENT:
        fields["sent_at"] = now
    if result is not None:
        fields.update(
            meta_code=result.code,
            meta_subcode=result.subcode,
            meta_message=result.message[:2000],
            meta_trace_id=result.trace_id[:64],
            meta_response_id=result.response_id[:128],
        )
    # Only the worker that claimed it (status sending) may finish it.
    Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING).update(**fields)
    for name, value in fields.items():
        setattr(delivery, name, value)
    return delivery


def _record_attempt(delivery: Delivery, result: GraphResult, started_at: datetime) -> None:
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        started_at=started_at,
        duration_ms=result.duration_ms,
        outcome=result.outcome,
        http_status=result.http_status,
        reason=result.reason or "",
        meta_code=result.code,
        meta_subcode=result.subcode,
        meta_message=result.message[:2000],
        meta_trace_id=result.trace_id[:64],
        request_summary=result.request_summary[:300],
        response_excerpt=result.response_excerpt[:2000],
    )


def delivery_claim(*, delivery_id: int) -> Delivery | None:
    """Move queued -> sending; None when another worker has it or it is finished."""
    now = timezone.now()
    claimed = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, sending_started_at=now
    )
    if not claimed:
        return None
    return Delivery.objects.select_related("account", "contact", "workspace").get(pk=delivery_id)


def delivery_send(*, delivery_id: int) -> Delivery | None:
    """Claim, check, send and record one delivery. Safe to call twice: only one sends."""
    delivery = delivery_claim(delivery_id=delivery_id)
    if delivery is None:
        return None
    started_at = timezone.now()
    failure = run_checklist(delivery, started_at)
    if failure is not None:
        return _finish(
            delivery, status=DeliveryStatus.SKIPPED, reason=failure.reason, detail=failure.detail
        )

    result = graph.send(delivery)
    _record_attempt(delivery, result, started_at)
    if result.outcome == Outcome.SENT:
        return _finish(delivery, status=DeliveryStatus.SENT, result=result)
    if result.outcome == Outcome.UNKNOWN:
        return _finish(
            delivery,
            status=DeliveryStatus.UNKNOWN,
            detail=(
                "The request may have reached Meta but no answer came back; it is not retried "
                "blindly. Check the conversation on Instagram before sending again."
            ),
            result=result,
        )
    reason = result.reason or DeliveryReason.META_ERROR
    return _finish(
        delivery,
        status=DeliveryStatus.FAILED,
        reason=reason,
        detail=f"Meta refused the send: {result.message}" if result.message else "",
        result=result,
    )


def deliveries_sweep(*, now: datetime | None = None) -> dict:
    """Re-queue deliveries left queued (broker down, lost task) and settle abandoned sends."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.PENDING_EVENT_GRACE_SECONDS)
    stale_ids = list(
        Delivery.objects.filter(status=DeliveryStatus.QUEUED, created_at__lt=now - grace)
        .exclude(next_attempt_at__gt=now)
        .values_list("pk", flat=True)[:1000]
    )
    for delivery_id in stale_ids:
        delivery_schedule(delivery_id=delivery_id)

    # A send claimed long ago with no recorded end: the worker died, maybe mid-request.
    abandoned = Delivery.objects.filter(
        status=DeliveryStatus.SENDING,
        sending_started_at__lt=now - timedelta(seconds=settings.STALE_SENDING_SECONDS),
    ).update(
        status=DeliveryStatus.UNKNOWN,
        finished_at=now,
        detail=(
            "The worker stopped while sending; the request may have reached Meta. "
            "Check the conversation on Instagram before sending again."
        ),
    )
    return {"requeued": len(stale_ids), "marked_unknown": abandoned}
