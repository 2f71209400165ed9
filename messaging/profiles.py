"""People who only ever sent DMs: their @username and name, from Meta's user profile.

Meta's messaging webhooks carry only an id; a comment carries the username. Meta answers a
profile lookup (``GET /{igsid}?fields=username,name``) once the person has written to the
account (their consent), so beat asks for those who wrote and have no username yet, a few at a
time, each counted against the account's read budget, outside any transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from accounts.models import AccountStatus, Contact
from messaging import graph
from messaging.pacer import read_budgets
from messaging.sharedstate import shared_state

logger = logging.getLogger(__name__)

# Asked again after this long when Meta could not say.
PROFILE_RETRY = timedelta(days=1)
PROFILES_PER_RUN = 50


def contact_profile_read(*, contact: Contact) -> bool:
    """Ask Meta for the person's username and name; True when it said. A network call: never
    inside a transaction."""
    account = contact.account
    if shared_state().try_acquire(read_budgets(account)) > 0:
        return False  # the account's budget is busy: another run asks
    result = graph.client_for(account).get(f"/{contact.igsid}", {"fields": "username,name"})
    data = result.data if result.ok and isinstance(result.data, dict) else {}
    username = str(data.get("username") or "")[:64]
    name = str(data.get("name") or "")[:150]
    fields = {"profile_checked_at": timezone.now()}
    if username:
        fields["username"] = username
    if name:
        fields["name"] = name
    Contact.objects.filter(pk=contact.pk).update(**fields)
    if not result.ok:
        logger.info(
            "Profile of %s on @%s not read: %s %s",
            contact.igsid,
            account.username,
            result.code,
            result.message,
        )
    return bool(username)


def contacts_fill_profiles(*, limit: int = PROFILES_PER_RUN) -> int:
    """Beat: usernames for people who wrote but never commented (bounded)."""
    due = timezone.now() - PROFILE_RETRY
    contacts = (
        Contact.objects.filter(
            username="",
            last_interaction_at__isnull=False,
            account__status=AccountStatus.ACTIVE,
        )
        .filter(Q(profile_checked_at__isnull=True) | Q(profile_checked_at__lt=due))
        .select_related("account")
        .order_by("-last_interaction_at")[:limit]
    )
    return sum(contact_profile_read(contact=contact) for contact in contacts)
