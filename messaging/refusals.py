"""Whose problem is a refusal? One person's, or the whole account's (meta-api.md section 6).

Only refusals about the account itself hold its other sends: a dead token, a permission Meta
names (code 230, or "Requires <permission>" in the message), a policy block (368, a pause).
Codes 10 and 200-299 are also used for refusals about one person or one thread, so an
ambiguous one (no subcode we know, no permission named) ends that one delivery only. If the
account really lost access (for example "Allow access to messages" was switched off), every
send fails the same way; the breaker notices: ``BREAKER_RECIPIENTS`` different people refused
in a row, with no successful send in between, hold the account with the reason stated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts.models import InstagramAccount
from messaging.models import Delivery
from meta.client import GraphResult

logger = logging.getLogger(__name__)

# Different recipients refused in a row (ambiguous code 10/200) before the account is held.
BREAKER_RECIPIENTS = 3
# Entries kept in the streak; only the newest matter.
STREAK_KEEP = 10


@dataclass(frozen=True)
class BreakerTrip:
    """The breaker opened: hold the account, with this sentence as the reason."""

    sentence: str
    recipients: int


def _entry(delivery: Delivery, result: GraphResult) -> dict:
    return {
        "recipient": delivery.contact.igsid if delivery.contact else delivery.recipient,
        "delivery": delivery.pk,
        "code": result.code,
        "subcode": result.subcode,
        "message": result.message[:300],
        "at": timezone.now().isoformat(),
    }


def _trip_sentence(account: InstagramAccount, streak: list[dict], recipients: int) -> str:
    last = streak[-1]
    code = f"{last.get('code')}" + (f"/{last['subcode']}" if last.get("subcode") else "")
    return (
        f"Held: Meta refused {recipients} different people in a row with code {code} "
        f"({last.get('message') or 'no message'}), which points at @{account.username} "
        "rather than at the people. Check that the Instagram account allows access to messages "
        "(Instagram app > Settings > Messages and story replies > Message controls > Allow "
        f"access to messages) and still grants every permission, then reconnect @"
        f"{account.username}: reconnecting releases the held sends."
    )


def refusal_streak_record(
    *, account: InstagramAccount, delivery: Delivery, result: GraphResult
) -> BreakerTrip | None:
    """Add an ambiguous refusal to the account's streak; a trip when it holds the account."""
    with transaction.atomic():
        locked = (
            InstagramAccount.objects.select_for_update()
            .only("pk", "username", "refusal_streak")
            .get(pk=account.pk)
        )
        streak = [*(locked.refusal_streak or []), _entry(delivery, result)][-STREAK_KEEP:]
        recipients = len({item.get("recipient") for item in streak})
        tripped = recipients >= BREAKER_RECIPIENTS
        # A trip starts a new streak: the hold carries the story from here on.
        InstagramAccount.objects.filter(pk=account.pk).update(
            refusal_streak=[] if tripped else streak
        )
    account.refusal_streak = [] if tripped else streak
    if not tripped:
        return None
    sentence = _trip_sentence(locked, streak, recipients)
    logger.warning("%s", sentence)
    return BreakerTrip(sentence=sentence, recipients=recipients)


def refusal_streak_clear(*, account: InstagramAccount) -> None:
    """A send went through: the account can message, so the streak starts again.

    Writes only when the account (as loaded with the delivery) had a streak, so the usual
    successful send costs no extra statement.
    """
    if account.refusal_streak:
        InstagramAccount.objects.filter(pk=account.pk).update(refusal_streak=[])
        account.refusal_streak = []
