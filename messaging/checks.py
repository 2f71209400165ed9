"""The pre-send checklist: run right before each send, after any wait in the queue.

Each check returns None when the delivery may go, or a CheckFailure with a named reason;
a failure ends the delivery as `skipped` and Meta is not called.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from accounts import crypto
from accounts.models import AccountStatus
from messaging.models import Delivery, DeliveryKind, DeliveryReason

PRIVATE_REPLY_WINDOW = timedelta(days=7)
MESSAGE_WINDOW = timedelta(hours=24)
# Meta's limits [seen]: 1,000 characters per message, 640 with buttons; comments allow 2,200.
MESSAGE_TEXT_LIMIT = 1000
MESSAGE_WITH_BUTTONS_TEXT_LIMIT = 640
COMMENT_TEXT_LIMIT = 2200


@dataclass(frozen=True)
class CheckFailure:
    reason: DeliveryReason
    detail: str


def check_account(delivery: Delivery, now: datetime) -> CheckFailure | None:
    account = delivery.account
    if account.status == AccountStatus.DISABLED:
        return CheckFailure(
            DeliveryReason.PERMISSION_MISSING, f"{account} is disabled; enable it to send again."
        )
    if account.status == AccountStatus.NEEDS_RECONNECT:
        return CheckFailure(
            DeliveryReason.TOKEN_INVALID,
            f"Reconnect {account}: {account.status_reason or 'its token no longer works'}.",
        )
    try:
        token = account.access_token
    except crypto.TokenDecryptionError as exc:
        return CheckFailure(DeliveryReason.TOKEN_INVALID, str(exc))
    if not token:
        return CheckFailure(DeliveryReason.TOKEN_INVALID, f"{account} has no access token.")
    return None


def check_window(delivery: Delivery, now: datetime) -> CheckFailure | None:
    if delivery.kind == DeliveryKind.PUBLIC_REPLY:
        return None
    if delivery.kind == DeliveryKind.PRIVATE_REPLY:
        if delivery.interaction_at and now - delivery.interaction_at > PRIVATE_REPLY_WINDOW:
            return CheckFailure(
                DeliveryReason.WINDOW_EXPIRED,
                "The comment is older than 7 days: Meta allows a private reply only within 7 days.",
            )
        return None
    last = delivery.contact.last_interaction_at if delivery.contact else None
    if last is None or now - last > MESSAGE_WINDOW:
        return CheckFailure(
            DeliveryReason.WINDOW_EXPIRED,
            "The person has not written in the last 24 hours, so Meta does not allow a message.",
        )
    return None


def _message_text_limit(message: dict) -> int:
    attachment = message.get("attachment") or {}
    has_buttons = bool((attachment.get("payload") or {}).get("buttons"))
    return MESSAGE_WITH_BUTTONS_TEXT_LIMIT if has_buttons else MESSAGE_TEXT_LIMIT


def check_content(delivery: Delivery, now: datetime) -> CheckFailure | None:
    payload = delivery.payload or {}
    if delivery.kind == DeliveryKind.PUBLIC_REPLY:
        text, limit = payload.get("text", ""), COMMENT_TEXT_LIMIT
    else:
        text, limit = payload.get("text", ""), _message_text_limit(payload)
        if not text and not payload.get("attachment"):
            return CheckFailure(DeliveryReason.CONTENT_REJECTED, "The message is empty.")
    if delivery.kind == DeliveryKind.PUBLIC_REPLY and not text.strip():
        return CheckFailure(DeliveryReason.CONTENT_REJECTED, "The public reply is empty.")
    if len(text) > limit:
        return CheckFailure(
            DeliveryReason.CONTENT_REJECTED,
            f"The text has {len(text)} characters; Meta accepts at most {limit}.",
        )
    return None


CHECKLIST: tuple[Callable[[Delivery, datetime], CheckFailure | None], ...] = (
    check_account,
    check_window,
    check_content,
)


def run_checklist(delivery: Delivery, now: datetime) -> CheckFailure | None:
    for check in CHECKLIST:
        failure = check(delivery, now)
        if failure is not None:
            return failure
    return None
