"""Read receipts: Meta says a person read the conversation up to a message (the funnel's
"seen"). A read is its own webhook item, so marking costs its own statement, never one more on
the comment or DM path."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from accounts.models import Contact, InstagramAccount
from messaging.models import Delivery, DeliveryStatus


def deliveries_mark_seen(
    *, account: InstagramAccount, igsid: str, mid: str, seen_at: datetime
) -> int:
    """Mark what we sent this person as seen: the message the receipt names, and everything
    sent to them before the receipt's time (reading a conversation shows all of it). One
    UPDATE; nothing when the workspace does not record reads. Returns how many."""
    if not igsid:
        return 0
    person = Contact.objects.filter(account=account, igsid=igsid).values("pk")
    named = Q(meta_response_id=mid) if mid else Q(pk__in=[])
    return (
        Delivery.objects.filter(
            named | Q(sent_at__lte=seen_at),
            account=account,
            contact_id__in=person,
            status=DeliveryStatus.SENT,
            seen_at__isnull=True,
            workspace__track_seen=True,
        )
        .exclude(kind="public_reply")
        .update(seen_at=seen_at)
    )
