"""Meta's deauthorize and data-deletion callbacks (meta-api.md section 7), as services.

Both carry a ``signed_request`` naming a person by ``user_id``: the app-scoped id of whoever
logged in with Facebook or Instagram to connect accounts. Accounts are matched on
``meta_user_id`` (stored at connect), and for Instagram-Login accounts also on their ids,
because that login's user *is* the account [unsure: which id Meta puts in ``user_id`` for
Instagram Login; the stand-in sends the app-scoped id, our ``ig_alt_id``].

What "the person's data" is, and what stays (docs/tokens.md):

- the accounts they connected: the token, its scopes and expiry, their Meta user id and the
  Instagram-Login app-scoped id are wiped; everything read through that token goes: contacts
  (with their flow runs and trigger firings), deliveries (with their attempts), and the
  webhook events naming the account are redacted. The account row stays as a disconnected
  shell ("needs reconnect") holding the agency's triggers: those are the agency's own content,
  and keeping them lets the account be reconnected without rebuilding its automations.
- a person who only messaged or commented (their Instagram-scoped id equals ``user_id``):
  their contacts on every account, their deliveries, and the events mentioning them.

Events are redacted, not deleted: the body and per-update results are replaced, but the
row and its SHA-256 dedupe key stay, so a redelivery of the same bytes by Meta is still
recognised and sends nothing again. A batched body is redacted as a whole.

Idempotence: a repeat for the same person and callback within ``REPEAT_WINDOW`` answers the
same confirmation code; the work runs again (it finds nothing or only what arrived since) and
its counts are added. Both callbacks run in the request, in one transaction: the rows
involved are one person's, and Meta retries a callback that fails.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.audit import audit_record, secret_changed
from accounts.models import (
    AccountStatus,
    AuditEntry,
    Contact,
    DataDeletionRequest,
    InstagramAccount,
    LoginKind,
    PendingConnection,
)
from accounts.tokens import ACTION_DEAUTHORIZED
from meta.signatures import SignedRequestError, parse_signed_request

logger = logging.getLogger(__name__)

ACTOR_META = "Meta"
ACTION_DATA_DELETED = "data_deleted"
SOURCE_DEAUTHORIZE, SOURCE_DATA_DELETION = "deauthorize", "data_deletion"
STATUS_COMPLETED = "completed"
REPEAT_WINDOW = timedelta(days=1)
MAX_USER_ID_LENGTH = 64
# Marks a redacted webhook event (its error field starts with it; replay skips those).
REDACTED_PREFIX = "Redacted"
# Audit entries keep what changed on an account; these values identify the person.
_PERSONAL_AUDIT_FIELDS = ("meta_user_id", "ig_alt_id")


class CallbackError(ValueError):
    """A callback we cannot act on; the message says why (it is answered with 400)."""


def callback_user_id(signed_request: str) -> str:
    """Verify Meta's ``signed_request`` (either app secret) and return the person it names."""
    secrets_ = [settings.META_APP_SECRET, settings.INSTAGRAM_APP_SECRET]
    try:
        payload = parse_signed_request(signed_request or "", secrets_)
    except SignedRequestError as exc:
        raise CallbackError(str(exc)) from exc
    user_id = payload.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id.strip():
        raise CallbackError("The signed_request names no user_id.")
    user_id = user_id.strip()
    # Meta's ids are numeric; anything else would be matched against stored ids and bodies.
    if not user_id.isdigit() or len(user_id) > MAX_USER_ID_LENGTH:
        raise CallbackError("The signed_request's user_id is not a Meta user id.")
    return user_id


def accounts_of_person(user_id: str) -> QuerySet[InstagramAccount]:
    """The accounts the person connected (see the module's note on Instagram Login)."""
    instagram = Q(login_kind=LoginKind.INSTAGRAM) & (Q(ig_alt_id=user_id) | Q(ig_user_id=user_id))
    return InstagramAccount.objects.filter(Q(meta_user_id=user_id) | instagram)


def _new_code() -> str:
    return secrets.token_hex(10)


