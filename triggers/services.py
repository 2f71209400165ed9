"""Deciding what to send for an event, then handing it to messaging.

Exactly one trigger answers an event: the highest priority among those that match, then the
most specific. A per-contact cool-down stops the same trigger answering the same person
again too soon; the event is then recorded as answered by nobody, with the reason.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts.models import Contact, InstagramAccount
from config import rawsql
from config.prepared import PreparedStatement
from messaging import services as messaging_services
from messaging.models import Delivery, DeliveryKind
from meta.payloads import CommentEvent, MessagingEvent, MessagingKind
from triggers import flows
from triggers.models import (
    FiresOn,
    MediaPublishTime,
    Trigger,
    TriggerEvent,
    TriggerFiring,
    trigger_cooldown_seconds,
    trigger_fires_on,
)
from triggers.selectors import (
    CommentContext,
    Decision,
    next_post_triggers,
    trigger_choose,
    trigger_fallback,
)

logger = logging.getLogger(__name__)

# Messaging events that carry something a person said or chose, by the trigger event they feed.
_EVENT_FOR_KIND = {
    MessagingKind.MESSAGE: TriggerEvent.DM,
    MessagingKind.QUICK_REPLY: TriggerEvent.DM,
    MessagingKind.POSTBACK: TriggerEvent.DM,
    MessagingKind.STORY_REPLY: TriggerEvent.STORY_REPLY,
    MessagingKind.STORY_MENTION: TriggerEvent.STORY_MENTION,
}


# Picks another variant than the last one and stores it, in one statement: the new index is
# drawn from the n - 1 others (or from all n when none was picked yet or it is out of range).
_PICK_PUBLIC_REPLY_SQL = """
UPDATE triggers_trigger AS t
SET last_public_reply_index = CASE
    WHEN old.last IS NULL OR old.last < 0 OR old.last >= %(n)s THEN floor(random() * %(n)s)::int
    ELSE (old.last + 1 + floor(random() * (%(n)s - 1))::int) %% %(n)s
END
FROM (SELECT last_public_reply_index AS last FROM triggers_trigger WHERE id = %(id)s FOR UPDATE)
    AS old
