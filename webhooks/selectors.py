"""Reads for webhook events: what of an event a person may see.

Meta batches updates for several accounts into one POST, and one event can name accounts of
different workspaces. A workspace's people see only their accounts' part of it: the entries
that name those accounts and what processing made of them, never another workspace's
messages, comments or trigger names. Agency admins see the whole event.

The parts are stored when the event is processed (``WebhookEventPart``). For an event
processed before parts existed, or not processed yet, they are worked out from the raw body
on display, the same way, so every page and export that shows an event goes through
``event_view_for`` and shows the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from accounts.models import InstagramAccount
from accounts.permissions import SUPPORT_ROLES, is_agency_admin, member_workspace_ids
from meta.payloads import PayloadError, entry_account_id, parse_webhook
from webhooks.models import WebhookEvent, WebhookEventPart


@dataclass(frozen=True)
class EventPart:
    """The entries of an event that name one account, and the results of their updates."""

    instagram_id: str
    workspace_id: int | None  # None: no connected account (agency admins only)
    entries: list[dict[str, Any]]
    result: list[dict[str, Any]]


@dataclass(frozen=True)
class EventView:
    """What one person may see of an event."""

    object: str | None
    parts: list[EventPart]
    hidden_parts: int = 0
    # The body exactly as received: for agency admins, who see all of it.
    raw_body: str = ""
    extra_results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        """Nothing of the event is hidden from this person."""
        return self.hidden_parts == 0

    @property
    def body(self) -> dict[str, Any]:
        return {"object": self.object, "entry": [e for part in self.parts for e in part.entries]}

    @property
    def result(self) -> list[dict[str, Any]]:
        return [item for part in self.parts for item in part.result] + self.extra_results

    @property
    def instagram_ids(self) -> list[str]:
        return [part.instagram_id for part in self.parts if part.instagram_id]


def entry_instagram_id(entry: object) -> str:
    """The account an entry names (``entry.id``), as meta.payloads reads it (an id holding a
    NUL or a control character is no id: "")."""
    return entry_account_id(entry)


def body_entries_by_account(body: object) -> dict[str, list[dict[str, Any]]] | None:
    """The body's entries grouped by the account they name, in body order; None when the body
    is not an envelope with an entry list."""
    if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
        return None
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in body["entry"]:
        grouped.setdefault(entry_instagram_id(entry), []).append(entry)
    return grouped


def results_by_account(body: object, result: list[dict[str, Any]]) -> dict[str | None, list]:
    """Each result item under the account its update named. Items record it ("account");
    results written before they did are matched to the body's updates by position (processing
    appends one result per parsed update, in order). None collects what cannot be placed."""
    grouped: dict[str | None, list] = {}
    if all(isinstance(item, dict) and "account" in item for item in result):
        for item in result:
            grouped.setdefault(str(item["account"]), []).append(item)
        return grouped
    try:
        updates = parse_webhook(body)
    except PayloadError:
        updates = []
    if len(updates) != len(result):
        return {None: list(result)}
    for update, item in zip(updates, result, strict=True):
        grouped.setdefault(update.account_id, []).append(item)
    return grouped


@dataclass(frozen=True)
class BodyGroup:
    """The entries of a body naming one Instagram id, and their updates' results."""

    instagram_id: str
    entries: list[dict[str, Any]]
    result: list[dict[str, Any]]


def split_body(
    raw_body: str, result: list[dict[str, Any]]
) -> tuple[str | None, list[BodyGroup], list[dict[str, Any]]]:
    """(object, one group per account named, results that name no entry) of a stored body.
    A body that is not an envelope with an entry list has no groups."""
    try:
        body = json.loads(raw_body)
    except ValueError:
        return None, [], list(result or [])
    entries = body_entries_by_account(body)
    if entries is None:
        return None, [], list(result or [])
    results = results_by_account(body, list(result or []))
    groups = [
        BodyGroup(instagram_id, group, results.pop(instagram_id, []))
        for instagram_id, group in entries.items()
    ]
    leftover = [item for group in results.values() for item in group]
    return body.get("object"), groups, leftover


def _workspaces_of(accounts: Iterable[InstagramAccount]) -> dict[str, int]:
    mapping: dict[str, int] = {}
    for account in accounts:
        for instagram_id in (account.ig_user_id, account.ig_alt_id):
            if instagram_id:
                mapping[instagram_id] = account.workspace_id
    return mapping


def event_parts(event: WebhookEvent) -> tuple[str | None, list[EventPart], list[dict]]:
    """(object, parts, results that name no entry): stored, or worked out from the body."""
    stored = list(event.parts.all())  # prefetched by event_list_queryset for a list
    if stored:
        parts = []
        obj = None
        for part in stored:
            body = json.loads(part.body)
            obj = body.get("object", obj)
            parts.append(
                EventPart(
                    instagram_id=part.instagram_id,
                    workspace_id=part.account.workspace_id if part.account_id else None,
                    entries=body.get("entry", []),
                    result=list(part.result or []),
                )
            )
        return obj, parts, []
    obj, groups, leftover = split_body(event.raw_body, list(event.result or []))
    workspace_of = _workspaces_of(event.accounts.all())
    parts = [
        EventPart(
            instagram_id=group.instagram_id,
            workspace_id=workspace_of.get(group.instagram_id) if group.instagram_id else None,
            entries=group.entries,
            result=group.result,
        )
        for group in groups
    ]
    return obj, parts, leftover


