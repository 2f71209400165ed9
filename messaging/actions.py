"""Operator actions on sends: retry, cancel, pause and resume an account's sending.

Each checks Meta's rules and the send's state first and says in a sentence why it cannot act,
changes rows with conditional UPDATEs (a send that moved on meanwhile is left alone), and writes
an audit entry naming who did it. The console's pages ask for confirmation before calling them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AccountStatus, InstagramAccount
from messaging.checks import window_end
from messaging.explain import PAUSED_UNTIL_RESUMED
from messaging.models import Delivery, DeliveryKind, DeliveryReason, DeliveryStatus
from messaging.pacer import pacer_request
from messaging.services import IN_FLIGHT, delivery_replay_window_end, pace_after_commit
from messaging.signals import delivery_finished, delivery_retried
from meta.client import Outcome

RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
# Attempt outcomes after which the request may have reached Meta: never tried again by hand.
MAY_HAVE_REACHED_META = (Outcome.SENT.value, Outcome.UNKNOWN.value, IN_FLIGHT, "lost")


def _who(actor) -> str:
    return actor.get_username() if actor is not None else "an operator"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def delivery_retry_problem(delivery: Delivery, now: datetime | None = None) -> str:
    """Why this send may not be tried again now ("" when it may): Meta's rules (its window is
    open, a comment's one private reply is unused) and its own state (it never reached Meta)."""
    now = now or timezone.now()
    if delivery.status == DeliveryStatus.UNKNOWN:
        return (
            "Its outcome is unknown: the request may have reached Meta. Check the conversation "
            "on Instagram; it is never sent again blindly."
        )
    if delivery.status == DeliveryStatus.SENT:
        return "It was sent."
    if delivery.status not in RETRYABLE:
        return "It has not finished yet."
    account = delivery.account
    if account.status != AccountStatus.ACTIVE:
        return f"{account} needs reconnecting first ({account.status_reason or 'token problem'})."
    if delivery.reason == DeliveryReason.ALREADY_REPLIED:
        return "This comment already got its one private reply."
    if delivery.attempt_log.filter(outcome__in=MAY_HAVE_REACHED_META).exists():
        return "An earlier try may have reached Meta: check the conversation on Instagram."
    if delivery.kind == DeliveryKind.PRIVATE_REPLY:
        used = (
            Delivery.objects.filter(
                account_id=delivery.account_id,
                kind=DeliveryKind.PRIVATE_REPLY,
                comment_id=delivery.comment_id,
                status__in=[DeliveryStatus.SENT, DeliveryStatus.UNKNOWN, DeliveryStatus.SENDING],
            )
            .exclude(pk=delivery.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if used is not None:
            return f"This comment already got its one private reply (send #{used})."
    # Both must be open: Meta's window for the send, and the one of what it answers (a newer
    # message reopens Meta's window, but an old answer must not land in it days later).
    ends = [end for end in (delivery_replay_window_end(delivery), window_end(delivery)) if end]
    if delivery.kind != DeliveryKind.PUBLIC_REPLY and not ends:
        return "The person has not written to the account, so Meta allows no message."
    if ends and min(ends) <= now:
        return f"Its window closed at {_when(min(ends))}: Meta no longer allows this send."
    contact = delivery.contact
    closed = contact.conversation_closed_at if contact else None
    if (
        delivery.kind != DeliveryKind.PUBLIC_REPLY
        and closed
        and (contact.last_interaction_at is None or contact.last_interaction_at < closed)
    ):
        return (
            f"{contact} cannot be messaged until they write first "
            f"({contact.conversation_closed_reason or 'blocked or restricted the account'})."
        )
    return ""


def delivery_cancel_problem(delivery: Delivery) -> str:
    if delivery.status == DeliveryStatus.QUEUED:
        return ""
    if delivery.status == DeliveryStatus.SENDING:
        return "It is being sent right now."
    return "It has already finished."


@dataclass
class ActionSummary:
    """What an action did: the sends it changed, and why the others were left alone."""

    done: list[int] = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)

    def add_refusal(self, why: str) -> None:
        self.refused[why] += 1


def _deliveries(ids) -> list[Delivery]:
    return list(
        Delivery.objects.filter(pk__in=list(ids))
        .select_related("account", "contact", "workspace")
        .order_by("pk")
    )


@transaction.atomic
def deliveries_retry(*, delivery_ids, actor) -> ActionSummary:
    """Queue failed or skipped sends again where Meta's rules still allow it.

    Each goes back as it was queued first (same dedupe key: nothing is sent twice), so the
    pre-send checklist runs again; a flow stopped by it waits for it again.
    """
    now = timezone.now()
    summary = ActionSummary()
    for delivery in _deliveries(delivery_ids):
        problem = delivery_retry_problem(delivery, now)
        if problem:
            summary.add_refusal(problem)
            continue
        was = delivery.status
        moved = Delivery.objects.filter(pk=delivery.pk, status=was).update(
            status=DeliveryStatus.QUEUED,
            reason="",
            detail=f"Queued again by {_who(actor)} at {_when(now)} (retry).",
            next_attempt_at=None,
            dispatched_at=None,
            held_since=None,
            finished_at=None,
        )
        if not moved:
            summary.add_refusal("It changed meanwhile; look again.")
            continue
        audit_record(
            action="retried",
            obj=delivery,
            actor=actor,
            changes={"status": [was, DeliveryStatus.QUEUED], "reason": [delivery.reason, ""]},
            note=delivery.detail[:500],
        )
        delivery.status = DeliveryStatus.QUEUED
        transaction.on_commit(
            partial(delivery_retried.send, sender=Delivery, delivery=delivery), robust=True
        )
        pace_after_commit(delivery.account_id)
        summary.done.append(delivery.pk)
    return summary


@transaction.atomic
def deliveries_cancel(*, delivery_ids, actor) -> ActionSummary:
    """Stop queued sends before they go: they end ``skipped`` saying who cancelled them."""
    now = timezone.now()
    summary = ActionSummary()
    for delivery in _deliveries(delivery_ids):
        problem = delivery_cancel_problem(delivery)
        if problem:
            summary.add_refusal(problem)
            continue
        detail = f"Cancelled by {_who(actor)} at {_when(now)}."
        # Conditional: a worker that claimed it first (status sending) wins, and it goes.
        moved = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.SKIPPED,
            reason="",
            detail=detail,
            finished_at=now,
            next_attempt_at=None,
        )
        if not moved:
            summary.add_refusal("It is being sent right now.")
            continue
        audit_record(
            action="cancelled",
            obj=delivery,
            actor=actor,
            changes={"status": [DeliveryStatus.QUEUED, DeliveryStatus.SKIPPED]},
            note=detail,
        )
        delivery.status, delivery.detail, delivery.finished_at = DeliveryStatus.SKIPPED, detail, now
        # A flow waiting for it stops, saying why (triggers listens).
        transaction.on_commit(
            partial(delivery_finished.send, sender=Delivery, delivery=delivery), robust=True
        )
        summary.done.append(delivery.pk)
    return summary


