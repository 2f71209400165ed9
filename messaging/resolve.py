"""Resolving `unknown` sends with Meta's help, instead of leaving each one to a person.

A send is `unknown` when its request may have reached Meta but no answer came back (a read
timeout, a dropped connection, a worker that died mid-call). It is never sent again blindly;
`UNKNOWN_CHECK_AFTER_SECONDS` after the call (time for Meta to finish what it took) Meta is
asked what became of it:

- a private reply is repeated: Meta allows one per comment, so a repeat either goes out (the
  first did not) or is refused with 10/2534025 "already replied", Meta's proof that the first
  went out: the delivery is then `sent`, the repeat's attempt (outcome `confirmed`) holding
  Meta's answer as the evidence;
- a DM is looked for in the conversation (Conversations API, 2 calls/s per account), a public
  reply among the comment's replies (meta/lookups.py): found, it is `sent` with Meta's id;
  not there although Meta shows the whole time since the call, it is queued again (it never
  went out); Meta cannot tell (a call failed, the conversation is too busy), it is checked
  again later, up to `UNKNOWN_MAX_CHECKS` times.

Only what cannot be resolved stays `unknown`, its detail saying what was checked. Each check
is a `DeliveryAttempt` row (outcome `checked` or `confirmed`), so support sees the evidence.
"""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from messaging import graph
from messaging.models import Delivery, DeliveryAttempt, DeliveryKind, DeliveryStatus
from messaging.pacer import HEADROOM, pacer_request
from messaging.sharedstate import Budget, shared_state
from messaging.signals import delivery_finished
from meta.client import GraphResult, Outcome
from meta.lookups import Lookup, find_comment_reply, find_sent_message

logger = logging.getLogger(__name__)

ALREADY_REPLIED = (10, 2534025)
# Meta's Conversations API budget (meta-api.md section 5), shared by every lookup of an account.
CONVERSATIONS_PER_SECOND = 2
# A check taken by a worker is not handed out again for this long (it takes seconds).
CHECK_CLAIM_SECONDS = 120.0
CHECKED, CONFIRMED = "checked", "confirmed"


def _max_checks() -> int:
    return settings.UNKNOWN_MAX_CHECKS


def next_check_at(delivery: Delivery, now: datetime) -> datetime | None:
    """When to ask Meta about an unknown send next; None when no check is left."""
    if delivery.resolution_checks >= _max_checks():
        return None
    started = delivery.call_started_at or now
    first = started + timedelta(seconds=settings.UNKNOWN_CHECK_AFTER_SECONDS)
    backoff = timedelta(seconds=settings.UNKNOWN_CHECK_AFTER_SECONDS * delivery.resolution_checks)
    return max(first, now + backoff)


def unknown_detail(what: str, at: datetime | None) -> str:
    """The detail of an unknown send: what happened and what is done about it."""
    if at is not None:
        return (
            f"{what} It is not retried blindly: Meta is asked what became of it at "
            f"{at:%H:%M:%S} UTC."
        )
    return (
        f"{what} It is not retried blindly. Check the conversation on Instagram before "
        "sending again."
    )


# A check waits this long at most for a place in the budget, then tries again later: a worker
# process must not sit idle behind a busy account.
MAX_BUDGET_WAIT_SECONDS = 5.0


def _acquire_for(account_id: int):
    budget = Budget(f"{account_id}:conversations", CONVERSATIONS_PER_SECOND, 1.0 / HEADROOM)

    def acquire() -> bool:
        deadline = time.monotonic() + MAX_BUDGET_WAIT_SECONDS
        while True:
            wait = shared_state().try_acquire([budget])
            if wait <= 0:
                return True
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)

    return acquire


