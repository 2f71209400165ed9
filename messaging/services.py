"""Writes for deliveries: create, pace, claim, check, send, record, retry, recover."""

import contextlib
import enum
import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, connections, router, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from accounts import services as account_services
from accounts.models import AccountStatus, Contact, InstagramAccount
from config import rawsql
from config.prepared import PreparedRead, PreparedStatement
from messaging import graph, resolve
from messaging.checks import (
    PRIVATE_REPLY_WINDOW,
    CheckFailure,
    private_reply_used_elsewhere,
    run_checklist,
    window_end,
)
from messaging.explain import PAUSED_UNTIL_RESUMED
from messaging.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryKind,
    DeliveryReason,
    DeliveryStatus,
    lane_for,
)
from messaging.pacer import (
    EARLY_TOLERANCE_SECONDS,
    SLOT_MARGIN_SECONDS,
    account_pace,
    budgets_for,
    pacer_request,
    read_budgets,
)
from messaging.projection import deliveries_expire_unreachable
from messaging.refusals import refusal_streak_clear, refusal_streak_record
from messaging.selectors import accounts_with_due_work
from messaging.sharedstate import shared_state
from messaging.signals import delivery_finished
from meta import messages as meta_messages
from meta.client import GraphResult, Outcome
from meta.errors import NO_MATCHING_USER_SUBCODES, Reason, is_consent_required
from meta.payloads import graph_time

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0
# Code 368 (policy block): stop sending from the account for this long.
POLICY_PAUSE = timedelta(hours=1)
IN_FLIGHT = "in_flight"
# Code 613 is Meta's per-second (Send API) limit: a short pause is enough.
PER_SECOND_THROTTLE_CODE = 613
PER_SECOND_THROTTLE_PAUSE_SECONDS = 2.0


def _delivery_get_or_create(delivery: Delivery) -> tuple[Delivery, bool]:
    # Insert first: a duplicate is the rare case (redelivery), so it pays the extra read.
    try:
        with transaction.atomic():
            delivery.save(force_insert=True)
            return delivery, True
    except IntegrityError:
        # Created before (a redelivered comment, a task run twice): that one stands.
        return Delivery.objects.get(
            account_id=delivery.account_id, dedupe_key=delivery.dedupe_key
        ), False


def delivery_build(
    *,
    account: InstagramAccount,
    trigger,
    contact: Contact,
    kind: str,
    dedupe_key: str,
    payload: dict,
    interaction_at: datetime | None,
    event_id: int | None,
    event_received_at: datetime | None,
    comment_id: str = "",
    recipient: str = "",
    not_before: datetime | None = None,
    live_media_id: str = "",
) -> Delivery:
    """One send, unsaved. The recipient defaults to the comment answered, or the person for a
    message; ``live_media_id``: a private reply to a comment made during that live broadcast."""
    recipient = recipient or (comment_id if kind != DeliveryKind.MESSAGE else contact.igsid)
    lane = lane_for(kind, payload, live_media_id)
    paused = {}
    if getattr(trigger, "paused_at", None):
        # A paused trigger still answers; its sends wait until it is resumed (no statement
        # more: the trigger is in hand). messaging.actions releases them.
        not_before = PAUSED_UNTIL_RESUMED
        paused["detail"] = f"Waiting: the trigger {trigger.name!r} is paused."
    return Delivery(
        account=account,
        workspace_id=account.workspace_id,
        dedupe_key=dedupe_key,
        **paused,
        kind=kind,
        lane="" if lane == kind else lane,
        live_media_id=live_media_id,
        payload=payload,
        trigger=trigger,
        contact=contact,
        comment_id=comment_id,
        recipient=recipient,
        event_id=event_id,
        interaction_at=interaction_at,
        event_received_at=event_received_at,
        next_attempt_at=not_before,
    )


def deliveries_create(specs: list[dict]) -> list[Delivery]:
    """Queue several sends (each once per dedupe key; a spec holds ``delivery_build``'s
    arguments), in order. On PostgreSQL one INSERT ... ON CONFLICT DO NOTHING writes them
    all: what a comment sends (public and private reply) costs one statement."""
    new = [delivery_build(**spec) for spec in specs]
    if not new:
        return []
    if not rawsql.on_postgresql(Delivery):
        made = [_delivery_get_or_create(delivery) for delivery in new]
    else:
        rawsql.insert_unless_present(new, conflict_target=["account", "dedupe_key"])
        existing = {}
        if missing := [delivery for delivery in new if delivery.pk is None]:
            # Created before (a redelivered comment, a task run twice): those stand.
            query = Q()
            for delivery in missing:
                query |= Q(account_id=delivery.account_id, dedupe_key=delivery.dedupe_key)
            existing = {(d.account_id, d.dedupe_key): d for d in Delivery.objects.filter(query)}
        made = [
            (delivery, True)
            if delivery.pk is not None
            else (existing[(delivery.account_id, delivery.dedupe_key)], False)
            for delivery in new
        ]
    for account_id in {delivery.account_id for delivery, created in made if created}:
        pace_after_commit(account_id)
    return [delivery for delivery, _ in made]


def delivery_create(**spec: Any) -> Delivery:
    """Queue one send (once per dedupe key): ``delivery_build``'s arguments; ``not_before``
    delays it durably."""
    (delivery,) = deliveries_create([spec])
    return delivery


