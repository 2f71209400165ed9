"""Writes for workspaces, connected accounts and contacts."""

import enum
import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import AccountStatus, Contact, InstagramAccount, LoginKind, Workspace
from accounts.signals import account_reconnected

logger = logging.getLogger(__name__)


INSTAGRAM_USERNAME_MAX = 30


class AccountError(ValueError):
    """Input that cannot connect an account; the message says what to fix."""


class _Keep(enum.Enum):
    KEEP = "keep"


# "Leave this field as it is" for account_connect's arguments where None is a real value.
KEEP = _Keep.KEEP


@transaction.atomic
def account_connect(
    *,
    workspace_name: str,
    ig_user_id: str,
    username: str,
    access_token: str,
    page_id: str = "",
    login_kind: str = LoginKind.FACEBOOK,
    scopes: list[str] | None = None,
    ig_alt_id: str | None = None,
    token_expires_at: datetime | _Keep | None = KEEP,
    token_refreshed_at: datetime | _Keep | None = KEEP,
    meta_user_id: str | None = None,
    connected_by: Any = None,
    needs_reconnect: tuple[str, str] | None = None,
) -> tuple[InstagramAccount, bool]:
    """Connect an account with a token obtained elsewhere, or replace its token.

    Returns the account and whether it was created. The optional arguments are what the OAuth
    journey (accounts/connecting.py) knows beyond a pasted token; left out, they keep the stored
    values. ``needs_reconnect`` = (reason, sentence) stores the account as needing a reconnect
    (a permission was declined) instead of active; no held send is released then.
    """
    workspace_name = workspace_name.strip()
    ig_user_id = ig_user_id.strip()
    username = username.strip().lstrip("@")
    if not workspace_name:
        raise AccountError("--workspace must not be empty.")
    if not ig_user_id.isdigit():
        raise AccountError(f"--ig-user-id must be Instagram's numeric id, got {ig_user_id!r}.")
    if not username:
        raise AccountError("--username must not be empty.")
    if len(username) > INSTAGRAM_USERNAME_MAX:
        raise AccountError(
            f"--username has {len(username)} characters; Instagram allows at most "
            f"{INSTAGRAM_USERNAME_MAX}."
        )
    if len(workspace_name) > Workspace._meta.get_field("name").max_length:
        raise AccountError("--workspace is too long (at most 150 characters).")
    if len(ig_user_id) > 64 or len(page_id) > 64:
        raise AccountError("--ig-user-id and --page-id are at most 64 digits.")
    if not access_token.strip():
        raise AccountError("--access-token must not be empty.")
    if login_kind not in LoginKind.values:
        raise AccountError(f"--login must be one of {', '.join(LoginKind.values)}.")
    if page_id and not page_id.isdigit():
        raise AccountError(f"--page-id must be numeric, got {page_id!r}.")
    if login_kind == LoginKind.FACEBOOK and not page_id:
        raise AccountError("--page-id is required with --login facebook (the page sends messages).")

    account = InstagramAccount.objects.filter(ig_user_id=ig_user_id).first()
    if account and account.workspace.name != workspace_name:
        raise AccountError(
            f"Account {ig_user_id} is connected to workspace {account.workspace.name!r}; "
            "disconnect it there first."
        )
    workspace, _ = Workspace.objects.get_or_create(name=workspace_name)
    created = account is None
    if account is None:
        account = InstagramAccount(workspace=workspace, ig_user_id=ig_user_id)
    account.username = username
    account.page_id = page_id
    account.login_kind = login_kind
    account.access_token = access_token.strip()
    if scopes is not None:
        account.scopes = scopes
    if ig_alt_id is not None:
        account.ig_alt_id = ig_alt_id if ig_alt_id != ig_user_id else ""
    if token_expires_at is not KEEP:
        account.token_expires_at = token_expires_at
    if token_refreshed_at is not KEEP:
        account.token_refreshed_at = token_refreshed_at
    if meta_user_id is not None:
        account.meta_user_id = meta_user_id
    if connected_by is not None:
        account.connected_by = connected_by
    was_held = account.pk is not None and account.status == AccountStatus.NEEDS_RECONNECT
    if needs_reconnect is None:
        account.status = AccountStatus.ACTIVE
        account.status_reason = ""
        account.reconnect_reason = ""
        account.refusal_streak = []
    else:
        account.status = AccountStatus.NEEDS_RECONNECT
        account.reconnect_reason, account.status_reason = needs_reconnect
    account.status_changed_at = timezone.now()
    account.save()
    if was_held and needs_reconnect is None:
        transaction.on_commit(
            lambda: account_reconnected.send(sender=InstagramAccount, account=account)
        )
    return account, created


