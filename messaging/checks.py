"""The pre-send checklist: run right before each send, after any wait in the queue.

Each check returns None when the delivery may go, or a CheckFailure with a named reason:
a failure ends the delivery as `skipped` and Meta is not called, except a `hold`, which
puts it back in the queue until the account is reconnected. Rate budgets are not checked
here: the pacer only hands a delivery to a worker once its account's budgets have room.
"""

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db.models import Exists, OuterRef

from accounts import crypto
from accounts.models import AccountStatus, LoginKind
from messaging.models import Delivery, DeliveryKind, DeliveryReason, DeliveryStatus
from meta import messages as meta_messages

PRIVATE_REPLY_WINDOW = timedelta(days=7)
MESSAGE_WINDOW = timedelta(hours=24)
# A live broadcast lasts at most 4 hours on Instagram [seen]: a live comment older than this
# cannot be answered while live, whatever a lookup says.
LIVE_BROADCAST_MAX = timedelta(hours=4)
# The permissions each kind of send needs, per login kind (meta-api.md sections 1 and 6):
# with Facebook Login a Page token without pages_messaging is refused with code 230, and a
# private reply is comment moderation as well as messaging.
REQUIRED_SCOPES: dict[str, dict[str, tuple[str, ...]]] = {
    LoginKind.FACEBOOK: {
        DeliveryKind.PUBLIC_REPLY: ("instagram_manage_comments",),
        DeliveryKind.PRIVATE_REPLY: (
            "instagram_manage_messages",
            "instagram_manage_comments",
            "pages_messaging",
        ),
        DeliveryKind.MESSAGE: ("instagram_manage_messages", "pages_messaging"),
    },
    LoginKind.INSTAGRAM: {
        DeliveryKind.PUBLIC_REPLY: ("instagram_business_manage_comments",),
        DeliveryKind.PRIVATE_REPLY: (
            "instagram_business_manage_messages",
            "instagram_business_manage_comments",
        ),
        DeliveryKind.MESSAGE: ("instagram_business_manage_messages",),
    },
}
_URL = re.compile(r"(?:https?://)?(?:[a-z0-9-]+\.)+[a-z]{2,}(?:/\S*)?", re.IGNORECASE)


def _words(text: str) -> list[str]:
    # Case and accents folded, so a blocked "cafe" also catches "Café".
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return re.findall(r"\w+", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))


@dataclass(frozen=True)
class CheckFailure:
    reason: DeliveryReason
    detail: str
    hold: bool = False


def window_end(delivery: Delivery) -> datetime | None:
    """When Meta stops allowing this send (None: no window, e.g. a public reply)."""
    if delivery.kind == DeliveryKind.PUBLIC_REPLY:
        return None
    if delivery.kind == DeliveryKind.PRIVATE_REPLY:
        # The comment's own time when read from Meta; else entry.time, an upper bound.
        made = delivery.comment_created_at or delivery.interaction_at
        return made + PRIVATE_REPLY_WINDOW if made else None
    last = delivery.contact.last_interaction_at if delivery.contact else None
    return last + MESSAGE_WINDOW if last else None


def check_account(delivery: Delivery, now: datetime) -> CheckFailure | None:
    account = delivery.account
    if account.status == AccountStatus.DISABLED:
        return CheckFailure(
            DeliveryReason.PERMISSION_MISSING, f"{account} is disabled; enable it to send again."
        )
    if account.status == AccountStatus.NEEDS_RECONNECT:
        return CheckFailure(
            account.reconnect_reason or DeliveryReason.TOKEN_INVALID,
            f"Held until {account} is reconnected: "
            f"{account.status_reason or 'its token no longer works'}.",
            hold=True,
        )
    try:
        token = account.access_token
    except crypto.TokenDecryptionError as exc:
        return CheckFailure(DeliveryReason.TOKEN_INVALID, str(exc))
    if not token:
        return CheckFailure(DeliveryReason.TOKEN_INVALID, f"{account} has no access token.")
    return None


def check_permission(delivery: Delivery, now: datetime) -> CheckFailure | None:
    account = delivery.account
    # An empty list means the grant was never read (token pasted by hand): Meta will tell.
    if not account.scopes:
        return None
    needed = REQUIRED_SCOPES.get(account.login_kind, {}).get(delivery.kind, ())
    missing = [scope for scope in needed if scope not in account.scopes]
    if missing:
        return CheckFailure(
            DeliveryReason.PERMISSION_MISSING,
            f"Reconnect {account}: its token does not grant {', '.join(missing)}, which this "
            f"send needs. Connect again and keep every permission ticked.",
        )
    return None


def check_window(delivery: Delivery, now: datetime) -> CheckFailure | None:
    if delivery.kind == DeliveryKind.PUBLIC_REPLY:
        return None
    ends = window_end(delivery)
    if delivery.kind == DeliveryKind.PRIVATE_REPLY:
        if ends is not None and now > ends:
            return CheckFailure(
                DeliveryReason.WINDOW_EXPIRED,
                "The comment is older than 7 days: Meta allows a private reply only within 7 days.",
            )
        said_at = delivery.interaction_at
        if delivery.live_media_id and said_at and now > said_at + LIVE_BROADCAST_MAX:
            return CheckFailure(
                DeliveryReason.WINDOW_EXPIRED,
                "The live broadcast this comment was made in has ended (live videos last at "
                "most 4 hours): Meta allows private replies to live comments only while live.",
            )
        return None
    if ends is None or now > ends:
        return CheckFailure(
            DeliveryReason.WINDOW_EXPIRED,
            "The person has not written in the last 24 hours, so Meta does not allow a message.",
        )
    return None