class _Kick:
    """One pacer run owed to an account at the next commit, shared by every send queued for
    it in the same transaction."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


# Per thread: the kick each account is owed, until a commit runs it.
_owed = threading.local()


def pace_after_commit(account_id: int) -> None:
    """Pace the account once the transaction commits, once however many sends it queued.

    A comment queues a public and a private reply (a flow, more): one pacer run takes them
    all. Every call registers an on-commit callback (Django's public API), but the calls of
    one transaction share one kick: the first callback to run paces, the rest find it done.
    A rolled-back transaction's callbacks never run; its kick, still owed, is shared by the
    next transaction's, which registers callbacks of its own, so nothing is lost.
    """
    owed = _owed.__dict__.setdefault("kicks", {})
    kick = owed.get(account_id)
    if kick is None or kick.done:
        kick = owed[account_id] = _Kick()
    transaction.on_commit(partial(_kick_once, account_id=account_id, kick=kick))


def _kick_once(*, account_id: int, kick: _Kick) -> None:
    if kick.done:
        return
    kick.done = True
    owed = _owed.__dict__.setdefault("kicks", {})
    if owed.get(account_id) is kick:
        del owed[account_id]
    pacer_kick(account_id=account_id)


class FollowCheck(enum.StrEnum):
    FOLLOWS = "follows"
    NOT_FOLLOWING = "not_following"
    # The person has not messaged the account or tapped a button yet: Meta will not say.
    CONSENT_REQUIRED = "consent_required"
    UNKNOWN = "unknown"  # Meta could not say (an error, an unreadable answer)


def contact_follows_account(*, account: InstagramAccount, contact: Contact) -> FollowCheck:
    """Whether the person follows the account (Meta's user profile, meta-api.md section 3).

    Meta answers only with the person's consent, which exists once they have messaged the
    account or tapped a button or quick reply; before that nobody is looked up.
    """
    if contact.last_interaction_at is None:
        return FollowCheck.CONSENT_REQUIRED
    result = graph.client_for(account).get(
        f"/{contact.igsid}", {"fields": "is_user_follow_business"}
    )
    if not result.ok and is_consent_required(result.message):
        return FollowCheck.CONSENT_REQUIRED
    value = result.data.get("is_user_follow_business") if result.ok else None
    if not isinstance(value, bool):
        logger.warning(
            "Follow lookup for %s on @%s failed: %s %s",
            contact.igsid,
            account.username,
            result.code,
            result.message,
        )
        return FollowCheck.UNKNOWN
    return FollowCheck.FOLLOWS if value else FollowCheck.NOT_FOLLOWING


# A Graph read waits at most this long for a use of the account's budget, else it is skipped.
READ_BUDGET_WAIT_SECONDS = 1.0


def _take_read_budget(account: InstagramAccount) -> bool:
    """One use of the account's business use case budget for a Graph read (media reads count
    against the same quota as public comment replies, meta-api.md section 5)."""
    budgets = budgets_for(account, DeliveryKind.PUBLIC_REPLY)
    wait = shared_state().try_acquire(budgets)
    if 0 < wait <= READ_BUDGET_WAIT_SECONDS:
        time.sleep(wait + SLOT_MARGIN_SECONDS)
        wait = shared_state().try_acquire(budgets)
    return wait <= 0


def media_published_at(*, account: InstagramAccount, media_id: str) -> datetime | None:
    """When a post was published (Meta's media ``timestamp``), None if Meta cannot say or the
    account's budget has no room now. A network call: never inside a transaction."""
    if not _take_read_budget(account):
        logger.warning(
            "Publish time of media %s on @%s not read: the account's budget is spent",
            media_id,
            account.username,
        )
        return None
    result = graph.client_for(account).get(f"/{media_id}", {"fields": "timestamp"})
    raw = result.data.get("timestamp") if result.ok and isinstance(result.data, dict) else None
    if not isinstance(raw, str):
        logger.warning(
            "Publish time of media %s on @%s unknown: %s %s",
            media_id,
            account.username,
            result.code,
            result.message,
        )
        return None
    try:
        # Meta writes "2026-11-25T10:00:00+0000"; Python wants the offset with a colon.
        if len(raw) > 5 and raw[-5] in "+-" and raw[-3] != ":":
            raw = f"{raw[:-2]}:{raw[-2:]}"
        return datetime.fromisoformat(raw)
    except ValueError:
        logger.warning("Unreadable media timestamp %r for %s", raw, media_id)
        return None


def pacer_kick(*, account_id: int) -> None:
    """Pace the account right here (saves a queue hop); on trouble, leave it to a pacer task."""
    try:
        account_pace(account_id=account_id)
    except Exception:
        logger.exception("Pacing account %s inline failed; queueing a pacer run", account_id)
        pacer_request(account_id)


def delivery_dispatch(
    *,
    delivery_id: int,
    now: datetime | None = None,
    countdown: float = 0.0,
    backlog: bool = False,
    kind: str = "",
) -> bool:
    """Hand a queued delivery to the send queue (called by the pacer once budget allows,
    or `countdown` seconds before it will)."""
    now = now or timezone.now()
    queued = {"id": delivery_id, "status": DeliveryStatus.QUEUED, "dispatched_at": None}
    if not rawsql.update_rows(Delivery, queued, {"dispatched_at": now}):
        return False
    return _hand_over(delivery_id, countdown, backlog=backlog, kind=kind)


# Per thread: sends the pacer handed over while a task processes an event, sent by that
# task itself once processing is done (None: not collecting; publish as usual).
_inline = threading.local()


@contextlib.contextmanager
def sends_collected() -> Iterator[list[tuple[int, str]]]:
    """Within the block, deliveries the pacer dispatches for now are collected into the
    yielded list instead of being published as send tasks: the caller (the task that
    processed the event) sends them itself, which saves a broker round trip and a task
    per send. A dispatched delivery never sent (a crash) is recovered by the sweeper."""
    outer = getattr(_inline, "collected", None)
    _inline.collected = collected = []
    try:
        yield collected
    finally:
        _inline.collected = outer


def deliveries_send_collected(collected: list[tuple[int, str]]) -> None:
    """Send what ``sends_collected`` gathered (id, kind): a comment's private reply before
    its public reply (the person waits for the DM; the public reply is for everyone else)."""
    ordered = sorted(collected, key=lambda item: item[1] == DeliveryKind.PUBLIC_REPLY)
    for delivery_id, _ in ordered:
        try:
            delivery_send(delivery_id=delivery_id)
        except Exception:
            # Its claim (if any) runs out and recovery settles it; the others still go.
            logger.exception("Sending delivery %s after processing failed", delivery_id)


SENDS_BULK_QUEUE = "sends_bulk"


def _hand_over(delivery_id: int, countdown: float, *, backlog: bool, kind: str) -> bool:
    """Publish a delivery just marked dispatched; when the broker refuses, unmark it so the
    next pacer run tries again."""
    try:
        _publish_send(delivery_id, countdown, backlog=backlog, kind=kind)
    except Exception:
        logger.exception(
            "Could not queue delivery %s; it waits for the next pacer run", delivery_id
        )
        Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.QUEUED).update(
            dispatched_at=None
        )
        return False
    return True


def _publish_send(
    delivery_id: int, countdown: float, *, backlog: bool = False, kind: str = ""
) -> None:
    from messaging.tasks import send_delivery

    collected = getattr(_inline, "collected", None)
    if collected is not None and not countdown and settings.SEND_AFTER_PROCESSING:
        collected.append((delivery_id, kind))
        return
    # An account's backlog of sends is backlog work (config/backlog.py): its own queue.
    queue = {"queue": SENDS_BULK_QUEUE} if backlog else {}
    send_delivery.apply_async((delivery_id,), countdown=countdown or None, **queue)


def deliveries_dispatch(
    chosen: list[tuple[int, float, str]], *, now: datetime, backlog: bool = False
) -> int:
    """Hand the pacer's choice of queued deliveries (id, countdown, kind) to the send queue: one
    UPDATE marks them all dispatched (those still queued and not dispatched by another
    pacer run), then each is published. Returns how many went. ``backlog``: the account
    has a backlog of sends (they go to the sends_bulk queue)."""
    if not chosen:
        return 0
    if len(chosen) == 1 or not rawsql.on_postgresql(Delivery):
        return sum(
            delivery_dispatch(
                delivery_id=delivery_id, now=now, countdown=countdown, backlog=backlog, kind=kind
            )
            for delivery_id, countdown, kind in chosen
        )
    with connection.cursor() as cursor:
        cursor.execute(
            _DISPATCH_SQL,
            [now, [delivery_id for delivery_id, _, _ in chosen], DeliveryStatus.QUEUED],
        )
        ids = {row[0] for row in cursor.fetchall()}
    return sum(
        _hand_over(delivery_id, countdown, backlog=backlog, kind=kind)
        for delivery_id, countdown, kind in chosen
        if delivery_id in ids
    )


# Those still queued and not dispatched by another pacer run (one array parameter: the same
# text whatever the number of deliveries, so PostgreSQL keeps it prepared).
_DISPATCH_SQL = """
UPDATE messaging_delivery SET dispatched_at = %s
WHERE id = ANY(%s) AND status = %s AND dispatched_at IS NULL
RETURNING id
"""


def _finish(
    delivery: Delivery,
    *,
    status: str,
    reason: str = "",
    detail: str = "",
    result: GraphResult | None = None,
    **extra,
) -> Delivery:
    now = timezone.now()
    fields = {
        "status": status,
        "reason": reason,
        "detail": detail,
        "finished_at": now,
        "next_attempt_at": None,
    }
    if status == DeliveryStatus.SENT:
        fields["sent_at"] = now
    fields.update(extra)
    delivery = _update_claimed(delivery, fields, result)
    # Listeners (flows) act once the outcome is committed, and their failure is theirs: the
    # flow sweeper catches up with anything a crash here leaves behind.
    transaction.on_commit(partial(_announce_finished, delivery))
    return delivery


def _announce_finished(delivery: Delivery) -> None:
    try:
        delivery_finished.send(sender=Delivery, delivery=delivery)
    except Exception:
        logger.exception("A delivery_finished listener failed for delivery %s", delivery.pk)


def _update_claimed(delivery: Delivery, fields: dict, result: GraphResult | None) -> Delivery:
    if result is not None:
        fields.update(_meta_fields(result))
    # Only the worker holding this claim (status sending, its claim time) may move it on.
    _claim_held(delivery).update(**fields)
    for name, value in fields.items():
        setattr(delivery, name, value)
    return delivery


def _meta_fields(result: GraphResult) -> dict:
    return {
        "meta_code": result.code,
        "meta_subcode": result.subcode,
        "meta_message": result.message[:2000],
        "meta_trace_id": result.trace_id[:64],
        "meta_response_id": result.response_id[:128],
    }


def _requeue(
    delivery: Delivery,
    *,
    at: datetime | None,
    detail: str,
    result: GraphResult | None = None,
    held: bool = False,
    reason: str = "",
    payload: dict | None = None,
) -> Delivery:
    """Back to the account's queue, to be paced again at `at` (or when released if held).

    A held delivery carries the account's ``reason`` (token_invalid, permission_missing)
    besides the sentence in ``detail`` (INTERFACE.md, "Delivery records").
    """
    fields = {
        "status": DeliveryStatus.QUEUED,
        "dispatched_at": None,
        "next_attempt_at": at,
        "detail": detail,
    }
    if held:
        fields["held_since"] = delivery.held_since or timezone.now()
        fields["reason"] = reason or DeliveryReason.TOKEN_INVALID
    if payload is not None:
        fields["payload"] = payload
    return _update_claimed(delivery, fields, result)


def _claim_update(delivery_id: int, now: datetime, lease_until: datetime) -> tuple[str, list]:
    claimable = Delivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.QUEUED, dispatched_at__isnull=False
    ).filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    fields = {"status": DeliveryStatus.SENDING, "sending_started_at": now}
    return rawsql.update_sql(claimable, {**fields, "lease_expires_at": lease_until})


