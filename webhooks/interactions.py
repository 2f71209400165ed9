"""What people did, read out of processed events: the inbound side of a person's timeline.

Processing stores each event's updates per account (``WebhookEventPart``) with what became of
them; here beat (and the timeline page, to catch up with the last seconds) reads those parts
into one ``Interaction`` row per thing a person did: a comment with its text and post, a DM, a
story reply or mention, a tap, a reaction, a read. Support finds a person by what they wrote
and reads their history from these rows, in time order, next to what we sent them.

Nothing here runs while an event is processed: a part is written as before, and read later in
bounded batches (``interactions_read``), so intake and processing cost no more.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.db import transaction

from accounts.models import Contact
from meta.payloads import CommentEvent, MessagingEvent, MessagingKind, PayloadError, parse_webhook
from triggers.models import Trigger
from webhooks.models import Interaction, InteractionKind, WebhookEventPart

logger = logging.getLogger(__name__)

# Parts read per batch: one transaction, a few queries, bounded memory.
BATCH_SIZE = 500

_KIND_OF_MESSAGE = {
    MessagingKind.MESSAGE: InteractionKind.MESSAGE,
    MessagingKind.STORY_REPLY: InteractionKind.STORY_REPLY,
    MessagingKind.STORY_MENTION: InteractionKind.STORY_MENTION,
    MessagingKind.QUICK_REPLY: InteractionKind.QUICK_REPLY,
    MessagingKind.POSTBACK: InteractionKind.POSTBACK,
    MessagingKind.REACTION: InteractionKind.REACTION,
    MessagingKind.READ: InteractionKind.READ,
    MessagingKind.REFERRAL: InteractionKind.REFERRAL,
    MessagingKind.DELETED: InteractionKind.DELETED,
    MessagingKind.UNSUPPORTED: InteractionKind.OTHER,
}
TAP_KINDS = (InteractionKind.QUICK_REPLY, InteractionKind.POSTBACK)


@dataclass
class _Row:
    position: int
    igsid: str
    fields: dict


def _rows_of(part: WebhookEventPart) -> list[_Row]:
    """One row per update a person made, with its result (same order as processing)."""
    try:
        updates = parse_webhook(json.loads(part.body))
    except (PayloadError, ValueError):
        return []
    results = list(part.result or [])
    account = part.account
    rows = []
    for position, update in enumerate(updates):
        result = results[position] if position < len(results) else {}
        result = result if isinstance(result, dict) else {}
        if isinstance(update, CommentEvent):
            if not update.from_id or account.owns_id(update.from_id):
                continue  # our own replies coming back, or no author: not a person's act
            fields = {
                "kind": InteractionKind.COMMENT,
                "username": update.from_username[:64],
                "text": update.text,
                "media_id": update.media_id[:64],
                "comment_id": update.comment_id[:64],
                "parent_id": update.parent_id[:64],
            }
            igsid = update.from_id
        elif isinstance(update, MessagingEvent):
            kind = _KIND_OF_MESSAGE.get(update.kind)
            if kind is None or not update.sender_id or account.owns_id(update.sender_id):
                continue  # echoes of what the account sent
            fields = {"kind": kind, "text": update.text, "mid": update.mid[:200]}
            igsid = update.sender_id
        else:
            continue  # mentions in captions name no person; unknown items say nothing
        fields.update(
            occurred_at=update.occurred_at,
            outcome=str(result.get("outcome", ""))[:16],
            result=result,
        )
        rows.append(_Row(position, igsid[:64], fields))
    return rows


def interactions_read(*, batch_size: int = BATCH_SIZE) -> int:
    """Read one batch of unread parts into interactions; returns how many parts were read.

    Safe to run concurrently (rows are locked and skipped) and twice (one row per update).
    """
    with transaction.atomic():
        parts = list(
            WebhookEventPart.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(interactions_read=False)
            .select_related("account")
            .order_by("pk")[:batch_size]
        )
        if not parts:
            return 0
        found = [(part, row) for part in parts if part.account_id for row in _rows_of(part)]
        contacts = _contacts_for({(part.account_id, row.igsid) for part, row in found})
        wanted = {row.fields["result"].get("trigger_id") for _, row in found}
        triggers = set(
            Trigger.objects.filter(pk__in=[pk for pk in wanted if isinstance(pk, int)]).values_list(
                "pk", flat=True
            )
        )
        Interaction.objects.bulk_create(
            [
                Interaction(
                    event_id=part.event_id,
                    part=part,
                    position=row.position,
                    account_id=part.account_id,
                    contact_id=contacts.get((part.account_id, row.igsid)),
                    igsid=row.igsid,
                    trigger_id=_trigger_of(row, triggers),
                    **row.fields,
                )
                for part, row in found
            ],
            ignore_conflicts=True,
        )
        WebhookEventPart.objects.filter(pk__in=[part.pk for part in parts]).update(
            interactions_read=True
        )
    return len(parts)


def interactions_catch_up(*, most_batches: int = 4) -> int:
    """Read what processing left since the last run, up to ``most_batches`` batches (the
    timeline page calls it so support sees the last seconds; beat reads the rest)."""
    read = 0
    for _ in range(most_batches):
        done = interactions_read()
        read += done
        if done < BATCH_SIZE:
            break
    return read


def _trigger_of(row: _Row, existing: set[int]) -> int | None:
    pk = row.fields["result"].get("trigger_id")
    return pk if pk in existing else None


def _contacts_for(keys: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    if not keys:
        return {}
    accounts = {account_id for account_id, _ in keys}
    igsids = {igsid for _, igsid in keys}
    rows = Contact.objects.filter(account_id__in=accounts, igsid__in=igsids).values_list(
        "account_id", "igsid", "pk"
    )
    return {(account_id, igsid): pk for account_id, igsid, pk in rows}