WHERE t.id = %(id)s
RETURNING t.last_public_reply_index
"""


def public_reply_pick(trigger: Trigger) -> str:
    """A random variant, never the same one twice in a row."""
    variants = [text for text in trigger.public_replies if text.strip()]
    if not variants:
        return ""
    if len(variants) == 1:
        return variants[0]  # nothing to rotate: no statement
    if rawsql.on_postgresql(Trigger):
        # Read and written together: the trigger may be a cached copy, and another worker
        # may pick at the same time.
        with connection.cursor() as cursor:
            cursor.execute(_PICK_PUBLIC_REPLY_SQL, {"n": len(variants), "id": trigger.pk})
            row = cursor.fetchone()
        if row is not None:
            trigger.last_public_reply_index = row[0]
            return variants[row[0]]
    # Read fresh: the trigger may be a cached copy, and another worker may have picked since.
    triggers = Trigger.objects.filter(pk=trigger.pk)
    last = triggers.values_list("last_public_reply_index", flat=True).first()
    indices = list(range(len(variants)))
    if last in indices:
        indices.remove(last)
    index = random.choice(indices)
    triggers.update(last_public_reply_index=index)
    trigger.last_public_reply_index = index
    return variants[index]


def _cooled_down(trigger: Trigger, contact: Contact, origin: flows.Origin) -> datetime | None:
    """Record the firing; when the trigger answered this person too recently, the time it
    did (the cool-down runs from it), else None."""
    seconds = trigger_cooldown_seconds(trigger)
    if seconds > 0:
        # One person's events are answered one at a time, so two messages sent together
        # cannot both slip past the cool-down.
        Contact.objects.select_for_update().filter(pk=contact.pk).first()
        recent = (
            TriggerFiring.objects.filter(
                trigger=trigger,
                contact=contact,
                fired_at__gt=origin.occurred_at - timedelta(seconds=seconds),
            )
            .exclude(origin_key=origin.key)
            .order_by("-fired_at")
            .values_list("fired_at", flat=True)
            .first()
        )
        if recent is not None:
            return recent
    # One INSERT ... ON CONFLICT DO NOTHING: the event answered before (processed again, or
    # concurrently) keeps its firing, and the delivery dedupe keeps the answer single.
    TriggerFiring.objects.bulk_create(
        [
            TriggerFiring(
                trigger=trigger,
                contact=contact,
                origin_key=origin.key,
                fired_at=origin.occurred_at,
            )
        ],
        ignore_conflicts=True,
    )
    return None


def _answered_before(trigger: Trigger, contact: Contact, origin: flows.Origin) -> dict | None:
    """The answer another trigger already gave this event for the person, if any: its
    firing, or (for a message, even once that trigger is deleted) the message delivery keyed
    by the event (``message:<origin>``, or ``message:<origin>:<trigger id>`` from before)."""
    firing = (
        TriggerFiring.objects.filter(contact=contact, origin_key=origin.key)
        .exclude(trigger=trigger)
        .select_related("trigger")
        .first()
    )
    if firing is not None:
        return {"trigger": firing.trigger.name, "trigger_id": firing.trigger_id}
    if origin.comment_id:
        return None  # a comment's replies are keyed by the comment already
    key = f"message:{origin.key}"
    earlier = (
        Delivery.objects.filter(contact=contact, kind=DeliveryKind.MESSAGE)
        .filter(Q(dedupe_key=key) | Q(dedupe_key__startswith=f"{key}:"))
        .exclude(trigger=trigger)
        .select_related("trigger")
        .first()
    )
    if earlier is None:
        return None
    name = earlier.trigger.name if earlier.trigger else "a trigger since deleted"
    return {"trigger": name, "trigger_id": earlier.trigger_id}


_FIRE_UNLESS_ANSWERED_SQL = """
WITH other AS (
    SELECT firing.trigger_id, answering.name
    FROM triggers_triggerfiring firing
    JOIN triggers_trigger answering ON answering.id = firing.trigger_id
    WHERE firing.contact_id = %s AND firing.origin_key = %s AND firing.trigger_id <> %s
    ORDER BY firing.id LIMIT 1
), fired AS (
    INSERT INTO triggers_triggerfiring (trigger_id, contact_id, fired_at, origin_key)
    SELECT %s, %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM other)
    ON CONFLICT DO NOTHING
)
SELECT trigger_id, name FROM other
"""


def _fire_unless_answered(trigger: Trigger, contact: Contact, origin: flows.Origin) -> dict:
    """For a comment and a trigger without a cool-down: ``_answered_before`` and the firing
    ``_cooled_down`` records, as one statement (PostgreSQL). An empty dict: fired now (or
    by this trigger before); else the other trigger that answered the comment."""
    params = [contact.pk, origin.key, trigger.pk]
    params += [trigger.pk, contact.pk, origin.occurred_at, origin.key]
    with connection.cursor() as cursor:
        cursor.execute(_FIRE_UNLESS_ANSWERED_SQL, params)
        row = cursor.fetchone()
    return {} if row is None else {"trigger": row[1], "trigger_id": row[0]}


def _summary(decision_trigger: Trigger, decision: Decision | None, why: str) -> dict:
    summary = {
        "outcome": "matched",
        "trigger": decision_trigger.name,
        "trigger_id": decision_trigger.pk,
        "why": why,
    }
    if decision is not None:
        summary.update(
            mode=decision.mode,
            keyword=decision.match.keyword,
            score=round(decision.match.score, 1),
        )
    return summary


def _answer(
    *,
    account: InstagramAccount,
    trigger: Trigger,
    contact: Contact,
    origin: flows.Origin,
    summary: dict,
    public_reply_to: str = "",
) -> dict:
    """Queue what the trigger sends for this event (public reply, first message, flow)."""
    fired = None
    if (
        origin.comment_id
        and trigger_cooldown_seconds(trigger) <= 0
        and rawsql.on_postgresql(TriggerFiring)
    ):
        fired = _fire_unless_answered(trigger, contact, origin)
        earlier = fired or None
    else:
        earlier = _answered_before(trigger, contact, origin)
    if earlier is not None:
        # Processed again ("Process again", replay) after the triggers changed: the event
        # was answered already, and one thing a person wrote gets one answer.
        return {
            "outcome": "matched",
            **earlier,
            "why": "answered before; processing it again sends nothing new",
        }
    answered_at = _cooled_down(trigger, contact, origin) if fired is None else None
    if answered_at is not None:
        seconds = trigger_cooldown_seconds(trigger)
        return {
            "outcome": "cooled_down",
            "trigger": trigger.name,
            "trigger_id": trigger.pk,
            "why": f"{trigger.name!r} answered this person less than {seconds} s ago",
            # When the person may be answered again (the event log says it in words).
            "until": (answered_at + timedelta(seconds=seconds)).isoformat(),
        }
    specs = []
    if public_reply_to:
        text = public_reply_pick(trigger)
        if text:
            specs.append(
                {
                    "account": account,
                    "trigger": trigger,
                    "contact": contact,
                    "kind": DeliveryKind.PUBLIC_REPLY,
                    "dedupe_key": f"public_reply:{origin.comment_id}",
                    "payload": {"text": text},
                    "comment_id": origin.comment_id,
                    "recipient": public_reply_to,
                    "interaction_at": origin.occurred_at,
                    "event_id": origin.event_id,
                    "event_received_at": origin.event_received_at,
                }
            )
    run = None
    if trigger.messages and not flows.needs_run(trigger):
        specs.append(_single_message(account, trigger, contact, origin))
    # A public and a private reply are written together (one statement on PostgreSQL).
    deliveries = [d.pk for d in messaging_services.deliveries_create(specs)]
    if trigger.messages and flows.needs_run(trigger):
        run = flows.flow_start(account=account, trigger=trigger, contact=contact, origin=origin)
        summary["flow_run"] = run.pk
        if run.waiting_delivery_id:
            deliveries.append(run.waiting_delivery_id)
    summary["deliveries"] = deliveries
    return summary


def _single_message(
    account: InstagramAccount, trigger: Trigger, contact: Contact, origin: flows.Origin
) -> dict:
    """What a one-message trigger sends, as ``delivery_create``'s arguments."""
    spec = trigger.messages[0]
    common = {
        "account": account,
        "trigger": trigger,
        "contact": contact,
        "interaction_at": origin.occurred_at,
        "event_id": origin.event_id,
        "event_received_at": origin.event_received_at,
    }
    if origin.comment_id:
        return {
            **common,
            "kind": DeliveryKind.PRIVATE_REPLY,
            "dedupe_key": f"private_reply:{origin.comment_id}",
            "payload": flows.render_private_reply(spec, None),
            "comment_id": origin.comment_id,
            "live_media_id": origin.live_media_id,
        }
    # One answer per message a person sent, whichever trigger gives it: the key names the
    # message, not the trigger (before, it named both: a different winner sent again).
    return {
        **common,
        "kind": DeliveryKind.MESSAGE,
        "dedupe_key": f"message:{origin.key}",
        "payload": flows.render(spec, None),
    }