def _claimed_read(delivery_id: int) -> QuerySet:
    # The checklist's "one private reply per comment" question is asked with the read.
    return (
        Delivery.objects.select_related("account", "contact", "workspace", "trigger")
        .annotate(private_reply_used=private_reply_used_elsewhere())
        .filter(pk=delivery_id)
    )


# The hot path's two statements, compiled once per process (config/prepared.py).
_CLAIM = PreparedStatement(_claim_update, delivery_id=int, now=datetime, lease_until=datetime)
_CLAIMED = PreparedRead(_claimed_read, delivery_id=int)


def delivery_claim(*, delivery_id: int) -> Delivery | None:
    """Move queued -> sending; None when another worker has it, it is finished, or it is
    not (or no longer) dispatched: a duplicate task must not jump a retry's wait or the
    account's budgets."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.SEND_LEASE_SECONDS)
    using = router.db_for_write(Delivery)
    sql, params = _CLAIM.bound_sql(using, delivery_id=delivery_id, now=now, lease_until=lease_until)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        claimed = cursor.rowcount
    if not claimed:
        return None
    found = _CLAIMED.first(using, delivery_id=delivery_id)
    if found is None:
        raise Delivery.DoesNotExist(f"Delivery {delivery_id} vanished after its claim")
    return found


def _backoff_seconds(attempt: int) -> float:
    # Exponential with full jitter around the nominal delay, so retries of a burst spread out.
    nominal = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return nominal * random.uniform(0.5, 1.5)


def _retry_or_fail(delivery: Delivery, result: GraphResult, wait_seconds: float) -> Delivery:
    retry_at = timezone.now() + timedelta(seconds=wait_seconds)
    ends = window_end(delivery)
    what = result.message or "no answer"
    if ends is not None and retry_at > ends:
        return _finish(
            delivery,
            status=DeliveryStatus.FAILED,
            reason=DeliveryReason.WINDOW_EXPIRED,
            detail=(
                f"Attempt {delivery.attempts} failed ({what}); the next try at "
                f"{retry_at:%Y-%m-%d %H:%M:%S} UTC would fall after the window closes at "
                f"{ends:%Y-%m-%d %H:%M:%S} UTC."
            ),
            result=result,
        )
    if delivery.attempts >= MAX_ATTEMPTS:
        reason = DeliveryReason.RATE_LIMITED if result.throttled else DeliveryReason.META_ERROR
        return _finish(
            delivery,
            status=DeliveryStatus.FAILED,
            reason=reason,
            detail=f"Gave up after {delivery.attempts} attempts; last: {what}",
            result=result,
        )
    return _requeue(
        delivery,
        at=retry_at,
        detail=f"Attempt {delivery.attempts} failed ({what}); retrying in {wait_seconds:.0f} s.",
        result=result,
    )


def _apply_usage(account: InstagramAccount, result: GraphResult) -> None:
    if result.usage is None:
        # Meta sends usage headers only once usage is noticeable: none means low again. (No
        # write when the account, as loaded with the delivery, was low already.)
        if result.ok and account.usage_percent:
            InstagramAccount.objects.filter(pk=account.pk, usage_percent__gt=0).update(
                usage_percent=0
            )
            account.usage_percent = 0
        return
    percent = min(100, result.usage.max_percent)
    rawsql.update_rows(InstagramAccount, {"id": account.pk}, {"usage_percent": percent})
    if result.usage.regain_access_seconds > 0:
        account_services.account_pause(
            account=account,
            until=timezone.now() + timedelta(seconds=result.usage.regain_access_seconds),
            reason="Meta's usage headers say access returns then.",
        )


def _hold_sentence(account: InstagramAccount, result: GraphResult) -> str:
    """What the operator reads on the account and on its held sends."""
    if result.missing_scope:
        return (
            f"Reconnect @{account.username}: Meta refused a send because the token lacks "
            f"{result.missing_scope} ({result.message or f'code {result.code}'}). Connect again "
            "and keep every permission ticked."
        )
    what = "its token no longer works" if result.reason == Reason.TOKEN_INVALID else "a permission"
    return f"Reconnect @{account.username}: Meta says {what} ({result.message})."


def _hold(delivery: Delivery, result: GraphResult, reason: str, sentence: str) -> Delivery:
    account_services.account_mark_needs_reconnect(
        account=delivery.account, reason=reason, detail=result.message, sentence=sentence
    )
    return _requeue(
        delivery,
        at=None,
        held=True,
        reason=reason,
        detail=f"Held until @{delivery.account.username} is reconnected: {sentence}",
        result=result,
    )


def _refused_choices(delivery: Delivery, result: GraphResult) -> dict | None:
    """The private reply without its quick replies or postback buttons, when Meta refused
    the reply with a parameter error and it had choices; else None (meta-api.md section 4:
    choices on a reply addressed by comment_id are not documented, and a refused call did
    not use up the comment's one reply)."""
    if delivery.kind != DeliveryKind.PRIVATE_REPLY or result.code != 100:
        return None
    if result.subcode in NO_MATCHING_USER_SUBCODES:
        return None
    stripped = meta_messages.strip_choices(delivery.payload or {})
    return stripped if stripped != delivery.payload else None


def _handle_refusal(delivery: Delivery, result: GraphResult) -> Delivery:
    account = delivery.account
    reason = result.reason or DeliveryReason.META_ERROR
    if result.account_problem:
        return _hold(delivery, result, reason, _hold_sentence(account, result))
    if result.throttled:
        pause = result.retry_after_seconds or (
            PER_SECOND_THROTTLE_PAUSE_SECONDS
            if result.code == PER_SECOND_THROTTLE_CODE
            else settings.RATE_LIMIT_PAUSE_SECONDS
        )
        account_services.account_pause(
            account=account,
            until=timezone.now() + timedelta(seconds=pause),
            reason=f"Meta rate-limited the account: {result.message}",
        )
        return _retry_or_fail(delivery, result, pause)
    if result.ambiguous:
        # About this person, or the whole account? Several people in a row say the account.
        trip = refusal_streak_record(account=account, delivery=delivery, result=result)
        if trip is not None:
            return _hold(delivery, result, DeliveryReason.PERMISSION_MISSING, trip.sentence)
    stripped = _refused_choices(delivery, result)
    if stripped is not None:
        return _requeue(
            delivery,
            at=None,
            payload=stripped,
            detail=(
                f"Meta refused the private reply with its choices ({result.message}); "
                "sending it once more as plain text and links. The comment's one reply was "
                "not used up by the refusal."
            ),
            result=result,
        )
    if result.pause_account:
        account_services.account_pause(
            account=account,
            until=timezone.now() + POLICY_PAUSE,
            reason=f"Meta is restricting the account for policy reasons: {result.message}",
        )
    if reason == DeliveryReason.CONVERSATION_CLOSED and delivery.contact_id:
        account_services.contact_mark_conversation_closed(
            contact_id=delivery.contact_id, detail=result.message
        )
    if result.retryable:
        return _retry_or_fail(delivery, result, _backoff_seconds(delivery.attempts))
    return _finish(
        delivery,
        status=DeliveryStatus.FAILED,
        reason=reason,
        detail=f"Meta refused the send: {result.message}" if result.message else "",
        result=result,
    )


def _skip_or_hold(delivery: Delivery, failure: CheckFailure) -> Delivery:
    if failure.hold:
        return _requeue(delivery, at=None, held=True, reason=failure.reason, detail=failure.detail)
    return _finish(
        delivery, status=DeliveryStatus.SKIPPED, reason=failure.reason, detail=failure.detail
    )


class _LeaseRenewer:
    """Renews the leases of the sends this process is working on, from one thread.

    Only a send that takes longer than a third of the lease (a slow Meta) is renewed at all,
    so the usual send costs no extra query, and no thread is started per send (that cost
    about a millisecond each). If this process dies, renewals stop and each lease runs out
    within SEND_LEASE_SECONDS: the sweeper then settles the send in seconds.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.working: dict[int, tuple[Delivery, float]] = {}  # id -> (delivery, since)
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.wake = threading.Event()  # the lease became shorter than the thread's wait
        self.period = 0.0

    @contextlib.contextmanager
    def kept(self, delivery: Delivery) -> Iterator[None]:
        with self.lock:
            self.working[delivery.pk] = (delivery, time.monotonic())
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                # Started once per process (a forked pool process starts its own).
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._run, daemon=True, name="send-lease")
                self.thread.start()
        if self.period > settings.SEND_LEASE_SECONDS / 3:
            self.wake.set()
        try:
            yield
        finally:
            with self.lock:
                self.working.pop(delivery.pk, None)

    def _run(self) -> None:
        while True:
            lease = settings.SEND_LEASE_SECONDS
            self.period = lease / 3
            self.wake.wait(self.period)
            self.wake.clear()
            now = time.monotonic()
            with self.lock:
                due = [d for d, since in self.working.values() if now - since >= lease / 3]
            for delivery in due:
                self._renew(delivery, lease)

    @staticmethod
    def _renew(delivery: Delivery, lease: float) -> None:
        try:
            _claim_held(delivery).update(lease_expires_at=timezone.now() + timedelta(seconds=lease))
        except Exception:
            logger.warning("Could not renew the lease of delivery %s", delivery.pk)
            from django.db import connection as thread_connection

            thread_connection.close()  # this thread's own connection: a fresh one next time


_leases = _LeaseRenewer()


def delivery_send(*, delivery_id: int) -> Delivery | None:
    """Claim, check, send and record one delivery. Safe to call twice: only one sends."""
    delivery = delivery_claim(delivery_id=delivery_id)
    if delivery is None:
        return None
    try:
        with _leases.kept(delivery):
            return _send_claimed(delivery)
    finally:
        # A slot of the account's in-flight cap is free again: pace the account right here
        # (no extra task) when it has sends waiting for their turn. The settling write may
        # have asked already (sends_waiting).
        waiting = getattr(delivery, "sends_waiting", None)
        if waiting is None:
            waiting = Delivery.objects.filter(
                account_id=delivery.account_id,
                status=DeliveryStatus.QUEUED,
                dispatched_at__isnull=True,
                held_since__isnull=True,
            ).exists()
        if waiting:
            pacer_kick(account_id=delivery.account_id)


# Meta retries a failed webhook for up to 36 hours (meta-api.md section 2), so a comment's
# entry.time can be that much later than the comment: inside this margin of the 7-day edge
# the comment's own time is read before its private reply goes.
REDELIVERY_SPAN = timedelta(hours=36)
# A live broadcast confirmed by Meta is trusted this long before asking again.
LIVE_CONFIRMED_SECONDS = 15.0


def _room_for_a_read(account: InstagramAccount) -> bool:
    """Reads made for sends use the account's business use case budget; when it is full the
    read is skipped (what we know stands) rather than delaying the send."""
    return shared_state().try_acquire(read_budgets(account)) == 0


def _comment_time_matters(delivery: Delivery, now: datetime) -> bool:
    """Whether the webhook's time (an upper bound of the comment's) leaves the 7-day window
    in doubt: it says open, but the comment may be up to 36 hours older. Past the bound's
    edge the window is closed whatever the comment's own time, so nothing is read."""
    if delivery.kind != DeliveryKind.PRIVATE_REPLY or delivery.comment_created_at is not None:
        return False
    if delivery.interaction_at is None:
        return False
    edge = delivery.interaction_at + PRIVATE_REPLY_WINDOW
    return edge - REDELIVERY_SPAN <= now < edge


