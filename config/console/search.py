"""Finding a person and what they were sent from one search box: by @username, name, comment
text, comment id or IGSID (the deliveries list, the contacts list, the dashboard).

What people wrote is searched in the interactions of the accounts the person may see only, so
another workspace's words never make a row findable (webhooks.selectors does the same for
events).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import Contact
from accounts.permissions import is_agency_admin, member_workspace_ids
from webhooks.interactions import interactions_catch_up
from webhooks.models import Interaction


def _said(user, roles: tuple[str, ...], text: str) -> QuerySet[Interaction]:
    said = Interaction.objects.filter(text__icontains=text)
    if not is_agency_admin(user):
        said = said.filter(account__workspace_id__in=member_workspace_ids(user, roles))
    return said


def _people(bare: str) -> Q:
    return (
        Q(igsid=bare)
        | Q(username__iexact=bare)
        | Q(username__icontains=bare)
        | Q(name__icontains=bare)
    )


def deliveries_matching(queryset, *, user, roles: tuple[str, ...], text: str):
    """The deliveries of ``queryset`` (already the person's) that the search names."""
    term = text.strip()
    bare = term.lstrip("@")
    if not bare:
        return queryset
    interactions_catch_up(most_batches=1)
    people = Contact.objects.filter(_people(bare)).values("pk")
    said = _said(user, roles, term)
    return queryset.filter(
        Q(comment_id=bare)
        | Q(recipient=bare)
        | Q(meta_response_id=term)
        | Q(meta_trace_id=term)
        | Q(contact_id__in=people)
        | Q(comment_id__in=said.exclude(comment_id="").values("comment_id"))
        | Q(contact_id__in=said.exclude(contact=None).values("contact_id"))
    )


def contacts_matching(queryset, *, user, roles: tuple[str, ...], text: str):
    term = text.strip()
    bare = term.lstrip("@")
    if not bare:
        return queryset
    interactions_catch_up(most_batches=1)
    said = _said(user, roles, term)
    by_comment = Interaction.objects.filter(comment_id=bare)
    return queryset.filter(
        _people(bare)
        | Q(pk__in=said.exclude(contact=None).values("contact_id"))
        | Q(pk__in=by_comment.exclude(contact=None).values("contact_id"))
    )
