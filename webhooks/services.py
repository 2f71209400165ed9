"""Webhook intake: store the raw event first, process it later, never twice."""

import hashlib
import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import connection, router, transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts import services as account_services
from accounts.models import InstagramAccount
from accounts.selectors import (
    account_for_instagram_id,
    accounts_for_instagram_ids,
    accounts_named,
)
from config import rawsql
from config.celery import INTENT_QUEUE
from config.prepared import PreparedRead
from messaging import receipts
from messaging.sharedstate import shared_state
from meta.payloads import (
    CommentEvent,
    MentionEvent,
    MessagingEvent,
    MessagingKind,
    PayloadError,
    UnknownEvent,
    iter_entry_account_ids,
    parse_webhook,
)
from triggers import services as trigger_services
from triggers.selectors import intent_account_ids, trigger_versions_subquery
from webhooks.models import EventState, WebhookEvent, WebhookEventPart
from webhooks.selectors import split_body

logger = logging.getLogger(__name__)

# After this many crashed processing attempts an event is marked failed instead of retried.
MAX_PROCESSING_ATTEMPTS = 5
MAIN_QUEUE, BULK_QUEUE = "events", "events_bulk"
# The outcome of an update whose processing raised (its savepoint rolled back).
FAILED_OUTCOME = "failed"
HOT_ACCOUNT_WINDOW_SECONDS = 10
# The PostgreSQL channel a stored event is announced on, for the outbox relay (webhooks.relay).
RELAY_CHANNEL = "webhook_events"


class InvalidWebhookBody(ValueError):
    """The body is not a UTF-8 JSON object."""


# Meta's bodies nest about six levels; far deeper is not Meta, and would exhaust recursion.
MAX_BODY_DEPTH = 64


class UpdatesFailed(RuntimeError):
    """Every update of an event failed: the event is retried as after a crash."""


@dataclass(frozen=True)
class Intake:
    event: WebhookEvent
    duplicate: bool