def comment_created_at_read(*, delivery: Delivery) -> datetime | None:
    """Read the comment's creation time from Meta (``GET /{comment-id}?fields=timestamp``) and
    keep it on the delivery; its window counts from it. None when Meta cannot say."""
    account = delivery.account
    if not _room_for_a_read(account):
        return None
    result = graph.client_for(account).get(f"/{delivery.comment_id}", {"fields": "timestamp"})
    made = graph_time(result.data.get("timestamp")) if result.ok else None
    if made is None:
        logger.warning(
            "Creation time of comment %s on @%s unknown (%s %s); the webhook's time stands",
            delivery.comment_id,
            account.username,
            result.code,
            result.message,
        )
        return None
    Delivery.objects.filter(pk=delivery.pk).update(comment_created_at=made, interaction_at=made)
    delivery.comment_created_at = delivery.interaction_at = made
    return made


def broadcast_is_live(*, account: InstagramAccount, media_id: str) -> bool | None:
    """Whether the live broadcast ``media_id`` is still on (Meta's ``live_media`` lists only
    media being broadcast now); None when Meta cannot say. A yes is remembered a few seconds,
    so a burst of live comments does not ask once per reply."""
    key = f"live:{account.pk}:{media_id}"
    state = shared_state()
    if not state.flag_set(key, ttl=LIVE_CONFIRMED_SECONDS):
        return True  # confirmed moments ago
    live: bool | None = None
    if _room_for_a_read(account):
        client = graph.client_for(account)
        result = client.get(f"/{account.ig_user_id}/live_media", {"fields": "id"})
        items = result.data.get("data") if result.ok else None
        if isinstance(items, list):
            live = any(isinstance(i, dict) and str(i.get("id")) == media_id for i in items)
    if live is not True:
        state.flag_clear(key)
    return live