def event_view_for(*, event: WebhookEvent, user, roles: tuple[str, ...] = SUPPORT_ROLES):
    """The parts of the event the person may see: all of it for agency admins; for a member,
    the parts naming accounts of workspaces where they hold one of ``roles``."""
    obj, parts, leftover = event_parts(event)
    if is_agency_admin(user):
        return EventView(object=obj, parts=parts, raw_body=event.raw_body, extra_results=leftover)
    allowed = member_workspace_ids(user, roles)
    visible = [part for part in parts if part.workspace_id in allowed]
    # A body that cannot be split, or results that name no entry, count as hidden too.
    hidden = len(parts) - len(visible) + bool(leftover) + (not parts)
    return EventView(object=obj, parts=visible, hidden_parts=hidden)


def event_list_queryset(queryset: QuerySet[WebhookEvent]) -> QuerySet[WebhookEvent]:
    """Prefetch what event_view_for reads, so a list of events costs a fixed few queries."""
    parts = WebhookEventPart.objects.select_related("account").order_by("pk")
    return queryset.prefetch_related("accounts", Prefetch("parts", queryset=parts))


def event_ids_matching_for(
    *, user, text: str, roles: tuple[str, ...] = SUPPORT_ROLES
) -> QuerySet[WebhookEventPart]:
    """Ids of events whose visible parts contain every word of ``text`` (a member's search:
    another workspace's part of a batched event must not make the event findable)."""
    parts = WebhookEventPart.objects.filter(
        account__workspace_id__in=member_workspace_ids(user, roles)
    )
    condition = Q()
    for word in text.split():
        condition &= Q(body__icontains=word)
    return parts.filter(condition).values("event_id")


@dataclass(frozen=True)
class UpdateView:
    """One update of an event as a person reads it: who did what, and what became of it."""

    instagram_id: str
    kind: str
    who: str
    contact_id: int | None
    text: str
    details: list[str]
    occurred_at: Any
    outcome: str
    delivery_ids: list[int]


def event_updates_for(*, view: EventView, user) -> list[UpdateView]:
    """The updates of the parts the person may see, parsed (no JSON to read), each with its
    outcome in words and the sends it queued."""
    from accounts.models import Contact
    from accounts.selectors import accounts_for_instagram_ids
    from webhooks.outcomes import KIND_WORDS, outcome_words

    found: list[tuple[EventPart, Any, dict]] = []
    for part in view.parts:
        try:
            updates = parse_webhook({"object": view.object or "instagram", "entry": part.entries})
        except PayloadError:
            updates = []
        for position, update in enumerate(updates):
            result = part.result[position] if position < len(part.result) else {}
            found.append((part, update, result if isinstance(result, dict) else {}))
    accounts = {
        instagram_id: account
        for account in accounts_for_instagram_ids(sorted({p.instagram_id for p in view.parts}))
        for instagram_id in (account.ig_user_id, account.ig_alt_id)
        if instagram_id
    }
    people = {
        (contact.account_id, contact.igsid): contact
        for contact in Contact.objects.filter(
            account__in=list(accounts.values()),
            igsid__in=[_person_of(update) for _, update, _ in found if _person_of(update)],
        )
    }
    shown = []
    for part, update, result in found:
        person = _person_of(update)
        account = accounts.get(part.instagram_id)
        contact = people.get((account.pk, person)) if account and person else None
        username = getattr(update, "from_username", "") or (contact.username if contact else "")
        details = []
        if getattr(update, "media_id", ""):
            details.append(f"post {update.media_id}")
        if getattr(update, "comment_id", ""):
            details.append(f"comment id {update.comment_id}")
        if getattr(update, "parent_id", ""):
            details.append(f"a reply to comment {update.parent_id}")
        if getattr(update, "mid", ""):
            details.append(f"message id {update.mid}")
        kind = str(result.get("type") or getattr(update, "kind", "") or "comment")
        shown.append(
            UpdateView(
                instagram_id=part.instagram_id,
                kind=KIND_WORDS.get(kind, kind.replace("_", " ").capitalize()),
                who=f"@{username}" if username else (person or "-"),
                contact_id=contact.pk if contact else None,
                text=getattr(update, "text", "") or "",
                details=details,
                occurred_at=update.occurred_at,
                outcome=outcome_words(result) if result else "not processed yet",
                delivery_ids=[d for d in result.get("deliveries") or [] if isinstance(d, int)],
            )
        )
    return shown


def _person_of(update) -> str:
    return getattr(update, "from_id", "") or getattr(update, "sender_id", "") or ""