def _request_for(user_id: str, source: str, now: datetime) -> DataDeletionRequest:
    """The record a repeat within a day reuses (same code for Meta and the person)."""
    recent = (
        DataDeletionRequest.objects.select_for_update()
        .filter(meta_user_id=user_id, source=source, requested_at__gte=now - REPEAT_WINDOW)
        .order_by("-requested_at")
        .first()
    )
    if recent is not None:
        return recent
    return DataDeletionRequest.objects.create(
        confirmation_code=_new_code(), meta_user_id=user_id, source=source, requested_at=now
    )


def _complete(record: DataDeletionRequest, counts: dict[str, int], now: datetime) -> None:
    summary = dict(record.summary or {})
    for key, value in counts.items():
        summary[key] = int(summary.get(key, 0)) + value
    summary["runs"] = int(summary.get("runs", 0)) + 1
    record.summary, record.status, record.completed_at = summary, STATUS_COMPLETED, now
    record.save(update_fields=["summary", "status", "completed_at"])


def _wipe_token(
    account: InstagramAccount, *, sentence: str, now: datetime, also: tuple[str, ...] = ()
) -> list[str]:
    """Disconnect the account and forget its token; returns the fields written.

    ``also`` names other fields the caller changed on ``account``, saved in the same write.
    """
    account.access_token_encrypted = ""
    account.scopes = []
    account.token_expires_at = None
    account.token_refreshed_at = None
    fields = ["access_token_encrypted", "scopes", "token_expires_at", "token_refreshed_at", *also]
    if account.status != AccountStatus.DISABLED:
        # Disabled stays disabled (an operator's choice), but without a token.
        if account.status == AccountStatus.ACTIVE:
            account.status_changed_at = now
            fields.append("status_changed_at")
        account.status = AccountStatus.NEEDS_RECONNECT
        account.reconnect_reason = "token_invalid"
        account.status_reason = sentence
        fields += ["status", "reconnect_reason", "status_reason"]
    account.save(update_fields=[*fields, "updated_at"])
    return fields


@transaction.atomic
def meta_deauthorize(*, user_id: str, now: datetime | None = None) -> DataDeletionRequest:
    """The person removed our app: their accounts need reconnecting and lose their token.

    Queued sends of those accounts are held by the pre-send checklist and expire after
    ``HOLD_LIMIT_SECONDS`` like any other held send; a reconnect releases them.
    """
    now = now or timezone.now()
    record = _request_for(user_id, SOURCE_DEAUTHORIZE, now)
    disconnected = 0
    for account in accounts_of_person(user_id).select_for_update().order_by("pk"):
        before = account.status
        sentence = (
            f"Reconnect @{account.username}: the app was removed on Facebook/Instagram by the "
            "person who connected it, so Meta no longer accepts its token."
        )
        fields = _wipe_token(account, sentence=sentence, now=now)
        disconnected += before == AccountStatus.ACTIVE
        audit_record(
            action=ACTION_DEAUTHORIZED,
            obj=account,
            actor_label=ACTOR_META,
            changes={
                "access_token_encrypted": secret_changed(),
                **({"status": [before, account.status]} if "status" in fields else {}),
            },
            note=f"Deauthorize callback {record.confirmation_code}: token wiped.",
        )
    # Half-finished connections hold the person's user token, now dead.
    pending, _ = PendingConnection.objects.filter(meta_user_id=user_id).delete()
    _complete(
        record,
        {
            "accounts": accounts_of_person(user_id).count(),
            "accounts_disconnected": disconnected,
            "pending_connections": pending,
        },
        now,
    )
    logger.info(
        "Meta deauthorize %s: %d account(s) disconnected", record.confirmation_code, disconnected
    )
    return record


def _id_pattern(ids: set[str]) -> str:
    """A regex for any of the numeric ids as a whole number inside a raw JSON body."""
    alternatives = "|".join(sorted(ids))
    return rf"(^|[^0-9])({alternatives})([^0-9]|$)"


