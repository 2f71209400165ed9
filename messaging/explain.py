"""A delivery in plain words: what happened and what to do next (the console's pages).

The next step after a refusal is Meta's error class's own (``meta.errors``, the table every
refusal is classified by); a send stopped before Meta was called (a pre-send check) has the
step its reason calls for.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone

from messaging.models import Delivery, DeliveryKind, DeliveryReason, DeliveryStatus
from meta import errors

# Far in the future: a pause an operator lifts by hand (messaging.actions).
PAUSED_UNTIL_RESUMED = datetime(3000, 1, 1, tzinfo=UTC)

_NEXT_STEP_BY_REASON = {
    DeliveryReason.WINDOW_EXPIRED: errors.WINDOW_EXPIRED.description,
    DeliveryReason.ALREADY_REPLIED: errors.ALREADY_REPLIED.description,
    DeliveryReason.CONVERSATION_CLOSED: errors.CONVERSATION_CLOSED.description,
    DeliveryReason.TOKEN_INVALID: errors.TOKEN_INVALID.description,
    DeliveryReason.PERMISSION_MISSING: errors.PERMISSION_MISSING.description,
    DeliveryReason.RATE_LIMITED: errors.RATE_LIMITED.description,
    DeliveryReason.RECIPIENT_INVALID: errors.RECIPIENT_INVALID.description,
    DeliveryReason.CONTENT_REJECTED: (
        "The message did not pass our own checks (its length, or a word or domain the "
        "workspace blocks): change the trigger's message, then retry."
    ),
    DeliveryReason.META_ERROR: errors.UNKNOWN.description,
}
_PRIVATE_REPLY_WINDOW_STEP = (
    "Meta allows a private reply only within 7 days of the comment (or while a live broadcast "
    "is on): nothing can be sent for this comment any more."
)
UNKNOWN_STEP = (
    "The request may have reached Meta, but no answer came back, so it is never retried on "
    "its own: check the conversation on Instagram before sending anything again."
)


def delivery_next_step(delivery: Delivery) -> str:
    """What an operator should do about this delivery, in a sentence ("" when nothing)."""
    if delivery.status == DeliveryStatus.SENT:
        return ""
    if delivery.status == DeliveryStatus.UNKNOWN:
        return UNKNOWN_STEP
    if delivery.status in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING):
        return delivery_waiting_for(delivery)
    if delivery.meta_code is not None:
        found = errors.classify_error(
            delivery.meta_code, delivery.meta_subcode, message=delivery.meta_message
        )
        return found.description
    if (
        delivery.reason == DeliveryReason.WINDOW_EXPIRED
        and delivery.kind == DeliveryKind.PRIVATE_REPLY
    ):
        return _PRIVATE_REPLY_WINDOW_STEP
    if not delivery.reason and delivery.status == DeliveryStatus.SKIPPED:
        return "It was cancelled before it was sent; nothing else to do."
    return _NEXT_STEP_BY_REASON.get(delivery.reason, errors.UNKNOWN.description)


def delivery_waiting_for(delivery: Delivery, now: datetime | None = None) -> str:
    """Why a queued send has not gone yet, in words ("" when it simply waits its turn)."""
    now = now or timezone.now()
    if delivery.status == DeliveryStatus.SENDING:
        return "It is being sent right now."
    if delivery.held_since:
        return (
            f"Held since {delivery.held_since:%Y-%m-%d %H:%M:%S} UTC until the account is "
            "reconnected; it goes out then if its window still allows."
        )
    due = delivery.next_attempt_at
    if due is not None and due >= PAUSED_UNTIL_RESUMED:
        return delivery.detail or "Waiting: its trigger or account is paused."
    if due is not None and due > now:
        return f"Due at {due:%Y-%m-%d %H:%M:%S} UTC ({delivery.detail or 'a planned delay'})."
    return "Waiting for its turn in the account's sending queue."