def account_mark_needs_reconnect(
    *, account: InstagramAccount, reason: str, detail: str, sentence: str = ""
) -> None:
    """A token or permission error: stop sending from the account until someone reconnects it.

    ``sentence`` is what the operator reads; by default it is built from ``reason`` and
    Meta's ``detail``.
    """
    if not sentence:
        what = "a permission is missing"
        if reason == "token_invalid":
            what = "its token no longer works"
        sentence = f"Reconnect @{account.username}: Meta says {what}"
        if detail:
            sentence += f" ({detail})"
    updated = (
        InstagramAccount.objects.filter(pk=account.pk)
        .exclude(status=AccountStatus.NEEDS_RECONNECT)
        .update(
            status=AccountStatus.NEEDS_RECONNECT,
            status_reason=sentence,
            reconnect_reason=reason,
            status_changed_at=timezone.now(),
        )
    )
    if updated:
        logger.warning("%s", sentence)
    account.status, account.reconnect_reason = AccountStatus.NEEDS_RECONNECT, reason


# "When did a webhook last arrive" is kept to this precision, so most events write nothing.
LAST_WEBHOOK_PRECISION = timedelta(minutes=1)


def accounts_note_webhook(*, account_ids: list[int], received_at: datetime) -> int:
    """Remember when a webhook for these accounts arrived (after the event's commit, outside
    its transaction; a no-op for an account noted in the last minute)."""
    return (
        InstagramAccount.objects.filter(pk__in=account_ids)
        .filter(
            Q(last_webhook_at__isnull=True)
            | Q(last_webhook_at__lt=received_at - LAST_WEBHOOK_PRECISION)
        )
        .update(last_webhook_at=received_at)
    )


def account_pause(*, account: InstagramAccount, until: datetime, reason: str) -> None:
    """No sends from the account before `until` (rate limit or policy block)."""
    InstagramAccount.objects.filter(pk=account.pk).filter(
        Q(paused_until__isnull=True) | Q(paused_until__lt=until)
    ).update(paused_until=until, pause_reason=reason)


def contact_mark_conversation_closed(*, contact_id: int, detail: str) -> None:
    """Blocked, restricted or unavailable: no more messages until the person writes again."""
    Contact.objects.filter(pk=contact_id).update(
        conversation_closed_at=timezone.now(), conversation_closed_reason=detail[:500]
    )


def contact_record_comment(
    *, account: InstagramAccount, igsid: str, username: str, commented_at: datetime
) -> Contact:
    """Remember who commented; a comment allows one private reply but opens no window."""
    # One statement (INSERT ... ON CONFLICT DO UPDATE): this runs for every comment.
    (contact,) = Contact.objects.bulk_create(
        [Contact(account=account, igsid=igsid, username=username, last_comment_at=commented_at)],
        update_conflicts=True,
        unique_fields=["account", "igsid"],
        update_fields=["username", "last_comment_at"] if username else ["last_comment_at"],
    )
    if contact.pk is None:  # backends that do not return ids on conflict
        contact = Contact.objects.get(account=account, igsid=igsid)
    return contact


def contact_record_inbound(
    *, account: InstagramAccount, igsid: str, interacted_at: datetime
) -> tuple[Contact, bool]:
    """Record an inbound message; the flag says it is the person's first (a new conversation).

    "First" is decided by one conditional UPDATE (or the INSERT that creates the contact), not
    by reading then writing: of two first messages processed at the same time by two workers
    (a person who had only commented writes twice quickly), exactly one sees the empty
    ``last_interaction_at`` and gets the welcome reply; the other waits on the row and then
    finds it set.
    """
    contact, created = Contact.objects.get_or_create(
        account=account, igsid=igsid, defaults={"last_interaction_at": interacted_at}
    )
    if created:
        return contact, True
    contacts = Contact.objects.filter(pk=contact.pk)
    first = bool(
        contacts.filter(last_interaction_at__isnull=True).update(last_interaction_at=interacted_at)
    )
    if not first:
        contacts.filter(last_interaction_at__lt=interacted_at).update(
            last_interaction_at=interacted_at
        )
    contact.refresh_from_db(fields=["last_interaction_at"])
    return contact, first