def _before_checks(delivery: Delivery, now: datetime) -> CheckFailure | None:
    """Reads from Meta a private reply needs right before it goes (no transaction is open):
    the comment's own time near the 7-day edge, and whether a live broadcast is still on."""
    if _comment_time_matters(delivery, now):
        comment_created_at_read(delivery=delivery)
    if delivery.kind == DeliveryKind.PRIVATE_REPLY and delivery.live_media_id:
        live = broadcast_is_live(account=delivery.account, media_id=delivery.live_media_id)
        if live is False:
            return CheckFailure(
                DeliveryReason.WINDOW_EXPIRED,
                "The live broadcast this comment was made in has ended: Meta allows private "
                "replies to live comments only while the broadcast is live.",
            )
    return None


def _send_claimed(delivery: Delivery) -> Delivery:
    started_at = timezone.now()
    failure = _before_checks(delivery, started_at) or run_checklist(delivery, started_at)
    if failure is not None:
        if resolve.is_repeat(delivery):
            unchecked = resolve.repeat_unchecked(delivery, failure.detail, later=failure.hold)
            return _finish(delivery, **unchecked)
        return _skip_or_hold(delivery, failure)

    account = delivery.account
    if account.paused_until and account.paused_until > started_at:
        # Dispatched before a rate-limit or policy pause began: wait it out, untouched.
        return _requeue(
            delivery,
            at=account.paused_until,
            detail=f"Waiting: @{account.username} is paused ({account.pause_reason}).",
        )

    budgets = budgets_for(account, delivery.pace_lane)
    wait = shared_state().try_acquire(budgets)
    if 0 < wait <= EARLY_TOLERANCE_SECONDS:
        # Dispatched ahead and here a moment early (timers are not exact): wait it out.
        time.sleep(wait + SLOT_MARGIN_SECONDS)
        wait = shared_state().try_acquire(budgets)
    if wait > 0:
        # The budget is taken here, not when the pacer dispatched: how long a send then sat
        # in the queue varies, and calls must not reach Meta bunched up past its limit.
        pacer_request(account.pk, delay=wait)
        return _requeue(
            delivery,
            at=started_at + timedelta(seconds=wait),
            detail=delivery.detail or "Waiting for the account's sending budget.",
        )

    # Attempts count calls to Meta. The row is written before the call: if the worker dies
    # mid-request it says the request may have reached Meta, so recovery marks the delivery
    # unknown instead of resending it.
    # One statement both checks the claim still holds and records that a call starts: the
    # sweeper's recovery checks the same row, so exactly one of the two goes ahead.
    attempt = _start_call(delivery, started_at)
    if attempt is None:
        logger.warning("Delivery %s: claim lost before calling Meta; not sending", delivery.pk)
        return delivery
    result = graph.send(delivery)
    if resolve.is_repeat(delivery):
        settled = _settle_repeat(delivery, attempt, result)
        if settled is not None:
            return settled
    if result.outcome in (Outcome.SENT, Outcome.UNKNOWN):
        delivery = _settle_sent_or_unknown(delivery, attempt, result)
        if result.outcome == Outcome.SENT:
            refusal_streak_clear(account=delivery.account)
        _apply_usage(delivery.account, result)
        return delivery
    _record_attempt(attempt, result)
    _apply_usage(delivery.account, result)
    return _handle_refusal(delivery, result)