_REPLY_USED = [DeliveryStatus.SENT, DeliveryStatus.UNKNOWN, DeliveryStatus.SENDING]


def private_reply_used_elsewhere() -> Exists:
    """Annotation: another private reply to the delivery's comment went (or may have gone).
    The claim reads it with the delivery, so the check costs no statement of its own."""
    return Exists(
        Delivery.objects.filter(
            account_id=OuterRef("account_id"),
            kind=DeliveryKind.PRIVATE_REPLY,
            comment_id=OuterRef("comment_id"),
            status__in=_REPLY_USED,
        ).exclude(pk=OuterRef("pk"))
    )


def check_already_replied(delivery: Delivery, now: datetime) -> CheckFailure | None:
    if delivery.kind != DeliveryKind.PRIVATE_REPLY:
        return None
    used = getattr(delivery, "private_reply_used", None)
    if used is None:
        used = (
            Delivery.objects.filter(
                account_id=delivery.account_id,
                kind=DeliveryKind.PRIVATE_REPLY,
                comment_id=delivery.comment_id,
                status__in=_REPLY_USED,
            )
            .exclude(pk=delivery.pk)
            .exists()
        )
    if used:
        return CheckFailure(
            DeliveryReason.ALREADY_REPLIED,
            "This comment already got its one private reply (or one may be on its way).",
        )
    return None


def check_conversation(delivery: Delivery, now: datetime) -> CheckFailure | None:
    contact = delivery.contact
    if delivery.kind == DeliveryKind.PUBLIC_REPLY or contact is None:
        return None
    closed = contact.conversation_closed_at
    if closed and (contact.last_interaction_at is None or contact.last_interaction_at < closed):
        return CheckFailure(
            DeliveryReason.CONVERSATION_CLOSED,
            f"{contact} blocked, restricted or left the conversation "
            f"({contact.conversation_closed_reason or 'learned from an earlier error'}); "
            "not messaged again until they write first.",
        )
    return None


def _texts(payload: dict) -> list[str]:
    """Every piece of text a person will see or follow: body, buttons, quick replies, URLs."""
    texts = [payload.get("text") or ""]
    attachment_payload = (payload.get("attachment") or {}).get("payload") or {}
    texts.append(attachment_payload.get("text") or "")
    texts.append(attachment_payload.get("url") or "")
    elements = attachment_payload.get("elements") or []
    buttons = list(attachment_payload.get("buttons") or [])
    for element in elements:
        texts += [element.get("title") or "", element.get("subtitle") or ""]
        buttons += element.get("buttons") or []
    for button in buttons:
        texts += [button.get("title") or "", button.get("url") or ""]
    for quick_reply in payload.get("quick_replies") or []:
        texts.append(quick_reply.get("title") or "")
    return [text for text in texts if text]


def _domains(text: str) -> set[str]:
    domains = set()
    for match in _URL.findall(text):
        url = match if "://" in match else f"http://{match}"
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
        if host:
            domains.add(host)
    return domains


def check_content(delivery: Delivery, now: datetime) -> CheckFailure | None:
    payload = delivery.payload or {}
    # A button template carries its text inside the attachment, where the 640 limit applies.
    template = (payload.get("attachment") or {}).get("payload") or {}
    text = payload.get("text") or template.get("text") or ""
    if delivery.kind == DeliveryKind.PUBLIC_REPLY:
        if not text.strip():
            return CheckFailure(DeliveryReason.CONTENT_REJECTED, "The public reply is empty.")
        problem = meta_messages.comment_limit_problem(text)
    else:
        if not text and not payload.get("attachment"):
            return CheckFailure(DeliveryReason.CONTENT_REJECTED, "The message is empty.")
        problem = meta_messages.text_limit_problem(text, with_buttons=bool(template.get("buttons")))
    if problem:
        return CheckFailure(DeliveryReason.CONTENT_REJECTED, f"The text is {problem}")
    workspace = delivery.workspace
    texts = _texts(payload)
    # Whole words after normalising, like trigger matching: "ass" does not block "class".
    words = f" {' '.join(word for text in texts for word in _words(text))} "
    for blocked in workspace.blocked_words:
        needle = " ".join(_words(blocked))
        if needle and f" {needle} " in words:
            return CheckFailure(
                DeliveryReason.CONTENT_REJECTED,
                f"The message contains {blocked!r}, which workspace {workspace} blocks.",
            )
    blocked_domains = {
        d.lower().strip().lstrip("*.").rstrip(".") for d in workspace.blocked_domains
    }
    for domain in sorted({d for text in texts for d in _domains(text)}):
        for blocked in blocked_domains:
            if blocked and (domain == blocked or domain.endswith(f".{blocked}")):
                return CheckFailure(
                    DeliveryReason.CONTENT_REJECTED,
                    f"The message links to {domain}, which workspace {workspace} blocks.",
                )
    return None


CHECKLIST: tuple[Callable[[Delivery, datetime], CheckFailure | None], ...] = (
    check_account,
    check_permission,
    check_window,
    check_already_replied,
    check_conversation,
    check_content,
)


def run_checklist(delivery: Delivery, now: datetime) -> CheckFailure | None:
    for check in CHECKLIST:
        failure = check(delivery, now)
        if failure is not None:
            return failure
    return None
