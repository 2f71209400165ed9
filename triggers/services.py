"""Deciding what to send for an event, then handing it to messaging."""

import random

from accounts.models import Contact, InstagramAccount
from messaging import services as messaging_services
from meta.payloads import CommentEvent
from triggers.models import Trigger, TriggerEvent
from triggers.selectors import trigger_choose


def public_reply_pick(trigger: Trigger) -> str:
    """A random variant, never the same one twice in a row."""
    variants = [text for text in trigger.public_replies if text.strip()]
    if not variants:
        return ""
    indices = list(range(len(variants)))
    if len(indices) > 1 and trigger.last_public_reply_index in indices:
        indices.remove(trigger.last_public_reply_index)
    index = random.choice(indices)
    Trigger.objects.filter(pk=trigger.pk).update(last_public_reply_index=index)
    trigger.last_public_reply_index = index
    return variants[index]


def comment_answer(
    *,
    account: InstagramAccount,
    comment: CommentEvent,
    contact: Contact,
    event_id: int | None,
    event_received_at,
) -> dict:
    """Match a comment against the account's triggers and queue the replies.

    Returns a summary for the event log: the outcome and, when matched, the deliveries.
    """
    if comment.is_reply:
        return {"outcome": "ignored", "why": "a reply to another comment"}
    decision = trigger_choose(
        account=account, event=TriggerEvent.COMMENT, text=comment.text, media_id=comment.media_id
    )
    if decision is None:
        return {"outcome": "no_match"}
    trigger = decision.trigger
    private_message = trigger.messages[0] if trigger.messages else None
    deliveries = messaging_services.deliveries_create_for_comment(
        account=account,
        trigger=trigger,
        contact=contact,
        comment_id=comment.comment_id,
        commented_at=comment.occurred_at,
        event_id=event_id,
        event_received_at=event_received_at,
        public_reply_text=public_reply_pick(trigger),
        private_message=private_message,
    )
    return {
        "outcome": "matched",
        "trigger": trigger.name,
        "trigger_id": trigger.pk,
        "mode": decision.mode,
        "keyword": decision.match.keyword,
        "score": round(decision.match.score, 1),
        "deliveries": [delivery.pk for delivery in deliveries],
    }