def _claim_held_where(delivery: Delivery) -> dict[str, Any]:
    """The delivery's row while this worker's claim holds (status sending, its claim time)."""
    return {
        "id": delivery.pk,
        "status": DeliveryStatus.SENDING,
        "sending_started_at": delivery.sending_started_at,
    }


def _claim_held(delivery: Delivery) -> QuerySet:
    return Delivery.objects.filter(**_claim_held_where(delivery))


_ATTEMPT_STARTED_SQL = """
WITH started AS ({update} RETURNING {table}."id", {table}."attempts")
INSERT INTO messaging_deliveryattempt (delivery_id, number, started_at, duration_ms, outcome,
    http_status, reason, meta_code, meta_subcode, meta_message, meta_trace_id, request_summary,
    response_excerpt)
SELECT id, attempts, %s, NULL, %s, NULL, '', NULL, NULL, '', '', '', '' FROM started
RETURNING id
"""


def _start_call(delivery: Delivery, started_at: datetime) -> DeliveryAttempt | None:
    """Count the call and write its attempt row before the call (None: the claim is lost).

    One statement both checks the claim still holds and records that a call starts: the
    sweeper's recovery checks the same row, so exactly one of the two goes ahead. If the
    worker dies mid-request the row says the request may have reached Meta, so recovery
    marks the delivery unknown instead of resending it.
    """
    if rawsql.on_postgresql(Delivery):
        update, params = rawsql.row_update_sql(
            Delivery,
            _claim_held_where(delivery),
            {"attempts": rawsql.Add(1), "call_started_at": started_at},
        )
        statement = _ATTEMPT_STARTED_SQL.format(update=update, table='"messaging_delivery"')
        with connection.cursor() as cursor:
            cursor.execute(statement, [*params, started_at, IN_FLIGHT])
            row = cursor.fetchone()
        if row is None:
            return None
        attempt = DeliveryAttempt(
            pk=row[0], delivery=delivery, number=delivery.attempts + 1, started_at=started_at
        )
        attempt.outcome = IN_FLIGHT
    else:
        claim = _claim_held(delivery)
        if not claim.update(attempts=F("attempts") + 1, call_started_at=started_at):
            return None
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts + 1,
            started_at=started_at,
            outcome=IN_FLIGHT,
        )
    delivery.attempts += 1
    delivery.call_started_at = started_at
    return attempt


def _attempt_fields(result: GraphResult) -> dict:
    return {
        "duration_ms": result.duration_ms,
        "outcome": result.outcome,
        "http_status": result.http_status,
        "reason": result.reason or "",
        "meta_code": result.code,
        "meta_subcode": result.subcode,
        "meta_message": result.message[:2000],
        "meta_trace_id": result.trace_id[:64],
        "request_summary": result.request_summary[:300],
        "response_excerpt": result.response_excerpt[:2000],
    }


def _record_attempt(attempt: DeliveryAttempt, result: GraphResult) -> None:
    DeliveryAttempt.objects.filter(pk=attempt.pk).update(**_attempt_fields(result))


def _settle_repeat(
    delivery: Delivery, attempt: DeliveryAttempt, result: GraphResult
) -> Delivery | None:
    """A private reply repeated to learn its first attempt's fate: settled by Meta's answer
    (messaging/resolve.py), or None for the usual handling."""
    with transaction.atomic():
        _record_attempt(attempt, result)
        fields = resolve.repeat_outcome(delivery, attempt, result, max_attempts=MAX_ATTEMPTS)
        if fields is None:
            return None
        # Meta's refusal is the evidence, on the attempt; the delivery keeps the first's record.
        keep = None if fields["status"] == DeliveryStatus.SENT else result
        delivery = _finish(delivery, result=keep, **fields)
    _apply_usage(delivery.account, result)
    return delivery