def deliveries_resolve_due(*, now: datetime | None = None, limit: int = 100) -> int:
    """Hand every unknown send due for a check to a worker (claimed, so only once)."""
    from messaging.tasks import resolve_delivery

    now = now or timezone.now()
    due = Delivery.objects.filter(
        status=DeliveryStatus.UNKNOWN, next_attempt_at__lte=now
    ).values_list("pk", "next_attempt_at")[:limit]
    handed = 0
    for pk, at in due:
        claimed = Delivery.objects.filter(
            pk=pk, status=DeliveryStatus.UNKNOWN, next_attempt_at=at
        ).update(next_attempt_at=now + timedelta(seconds=CHECK_CLAIM_SECONDS))
        if claimed:
            try:
                resolve_delivery.delay(pk)
            except Exception:
                logger.warning("Could not queue the check of delivery %s; retried later", pk)
                continue
            handed += 1
    return handed


def delivery_resolve(*, delivery_id: int) -> str:
    """One check of an unknown send. Returns what it found, for logs and tests."""
    delivery = (
        Delivery.objects.select_related("account", "contact")
        .filter(pk=delivery_id, status=DeliveryStatus.UNKNOWN)
        .first()
    )
    if delivery is None:
        return "not unknown"
    now = timezone.now()
    checks = delivery.resolution_checks + 1
    if delivery.kind == DeliveryKind.PRIVATE_REPLY:
        # Repeat it through the normal send path (checks, budgets, pacing): Meta's answer
        # settles it (delivery_repeat_answered).
        queued = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.UNKNOWN).update(
            status=DeliveryStatus.QUEUED,
            dispatched_at=None,
            next_attempt_at=None,
            finished_at=None,
            resolution_checks=checks,
            detail=(
                "Its answer was lost, so it is sent once more: Meta allows one private reply "
                "per comment, and refuses a repeat if the first went out."
            ),
        )
        if queued:
            pacer_request(delivery.account_id)
        return "repeat queued" if queued else "not unknown"

    lookup = _look_up(delivery)
    _record_check(delivery, lookup, now)
    if lookup.found:
        _confirm_sent(delivery, lookup, checks)
        return "found"
    if lookup.found is False:
        requeued = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.UNKNOWN).update(
            status=DeliveryStatus.QUEUED,
            dispatched_at=None,
            next_attempt_at=None,
            finished_at=None,
            resolution_checks=checks,
            detail=f"{lookup.checked} It never went out, so it is sent again.",
        )
        if requeued:
            pacer_request(delivery.account_id)
        return "not sent: queued again"
    delivery.resolution_checks = checks
    later = next_check_at(delivery, now)
    Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.UNKNOWN).update(
        resolution_checks=checks,
        next_attempt_at=later,
        detail=_cannot_tell_detail(lookup, checks, later),
    )
    return "cannot tell"


def _cannot_tell_detail(lookup: Lookup, checks: int, later: datetime | None) -> str:
    if later is not None:
        return (
            f"The request may have reached Meta but no answer came back. Check {checks}: "
            f"{lookup.checked} Asking again at {later:%H:%M:%S} UTC."
        )
    return (
        f"The request may have reached Meta but no answer came back, and Meta could not "
        f"confirm it in {checks} check(s); last: {lookup.checked} It is not retried blindly. "
        "Check the conversation on Instagram before sending again."
    )


def _look_up(delivery: Delivery) -> Lookup:
    account = delivery.account
    client = graph.client_for(account)
    our_ids = {account.ig_user_id, account.ig_alt_id, account.page_id, account.sender_id}
    since = delivery.call_started_at or delivery.sending_started_at or delivery.created_at
    acquire = _acquire_for(account.pk)
    if delivery.kind == DeliveryKind.PUBLIC_REPLY:
        return find_comment_reply(
            client,
            comment_id=delivery.recipient or delivery.comment_id,
            text=delivery.payload.get("text", ""),
            since=since,
            our_ids=our_ids,
            our_username=account.username,
            acquire=acquire,
        )
    text = delivery.payload.get("text") if isinstance(delivery.payload, dict) else None
    # Messages other sends of ours to this person were recorded with are not this one.
    known = (
        Delivery.objects.filter(account_id=delivery.account_id, recipient=delivery.recipient)
        .exclude(pk=delivery.pk)
        .exclude(meta_response_id="")
    )
    return find_sent_message(
        client,
        owner_id=account.sender_id,
        user_id=delivery.recipient,
        text=text if isinstance(text, str) else None,
        since=since,
        our_ids=our_ids,
        our_username=account.username,
        exclude_ids=known.values_list("meta_response_id", flat=True),
        acquire=acquire,
    )