# -- comments -----------------------------------------------------------------------------------


# A post whose publish time Meta could not give is asked again after this long.
MEDIA_TIME_RETRY = timedelta(minutes=10)


def _next_post_triggers_enabled():
    return Trigger.objects.filter(
        enabled=True, event=TriggerEvent.COMMENT, extra__scope="next_post"
    ).order_by()


def accounts_waiting_for_next_post() -> set[int]:
    """Ids of accounts with an enabled "next post" comment trigger (one cheap query: usually
    none, and then processing reads nothing from Meta)."""
    return set(_next_post_triggers_enabled().values_list("account_id", flat=True).distinct())


def _next_post_waiting() -> tuple[str, tuple]:
    return _next_post_triggers_enabled().values("pk")[:1].query.sql_with_params()


# Asked for every event: compiled once per process (config/prepared.py).
_NEXT_POST_WAITING = PreparedStatement(_next_post_waiting)


def next_post_waiting_sql() -> tuple[str, list]:
    """SQL (and parameters) of a query with a row when any account has an enabled "next
    post" trigger: processing asks it together with another statement."""
    return _NEXT_POST_WAITING.bound_sql()


def _waiting_for_next_post(account: InstagramAccount) -> list[Trigger]:
    return [t for t in next_post_triggers(account=account) if not t.media_ids]


def comment_prepare(*, account: InstagramAccount, comment: CommentEvent) -> None:
    """What answering the comment needs from Meta, fetched before the event's transaction
    (never while its row lock is held): the publish time of its post when a "next post"
    trigger waits. Read once per post (kept in MediaPublishTime) and counted against the
    account's budget (messaging.services.media_published_at)."""
    if comment.is_reply or not comment.media_id or not _waiting_for_next_post(account):
        return
    known = MediaPublishTime.objects.filter(account=account, media_id=comment.media_id).first()
    now = timezone.now()
    if known is not None and (
        known.published_at is not None or known.checked_at > now - MEDIA_TIME_RETRY
    ):
        return
    published = messaging_services.media_published_at(account=account, media_id=comment.media_id)
    MediaPublishTime.objects.update_or_create(
        account=account,
        media_id=comment.media_id,
        defaults={"published_at": published, "checked_at": now},
    )