# Whether the account has sends waiting for a pacer pass (asked with the settling write).
_SENDS_WAITING_SQL = (
    "EXISTS (SELECT 1 FROM messaging_delivery waiting WHERE waiting.account_id = %s"
    " AND waiting.status = %s AND waiting.dispatched_at IS NULL"
    " AND waiting.held_since IS NULL)"
)


def _settle_sent_or_unknown(
    delivery: Delivery, attempt: DeliveryAttempt, result: GraphResult
) -> Delivery:
    """The attempt and the delivery settle together: a worker killed between the two writes
    must not leave a send Meta accepted looking like one that may not have left. On
    PostgreSQL both writes and the question whether sends wait are one statement."""
    now = timezone.now()
    if result.outcome == Outcome.SENT:
        fields = {"status": DeliveryStatus.SENT, "sent_at": now}
    else:
        check_at = resolve.next_check_at(delivery, now)
        fields = {
            "status": DeliveryStatus.UNKNOWN,
            "detail": resolve.unknown_detail(
                "The request may have reached Meta but no answer came back.", check_at
            ),
            "next_attempt_at": check_at,
        }
    fields = {"reason": "", "detail": "", "finished_at": now, "next_attempt_at": None, **fields}
    fields.update(_meta_fields(result))
    if not rawsql.on_postgresql(Delivery):
        with transaction.atomic():
            _record_attempt(attempt, result)
            return _finish(delivery, **fields)
    row = rawsql.run_together(
        router.db_for_write(Delivery),
        [
            rawsql.row_update_sql(DeliveryAttempt, {"id": attempt.pk}, _attempt_fields(result)),
            rawsql.row_update_sql(Delivery, _claim_held_where(delivery), fields),
        ],
        returning=_SENDS_WAITING_SQL,
        returning_params=[delivery.account_id, DeliveryStatus.QUEUED],
    )
    for name, value in fields.items():
        setattr(delivery, name, value)
    if row is not None:
        delivery.sends_waiting = bool(row[0])
    transaction.on_commit(partial(_announce_finished, delivery))
    return delivery


def delivery_recover(*, delivery_id: int) -> str | None:
    """Settle a send whose worker died: unknown if the request may have left, else re-queue."""
    delivery = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING).first()
    if delivery is None:
        return None
    claimed_at = delivery.sending_started_at
    call_started = delivery.attempt_log.filter(outcome=IN_FLIGHT).exists() or bool(
        delivery.call_started_at and claimed_at and delivery.call_started_at >= claimed_at
    )
    if not call_started:
        # Queued again only if, in this same statement, no call has started meanwhile.
        same_claim = Delivery.objects.filter(
            pk=delivery_id, status=DeliveryStatus.SENDING, sending_started_at=claimed_at
        )
        if claimed_at is not None:
            same_claim = same_claim.exclude(call_started_at__gte=claimed_at)
        requeued = same_claim.update(
            status=DeliveryStatus.QUEUED,
            dispatched_at=None,
            next_attempt_at=None,
            detail="The worker stopped before calling Meta; queued again.",
        )
        if requeued:
            pacer_request(delivery.account_id)
            return DeliveryStatus.QUEUED
        delivery.refresh_from_db()
        if delivery.status != DeliveryStatus.SENDING:
            return None
    delivery.attempt_log.filter(outcome=IN_FLIGHT).update(outcome="lost")
    check_at = resolve.next_check_at(delivery, timezone.now())
    _finish(
        delivery,
        status=DeliveryStatus.UNKNOWN,
        detail=resolve.unknown_detail(
            "The worker stopped while the request was on its way; it may have reached Meta.",
            check_at,
        ),
        next_attempt_at=check_at,
    )
    return DeliveryStatus.UNKNOWN


def deliveries_recover_abandoned(*, now: datetime | None = None) -> list[str | None]:
    """Settle the sends whose worker is gone: its lease ran out (it renews the lease while it
    works), or, claimed without a lease, STALE_SENDING_SECONDS passed."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.STALE_SENDING_SECONDS)
    abandoned = Delivery.objects.filter(status=DeliveryStatus.SENDING).filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True, sending_started_at__lt=stale)
    )
    return [delivery_recover(delivery_id=pk) for pk in abandoned.values_list("pk", flat=True)]


def sends_recover(*, now: datetime | None = None) -> dict:
    """Beat, every few seconds: abandoned sends settled, unknown sends handed to a check."""
    recovered = deliveries_recover_abandoned(now=now)
    return {
        "recovered": recovered.count(DeliveryStatus.QUEUED),
        "marked_unknown": recovered.count(DeliveryStatus.UNKNOWN),
        "checks_queued": resolve.deliveries_resolve_due(now=now),
    }


def _expire_held(now: datetime) -> int:
    """Held sends wait a bounded time for a reconnect, and never past their window."""
    expired = 0
    hold_limit = now - timedelta(seconds=settings.HOLD_LIMIT_SECONDS)
    held = Delivery.objects.filter(
        status=DeliveryStatus.QUEUED, held_since__isnull=False
    ).select_related("account", "contact")
    for delivery in held.iterator():
        if delivery.account.status == AccountStatus.ACTIVE:
            account_release(account_id=delivery.account_id)
            continue
        ends = window_end(delivery)
        if delivery.held_since > hold_limit and (ends is None or ends > now):
            continue
        account = delivery.account
        if account.status == AccountStatus.DISABLED:
            reason = DeliveryReason.PERMISSION_MISSING
            detail = f"@{account.username} is disabled and was not enabled again in time."
        else:
            reason = account.reconnect_reason or DeliveryReason.TOKEN_INVALID
            detail = (
                f"Held for @{account.username} to be reconnected "
                f"({account.status_reason or 'token or permission problem'}); "
                "it was not reconnected in time."
            )
        expired += Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.SKIPPED, reason=reason, finished_at=now, detail=detail
        )
    return expired


def _hold_queued_of_inactive_accounts(now: datetime) -> int:
    """Queued deliveries of accounts that need reconnecting (or are disabled) are held from
    the start, carrying the account's reason."""
    unheld = Delivery.objects.filter(status=DeliveryStatus.QUEUED, held_since__isnull=True)
    held = 0
    accounts = (
        InstagramAccount.objects.exclude(status=AccountStatus.ACTIVE)
        .filter(pk__in=unheld.values("account_id"))
        .only("pk", "status", "reconnect_reason")
    )
    for account in accounts:
        reason = (
            DeliveryReason.PERMISSION_MISSING
            if account.status == AccountStatus.DISABLED
            else account.reconnect_reason or DeliveryReason.TOKEN_INVALID
        )
        held += unheld.filter(account_id=account.pk).update(held_since=now, reason=reason)
    return held