def _too_deep(value: object, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(current, dict):
            stack.extend((item, depth + 1) for item in current.values())
        elif isinstance(current, list):
            stack.extend((item, depth + 1) for item in current)
    return False


def _decode_object(raw_body: bytes) -> tuple[dict, str]:
    """The body as a dict and as text; InvalidWebhookBody says why it is neither."""
    if raw_body.startswith(b"\xef\xbb\xbf"):
        raise InvalidWebhookBody("The body starts with a byte order mark; Meta sends plain UTF-8.")
    if b"\x00" in raw_body:
        # JSON text never holds a NUL byte; UTF-16 and UTF-32 text is full of them.
        raise InvalidWebhookBody("The body is not UTF-8 text: it holds NUL bytes (UTF-16?).")
    try:
        # Strict UTF-8: UTF-16 and UTF-32 (which json.loads would guess) and the UTF-8 bytes of
        # a lone surrogate are refused here, so the stored text is always valid UTF-8.
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidWebhookBody(
            f"The body is not UTF-8 text (byte {exc.start}: {exc.reason})."
        ) from exc
    try:
        body = json.loads(text)
    except RecursionError as exc:
        raise InvalidWebhookBody("The body's JSON is nested too deeply to read.") from exc
    except ValueError as exc:
        raise InvalidWebhookBody(f"The body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidWebhookBody(f"The body is JSON but not an object ({type(body).__name__}).")
    if _too_deep(body, MAX_BODY_DEPTH):
        raise InvalidWebhookBody(
            f"The body's JSON nests deeper than {MAX_BODY_DEPTH} levels; Meta's never does."
        )
    return body, text


def webhook_event_receive(*, raw_body: bytes) -> Intake:
    """Store a signed webhook body durably; its processing is queued by the outbox relay
    (WEBHOOK_DISPATCH=relay: the INSERT also NOTIFYs it) or here, after commit (`request`).

    Raises InvalidWebhookBody (after logging the attempt) when the body is not a JSON object.
    """
    body, text = _decode_object(raw_body)
    dedupe_key = hashlib.sha256(raw_body).hexdigest()
    relay = settings.WEBHOOK_DISPATCH == "relay"
    event = WebhookEvent(
        # Valid JSON text holds NUL and surrogates only as escapes ("\\u0000"): storable.
        raw_body=text,
        dedupe_key=dedupe_key,
        account_ids=sorted(iter_entry_account_ids(body))[:50],
        # Published by this request right after commit, or left for the relay.
        dispatched_at=None if relay else timezone.now(),
    )
    if not _insert_unless_held(event, notify=relay):
        # Meta redelivered bytes we already hold: count it, send nothing again.
        WebhookEvent.objects.filter(dedupe_key=dedupe_key).update(
            redeliveries=F("redeliveries") + 1
        )
        return Intake(WebhookEvent.objects.get(dedupe_key=dedupe_key), duplicate=True)
    if not relay:
        # Outside a transaction (the webhook view) this runs at once: the row is committed.
        transaction.on_commit(
            partial(webhook_event_schedule, event_id=event.pk, account_ids=event.account_ids)
        )
    return Intake(event, duplicate=False)


def _insert_unless_held(event: WebhookEvent, *, notify: bool = False) -> bool:
    """INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id: one statement, committed
    on its own, instead of BEGIN, INSERT, COMMIT and a caught IntegrityError on the hot path
    of every webhook. True when the row is new (and `event` now has its id).

    `notify` (PostgreSQL): the same statement also NOTIFYs the relay's channel with the new
    id, delivered when it commits: no second round trip, and no notification for a duplicate.
    """
    insert, values = rawsql.insert_sql([event], using=connection.alias)
    quote = connection.ops.quote_name
    sql = f"{insert} ON CONFLICT ({quote('dedupe_key')}) DO NOTHING RETURNING {quote('id')}"
    if notify:
        sql = f"WITH new AS ({sql}) SELECT id, pg_notify(%s, id::text)::text FROM new"  # noqa: S608
        values.append(RELAY_CHANNEL)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    event.pk = row[0]
    event._state.adding = False
    event._state.db = connection.alias
    return True


def webhook_event_reject(*, raw_body: bytes, error: str) -> None:
    """Log a signed but unreadable body so an operator can see what Meta (or someone) sent."""
    logger.warning("Rejected webhook body (%d bytes): %s", len(raw_body), error)
    WebhookEvent.objects.get_or_create(
        dedupe_key=hashlib.sha256(raw_body).hexdigest(),
        defaults={
            # Kept readable and storable: PostgreSQL text cannot hold NUL bytes.
            "raw_body": raw_body.decode("utf-8", errors="backslashreplace").replace(
                "\x00", "\\x00"
            )[:100_000],
            "state": EventState.REJECTED,
            "error": error[:2000],
            "processed_at": timezone.now(),
        },
    )


def intake_queue_for(account_ids: list[str]) -> str:
    """`intent`, `events`, or `events_bulk` for an account receiving a flood (a viral post).

    An event of an account with an enabled intent trigger goes to `intent`, flooded or not, so
    that only workers consuming `intent` load the sentence model (a worker without it still
    answers such an event correctly, loading the model on first use). With Redis, workers take
    `events_bulk` only when no send and no other event waits (settings.CELERY_TASK_QUEUES), so
    a quiet account's comment never waits behind a viral account's thousands.
    """
    try:
        if intent_account_ids().intersection(account_ids):
            return INTENT_QUEUE
    except Exception:
        logger.warning("Could not read which accounts use intent triggers", exc_info=True)
    try:
        state = shared_state()
        for account_id in account_ids:
            count = state.count_recent(f"intake:{account_id}", HOT_ACCOUNT_WINDOW_SECONDS)
            if count > settings.HOT_ACCOUNT_EVENTS_PER_WINDOW:
                return BULK_QUEUE
    except Exception:
        logger.warning("Shared state unavailable; routing event to the main intake queue")
    return MAIN_QUEUE


def webhook_event_publish(
    *, event_id: int, account_ids: list[str] | None = None, producer=None
) -> None:
    """Queue processing, on the queue its accounts' traffic chose; raises when the broker
    cannot take it (the outbox relay retries). `producer`: a kombu producer to reuse (the
    relay publishes a batch through one)."""
    from webhooks.tasks import process_event

    queue = intake_queue_for(account_ids or [])
    process_event.apply_async((event_id,), queue=queue, producer=producer)


def webhook_event_schedule(*, event_id: int, account_ids: list[str] | None = None) -> None:
    """Queue processing; if the broker is down the event stays pending and beat re-queues it."""
    try:
        webhook_event_publish(event_id=event_id, account_ids=account_ids)
    except Exception:
        logger.exception("Could not queue webhook event %s; the sweeper will retry", event_id)


def _accounts_for_processing(instagram_ids: list[str]) -> list[InstagramAccount]:
    """The accounts an event names, with their workspace and (PostgreSQL) their triggers'
    versions: matching then needs no statement of its own to know its index is current."""
    if rawsql.on_postgresql(InstagramAccount):
        return _ACCOUNTS_WITH_VERSIONS.fetch(instagram_ids=instagram_ids)
    return list(accounts_named(instagram_ids).select_related("workspace"))


def _accounts_with_versions(instagram_ids: list[str]) -> QuerySet[InstagramAccount]:
    return (
        accounts_named(instagram_ids)
        .select_related("workspace")
        .annotate(trigger_versions=trigger_versions_subquery())
    )


# Every event reads it: compiled once per process (config/prepared.py).
_ACCOUNTS_WITH_VERSIONS = PreparedRead(_accounts_with_versions, instagram_ids=str)


@dataclass
class _Processing:
    """What one event's processing reads once and shares between its updates."""

    accounts: dict[str, InstagramAccount | None]
    # Whether any account has a "next post" trigger (else comments bind nothing).
    next_post_waiting: bool | None = None

    @classmethod
    def for_items(cls, items: list, *, next_post_waiting: bool | None) -> "_Processing":
        ids = sorted({str(item.account_id) for item in items if getattr(item, "account_id", "")})
        found: dict[str, InstagramAccount | None] = dict.fromkeys(ids)
        if ids:
            for account in _accounts_for_processing(ids):
                for instagram_id in (account.ig_alt_id, account.ig_user_id):  # own id wins
                    if instagram_id in found:
                        found[instagram_id] = account
        return cls(accounts=found, next_post_waiting=next_post_waiting)

    def account(self, instagram_id: str) -> InstagramAccount | None:
        if instagram_id not in self.accounts:
            self.accounts[instagram_id] = account_for_instagram_id(instagram_id)
        return self.accounts[instagram_id]


def _handle_comment(item: CommentEvent, event: WebhookEvent, run: _Processing) -> dict:
    account = run.account(item.account_id)
    base = {"type": "comment", "comment_id": item.comment_id}
    if account is None:
        return {**base, "outcome": "ignored", "why": f"no connected account {item.account_id}"}
    if not item.from_id:
        return {**base, "outcome": "ignored", "why": "the comment names no author"}
    if account.owns_id(item.from_id):
        return {**base, "outcome": "ignored", "why": "the account's own comment"}
    contact = account_services.contact_record_comment(
        account=account,
        igsid=item.from_id,
        username=item.from_username,
        commented_at=item.occurred_at,
    )
    outcome = trigger_services.comment_answer(
        account=account,
        comment=item,
        contact=contact,
        event_id=event.pk,
        event_received_at=event.received_at,
        next_post_waiting=run.next_post_waiting,
    )
    return {**base, **outcome}


def _handle_messaging(item: MessagingEvent, event: WebhookEvent, run: _Processing) -> dict:
    base = {"type": item.kind, "mid": item.mid}
    account = run.account(item.account_id)
    if account is None:
        return {**base, "outcome": "ignored", "why": f"no connected account {item.account_id}"}
    if item.is_echo or (item.sender_id and account.owns_id(item.sender_id)):
        return {**base, "outcome": "recorded", "why": "the account's own message (never answered)"}
    if not item.sender_id:
        return {**base, "outcome": "ignored", "why": "the message names no sender"}
    if item.kind == MessagingKind.READ:
        # The person read our messages (the funnel's "seen"): one UPDATE, on this item only.
        seen = receipts.deliveries_mark_seen(
            account=account, igsid=item.sender_id, mid=item.mid, seen_at=item.occurred_at
        )
        return {**base, "outcome": "recorded", "seen": seen}
    if not item.opens_window:
        # Reactions, reads, unsent messages: recorded, nothing to answer.
        return {**base, "outcome": "recorded"}
    contact, first_message = account_services.contact_record_inbound(
        account=account, igsid=item.sender_id, interacted_at=item.occurred_at
    )
    outcome = trigger_services.message_answer(
        account=account,
        message=item,
        contact=contact,
        first_message=first_message,
        event_id=event.pk,
        event_received_at=event.received_at,
    )
    return {**base, "window": "opened", **outcome}


def _handle(item, event: WebhookEvent, run: _Processing) -> dict:
    if isinstance(item, CommentEvent):
        return _handle_comment(item, event, run)
    if isinstance(item, MessagingEvent):
        return _handle_messaging(item, event, run)
    if isinstance(item, MentionEvent):
        return {"type": "mention", "outcome": "recorded", "comment_id": item.comment_id}
    if isinstance(item, UnknownEvent):
        return {"type": item.field or "unknown", "outcome": "ignored", "why": item.note}
    return {"type": type(item).__name__, "outcome": "ignored"}


def _kind_of(item) -> str:
    if isinstance(item, CommentEvent):
        return "comment"
    if isinstance(item, MessagingEvent):
        return str(item.kind)
    if isinstance(item, MentionEvent):
        return "mention"
    return getattr(item, "field", "") or "unknown"


def _handle_in_savepoint(item, event: WebhookEvent, run: _Processing, *, alone: bool) -> dict:
    """One update, in its own savepoint: a failure (a malformed trigger, a bug) undoes only
    this update's writes and is recorded on its result, so the other updates of a batched
    event (often other workspaces' accounts) are still answered. An event's only update
    needs no savepoint: its failure rolls the whole event back (UpdatesFailed)."""
    try:
        with transaction.atomic() if not alone else nullcontext():
            outcome = _handle(item, event, run)
    except Exception as exc:
        logger.exception(
            "Webhook event %s: an update for account %s failed", event.pk, item.account_id
        )
        outcome = {
            "type": _kind_of(item),
            "outcome": FAILED_OUTCOME,
            "why": f"Processing failed ({type(exc).__name__}: {exc})"[:500],
        }
    # Each result names its update's account: the part of the event it belongs to.
    return {**outcome, "account": item.account_id}


def _overall_state(results: list[dict]) -> str:
    outcomes = {result["outcome"] for result in results}
    if FAILED_OUTCOME in outcomes:
        return EventState.FAILED
    if outcomes & {"matched", "cooled_down"}:
        return EventState.PROCESSED
    if "no_match" in outcomes:
        return EventState.NO_MATCH
    return EventState.IGNORED


def _link_accounts(event: WebhookEvent) -> None:
    """Tie the event to the connected accounts it names, so their workspaces' people see it."""
    ids = [str(account_id) for account_id in event.account_ids or []]
    if ids:
        accounts = accounts_for_instagram_ids(ids)
        event.accounts.add(*accounts)
        _note_webhook(event, accounts)


def _note_webhook(event: WebhookEvent, accounts: list) -> None:
    """Each account's last webhook, noted once the event commits (outside its transaction);
    no statement for accounts (as read) noted within LAST_WEBHOOK_PRECISION already."""
    precision = account_services.LAST_WEBHOOK_PRECISION
    accounts = [
        account
        for account in accounts
        if account.last_webhook_at is None
        or account.last_webhook_at < event.received_at - precision
    ]
    if accounts:
        transaction.on_commit(
            partial(
                account_services.accounts_note_webhook,
                account_ids=[account.pk for account in accounts],
                received_at=event.received_at,
            )
        )


def _store_parts(
    event: WebhookEvent, *, replace: bool = True, run: _Processing | None = None
) -> int:
    """One part per account the body names: its entries and their results (selectors). The
    accounts are linked too (intake's ``account_ids`` keeps only the first 50). ``replace``:
    the event may have parts from an earlier processing, which the new result replaces.
    ``run``: the accounts processing read already."""
    if replace:
        event.parts.all().delete()
    accounts, parts = _parts_of(event, run)
    if accounts:
        event.accounts.add(*accounts)
        _note_webhook(event, accounts)
    return len(WebhookEventPart.objects.bulk_create(parts))


def _parts_of(
    event: WebhookEvent, run: _Processing | None
) -> tuple[list[InstagramAccount], list[WebhookEventPart]]:
    """The accounts the event's body names and its (unsaved) per-account parts."""
    obj, groups, _ = split_body(event.raw_body, list(event.result or []))
    ids = [group.instagram_id for group in groups if group.instagram_id]
    if run is not None and all(i in run.accounts for i in ids):
        accounts = list({a.pk: a for i in ids if (a := run.accounts[i]) is not None}.values())
    else:
        accounts = accounts_for_instagram_ids(ids) if ids else []
    by_id = {i: a for a in accounts for i in (a.ig_user_id, a.ig_alt_id) if i}
    parts = [
        WebhookEventPart(
            event=event,
            instagram_id=group.instagram_id,
            account=by_id.get(group.instagram_id) if group.instagram_id else None,
            # ASCII with escapes: a NUL or a lone surrogate in the body stays an escape, which
            # PostgreSQL text can hold.
            body=json.dumps({"object": obj, "entry": group.entries}),
            result=group.result,
        )
        for group in groups
    ]
    return accounts, parts


_PROCESSED_FIELDS = ["state", "error", "result", "processed_at"]


def _save_processed(event: WebhookEvent, *, replace: bool, run: _Processing) -> None:
    """The event's outcome, its per-account parts and its account links, written by one
    statement on PostgreSQL (the last writes of the event's transaction)."""
    if replace or not rawsql.on_postgresql(WebhookEvent):
        _store_parts(event, replace=replace, run=run)
        event.save(update_fields=_PROCESSED_FIELDS)
        return
    accounts, parts = _parts_of(event, run)
    writes = []
    if accounts:
        link = WebhookEvent.accounts.through
        writes.append(
            rawsql.insert_sql(
                [link(webhookevent_id=event.pk, instagramaccount_id=a.pk) for a in accounts],
                ignore_conflicts=True,
            )
        )
        _note_webhook(event, accounts)
    if parts:
        writes.append(rawsql.insert_sql(parts))
    values = {name: getattr(event, name) for name in _PROCESSED_FIELDS}
    writes.append(rawsql.row_update_sql(WebhookEvent, {"id": event.pk}, values))
    rawsql.run_together(router.db_for_write(WebhookEvent), writes)


def webhook_events_split(*, after_pk: int = 0, batch_size: int = 500) -> tuple[int | None, int]:
    """Store the per-account parts of events processed before parts existed, one batch of
    events after ``after_pk``. Returns (the batch's last id, or None when there are no more
    events; how many it split). ``split_webhook_events`` runs it to the end."""
    batch = list(
        WebhookEvent.objects.filter(pk__gt=after_pk)
        .exclude(state__in=[EventState.PENDING, EventState.REJECTED])
        .order_by("pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    if not batch:
        return None, 0
    split = 0
    for event in WebhookEvent.objects.filter(pk__in=batch, parts__isnull=True).order_by("pk"):
        with transaction.atomic():
            split += bool(_store_parts(event))
    return batch[-1], split


def _prepare(event_id: int, *, next_post_waiting: bool | None) -> None:
    """What processing will need from Meta, fetched first, outside any transaction: nothing
    calls Meta while the event's row lock is held (triggers.services.comment_prepare).
    ``next_post_waiting``: False when no account has a "next post" trigger (None: ask)."""
    if next_post_waiting is False:
        return
    waiting = trigger_services.accounts_waiting_for_next_post()
    if not waiting:
        return
    raw_body = (
        WebhookEvent.objects.filter(pk=event_id, state=EventState.PENDING)
        .values_list("raw_body", flat=True)
        .first()
    )
    if raw_body is None:
        return
    try:
        items = parse_webhook(json.loads(raw_body))
    except (PayloadError, ValueError):
        return  # processing records why
    comments = [item for item in items if isinstance(item, CommentEvent)]
    ids = sorted({item.account_id for item in comments if item.account_id})
    by_id = {
        instagram_id: account
        for account in accounts_for_instagram_ids(ids)
        if account.pk in waiting
        for instagram_id in (account.ig_user_id, account.ig_alt_id)
        if instagram_id
    }
    for item in comments:
        account = by_id.get(item.account_id)
        if account is None:
            continue
        try:
            trigger_services.comment_prepare(account=account, comment=item)
        except Exception:
            # Best effort: without it a "next post" trigger waits for a later comment.
            logger.exception("Preparing comment %s of event %s failed", item.comment_id, event_id)


def _count_attempt(event_id: int) -> bool | None:
    """Count a processing attempt (committed at once: a crash still counts), and say
    whether any account waits for its next post (asked in the same statement on
    PostgreSQL; None elsewhere, where processing asks itself)."""
    pending = {"id": event_id, "state": EventState.PENDING}
    counted = {"processing_attempts": rawsql.Add(1)}
    if not rawsql.on_postgresql(WebhookEvent):
        rawsql.update_rows(WebhookEvent, pending, counted)
        return None
    waiting_sql, waiting_params = trigger_services.next_post_waiting_sql()
    row = rawsql.run_together(
        router.db_for_write(WebhookEvent),
        [rawsql.row_update_sql(WebhookEvent, pending, counted)],
        returning=f"EXISTS ({waiting_sql})",
        returning_params=waiting_params,
    )
    return bool(row[0]) if row is not None else None


def _event_locked(event_id: int) -> QuerySet[WebhookEvent]:
    return WebhookEvent.objects.select_for_update().filter(pk=event_id)


# Read for every event: compiled once per process (config/prepared.py).
_EVENT_LOCKED = PreparedRead(_event_locked, event_id=int)


def webhook_event_process(*, event_id: int) -> WebhookEvent | None:
    """Parse a stored event, let triggers decide, queue deliveries. Runs once per event."""
    next_post_waiting = _count_attempt(event_id)
    _prepare(event_id, next_post_waiting=next_post_waiting)
    try:
        with transaction.atomic():
            # The row lock makes a second worker wait, then see the event is no longer pending.
            event = _EVENT_LOCKED.first(event_id=event_id)
            if event is None or event.state != EventState.PENDING:
                return event
            processed_before = event.processed_at is not None
            try:
                items = parse_webhook(json.loads(event.raw_body))
            except (PayloadError, ValueError, RecursionError) as exc:
                # Not a shape we understand: said in the outcome, not a crash to retry.
                why = str(exc) if isinstance(exc, PayloadError) else f"unreadable JSON ({exc})"
                event.result = [{"type": "envelope", "outcome": "ignored", "why": why[:500]}]
                event.state, event.error = EventState.IGNORED, ""
                items = None
            else:
                run = _Processing.for_items(items, next_post_waiting=next_post_waiting)
                alone = len(items) == 1
                event.result = [
                    _handle_in_savepoint(item, event, run, alone=alone) for item in items
                ]
                event.state = _overall_state(event.result)
                failed = sum(result["outcome"] == FAILED_OUTCOME for result in event.result)
                if failed and failed == len(items):
                    # Nothing went through: a crash, retried like one (rolled back, pending).
                    raise UpdatesFailed(event.result[0]["why"])
                event.error = (
                    f"{failed} of {len(items)} update(s) could not be processed; each says why "
                    "in the result. Fix the cause, then process the event again (what was "
                    "already answered is not sent twice)."
                    if failed
                    else ""
                )
            event.processed_at = timezone.now()
            if items is None:
                _link_accounts(event)
                event.save(update_fields=_PROCESSED_FIELDS)
            else:
                _save_processed(event, replace=processed_before, run=run)
            return event
    except Exception as exc:
        logger.exception("Processing webhook event %s failed", event_id)
        event = WebhookEvent.objects.filter(pk=event_id).first()
        if event is None:
            return None
        failed = event.processing_attempts >= MAX_PROCESSING_ATTEMPTS
        WebhookEvent.objects.filter(pk=event_id, state=EventState.PENDING).update(
            error=f"{type(exc).__name__}: {exc}"[:2000],
            **({"state": EventState.FAILED, "processed_at": timezone.now()} if failed else {}),
        )
        event.refresh_from_db()
        return event


def intake_backlog() -> int | None:
    """Messages waiting in the intake queues, or None when the broker cannot say."""
    from amqp.exceptions import ChannelError

    from config.celery import app

    def waiting(channel, name: str) -> int:
        try:
            return channel.queue_declare(queue=name, passive=True).message_count
        except ChannelError as exc:
            if "NOT_FOUND" in str(exc):  # never declared on this broker: nothing waits there
                return 0
            raise

    try:
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            return sum(waiting(channel, name) for name in (MAIN_QUEUE, INTENT_QUEUE, BULK_QUEUE))
    except Exception:
        logger.warning("Could not read the intake queues' length", exc_info=True)
        return None


# The n-th re-queue of an event waits grace * 2**n after the previous one, at most this long.
MAX_REQUEUE_SPACING_SECONDS = 600.0


def webhook_events_requeue_pending(*, older_than_seconds: float | None = None) -> int:
    """The outbox sweeper: re-queue events still pending after a grace period.

    A pending event is most often just waiting its turn in a long queue, so re-queues are
    spaced exponentially per event (a lost one is still picked up, a waiting one is not
    queued again on every sweep), and go to the queue its accounts' traffic chose.
    """
    grace = older_than_seconds
    if grace is None:
        grace = settings.PENDING_EVENT_GRACE_SECONDS
    now = timezone.now()
    candidates = (
        WebhookEvent.objects.filter(
            state=EventState.PENDING, received_at__lt=now - timedelta(seconds=grace)
        )
        .order_by("received_at")
        .values_list(
            "pk",
            "account_ids",
            "requeued_count",
            "received_at",
            "last_requeued_at",
            "dispatched_at",
        )
    )
    most = 1000
    waiting = intake_backlog()
    if waiting is not None:
        # As many messages as wait in the intake queues, pending events are queued, not lost
        # (a viral burst), and queueing them again would only add load. Only the shortfall
        # is re-queued, oldest first: a queue hands out its oldest first, so the newest are
        # the ones still in it (and the oldest may be in a worker's hands: a no-op then).
        most = min(most, candidates.count() - waiting)
        if most <= 0:
            return 0
    requeued = 0
    for event_id, account_ids, count, received_at, requeued_at, dispatched_at in candidates[:5000]:
        spacing = min(grace * 2**count, MAX_REQUEUE_SPACING_SECONDS)
        # Counted from the last hand-over: an old event the relay queued a moment ago (after
        # an outage) is in the queue, not lost.
        if now - (requeued_at or dispatched_at or received_at) < timedelta(seconds=spacing):
            continue
        WebhookEvent.objects.filter(pk=event_id).update(
            requeued_count=F("requeued_count") + 1,
            last_requeued_at=now,
            # Handed over now: the relay (if it was down) must not queue it a second time.
            dispatched_at=Coalesce("dispatched_at", Value(now)),
        )
        webhook_event_schedule(event_id=event_id, account_ids=account_ids)
        requeued += 1
        if requeued >= most:
            break
    return requeued


def webhook_event_reprocess(*, event_id: int) -> None:
    """Operator action: process a failed or ignored event again (deliveries stay deduplicated)."""
    # Queued here after commit, so marked handed over: the relay leaves it alone.
    WebhookEvent.objects.filter(pk=event_id).update(
        state=EventState.PENDING, error="", processing_attempts=0, dispatched_at=timezone.now()
    )
    transaction.on_commit(partial(webhook_event_schedule, event_id=event_id))


# Events deleted per statement by purge_events: memory and lock time stay bounded.
PURGE_BATCH = 1000


def webhook_events_purge(*, queryset, batch_size: int | None = None) -> int:
    """Delete the events of ``queryset`` a batch at a time, each batch its own transaction,
    without reading their raw bodies (only ids are loaded); returns how many went. Deliveries
    keep their record (their event link is cleared); parts and account links go with them."""
    batch_size = batch_size or PURGE_BATCH
    deleted = 0
    while True:
        batch = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        with transaction.atomic():
            _, counts = WebhookEvent.objects.filter(pk__in=batch).only("pk").delete()
        deleted += counts.get(WebhookEvent._meta.label, 0)