def account_is_paused_by_operator(account: InstagramAccount) -> bool:
    return bool(account.paused_until and account.paused_until >= PAUSED_UNTIL_RESUMED)


@transaction.atomic
def account_sending_pause(*, account: InstagramAccount, actor) -> bool:
    """Stop the account's sends until resumed: they wait in its queue, visibly (the pacer
    hands none to the workers while it is paused; sends already handed over still go)."""
    now = timezone.now()
    reason = f"Paused by {_who(actor)} at {_when(now)}; its sends wait until it is resumed."
    changed = (
        InstagramAccount.objects.filter(pk=account.pk)
        .exclude(paused_until__gte=PAUSED_UNTIL_RESUMED)
        .update(paused_until=PAUSED_UNTIL_RESUMED, pause_reason=reason)
    )
    if changed:
        audit_record(action="paused", obj=account, actor=actor, note=reason)
    return bool(changed)


@transaction.atomic
def account_sending_resume(*, account: InstagramAccount, actor) -> int:
    """Lift an operator's pause: the account's waiting sends go out again (each still checked
    against its window). Returns how many sends that were held back by it are queued again;
    -1 when the account was not paused by an operator."""
    changed = InstagramAccount.objects.filter(
        pk=account.pk, paused_until__gte=PAUSED_UNTIL_RESUMED
    ).update(paused_until=None, pause_reason="")
    if not changed:
        return -1
    # Sends dispatched just before the pause waited for it to end; those of a paused
    # trigger keep waiting for their trigger.
    released = (
        Delivery.objects.filter(
            account=account,
            status=DeliveryStatus.QUEUED,
            next_attempt_at__gte=PAUSED_UNTIL_RESUMED,
        )
        .exclude(trigger__paused_at__isnull=False)
        .update(next_attempt_at=None, dispatched_at=None, detail="")
    )
    audit_record(action="resumed", obj=account, actor=actor, note=f"{released} send(s) released")
    transaction.on_commit(partial(pacer_request, account.pk), robust=True)
    return released


def deliveries_hold_for_trigger(*, trigger_id: int, detail: str) -> int:
    """A paused trigger's queued sends wait (triggers.services.trigger_pause)."""
    return Delivery.objects.filter(
        trigger_id=trigger_id, status=DeliveryStatus.QUEUED, dispatched_at__isnull=True
    ).update(next_attempt_at=PAUSED_UNTIL_RESUMED, detail=detail)


def deliveries_release_for_trigger(*, trigger_id: int) -> int:
    """A resumed trigger's waiting sends go back to their accounts' queues now."""
    waiting = Delivery.objects.filter(
        trigger_id=trigger_id,
        status=DeliveryStatus.QUEUED,
        next_attempt_at__gte=PAUSED_UNTIL_RESUMED,
    )
    accounts = set(waiting.values_list("account_id", flat=True))
    released = waiting.update(next_attempt_at=None, detail="")
    for account_id in accounts:
        pace_after_commit(account_id)
    return released


def paused_detail(trigger_name: str, actor, now: datetime) -> str:
    return (
        f"Waiting: the trigger {trigger_name!r} was paused by {_who(actor)} at {_when(now)}; "
        "it goes out when the trigger is resumed."
    )