def deliveries_sweep(*, now: datetime | None = None) -> dict:
    """Beat's sweeper: recover lost work, expire what can no longer go, wake the pacers."""
    from messaging.sharedstate import DatabaseState
    from messaging.tasks import pace_account

    now = now or timezone.now()
    grace = now - timedelta(seconds=settings.PENDING_EVENT_GRACE_SECONDS)

    # Dispatched long ago but never claimed: the task was lost (broker restart, crash).
    lost = Delivery.objects.filter(status=DeliveryStatus.QUEUED, dispatched_at__lt=grace).update(
        dispatched_at=None
    )

    recovered = deliveries_recover_abandoned(now=now)
    _hold_queued_of_inactive_accounts(now)
    expired_held = _expire_held(now)

    projected = 0
    for account_id in accounts_with_due_work(now=now):
        projected += deliveries_expire_unreachable(account_id=account_id, now=now)
        pace_account.delay(account_id)
    state = shared_state()
    if isinstance(state, DatabaseState):
        state.prune()
    return {
        "lost_dispatches": lost,
        "recovered": recovered.count(DeliveryStatus.QUEUED),
        "marked_unknown": recovered.count(DeliveryStatus.UNKNOWN),
        "held_expired": expired_held,
        "window_misses": projected,
    }


def account_release(*, account_id: int) -> int:
    """After a reconnect: held sends go back to the pacer."""
    released = Delivery.objects.filter(
        account_id=account_id, status=DeliveryStatus.QUEUED, held_since__isnull=False
    ).update(held_since=None, dispatched_at=None, reason="")
    pacer_request(account_id)
    return released


# --- replay after a reconnect (called by webhooks.replay) ---------------------------------------
# Sends skipped because their account could not send: replayable once it is reconnected.
RECONNECT_REASONS = (DeliveryReason.TOKEN_INVALID, DeliveryReason.PERMISSION_MISSING)
# Attempt outcomes that mean the request may have reached Meta: such a send is never replayed.
_MAY_HAVE_REACHED_META = (Outcome.SENT.value, Outcome.UNKNOWN.value, IN_FLIGHT, "lost")
# Public replies have no window of Meta's; a reply a week after the comment (when its private
# reply can no longer go) reads as noise, so they are replayed within the private-reply window.
# Nothing skipped earlier than this can have an open window either.
REPLAY_HORIZON = timedelta(days=7)


def deliveries_skipped_for_reconnect(*, account_id: int, since: datetime | None = None):
    """Sends of the account that waited for a reconnect in vain and never reached Meta.

    ``held_since`` is kept when a hold expires, so it tells these apart from sends skipped for
    other reasons (an account disabled on purpose: those are not replayed). Attempts that Meta
    refused (the token error that put the account on hold) do not count as having reached it.
    """
    skipped = Delivery.objects.filter(
        account_id=account_id,
        status=DeliveryStatus.SKIPPED,
        reason__in=RECONNECT_REASONS,
        held_since__isnull=False,
    ).exclude(attempt_log__outcome__in=_MAY_HAVE_REACHED_META)
    if since is not None:
        skipped = skipped.filter(finished_at__gte=since)
    return skipped


def delivery_replay_window_end(delivery: Delivery) -> datetime | None:
    """Until when a skipped send may still go, counted from the interaction it answered.

    Messages count from their own interaction, not the person's latest one: a newer message
    reopens Meta's window, but it gets its own answer; replaying an old answer into it would
    answer something said days ago. None: it can never go (a message with no interaction).
    """
    if delivery.kind == DeliveryKind.PUBLIC_REPLY:
        return (delivery.interaction_at or delivery.created_at) + REPLAY_HORIZON
    if delivery.kind == DeliveryKind.PRIVATE_REPLY:
        return window_end(delivery) or delivery.created_at + REPLAY_HORIZON
    answered = delivery.interaction_at or (
        delivery.contact.last_interaction_at if delivery.contact else None
    )
    if answered is None:
        return None
    from messaging.checks import MESSAGE_WINDOW

    return answered + MESSAGE_WINDOW


def deliveries_requeue_skipped_for_reconnect(
    *, account_id: int, since: datetime | None = None, now: datetime | None = None
) -> dict:
    """Queue again the account's sends skipped while it was disconnected, if still in time.

    Each goes back as a fresh claim (queued, no reason, no hold, not dispatched) with its
    dedupe key unchanged, so the pre-send checklist runs again and nothing is sent twice.
    ``since`` excludes sends skipped before it (an earlier replay considered them).
    Returns {"requeued": n, "too_old": k}.
    """
    now = now or timezone.now()
    floor = now - REPLAY_HORIZON
    since = max(since, floor) if since is not None else floor
    account = InstagramAccount.objects.only("username").get(pk=account_id)
    requeued = too_old = 0
    candidates = deliveries_skipped_for_reconnect(account_id=account_id, since=since)
    for delivery in candidates.select_related("contact").order_by("created_at", "pk"):
        ends = delivery_replay_window_end(delivery)
        if ends is None or ends <= now:
            too_old += 1
            continue
        # Conditional: a concurrent replay (or anything else) that moved it first wins.
        requeued += Delivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.SKIPPED, reason=delivery.reason
        ).update(
            status=DeliveryStatus.QUEUED,
            reason="",
            detail=f"Queued again after @{account.username} was reconnected (replay).",
            held_since=None,
            dispatched_at=None,
            next_attempt_at=None,
            finished_at=None,
        )
    if requeued:
        pace_after_commit(account_id)
    return {"requeued": requeued, "too_old": too_old}