def _record_check(delivery: Delivery, lookup: Lookup, now: datetime) -> None:
    last = lookup.calls[-1] if lookup.calls else None
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        started_at=now,
        duration_ms=sum(call.duration_ms for call in lookup.calls),
        outcome=CONFIRMED if lookup.found else CHECKED,
        http_status=last.http_status if last else None,
        request_summary="; ".join(call.request_summary for call in lookup.calls)[:300],
        response_excerpt=lookup.checked[:2000],
        meta_code=last.code if last and not last.ok else None,
        meta_message=(last.message if last and not last.ok else "")[:2000],
    )


def _confirm_sent(delivery: Delivery, lookup: Lookup, checks: int) -> None:
    sent_at = lookup.at or delivery.call_started_at or timezone.now()
    updated = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.UNKNOWN).update(
        status=DeliveryStatus.SENT,
        reason="",
        sent_at=sent_at,
        finished_at=timezone.now(),
        next_attempt_at=None,
        resolution_checks=checks,
        meta_response_id=lookup.item_id[:128],
        detail=f"Sent; its answer was lost on the way back. {lookup.checked}",
    )
    if updated:
        delivery.refresh_from_db()
        _announce(delivery)


def _announce(delivery: Delivery) -> None:
    def send() -> None:
        try:
            delivery_finished.send(sender=Delivery, delivery=delivery)
        except Exception:
            logger.exception("A delivery_finished listener failed for delivery %s", delivery.pk)

    transaction.on_commit(send)


# --- the repeat of a private reply (called by messaging.services while it holds the claim) --
def is_repeat(delivery: Delivery) -> bool:
    """A private reply sent again to learn whether its first attempt went out."""
    return delivery.kind == DeliveryKind.PRIVATE_REPLY and delivery.resolution_checks > 0


def repeat_outcome(
    delivery: Delivery, attempt: DeliveryAttempt, result: GraphResult, *, max_attempts: int
) -> dict | None:
    """How a repeat's answer settles the delivery: fields for its final update, or None when
    the normal handling applies (sent now, or a refusal to retry after a wait)."""
    if result.outcome == Outcome.SENT:
        return None  # the first never went out; this one did
    if (result.code, result.subcode) == ALREADY_REPLIED:
        DeliveryAttempt.objects.filter(pk=attempt.pk).update(outcome=CONFIRMED)
        first = delivery.attempt_log.exclude(pk=attempt.pk).order_by("-number", "-pk").first()
        return {
            "status": DeliveryStatus.SENT,
            "reason": "",
            "sent_at": (first.started_at if first else None) or timezone.now(),
            "detail": (
                "Sent; its answer was lost on the way back. Sent once more to check, Meta "
                "refused with 'already replied' (10/2534025): the comment's one private reply "
                "was used, by the first attempt."
            ),
        }
    retry_later = result.outcome == Outcome.FAILED and (result.retryable or result.throttled)
    if retry_later and delivery.attempts < max_attempts:
        return None  # try the repeat again after the usual wait
    at = next_check_at(delivery, timezone.now())
    return {
        "status": DeliveryStatus.UNKNOWN,
        "reason": "",
        "next_attempt_at": at,
        "detail": unknown_detail(
            "Its first answer was lost, and a repeat to check could not tell "
            f"({result.message or result.outcome}).",
            at,
        ),
    }


def repeat_unchecked(delivery: Delivery, why: str, *, later: bool) -> dict:
    """A repeat the pre-send checklist stopped: the first attempt's fate is still unknown.
    `later`: the obstacle may pass (an account to reconnect), so it is checked again."""
    at = next_check_at(delivery, timezone.now()) if later else None
    return {
        "status": DeliveryStatus.UNKNOWN,
        "reason": "",
        "next_attempt_at": at,
        "detail": unknown_detail(f"Its answer was lost, and it could not be checked: {why}", at),
    }