def _bind_next_post(account: InstagramAccount, comment: CommentEvent) -> list[str]:
    """Point "next post" triggers at this post if it was published after they were armed.

    The publish time comes from comment_prepare's record: no call to Meta here (this runs
    inside the event's transaction). Unknown: nothing is bound, a later comment tries again.
    """
    waiting = _waiting_for_next_post(account)
    if not waiting or not comment.media_id:
        return []
    published = (
        MediaPublishTime.objects.filter(account=account, media_id=comment.media_id)
        .values_list("published_at", flat=True)
        .first()
    )
    if published is None:
        return []
    bound = []
    for trigger in waiting:
        armed_at = trigger.extra.get("armed_at")
        armed = datetime.fromisoformat(armed_at) if armed_at else trigger.updated_at
        if published > armed:
            trigger.media_ids = [comment.media_id]
            trigger.extra = {k: v for k, v in trigger.extra.items() if k not in ("scope",)}
            trigger.extra["bound_from_scope"] = "next_post"
            trigger.save(update_fields=["media_ids", "extra", "updated_at"])
            bound.append(trigger.name)
    if bound:
        # The trigger versions read with the account are out of date now: ask again.
        account.__dict__.pop("trigger_versions", None)
    return bound


def comment_answer(
    *,
    account: InstagramAccount,
    comment: CommentEvent,
    contact: Contact,
    event_id: int | None,
    event_received_at,
    next_post_waiting: bool | None = None,
) -> dict:
    """Match a comment against the account's triggers and queue the replies.

    Returns a summary for the event log: the outcome and, when matched, the deliveries.
    ``next_post_waiting``: False when processing knows no account has a "next post" trigger.
    """
    is_live = comment.field == "live_comments" or comment.media_product_type.upper() == "LIVE"
    bound = []
    if not comment.is_reply and next_post_waiting is not False:
        bound = _bind_next_post(account, comment)
    context = CommentContext(media_id=comment.media_id, is_reply=comment.is_reply, is_live=is_live)
    decision = trigger_choose(
        account=account, event=TriggerEvent.COMMENT, text=comment.text, comment=context
    )
    if decision is None:
        if comment.is_reply:
            why = "a reply to another comment (no trigger takes replies)"
            return {"outcome": "ignored", "why": why}
        return {"outcome": "no_match"}
    trigger = decision.trigger
    origin = flows.Origin(
        key=f"comment:{comment.comment_id}",
        occurred_at=comment.occurred_at,
        event_id=event_id,
        event_received_at=event_received_at,
        comment_id=comment.comment_id,
        live_media_id=(comment.media_id or "") if is_live else "",
    )
    summary = _summary(trigger, decision, "keywords matched")
    if bound:
        summary["bound_next_post"] = bound
    # Only top-level comments take public replies: a reply is answered under its thread;
    # live comments get the private reply only.
    public_reply_to = "" if is_live else (comment.parent_id or comment.comment_id)
    return _answer(
        account=account,
        trigger=trigger,
        contact=contact,
        origin=origin,
        summary=summary,
        public_reply_to=public_reply_to,
    )


# -- direct messages, story replies, story mentions, taps ---------------------------------


def message_answer(
    *,
    account: InstagramAccount,
    message: MessagingEvent,
    contact: Contact,
    first_message: bool,
    event_id: int | None,
    event_received_at,
) -> dict:
    """Answer something a person sent: a tap continues its flow; else one trigger answers."""
    origin = flows.Origin(
        key=f"mid:{message.mid}" if message.mid else f"at:{message.occurred_at.isoformat()}",
        occurred_at=message.occurred_at,
        event_id=event_id,
        event_received_at=event_received_at,
    )
    tap = flows.parse_payload(message.payload)
    if tap is not None:
        return flows.flow_tap(account=account, contact=contact, tap=tap, origin=origin)
    event = _EVENT_FOR_KIND.get(message.kind)
    if event is None:
        return {"outcome": "recorded"}
    text = message.text
    waiting = flows.flow_waiting_reply(contact=contact, text=text) if event == "dm" else None
    if waiting is not None and waiting.named:
        # The person typed an option's title: that is a tap.
        return flows.flow_tap(account=account, contact=contact, tap=waiting.tap, origin=origin)
    decision = trigger_choose(account=account, event=event, text=text)
    if decision is not None:
        summary = _summary(decision.trigger, decision, "keywords matched")
        return _answer(
            account=account,
            trigger=decision.trigger,
            contact=contact,
            origin=origin,
            summary=summary,
        )
    if waiting is not None:
        return flows.flow_tap(account=account, contact=contact, tap=waiting.tap, origin=origin)
    fallback = trigger_fallback(account=account, event=event, first_message=first_message)
    if fallback is None:
        return {"outcome": "no_match"}
    welcome = trigger_fires_on(fallback) == FiresOn.FIRST_MESSAGE
    why = "first message (welcome)" if welcome else "default reply"
    return _answer(
        account=account,
        trigger=fallback,
        contact=contact,
        origin=origin,
        summary=_summary(fallback, None, why),
    )
