"""Replay what an account missed while it was disconnected, once it is reconnected.

Reconnecting already releases the sends still *held* (``account_reconnected`` ->
``messaging.services.account_release``). Replay covers what that cannot:

(a) sends whose hold ran out before the reconnect (``skipped`` with ``token_invalid`` or
    ``permission_missing``, never having reached Meta): queued again while the interaction
    they answer is still within its window (messaging decides, see
    ``deliveries_requeue_skipped_for_reconnect``); the rest are counted ``too_old``;
(b) webhook events naming the account that ended ``ignored`` or ``failed``, or are still
    ``pending`` past the grace period, and arrived during the disconnection: processed again
    (``webhook_event_reprocess``; deliveries are unique per purpose, so nothing already sent
    goes twice). ``no_match`` events are not replayed: processing one again could fire a
    trigger created since, answering an old comment with something it never asked for.

The disconnection period runs from its earliest trace — an audit entry written when the
token check, the refresh or Meta's deauthorize callback disconnected the account, or the
oldest ``held_since`` of its sends (a send error disconnects without an audit entry, but
holds that send from that moment) — to the reconnection (``status_changed_at`` of the now
active account). It never reaches back past the previous replay, nor past 7 days (nothing
older can be answered). Without any trace, it starts at that floor.

Data flows one way: webhooks calls messaging's service for (a), never the reverse.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from accounts.audit import audit_record
from accounts.callbacks import REDACTED_PREFIX
from accounts.models import AccountStatus, AuditEntry, InstagramAccount
from accounts.tokens import DISCONNECT_ACTIONS
from messaging import services as messaging_services
from messaging.models import Delivery
from webhooks.models import EventState, WebhookEvent
from webhooks.services import webhook_event_schedule

logger = logging.getLogger(__name__)

ACTION_REPLAYED = "replayed"
# Events are queued again this many at a time (one UPDATE each batch), however many there are.
REPLAY_BATCH = 500


class ReplayError(ValueError):
    """Replay cannot run for this account; the message says what to do."""


def _audit_of(account: InstagramAccount):
    return AuditEntry.objects.filter(
        object_type=InstagramAccount._meta.label_lower, object_id=str(account.pk)
    )


def last_replay_at(account: InstagramAccount) -> datetime | None:
    entry = _audit_of(account).filter(action=ACTION_REPLAYED).order_by("-at").first()
    return entry.at if entry else None


def disconnection_period(account: InstagramAccount, *, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the disconnection to replay, by the rule in the module's docstring."""
    end = account.status_changed_at or now
    floor = now - messaging_services.REPLAY_HORIZON
    previous = last_replay_at(account)
    if previous is not None:
        floor = max(floor, previous)
    traces = [
        _audit_of(account)
        .filter(action__in=DISCONNECT_ACTIONS, at__gte=floor, at__lte=end)
        .aggregate(at=Min("at"))["at"],
        Delivery.objects.filter(
            account_id=account.pk, held_since__gte=floor, held_since__lte=end
        ).aggregate(at=Min("held_since"))["at"],
    ]
    traces = [trace for trace in traces if trace is not None]
    return (min(traces) if traces else floor), end


def events_missed(account: InstagramAccount, *, start: datetime, end: datetime, now: datetime):
    """Ids of the events to process again (module docstring, (b)), oldest first, as a lazy
    queryset: chosen for this account in SQL (linked to it, or naming it in ``account_ids``
    when not linked yet), so other accounts' events never crowd it out."""
    grace = now - timedelta(seconds=settings.PENDING_EVENT_GRACE_SECONDS)
    names_it = Q(accounts=account)
    for own_id in {account.ig_user_id, account.ig_alt_id} - {""}:
        # account_ids is a JSON list of strings: the quoted id, matched as text (SQLite too).
        names_it |= Q(account_ids__icontains=json.dumps(own_id))
    candidates = (
        WebhookEvent.objects.filter(received_at__gte=start, received_at__lte=end)
        .filter(
            Q(state__in=[EventState.IGNORED, EventState.FAILED])
            | Q(state=EventState.PENDING, received_at__lt=grace)
        )
        .exclude(error__startswith=REDACTED_PREFIX)
        .filter(names_it)
    )
    # A subquery, not a join: an event linked to two accounts must not come twice.
    return (
        WebhookEvent.objects.filter(pk__in=candidates.values("pk"))
        .order_by("received_at", "pk")
        .values_list("pk", flat=True)
    )


def _reprocess_in_batches(event_ids) -> int:
    """Queue every event again, REPLAY_BATCH at a time: bounded memory whatever the number."""
    count, after = 0, None
    while True:
        page = event_ids if after is None else event_ids.filter(pk__gt=after)
        batch = list(page.order_by("pk")[:REPLAY_BATCH])
        if not batch:
            return count
        # Queued here after commit, so marked handed over: the relay leaves them alone.
        WebhookEvent.objects.filter(pk__in=batch).update(
            state=EventState.PENDING,
            error="",
            processing_attempts=0,
            dispatched_at=timezone.now(),
        )
        for event_id in batch:
            transaction.on_commit(partial(webhook_event_schedule, event_id=event_id))
        count += len(batch)
        after = batch[-1]


def account_replay_disconnected(*, account: InstagramAccount, actor=None) -> dict:
    """Replay what the (reconnected, active) account missed; refuses for any other status.

    Returns {"deliveries_requeued": n, "events_reprocessed": m, "too_old": k}. Running it
    twice does nothing more: sends are requeued conditionally, and the audit entry it writes
    bounds the next replay's period.
    """
    now = timezone.now()
    with transaction.atomic():
        # The row lock makes a second replay of the same account wait, then find nothing.
        locked = InstagramAccount.objects.select_for_update().filter(pk=account.pk).first()
        if locked is None:
            raise ReplayError(f"@{account.username} no longer exists.")
        if locked.status != AccountStatus.ACTIVE:
            raise ReplayError(
                f"@{locked.username} is {locked.get_status_display().lower()}: reconnect it "
                "first. Replay only runs for an active account, or its sends would be held "
                "again."
            )
        start, end = disconnection_period(locked, now=now)
        previous = last_replay_at(locked)
        sends = messaging_services.deliveries_requeue_skipped_for_reconnect(
            account_id=locked.pk, since=previous, now=now
        )
        reprocessed = 0
        if start <= end:
            reprocessed = _reprocess_in_batches(
                events_missed(locked, start=start, end=end, now=now)
            )
        result = {
            "deliveries_requeued": sends["requeued"],
            "events_reprocessed": reprocessed,
            "too_old": sends["too_old"],
        }
        audit_record(
            action=ACTION_REPLAYED,
            obj=locked,
            actor=actor,
            changes={name: [None, value] for name, value in result.items()},
            note=(
                f"Replayed after reconnecting: {result['deliveries_requeued']} send(s) queued "
                f"again, {result['too_old']} too old to send, {reprocessed} event(s) "
                f"processed again (received {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)."
            ),
        )
    logger.info("Replay for @%s: %s", locked.username, result)
    return result