def _redact_events(*, account_ids: list[int], ids: set[str], code: str, now: datetime) -> int:
    """Blank the raw bodies and results of events naming these accounts or ids."""
    from webhooks.models import WebhookEvent  # deletion must reach every app's rows

    ids = {i for i in ids if i}
    query = Q(accounts__pk__in=account_ids) if account_ids else Q(pk__in=[])
    if ids:
        query |= Q(raw_body__regex=_id_pattern(ids))
    marker = f"{REDACTED_PREFIX} for data deletion request {code} at {now:%Y-%m-%d %H:%M} UTC."
    body = json.dumps({"object": "instagram", "entry": [], "redacted": marker})
    event_ids = list(
        WebhookEvent.objects.filter(query)
        .exclude(error__startswith=REDACTED_PREFIX)
        .values_list("pk", flat=True)
        .distinct()
    )
    return WebhookEvent.objects.filter(pk__in=event_ids).update(
        raw_body=body, result=[], error=marker
    )


def _scrub_audit(account_ids: list[int]) -> None:
    entries = AuditEntry.objects.filter(
        object_type=InstagramAccount._meta.label_lower,
        object_id__in=[str(pk) for pk in account_ids],
    )
    for entry in entries:
        changes = entry.changes or {}
        if any(name in changes for name in _PERSONAL_AUDIT_FIELDS):
            for name in _PERSONAL_AUDIT_FIELDS:
                if name in changes:
                    changes[name] = ["(deleted)", "(deleted)"]
            AuditEntry.objects.filter(pk=entry.pk).update(changes=changes)


@transaction.atomic
def meta_data_deletion(*, user_id: str, now: datetime | None = None) -> DataDeletionRequest:
    """Remove what we hold about the person (see the module's note); record what went."""
    from messaging.models import Delivery  # deletion must reach every app's rows

    now = now or timezone.now()
    record = _request_for(user_id, SOURCE_DATA_DELETION, now)
    code = record.confirmation_code
    accounts = list(accounts_of_person(user_id).select_for_update().order_by("pk"))
    account_pks = [account.pk for account in accounts]
    business_ids = {i for a in accounts for i in (a.ig_user_id, a.ig_alt_id, a.page_id) if i}

    # Deliveries first: deleting a contact would only unlink its deliveries (SET_NULL).
    _, delivery_counts = Delivery.objects.filter(
        Q(account__pk__in=account_pks) | Q(contact__igsid=user_id) | Q(recipient=user_id)
    ).delete()
    _, contact_counts = Contact.objects.filter(
        Q(account__pk__in=account_pks) | Q(igsid=user_id)
    ).delete()
    events = _redact_events(
        account_ids=account_pks, ids=business_ids | {user_id}, code=code, now=now
    )
    for account in accounts:
        sentence = (
            f"Reconnect @{account.username}: its data was deleted at the request of the person "
            f"who connected it (Meta data deletion request {code})."
        )
        account.meta_user_id = ""
        also: tuple[str, ...] = ("meta_user_id",)
        if account.login_kind == LoginKind.INSTAGRAM:
            account.ig_alt_id = ""  # Instagram Login's app-scoped id of the person
            also += ("ig_alt_id",)
        _wipe_token(account, sentence=sentence, now=now, also=also)
        audit_record(
            action=ACTION_DATA_DELETED,
            obj=account,
            actor_label=ACTOR_META,
            note=f"Data deletion request {code}: token, contacts, deliveries and events removed.",
        )
    _scrub_audit(account_pks)
    pending, _ = PendingConnection.objects.filter(meta_user_id=user_id).delete()
    counts = {
        "accounts": len(accounts),
        "contacts": contact_counts.get(Contact._meta.label, 0),
        "flow_runs": contact_counts.get("triggers.FlowRun", 0),
        "trigger_firings": contact_counts.get("triggers.TriggerFiring", 0),
        "deliveries": delivery_counts.get(Delivery._meta.label, 0),
        "events_redacted": events,
        "pending_connections": pending,
    }
    _complete(record, counts, now)
    logger.info("Meta data deletion %s done: %s", code, counts)
    return record
